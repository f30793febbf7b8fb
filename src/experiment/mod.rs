//! Experiments, from one run to a matrix: [`run`] brings a cluster up (or attaches to one),
//! plays a scenario against the seed's workload and writes the results; [`repeat`] runs one
//! experiment N times and writes the distribution of its figures; [`matrix`] repeats each
//! database × scenario and writes the seed's table. Each returns values and says what it
//! does through `say`; the binary decides what to print.

pub mod matrix;
pub mod repeat;
pub mod run;

pub use repeat::Subject;

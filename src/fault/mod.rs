//! Faults: what to cut (pure partition maths, [`partition`]), how to cut it in a node's
//! namespace ([`nft`]), how to check it is cut ([`probe`]), and the faults themselves, one
//! file each ([`isolate`]).

pub mod isolate;
pub mod nft;
pub mod partition;
pub mod probe;

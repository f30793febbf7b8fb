//! Integration tests: the real `perseus` binary, real database servers, real network
//! namespaces and nftables rules. They need root and the packages `.ci/run` installs; where
//! those are missing a test fails and says what to install (it is never counted as passed).

mod engine;
mod support;

mod bad_input;
mod containers;
mod crash;
mod disk_faults;
mod disk_layer;
mod docker_beside;
mod etcd_faults;
mod etcd_lab;
mod etcd_observers;
mod etcd_run;
mod external_cluster;
mod galera_run;
mod gryadka_run;
mod hostile_outputs;
mod hostile_records;
mod lab_concurrency;
mod matrix;
mod newcomer;
mod patroni_run;
mod protocols;
mod readme;
mod redis_sentinel_run;
mod repeat_check;
mod report_browser;
mod soak;
mod ssh_cluster;
mod tidb_run;
mod verdicts;
mod zookeeper_run;

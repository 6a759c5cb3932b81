//! The `apps` group.

pub mod deployment;
pub mod replicaset;

//! skiff-apiserver: the Kubernetes REST API for the kinds skiff serves, stored in etcd.
//!
//! A request flows `endpoints` (HTTP: path, verb, negotiation) → `registry` (the generic store
//! flow calling each kind's strategy; admission) → `storage` (etcd compare-and-swap writes,
//! watch-cache reads). `server` only wires them.

pub mod admission;
pub mod auth;
pub mod config;
pub mod discovery;
pub mod endpoints;
pub mod error;
pub mod managed_fields;
pub mod metrics;
pub mod object;
pub mod openapi;
pub mod params;
pub mod patch;
pub mod printers;
pub mod registry;
pub mod resource;
pub mod selection;
pub mod server;
pub mod state;
pub mod storage;
pub mod wire;

pub use config::{Config, SecureServing, Security};
pub use server::{start, RunningServer};

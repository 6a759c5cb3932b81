//! skiff-apiserver: the Kubernetes REST API for the kinds skiff serves, stored in etcd.
//!
//! Requests flow `rest` (path and verb) → `admission` (decode, default, validate, allocate) →
//! `storage` (compare-and-swap on etcd). Lists and watches are served by `watch` caches fed
//! by one etcd watch per resource.

pub mod admission;
pub mod discovery;
pub mod error;
pub mod logs;
pub mod managed_fields;
pub mod metrics;
pub mod object;
pub mod patch;
pub mod registry;
pub mod rest;
pub mod selection;
pub mod server;
pub mod storage;
pub mod table;
pub mod watch;

pub use server::{start, Config, RunningServer};

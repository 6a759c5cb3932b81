//! The generic store flow every write of every kind goes through, calling the kind's strategy
//! for what differs: create (`create.rs`), update with retries on conflicts (`update.rs`),
//! delete with graceful deletion and finalizers (`delete.rs`). It never names a kind.

pub mod create;
pub mod delete;
pub mod fields;
pub mod metadata;
pub mod update;

/// Compare-and-swap attempts before a write gives up.
pub const WRITE_ATTEMPTS: usize = 16;

//! Admission plugins: checks every write passes besides its kind's own validation.

pub mod namespace_lifecycle;
pub mod service_account;

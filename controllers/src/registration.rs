//! What a controller registers with: kept apart from the table in `registry.rs`, so that
//! controllers depend on this type and only the table depends on them.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::context::Context;

/// A controller: its `--controllers` name, the component it reports Events as, and its
/// constructor. `start` subscribes to the informers it reads at once (before they start) and
/// returns the future that runs the controller.
pub struct Registration {
    pub name: &'static str,
    pub reporter: &'static str,
    pub start: fn(Arc<Context>) -> BoxFuture<'static, ()>,
}

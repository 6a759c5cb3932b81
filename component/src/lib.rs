//! skiff-component: the runtime every skiff binary shares, so that each concern lives in one
//! place: how a component reaches the apiserver ([`client`]), elects a leader ([`leader`]),
//! records core/v1 Events ([`events`]), stops ([`shutdown`]), logs ([`tracing`]), names itself
//! ([`identity`]) and keeps background tasks from outliving their owner ([`task`]).

pub mod client;
pub mod events;
pub mod https;
pub mod identity;
pub mod leader;
pub mod shutdown;
pub mod task;
pub mod tracing;

pub use client::{ClientArgs, ClientError};
pub use events::{object_ref, EventKind, Recorder, Reporter};
pub use leader::{LeaderElectionConfig, LeaderElector, LeaderError};
pub use shutdown::{shutdown_signal, Shutdown};
pub use task::AbortOnDrop;
pub use tracing::init_tracing;

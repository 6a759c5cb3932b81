//! What every controller gets from the binary: client, shared informers, its Event recorder,
//! metrics and configuration.

use std::sync::Arc;

use skiff_component::Recorder;

use crate::informers::Informers;
use crate::metrics::Metrics;

pub struct Context {
    pub client: kube::Client,
    pub informers: Arc<Informers>,
    /// Reports as this controller (e.g. "replicaset-controller").
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub config: Arc<crate::Config>,
}

//! Log set-up shared by the binaries.

/// Log to stderr at `default_directive` (e.g. "info"); RUST_LOG overrides it. A second call
/// (or a subscriber installed by a test harness) is left alone.
pub fn init_tracing(default_directive: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_directive));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}

//! Scheduler configuration: the YAML file given with `--config`, and the in-process `Config`.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use skiff_component::LeaderElectionConfig;

/// Weights of the score plugins (0 disables a plugin). Defaults follow kube-scheduler's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Weights {
    pub least_allocated: i64,
    pub balanced_allocation: i64,
    pub pod_spread: i64,
    pub preferred_affinity: i64,
    pub taint_toleration: i64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            least_allocated: 1,
            balanced_allocation: 1,
            pod_spread: 2,
            preferred_affinity: 2,
            taint_toleration: 3,
        }
    }
}

/// The `--config` file.
///
/// ```yaml
/// schedulerName: default-scheduler
/// weights: {leastAllocated: 1, balancedAllocation: 1, podSpread: 2, preferredAffinity: 2, taintToleration: 3}
/// podInitialBackoffSeconds: 1
/// podMaxBackoffSeconds: 10
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct FileConfig {
    pub scheduler_name: Option<String>,
    pub weights: Weights,
    pub pod_initial_backoff_seconds: f64,
    pub pod_max_backoff_seconds: f64,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            scheduler_name: None,
            weights: Weights::default(),
            pod_initial_backoff_seconds: 1.0,
            pod_max_backoff_seconds: 10.0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: String,
        // Boxed: the YAML error carries its source snippet and is large.
        source: Box<skiff_common::yaml::Error>,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl FileConfig {
    pub fn parse(text: &str, path: &str) -> Result<FileConfig, ConfigError> {
        let cfg: FileConfig =
            skiff_common::yaml::from_str(text).map_err(|source| ConfigError::Parse {
                path: path.to_string(),
                source: Box::new(source),
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        FileConfig::parse(&text, &p)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let w = &self.weights;
        for (name, v) in [
            ("leastAllocated", w.least_allocated),
            ("balancedAllocation", w.balanced_allocation),
            ("podSpread", w.pod_spread),
            ("preferredAffinity", w.preferred_affinity),
            ("taintToleration", w.taint_toleration),
        ] {
            if !(0..=100).contains(&v) {
                return Err(ConfigError::Invalid(format!(
                    "weight {name} must be within 0..=100, got {v}"
                )));
            }
        }
        if !(self.pod_initial_backoff_seconds > 0.0
            && self.pod_max_backoff_seconds >= self.pod_initial_backoff_seconds)
        {
            return Err(ConfigError::Invalid(
                "need 0 < podInitialBackoffSeconds <= podMaxBackoffSeconds".into(),
            ));
        }
        Ok(())
    }
}

/// Everything `run` needs besides the client.
#[derive(Clone, Debug)]
pub struct Config {
    /// Pods whose `spec.schedulerName` equals this are ours.
    pub scheduler_name: String,
    pub weights: Weights,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// An unschedulable pod is retried at the latest after this long even without a cluster
    /// event (kube-scheduler: 5 minutes).
    pub max_unschedulable_duration: Duration,
    /// How many bindings may be in flight at once.
    pub bind_concurrency: usize,
    /// `None`: act at once without a lease.
    pub leader_election: Option<LeaderElectionConfig>,
    pub metrics: crate::metrics::Metrics,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            scheduler_name: "default-scheduler".into(),
            weights: Weights::default(),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            max_unschedulable_duration: Duration::from_secs(300),
            bind_concurrency: 64,
            leader_election: None,
            metrics: crate::metrics::Metrics::default(),
        }
    }
}

impl Config {
    /// Apply a `--config` file.
    pub fn apply_file(&mut self, f: &FileConfig) {
        if let Some(name) = &f.scheduler_name {
            self.scheduler_name = name.clone();
        }
        self.weights = f.weights.clone();
        self.initial_backoff = Duration::from_secs_f64(f.pod_initial_backoff_seconds);
        self.max_backoff = Duration::from_secs_f64(f.pod_max_backoff_seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_config_parses_partial_weights_and_rejects_unknown_keys() {
        let f = FileConfig::parse("weights:\n  podSpread: 5\n", "t").unwrap();
        assert_eq!(f.weights.pod_spread, 5);
        assert_eq!(f.weights.least_allocated, 1);
        assert!(FileConfig::parse("weights:\n  bogus: 1\n", "t").is_err());
        assert!(FileConfig::parse("weights:\n  podSpread: -1\n", "t").is_err());
        let mut c = Config::default();
        c.apply_file(
            &FileConfig::parse("schedulerName: other\npodInitialBackoffSeconds: 0.5\n", "t")
                .unwrap(),
        );
        assert_eq!(c.scheduler_name, "other");
        assert_eq!(c.initial_backoff, Duration::from_millis(500));
    }
}

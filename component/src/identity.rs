//! The one way a component names its host and itself.

/// This host's name, lower-cased (node names are DNS labels); "localhost" when unknown.
pub fn hostname() -> String {
    hostname::get()
        .ok()
        .map(|h| h.to_string_lossy().trim().to_lowercase())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The node name: the flag, else $NODE_NAME, else the hostname.
pub fn node_name(flag: Option<&str>) -> String {
    choose_node_name(flag, std::env::var("NODE_NAME").ok().as_deref(), hostname)
}

/// The precedence rule behind [`node_name`].
pub fn choose_node_name(
    flag: Option<&str>,
    env: Option<&str>,
    hostname: impl FnOnce() -> String,
) -> String {
    [flag, env]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(hostname)
}

/// `<hostname>_<uuid>`: unique per process, as client-go names leader-election candidates.
pub fn instance_identity() -> String {
    format!("{}_{}", hostname(), uuid::Uuid::new_v4())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_env_beats_hostname() {
        let host = || "host".to_string();
        assert_eq!(choose_node_name(Some("a"), Some("b"), host), "a");
        assert_eq!(choose_node_name(None, Some("b"), host), "b");
        assert_eq!(choose_node_name(Some(""), None, host), "host");
    }

    #[test]
    fn instance_identities_are_unique() {
        let a = instance_identity();
        assert!(a.starts_with(&format!("{}_", hostname())));
        assert_ne!(a, instance_identity());
    }
}

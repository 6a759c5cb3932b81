//! ClusterRole aggregation: a ClusterRole with an `aggregationRule` holds the rules of every
//! ClusterRole its selectors match (so `admin`, `edit` and `view` take in what a chart labels
//! `rbac.authorization.k8s.io/aggregate-to-view: "true"`), as kube-controller-manager's
//! clusterrole-aggregation controller does. Any ClusterRole change re-checks every aggregated
//! role; writes happen only when the rules differ.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::ResourceExt;
use serde_json::json;

use crate::context::Context;
use crate::registration::Registration;
use crate::util::selector;

pub const NAME: &str = "clusterrole-aggregation-controller";

pub const REGISTRATION: Registration = Registration {
    name: "clusterrole-aggregation",
    reporter: NAME,
    start,
};

/// The rules `role` should hold: those of every other ClusterRole one of its selectors
/// matches, in name order, each rule once. `None` when `role` aggregates nothing.
pub fn aggregated_rules(role: &ClusterRole, all: &[Arc<ClusterRole>]) -> Option<Vec<PolicyRule>> {
    let rule = role.aggregation_rule.as_ref()?;
    let selectors: Vec<_> = rule
        .cluster_role_selectors
        .iter()
        .flatten()
        .filter_map(|s| selector(Some(s)).ok())
        .collect();
    let mut sources: Vec<&Arc<ClusterRole>> = all
        .iter()
        .filter(|other| other.name_any() != role.name_any())
        .filter(|other| selectors.iter().any(|s| s.matches(other.labels())))
        .collect();
    sources.sort_by_key(|r| r.name_any());
    let mut rules: Vec<PolicyRule> = Vec::new();
    for source in sources {
        for r in source.rules.iter().flatten() {
            if !rules.contains(r) {
                rules.push(r.clone());
            }
        }
    }
    Some(rules)
}

async fn sync_all(ctx: &Context, store: &Store<ClusterRole>) {
    let all = store.state();
    let api: Api<ClusterRole> = Api::all(ctx.client.clone());
    for role in &all {
        let Some(rules) = aggregated_rules(role, &all) else {
            continue;
        };
        if role.rules.clone().unwrap_or_default() == rules {
            continue;
        }
        let patch = json!({
            "metadata": { "resourceVersion": role.resource_version() },
            "rules": rules,
        });
        match api
            .patch(
                &role.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => ctx.metrics.reconcile(NAME, true),
            // A conflict means a newer version is on its way through the stream.
            Err(e) => {
                tracing::debug!(role = %role.name_any(), error = %e, "aggregating rules");
                ctx.metrics.reconcile(NAME, false);
            }
        }
    }
}

fn start(ctx: Arc<Context>) -> BoxFuture<'static, ()> {
    let roles = ctx.informers.get::<ClusterRole>();
    let store = roles.store();
    let mut changes = Box::pin(roles.stream());
    // Started once the informers are ready (the binary waits before running controllers).
    async move {
        sync_all(&ctx, &store).await;
        while changes.next().await.is_some() {
            sync_all(&ctx, &store).await;
        }
    }
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, labels: serde_json::Value, rules: serde_json::Value) -> Arc<ClusterRole> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": { "name": name, "labels": labels },
                "rules": rules,
            }))
            .unwrap(),
        )
    }

    #[test]
    fn matching_roles_rules_are_gathered_once_in_name_order() {
        let mut view: ClusterRole = (*role("view", json!({}), json!([]))).clone();
        view.aggregation_rule = serde_json::from_value(json!({
            "clusterRoleSelectors": [{ "matchLabels": { "aggregate-to-view": "true" } }]
        }))
        .unwrap();
        let pods = json!([{ "verbs": ["get"], "apiGroups": [""], "resources": ["pods"] }]);
        let widgets =
            json!([{ "verbs": ["get"], "apiGroups": ["x.io"], "resources": ["widgets"] }]);
        let all = vec![
            Arc::new(view.clone()),
            role("b-widgets", json!({ "aggregate-to-view": "true" }), widgets),
            role(
                "a-pods",
                json!({ "aggregate-to-view": "true" }),
                pods.clone(),
            ),
            role("a-pods-again", json!({ "aggregate-to-view": "true" }), pods),
            role(
                "unrelated",
                json!({}),
                json!([{ "verbs": ["*"], "apiGroups": ["*"], "resources": ["*"] }]),
            ),
        ];
        let rules = aggregated_rules(&view, &all).unwrap();
        let resources: Vec<_> = rules
            .iter()
            .map(|r| r.resources.clone().unwrap()[0].clone())
            .collect();
        assert_eq!(resources, ["pods", "widgets"]);
        assert_eq!(aggregated_rules(&all[1], &all), None);
    }
}

//! Deployment: a replicated template rolled out by strategy (RollingUpdate or Recreate), with
//! scale and status subresources.

pub mod printer;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentStrategy as RolloutStrategy, RollingUpdateDeployment,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use skiff_common::strategic_merge::schema;

use crate::error::{ApiResult, Cause};
use crate::printers::Printer;
use crate::registry::apps::replicaset::{
    validate_replicated_template, validate_selector_unchanged,
};
use crate::registry::core::pod::defaults::default_pod_spec;
use crate::registry::defaults::{set, set_str};
use crate::registry::strategy::{KindStrategy, SubresourceDef, SCALE, STATUS};
use crate::registry::typed::typed;
use crate::resource::ResourceInfo;

pub static INFO: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    kind: "Deployment",
    plural: "deployments",
    singular: "deployment",
    namespaced: true,
    short_names: &["deploy"],
    categories: &["all"],
    tracks_generation: true,
};

static SUBRESOURCES: &[SubresourceDef] = &[STATUS, SCALE];

fn default_rolling_update(strategy: &mut Option<RolloutStrategy>) {
    let s = strategy.get_or_insert_with(Default::default);
    set_str(&mut s.type_, "RollingUpdate");
    if s.type_.as_deref() == Some("RollingUpdate") {
        let ru = s
            .rolling_update
            .get_or_insert_with(RollingUpdateDeployment::default);
        set(&mut ru.max_unavailable, IntOrString::String("25%".into()));
        set(&mut ru.max_surge, IntOrString::String("25%".into()));
    }
}

fn defaults(d: &mut Deployment) {
    let spec = d.spec.get_or_insert_with(Default::default);
    set(&mut spec.replicas, 1);
    default_rolling_update(&mut spec.strategy);
    set(&mut spec.revision_history_limit, 10);
    set(&mut spec.progress_deadline_seconds, 600);
    default_pod_spec(spec.template.spec.get_or_insert_with(Default::default));
}

pub struct DeploymentStrategy;

impl KindStrategy for DeploymentStrategy {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn decode_and_default(&self, obj: Value, _creating: bool) -> ApiResult<Value> {
        typed(&INFO, obj, defaults)
    }

    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        let spec = &obj["spec"];
        validate_replicated_template(spec, causes);
        let ty = spec
            .pointer("/strategy/type")
            .and_then(Value::as_str)
            .unwrap_or("RollingUpdate");
        if !["RollingUpdate", "Recreate"].contains(&ty) {
            causes.push(Cause::unsupported(
                "spec.strategy.type",
                ty,
                &["Recreate", "RollingUpdate"],
            ));
        }
    }

    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        validate_selector_unchanged(new, old, causes);
    }

    fn printer(&self) -> &'static Printer {
        &printer::PRINTER
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<Deployment>()
    }

    fn patch_schema(&self) -> &'static skiff_common::SchemaNode {
        &schema::DEPLOYMENT
    }

    fn subresources(&self) -> &'static [SubresourceDef] {
        SUBRESOURCES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::validation::{validate_changed, validate_new};
    use serde_json::json;

    #[test]
    fn deployment_gets_rolling_update_quarters() {
        let mut d = Deployment::default();
        defaults(&mut d);
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(1));
        let ru = spec.strategy.unwrap().rolling_update.unwrap();
        assert_eq!(ru.max_surge, Some(IntOrString::String("25%".into())));
        assert_eq!(spec.revision_history_limit, Some(10));
        assert_eq!(spec.progress_deadline_seconds, Some(600));
    }

    #[test]
    fn deployment_selector_must_match_template() {
        let d = json!({
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "other"}},
                             "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
            }
        });
        let causes = validate_new(&DeploymentStrategy, &d);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec.template.metadata.labels");
    }

    #[test]
    fn deployment_selector_is_immutable() {
        let old = json!({"metadata": {"name": "w"}, "spec": {"selector": {"matchLabels": {"a": "1"}},
            "template": {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels": {"b": "2"}});
        let causes = validate_changed(&DeploymentStrategy, &new, &old);
        assert!(
            causes.iter().any(|c| c.field == "spec.selector"),
            "{causes:?}"
        );
    }
}

//! Patch metadata of the built-in kinds (`patchStrategy`/`patchMergeKey` tags of k8s.io/api):
//! one static per kind, which the apiserver's strategies hand out, and the client-side table
//! `schema_for` that skiffctl uses to compute `apply` patches for any manifest it reads.

use super::{Field, ListStrategy, SchemaNode};

const fn node(name: &'static str, fields: &'static [Field]) -> SchemaNode {
    SchemaNode { name, fields }
}

const fn child(name: &'static str, node: &'static SchemaNode) -> Field {
    Field {
        name,
        node: Some(node),
        list: ListStrategy::Atomic,
        retain_keys: false,
    }
}

const fn keyed(name: &'static str, key: &'static str, node: Option<&'static SchemaNode>) -> Field {
    Field {
        name,
        node,
        list: ListStrategy::MergeByKey(key),
        retain_keys: false,
    }
}

const fn keyed_retain(name: &'static str, key: &'static str) -> Field {
    Field {
        name,
        node: None,
        list: ListStrategy::MergeByKey(key),
        retain_keys: true,
    }
}

const fn set(name: &'static str) -> Field {
    Field {
        name,
        node: None,
        list: ListStrategy::MergePrimitives,
        retain_keys: false,
    }
}

const fn retain(name: &'static str) -> Field {
    Field {
        name,
        node: None,
        list: ListStrategy::Atomic,
        retain_keys: true,
    }
}

// Tags as in k8s.io/api and k8s.io/apimachinery's ObjectMeta. Lists tagged only
// `listType=atomic` or untagged (tolerations, taints, resizePolicy, containerStatuses,
// node images, Endpoints subsets, EndpointSlice endpoints/ports, ...) are atomic.

pub static OBJECT_META: SchemaNode = node(
    "ObjectMeta",
    &[set("finalizers"), keyed("ownerReferences", "uid", None)],
);

pub static CONTAINER: SchemaNode = node(
    "Container",
    &[
        keyed("ports", "containerPort", None),
        keyed("env", "name", None),
        keyed("volumeMounts", "mountPath", None),
        keyed("volumeDevices", "devicePath", None),
    ],
);

pub static POD_SPEC: SchemaNode = node(
    "PodSpec",
    &[
        keyed_retain("volumes", "name"),
        keyed("initContainers", "name", Some(&CONTAINER)),
        keyed("containers", "name", Some(&CONTAINER)),
        keyed("ephemeralContainers", "name", Some(&CONTAINER)),
        keyed("imagePullSecrets", "name", None),
        keyed("hostAliases", "ip", None),
        keyed("topologySpreadConstraints", "topologyKey", None),
        keyed("schedulingGates", "name", None),
        keyed_retain("resourceClaims", "name"),
    ],
);

pub static POD_STATUS: SchemaNode = node(
    "PodStatus",
    &[
        keyed("conditions", "type", None),
        keyed("podIPs", "ip", None),
        keyed("hostIPs", "ip", None),
        keyed_retain("resourceClaimStatuses", "name"),
    ],
);

pub static POD: SchemaNode = node(
    "Pod",
    &[
        child("metadata", &OBJECT_META),
        child("spec", &POD_SPEC),
        child("status", &POD_STATUS),
    ],
);

pub static POD_TEMPLATE_SPEC: SchemaNode = node(
    "PodTemplateSpec",
    &[child("metadata", &OBJECT_META), child("spec", &POD_SPEC)],
);

pub static POD_TEMPLATE: SchemaNode = node(
    "PodTemplate",
    &[
        child("metadata", &OBJECT_META),
        child("template", &POD_TEMPLATE_SPEC),
    ],
);

/// Status types whose only merged list is `conditions` keyed by `type`.
pub static CONDITIONS_STATUS: SchemaNode = node("Status", &[keyed("conditions", "type", None)]);

/// ReplicaSet, StatefulSet, DaemonSet, Job and ReplicationController specs: only the template matters.
pub static TEMPLATED_SPEC: SchemaNode = node("Spec", &[child("template", &POD_TEMPLATE_SPEC)]);

pub static TEMPLATED_WORKLOAD: SchemaNode = node(
    "Workload",
    &[
        child("metadata", &OBJECT_META),
        child("spec", &TEMPLATED_SPEC),
        child("status", &CONDITIONS_STATUS),
    ],
);

pub static DEPLOYMENT_SPEC: SchemaNode = node(
    "DeploymentSpec",
    &[child("template", &POD_TEMPLATE_SPEC), retain("strategy")],
);

pub static DEPLOYMENT: SchemaNode = node(
    "Deployment",
    &[
        child("metadata", &OBJECT_META),
        child("spec", &DEPLOYMENT_SPEC),
        child("status", &CONDITIONS_STATUS),
    ],
);

pub static JOB_TEMPLATE_SPEC: SchemaNode = node(
    "JobTemplateSpec",
    &[
        child("metadata", &OBJECT_META),
        child("spec", &TEMPLATED_SPEC),
    ],
);

pub static CRON_JOB_SPEC: SchemaNode =
    node("CronJobSpec", &[child("jobTemplate", &JOB_TEMPLATE_SPEC)]);

pub static CRON_JOB: SchemaNode = node(
    "CronJob",
    &[
        child("metadata", &OBJECT_META),
        child("spec", &CRON_JOB_SPEC),
    ],
);

pub static SERVICE_SPEC: SchemaNode = node("ServiceSpec", &[keyed("ports", "port", None)]);

pub static SERVICE: SchemaNode = node(
    "Service",
    &[
        child("metadata", &OBJECT_META),
        child("spec", &SERVICE_SPEC),
        child("status", &CONDITIONS_STATUS),
    ],
);

pub static NODE_SPEC: SchemaNode = node("NodeSpec", &[set("podCIDRs")]);

pub static NODE_STATUS: SchemaNode = node(
    "NodeStatus",
    &[
        keyed("conditions", "type", None),
        keyed("addresses", "type", None),
    ],
);

pub static NODE: SchemaNode = node(
    "Node",
    &[
        child("metadata", &OBJECT_META),
        child("spec", &NODE_SPEC),
        child("status", &NODE_STATUS),
    ],
);

pub static NAMESPACE: SchemaNode = node(
    "Namespace",
    &[
        child("metadata", &OBJECT_META),
        child("status", &CONDITIONS_STATUS),
    ],
);

pub static SERVICE_ACCOUNT: SchemaNode = node(
    "ServiceAccount",
    &[
        child("metadata", &OBJECT_META),
        keyed("secrets", "name", None),
    ],
);

/// Kinds whose only strategic fields are in ObjectMeta.
pub static METADATA_ONLY: SchemaNode = node("Object", &[child("metadata", &OBJECT_META)]);

/// The patch schema of a built-in kind; `None` means "merge maps, replace lists".
pub fn schema_for(api_version: &str, kind: &str) -> Option<&'static SchemaNode> {
    Some(match (api_version, kind) {
        ("v1", "Pod") => &POD,
        ("v1", "PodTemplate") => &POD_TEMPLATE,
        ("v1", "ReplicationController")
        | ("apps/v1", "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch/v1", "Job") => &TEMPLATED_WORKLOAD,
        ("apps/v1", "Deployment") => &DEPLOYMENT,
        ("batch/v1", "CronJob") => &CRON_JOB,
        ("v1", "Service") => &SERVICE,
        ("v1", "Node") => &NODE,
        ("v1", "Namespace") => &NAMESPACE,
        ("v1", "ServiceAccount") => &SERVICE_ACCOUNT,
        ("v1", "Endpoints" | "ConfigMap" | "Secret" | "Event")
        | ("discovery.k8s.io/v1", "EndpointSlice")
        | ("coordination.k8s.io/v1", "Lease")
        | ("events.k8s.io/v1", "Event")
        | ("autoscaling/v1", "Scale") => &METADATA_ONLY,
        _ => return None,
    })
}

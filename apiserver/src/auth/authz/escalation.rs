//! RBAC privilege-escalation prevention, as Kubernetes' `pkg/registry/rbac/validation`: a user
//! may only write a Role (or bind one) whose rules they already hold, unless they are in
//! `system:masters` or are allowed the `escalate` (for roles) or `bind` (for bindings) verb on
//! it. Rules are compared atom by atom (one verb, group, resource, name or URL each), so a
//! role may be assembled from several of the writer's rules.

use super::rbac::PolicyRule;

/// One permission: a single verb on a single resource (or URL).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Atom<'a> {
    verb: &'a str,
    target: Target<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target<'a> {
    Resource {
        group: &'a str,
        resource: &'a str,
        name: Option<&'a str>,
    },
    Url(&'a str),
}

fn atoms(rule: &PolicyRule) -> Vec<Atom<'_>> {
    let mut out = Vec::new();
    for verb in &rule.verbs {
        for url in &rule.non_resource_urls {
            out.push(Atom {
                verb,
                target: Target::Url(url),
            });
        }
        for group in &rule.api_groups {
            for resource in &rule.resources {
                if rule.resource_names.is_empty() {
                    out.push(Atom {
                        verb,
                        target: Target::Resource {
                            group,
                            resource,
                            name: None,
                        },
                    });
                }
                for name in &rule.resource_names {
                    out.push(Atom {
                        verb,
                        target: Target::Resource {
                            group,
                            resource,
                            name: Some(name),
                        },
                    });
                }
            }
        }
    }
    out
}

fn has(set: &[String], value: &str) -> bool {
    set.iter().any(|s| s == "*" || s == value)
}

/// Whether `owner` grants the whole of `atom` (a `*` in the atom is covered only by `*`).
fn covers(owner: &PolicyRule, atom: &Atom<'_>) -> bool {
    if !owner.verbs.iter().any(|v| v == "*" || v == atom.verb) {
        return false;
    }
    match &atom.target {
        Target::Url(url) => owner.non_resource_urls.iter().any(|o| {
            o == "*"
                || o == url
                || o.strip_suffix('*')
                    .is_some_and(|prefix| url.starts_with(prefix))
        }),
        Target::Resource {
            group,
            resource,
            name,
        } => {
            let resource_ok = has(&owner.resources, resource)
                || resource.split_once('/').is_some_and(|(_, sub)| {
                    owner
                        .resources
                        .iter()
                        .any(|o| o.strip_prefix("*/") == Some(sub))
                });
            has(&owner.api_groups, group)
                && resource_ok
                && (owner.resource_names.is_empty()
                    || name.is_some_and(|n| owner.resource_names.iter().any(|o| o == n)))
        }
    }
}

/// The parts of `requested` that no rule of `owner` grants, one atomic rule each.
pub fn uncovered(owner: &[PolicyRule], requested: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut missing: Vec<PolicyRule> = Vec::new();
    for rule in requested {
        for atom in atoms(rule) {
            if owner.iter().any(|o| covers(o, &atom)) {
                continue;
            }
            let one = |s: &str| vec![s.to_string()];
            let rule = match atom.target {
                Target::Url(url) => PolicyRule {
                    verbs: one(atom.verb),
                    non_resource_urls: one(url),
                    ..Default::default()
                },
                Target::Resource {
                    group,
                    resource,
                    name,
                } => PolicyRule {
                    verbs: one(atom.verb),
                    api_groups: one(group),
                    resources: one(resource),
                    resource_names: name.map(one).unwrap_or_default(),
                    ..Default::default()
                },
            };
            if !missing.contains(&rule) {
                missing.push(rule);
            }
        }
    }
    missing
}

/// A rule as Kubernetes prints it in escalation errors: `{APIGroups:["apps"], Resources:[…], Verbs:[…]}`.
pub fn compact(rule: &PolicyRule) -> String {
    let list = |l: &[String]| {
        let quoted: Vec<String> = l.iter().map(|s| format!("{s:?}")).collect();
        format!("[{}]", quoted.join(" "))
    };
    let mut parts = Vec::new();
    if !rule.api_groups.is_empty() {
        parts.push(format!("APIGroups:{}", list(&rule.api_groups)));
    }
    if !rule.resources.is_empty() {
        parts.push(format!("Resources:{}", list(&rule.resources)));
    }
    if !rule.resource_names.is_empty() {
        parts.push(format!("ResourceNames:{}", list(&rule.resource_names)));
    }
    if !rule.non_resource_urls.is_empty() {
        parts.push(format!("NonResourceURLs:{}", list(&rule.non_resource_urls)));
    }
    parts.push(format!("Verbs:{}", list(&rule.verbs)));
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        PolicyRule {
            verbs: v(verbs),
            api_groups: v(groups),
            resources: v(resources),
            resource_names: v(names),
            non_resource_urls: vec![],
        }
    }

    #[test]
    fn a_role_may_be_assembled_from_several_held_rules() {
        let owner = [
            rule(&["get", "list"], &[""], &["pods", "configmaps"], &[]),
            rule(&["*"], &["apps"], &["deployments"], &[]),
        ];
        let wanted = [rule(&["get"], &["", "apps"], &["pods", "deployments"], &[])];
        // "" pods, apps deployments are held; "" deployments and apps pods are not.
        let missing = uncovered(&owner, &wanted);
        assert_eq!(missing.len(), 2, "{missing:?}");
        assert_eq!(
            compact(&missing[0]),
            r#"{APIGroups:[""], Resources:["deployments"], Verbs:["get"]}"#
        );
        assert!(uncovered(&owner, &[rule(&["list"], &[""], &["configmaps"], &[])]).is_empty());
    }

    #[test]
    fn wildcards_names_and_subresources() {
        let admin = [rule(&["*"], &["*"], &["*"], &[])];
        assert!(uncovered(&admin, &[rule(&["delete"], &["x"], &["y/z"], &["n"])]).is_empty());
        // A wildcard is only covered by a wildcard.
        let reader = [rule(&["get"], &[""], &["pods"], &[])];
        assert_eq!(
            uncovered(&reader, &[rule(&["*"], &[""], &["pods"], &[])]).len(),
            1
        );
        // Owner limited to names covers those names only, never all names.
        let one = [rule(&["get"], &[""], &["secrets"], &["db"])];
        assert!(uncovered(&one, &[rule(&["get"], &[""], &["secrets"], &["db"])]).is_empty());
        assert_eq!(
            uncovered(&one, &[rule(&["get"], &[""], &["secrets"], &[])]).len(),
            1
        );
        let subs = [rule(&["get"], &[""], &["*/log"], &[])];
        assert!(uncovered(&subs, &[rule(&["get"], &[""], &["pods/log"], &[])]).is_empty());
        assert_eq!(
            uncovered(&subs, &[rule(&["get"], &[""], &["pods"], &[])]).len(),
            1
        );
    }

    #[test]
    fn urls_match_exactly_or_by_prefix() {
        let owner = [PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: vec!["/healthz".into(), "/api/*".into()],
            ..Default::default()
        }];
        let wanted = |url: &str| PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: vec![url.into()],
            ..Default::default()
        };
        assert!(uncovered(&owner, &[wanted("/healthz"), wanted("/api/v1")]).is_empty());
        let missing = uncovered(&owner, &[wanted("/metrics")]);
        assert_eq!(
            compact(&missing[0]),
            r#"{NonResourceURLs:["/metrics"], Verbs:["get"]}"#
        );
    }
}

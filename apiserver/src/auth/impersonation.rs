//! Impersonation headers (`kubectl --as`, `--as-group`, `--as-uid`): a user allowed the
//! `impersonate` verb on `users`, `groups`, `serviceaccounts` or `uids` acts as someone else.

use axum::http::HeaderMap;

use super::authz::{Authorizer, Decision};
use super::request_info::RequestInfo;
use super::user::{self, UserInfo};
use crate::error::ApiError;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";

/// The user the request acts as: `requester` itself without impersonation headers.
pub fn impersonate(
    authorizer: &dyn Authorizer,
    requester: UserInfo,
    headers: &HeaderMap,
) -> Result<UserInfo, ApiError> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    };
    let target_user = values(USER).into_iter().next();
    let groups = values(GROUP);
    let uid = values(UID).into_iter().next();
    let extra: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| {
            let key = k.as_str().strip_prefix(EXTRA_PREFIX)?;
            Some((key.to_string(), v.to_str().ok()?.to_string()))
        })
        .collect();
    let Some(target_user) = target_user else {
        if !groups.is_empty() || uid.is_some() || !extra.is_empty() {
            return Err(ApiError::bad_request(
                "requested impersonation of groups, a uid or extra fields without impersonating a user",
            ));
        }
        return Ok(requester);
    };
    let check_sub = |resource: &str, sub: &str, group: &str, namespace: &str, name: &str| {
        let request = RequestInfo {
            resource_request: true,
            verb: "impersonate".into(),
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..Default::default()
        };
        match authorizer.authorize(&requester, &request) {
            Decision::Allow => Ok(()),
            _ => Err(super::forbidden(&requester, &request, None)),
        }
    };
    let check = |resource: &str, group: &str, namespace: &str, name: &str| {
        check_sub(resource, "", group, namespace, name)
    };
    let mut target = UserInfo::new(target_user.clone(), Vec::new());
    match target
        .service_account()
        .map(|(ns, n)| (ns.to_string(), n.to_string()))
    {
        Some((ns, name)) => {
            check("serviceaccounts", "", &ns, &name)?;
            target.groups = user::service_account_groups(&ns);
        }
        None => check("users", "", "", &target_user)?,
    }
    for group in groups {
        check("groups", "", "", &group)?;
        if !target.groups.contains(&group) {
            target.groups.push(group);
        }
    }
    if let Some(uid) = uid {
        check("uids", "authentication.k8s.io", "", &uid)?;
        target.uid = uid;
    }
    for (key, value) in extra {
        check_sub("userextras", &key, "authentication.k8s.io", "", &value)?;
        target.extra.entry(key).or_default().push(value);
    }
    if target.name != user::ANONYMOUS {
        target = target.authenticated();
    }
    Ok(target)
}

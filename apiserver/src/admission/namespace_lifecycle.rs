//! NamespaceLifecycle: nothing is created in a namespace that does not exist or is being
//! deleted.

use futures::future::BoxFuture;

use crate::error::{ApiError, ApiResult};
use crate::registry::core::namespace;
use crate::registry::{Admission, Registry};
use crate::resource::ResourceInfo;

pub struct NamespaceLifecycle;

impl Admission for NamespaceLifecycle {
    fn admit_create<'a>(
        &'a self,
        registry: &'a Registry,
        info: &'static ResourceInfo,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
            let namespaces = registry.of(&namespace::INFO);
            let key = namespace::INFO.key(None, ns);
            match namespaces.storage.get_cached_or_stored(&key).await? {
                None => Err(ApiError::not_found(&namespace::INFO, ns)),
                Some(ns_obj) if namespace::is_terminating(&ns_obj) => Err(ApiError::forbidden(
                    info,
                    name,
                    &format!(
                        "unable to create new content in namespace {ns} because it is being terminated"
                    ),
                )),
                Some(_) => Ok(()),
            }
        })
    }
}

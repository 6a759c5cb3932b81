//! Decoding into a kind's k8s-openapi type: it drops fields the kind does not have and
//! reports wrong types with the path to the field, as the Go decoder does.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::resource::ResourceInfo;

pub fn typed<T: DeserializeOwned + Serialize>(
    info: &ResourceInfo,
    obj: Value,
    default: impl FnOnce(&mut T),
) -> ApiResult<Value> {
    // The path to the offending field goes into the message, as the Go decoder's does.
    let mut typed: T = serde_path_to_error::deserialize(obj).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let detail = if field == "." {
            inner.to_string()
        } else {
            format!("{field}: {inner}")
        };
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {detail}",
            info.kind, info.version, info.kind
        ))
    })?;
    default(&mut typed);
    serde_json::to_value(&typed).map_err(ApiError::internal)
}

/// A strategy's `decode_and_default` for a kind without defaults.
pub fn typed_as_is<T: DeserializeOwned + Serialize>(
    info: &ResourceInfo,
    obj: Value,
) -> ApiResult<Value> {
    typed(info, obj, |_: &mut T| {})
}

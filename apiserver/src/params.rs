//! Query parameters of an API request.

use std::collections::HashMap;

use crate::error::{ApiError, ApiResult};

/// Query parameters, last value wins.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(query: Option<&str>) -> Params {
        let pairs: Vec<(String, String)> = query
            .map(|q| serde_urlencoded::from_str(q).unwrap_or_default())
            .unwrap_or_default();
        Params(pairs.into_iter().collect())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true") | Some("1"))
    }

    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid value for {key}: {v:?}")))
            })
            .transpose()
    }

    pub fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }
}

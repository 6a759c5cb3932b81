//! Small helpers of Kubernetes' `SetDefaults_*` functions, shared by the kinds' defaults.

pub fn set<T>(field: &mut Option<T>, value: T) {
    if field.is_none() {
        *field = Some(value);
    }
}

pub fn set_str(field: &mut Option<String>, value: &str) {
    if field.as_deref().is_none_or(str::is_empty) {
        *field = Some(value.to_string());
    }
}

//! The `authentication.k8s.io` group: SelfSubjectReview (TokenReview and TokenRequest come
//! with ServiceAccounts).

pub mod selfsubjectreview;

pub const GROUP: &str = "authentication.k8s.io";

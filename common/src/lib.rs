//! Small pieces shared by skiff components: label and field selectors, resource quantities and
//! strategic merge patch, all with Kubernetes semantics.

pub mod duration;
pub mod fields;
pub mod labels;
pub mod quantity;
pub mod strategic_merge;
pub mod validation;
pub mod yaml;

pub use duration::parse_duration;
pub use fields::{FieldOp, FieldRequirement, FieldSelector, FieldSelectorError};
pub use labels::{LabelSelector, Operator, Requirement, SelectorError};
pub use quantity::{Quantity, QuantityError};
pub use strategic_merge::{
    apply_patch, create_three_way_patch, schema_for, ListStrategy, PatchError, SchemaNode,
};

//! Duck types shared by every Knative resource. SKELETON: being written.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::condition::Condition;

/// The status every Knative resource embeds (`duckv1.Status`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The generation last processed by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The latest available observations of the resource's state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Additional status information.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A status type that embeds [`Status`] (usually with `#[serde(flatten)]`).
pub trait KnativeStatus {
    /// The embedded duck status.
    fn duck(&self) -> &Status;
    /// The embedded duck status, mutably.
    fn duck_mut(&mut self) -> &mut Status;
}

impl KnativeStatus for Status {
    fn duck(&self) -> &Status {
        self
    }
    fn duck_mut(&mut self) -> &mut Status {
        self
    }
}

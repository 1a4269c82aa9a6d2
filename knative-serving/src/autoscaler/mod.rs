//! The pluggable autoscaler and Knative's KPA. (In progress.)

//! The route reconciler. (In progress.)

//! The configuration reconciler. (In progress.)

//! The revision reconciler. (In progress.)

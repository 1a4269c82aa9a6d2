//! The service reconciler. (In progress.)

//! Validation and defaulting as a library call and an admission webhook. (In progress.)

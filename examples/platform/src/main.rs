//! The reference platform binary `knative`.

fn main() {}

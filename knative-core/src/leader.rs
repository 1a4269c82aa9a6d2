//! Lease-based leader election. SKELETON: being written.

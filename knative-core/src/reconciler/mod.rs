//! The Reconciler trait and its generic driver. SKELETON: being written.

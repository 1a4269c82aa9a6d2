//! Test fixtures. SKELETON: being written.

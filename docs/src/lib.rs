//! The project's guides, compiled: every Rust example in them is a doctest, so the guides
//! cannot drift from the code.

#[doc = include_str!("../../README.md")]
pub mod readme {}

#[doc = include_str!("../guides/testing-reconcilers.md")]
pub mod testing_reconcilers {}

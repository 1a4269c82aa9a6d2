//! Prometheus metrics of the reconcilers. SKELETON: being written.

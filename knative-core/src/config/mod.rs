//! Typed configuration from ConfigMaps, watched live. SKELETON: being written.

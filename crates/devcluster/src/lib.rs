#![forbid(unsafe_code)]
//! Serin's dev cluster: an in-memory Kubernetes API server for development and tests.

pub mod apply;
pub mod ops;
pub mod patch;
pub mod registry;
pub mod selectors;
pub mod status;
pub mod store;

#![forbid(unsafe_code)]
//! Serin: a progressive-delivery operator for Kubernetes that speaks Flagger's API
//! (`flagger.app/v1beta1` Canary, MetricTemplate and AlertProvider).

pub mod api;
pub mod cli;
pub mod controller;
pub mod dashboard;
#[cfg(feature = "workstation")]
pub mod demo;
pub mod k8s;
pub mod loadtester;
pub mod metrics;
pub mod notify;
pub mod plugin;
pub mod rbac;
pub mod router;
#[cfg(feature = "workstation")]
pub mod simulate;
pub mod stats;
pub mod telemetry;
#[cfg(test)]
pub(crate) mod testing;
pub mod tls;
pub mod workload;

//! The controller end to end on the dev cluster: every scenario starts its own dev cluster(s),
//! fake Prometheus, webhook receiver and an in-process controller (`serin controller` flags).
//!
//! One test binary for all scenarios (each binary links the whole of Serin and the dev
//! cluster). One scenario runs at a time so that their timing stays realistic on
//! small machines.
#![allow(clippy::unwrap_used)]

#[path = "../prometheus_support/mod.rs"]
mod prometheus_support;
mod support;

mod actions;
mod adapters;
mod alerts;
mod daemonset;
mod dashboard;
mod dashboard_routes;
mod decisions;
mod deletion;
mod hostile;
mod knative;
mod leader;
mod mesh;
mod preflight;
mod promotion;
mod real_prometheus;
mod revision;
mod rollback;
mod routers;
mod service_target;
mod set_up;
mod simulate;
mod startup;
mod strategies;
mod tracking;

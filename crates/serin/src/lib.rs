#![forbid(unsafe_code)]
//! Serin: a progressive-delivery operator for Kubernetes that speaks Flagger's API
//! (`flagger.app/v1beta1` Canary, MetricTemplate and AlertProvider).


pub mod cli;
pub mod loadtester;

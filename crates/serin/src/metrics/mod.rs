//! Metric analysis: query rendering ([`template`]), the built-in queries of each mesh/ingress
//! ([`observers`]), the metric backends ([`providers`]) and the evaluation of a Canary's metrics
//! ([`analysis`]) with its query pre-flight ([`preflight`]); and Serin's own Prometheus metrics ([`recorder`]).

pub mod analysis;
pub mod compare;
pub mod observers;
pub mod preflight;
pub mod providers;
pub mod recorder;
pub mod template;

//! Metric analysis: query rendering ([`template`]), the built-in queries of each mesh/ingress
//! ([`observers`]), the metric backends ([`providers`]) and the evaluation of a Canary's metrics
//! ([`analysis`]).

pub mod analysis;
pub mod observers;
pub mod providers;
pub mod template;

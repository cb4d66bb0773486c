//! Kubernetes plumbing shared by the controller, the routers and the workloads (none of which
//! it depends on):
//!
//! * [`client`]: the Kubernetes client, with a connection pool that closes idle connections;
//! * [`meta`]: helpers for the objects Serin generates (labels, owner references, write
//!   parameters, canonical JSON, merge patches);
//! * [`error`]: API errors in words, their category and the retry of transient reads;
//! * [`cache`]: the watch caches reconciles read from, with read-your-writes;
//! * [`packed`]: objects kept as compressed JSON, and the store of every Canary.

pub mod cache;
pub mod client;
pub mod error;
pub mod meta;
pub mod packed;

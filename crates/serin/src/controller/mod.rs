//! The controller's core: the analysis scheduler (Flagger's state machine) over small ports.
//!
//! * [`scheduler`]: [`Scheduler::reconcile`], one reconcile of one Canary (Flagger's
//!   `advanceCanary` in `pkg/controller/scheduler.go`), and
//!   [`scheduler::trigger`], the pure "is something due" decision of the two clocks.
//! * [`ports`]: the traits the scheduler talks to; adapters live with the runtime wiring.
//! * [`webhook`]: the webhook payload, checksum and HTTP client.
//! * [`decide`]: the decisions of a tick (the next step, the strategy and promotion steps),
//!   pure functions of what the tick observed; the tick only carries them out.
//! * [`decision`]: the decision record of analysis ticks (`status.decisions`).
//! * [`events`]: the event and alert message catalogue, event recording and event webhooks.
//! * [`alerts`]: which failures of a run are alerted, with which text and severity.
//! * [`adapters`]: the ports over kube-rs, the notifiers and the metrics registry.
//! * [`runtime`]: the controller's wiring (watches, back-off, readiness); `triggers`: which
//!   watch events reconcile which Canaries.
//! * [`queue`]: the fair work queue; [`workers`]: the `-threadiness` workers and waits that do
//!   not hold one; [`decode`]: Canaries decoded one by one from the watch.
//! * [`leader`]: optional leader election with a coordination.k8s.io/v1 Lease.
//! * [`actions`]: what a `kubectl serin` request (promote, abort, retry, pause, resume) means
//!   in a phase; `requests` carries it out in the tick.

pub mod actions;
pub mod adapters;
pub mod alerts;
pub mod decide;
pub mod decision;
pub mod decode;
pub mod events;
pub mod finalizer;
mod hooks;
pub mod leader;
pub mod ports;
pub mod preflight;
pub mod queue;
mod requests;
pub mod runtime;
pub mod scheduler;
pub mod status;
mod strategy;
mod triggers;
pub mod webhook;
pub mod workers;

#[cfg(test)]
mod tests;

pub use ports::Ports;
pub use scheduler::{Next, Scheduler, SchedulerConfig, SchedulerError};

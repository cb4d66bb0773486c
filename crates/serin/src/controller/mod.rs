//! The controller's core: the analysis scheduler (Flagger's state machine) over small ports.
//!
//! * [`scheduler`]: [`Scheduler::reconcile`], one reconcile of one Canary (§2.2), and
//!   [`scheduler::trigger`], the pure "is something due" decision of the two clocks.
//! * [`ports`]: the traits the scheduler talks to; adapters live with the runtime wiring.
//! * [`webhook`]: the webhook payload, checksum and HTTP client.
//! * [`events`]: the event and alert message catalogue, event recording and event webhooks.
//!
//! The kube-runtime wiring (watches, queue, leader election) is not here yet.

pub mod events;
pub mod finalizer;
mod hooks;
pub mod ports;
pub mod scheduler;
pub mod status;
mod strategy;
pub mod webhook;

#[cfg(test)]
mod tests;

pub use ports::Ports;
pub use scheduler::{Next, Scheduler, SchedulerConfig, SchedulerError};

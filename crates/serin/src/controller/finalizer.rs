//! Deletion with `revertOnDeletion` (Flagger's `pkg/controller/finalizer.go`): phase
//! Terminating, the target scaled back up, the apex Service and the routing reverted, then the
//! finalizer removed.

use std::time::Duration;

use super::events;
use super::ports::EventKind;
use super::scheduler::{Next, Scheduler, SchedulerError, Tick};
use crate::api::{Canary, CanaryPhase};
use crate::workload::WorkloadError;

/// Flagger's finalizer.
pub const FINALIZER: &str = "finalizer.flagger.app";

/// How long to wait before checking again whether the reverted target is ready.
pub const FINALIZE_RETRY: Duration = Duration::from_secs(3);

pub fn has_finalizer(canary: &Canary) -> bool {
    canary
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER))
}

impl Scheduler {
    /// Runs (or continues) the finalisation of a Canary being deleted.
    pub(super) async fn finalize(
        &self,
        canary: &mut Canary,
        interval: Duration,
    ) -> Result<Next, SchedulerError> {
        let done = Next {
            requeue_after: interval,
        };
        if !has_finalizer(canary) {
            return Ok(done);
        }
        if !canary.spec.revert_on_deletion() {
            self.ports.store.set_finalizer(canary, false).await?;
            return Ok(done);
        }
        let now = self.ports.clock.now();
        let mut tick = Tick::bare(self, canary.clone(), now);
        let key = tick.key.clone();
        let fail = |message: String| SchedulerError::Finalize {
            key: key.clone(),
            message,
        };
        let backends = &self.ports.backends;
        let target = backends.target(canary).map_err(|e| fail(e.to_string()))?;
        let scaler = backends.scaler(canary).map_err(|e| fail(e.to_string()))?;
        let router = backends
            .router(canary, &tick.provider)
            .map_err(|e| fail(e.to_string()))?;

        if tick.phase() != CanaryPhase::Terminating {
            tick.set_phase(CanaryPhase::Terminating).await?;
            tick.info(events::terminating(&tick.key)).await;
        }
        if let Some(scaler) = &scaler {
            scaler
                .resume_target(&tick.canary)
                .await
                .map_err(|e| fail(e.to_string()))?;
        }
        target
            .finalize(&tick.canary)
            .await
            .map_err(|e| fail(e.to_string()))?;
        match target.is_canary_ready(&tick.canary).await {
            Ok(()) => {}
            Err(e @ WorkloadError::Failed(_)) => {
                return Err(fail(format!("canary not ready during finalizing: {e}")));
            }
            Err(e) => {
                events::log(&tick.key, EventKind::Normal, &e.to_string());
                return Ok(Next {
                    requeue_after: FINALIZE_RETRY.min(interval),
                });
            }
        }
        if let Some(services) = backends.services(canary) {
            services
                .finalize(&tick.canary)
                .await
                .map_err(|e| fail(e.to_string()))?;
        }
        router
            .finalize(&tick.canary)
            .await
            .map_err(|e| fail(e.to_string()))?;
        self.ports.store.set_finalizer(&tick.canary, false).await?;
        tick.info(events::terminated(&tick.key)).await;
        *canary = tick.canary;
        Ok(done)
    }
}

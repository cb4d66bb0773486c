//! The flow of one analysis tick: Flagger's `advanceCanary`, from initialising the target and
//! its routes to the next step the decisions ask for, and that step carried out.

use std::sync::Arc;
use std::time::Duration;

use super::{Backends, SchedulerError, SetUp, Tick, Trigger, set_up_fingerprint};
use crate::api::analysis::AlertSeverity;
use crate::api::{CanaryPhase, CanaryStatus, Provider};
use crate::controller::alerts::Cause;
use crate::controller::decide::{self, Probe, Readiness, Step, Unready};
use crate::controller::events;
use crate::controller::status::{
    changed_config, elapsed, has_target_changed, revision_changed, revision_differs,
};
use crate::k8s::cache::journal::recorded;
use crate::router::Routes;
use crate::workload::{Revision, TargetController, WorkloadError};

impl Tick<'_> {
    /// Flagger's `advanceCanary`, steps 3 to 26.
    pub(super) async fn run(
        &mut self,
        target: Arc<dyn TargetController>,
    ) -> Result<(), SchedulerError> {
        if let Err(e) = self.canary.spec.provider(&self.s.config.default_provider) {
            self.warn(e.to_string()).await;
            return Ok(());
        }
        let b = match self.backends(target) {
            Ok(b) => b,
            Err(e) => {
                self.warn(e.to_string()).await;
                return Ok(());
            }
        };
        let init = self.phase().is_initializing();
        let skip = self.canary.spec.skip_analysis();

        // 3.–12. The set-up: verified again only when something it read or the Canary has
        // changed since it last found everything in place (see `Tick::set_up`).
        let fingerprint = set_up_fingerprint(&self.canary);
        let memo = self.s.take_set_up(&self.memo);
        let in_place = !init
            && memo
                .as_ref()
                .is_some_and(|m| m.fingerprint == fingerprint && m.reads.unchanged());
        if in_place {
            self.set_up_memo = memo;
        } else {
            let (proceed, journal) = recorded(self.set_up(&b, init, skip)).await;
            if !proceed? {
                return Ok(());
            }
            // Kept outside initialisation, and only when the caches answered something: a
            // set-up whose backends read nothing through them (test doubles) is not vouched for.
            self.set_up_memo = journal
                .into_reads()
                .filter(|reads| !init && !reads.is_empty())
                .map(|reads| SetUp { fingerprint, reads });
        }
        // 13. Initialized.
        if init {
            let rev = match self.revision(b.target.as_ref()).await {
                Ok(r) => r,
                Err(e) => return self.warn_ok(e).await,
            };
            let preflight_warning = self.init_preflight().await;
            self.sync_status(CanaryPhase::Initialized, 0, 0, 0, &rev)
                .await?;
            self.s
                .ports
                .recorder
                .set_status(&self.canary, CanaryPhase::Initialized);
            self.info(events::initialization_done(&self.key)).await;
            let msg = events::alert::initialized(&self.kind);
            self.alert(&msg, true, AlertSeverity::Info).await;
            if let Some(warning) = preflight_warning {
                self.warn(warning).await;
            }
        }

        // Serin: `kubectl serin` requests and pause.
        if self.requests(&b).await? {
            return Ok(());
        }

        // 14. Should the analysis advance?
        let rev = match self.revision(b.target.as_ref()).await {
            Ok(r) => r,
            Err(e) => return self.warn_ok(e).await,
        };
        let before = self.status();
        let changed = revision_changed(&before, &rev);
        // Flagger's `HaveDependenciesChanged` log line, when only a tracked config changed.
        if changed
            && !has_target_changed(&before, &rev)
            && let Some(config) = changed_config(&before, &rev)
        {
            tracing::info!(canary = %self.key, "{config} has changed");
        }
        let phase = self.phase();
        if phase == CanaryPhase::Failed && revision_differs(&before, &rev) {
            // Refresh the revision identity (so that a revert to the promoted revision followed
            // by the same bad revision is analysed again); the change check above used the
            // status from before this refresh.
            let (w, i, f) = (
                before.canary_weight,
                before.iterations,
                before.failed_checks,
            );
            self.sync_status(CanaryPhase::Failed, w, i, f, &rev).await?;
        }
        self.advance(&b, &before, changed, skip, &rev).await
    }

    /// Flagger's `advanceCanary` from step 15 on: asks [`decide::next`] for the next step,
    /// looks at what it asks for, and carries the step out.
    async fn advance(
        &mut self,
        b: &Backends,
        before: &CanaryStatus,
        changed: bool,
        skip: bool,
        rev: &Revision,
    ) -> Result<(), SchedulerError> {
        let phase = before.phase;
        let analysis = self.analysis();
        let (key, target_key, provider) = (
            self.key.clone(),
            self.target_key.clone(),
            self.provider.clone(),
        );
        let mut seen = decide::Observed {
            key: &key,
            target_key: &target_key,
            phase,
            canary_weight: before.canary_weight,
            failed_checks: before.failed_checks,
            due: self.trigger == Trigger::Due,
            changed,
            skip,
            provider: &provider,
            analysis: &analysis,
            routes: None,
            primary: None,
            canary: None,
            rollback_hook: None,
        };
        loop {
            let decision = decide::next(&seen);
            if decision.phase_gauge {
                self.s.ports.recorder.set_status(&self.canary, phase);
            }
            match decision.step {
                Step::Idle | Step::Wait => return Ok(()),
                Step::Observe(Probe::Routes) => {
                    let routes = match b.router.get_routes(&self.canary).await {
                        Ok(r) => r,
                        Err(e) => return self.warn_ok(e).await,
                    };
                    self.s
                        .ports
                        .recorder
                        .set_weight(&self.canary, routes.primary, routes.canary);
                    seen.routes = Some(routes);
                }
                Step::Observe(Probe::Primary) => {
                    let ready = b.target.is_primary_ready(&self.canary).await;
                    seen.primary = Some(readiness(ready));
                }
                Step::Observe(Probe::Canary) => {
                    // From here on the tick decides a step: it is recorded in
                    // `status.decisions`.
                    self.start_record();
                    let ready = b.target.is_canary_ready(&self.canary).await;
                    seen.canary = Some(readiness(ready));
                }
                Step::Observe(Probe::RollbackHooks) => {
                    seen.rollback_hook = Some(self.rollback_hooks_fired(phase).await);
                }
                Step::FinishRollback { log } => {
                    self.log(log);
                    return self.rollback(b, Cause::Resumed).await;
                }
                Step::RepairWeight { weight, log, event } => {
                    self.log(log);
                    self.set_weight(weight).await?;
                    self.info(event).await;
                    return Ok(());
                }
                Step::NotReady { warning, then } => {
                    self.warn(warning).await;
                    return match then {
                        Unready::Wait => Ok(()),
                        Unready::Rollback(rollback) => self.rollback(b, rollback.cause()).await,
                        Unready::FailedPromotion(err) => {
                            self.handle_failed_promotion(b, &err).await
                        }
                    };
                }
                Step::StartRun => return self.start_run(b, rev).await,
                Step::Restart { event } => {
                    self.info(event).await;
                    if let Err(e) = self.set_routes(b, Routes::new(100, 0, false)).await {
                        return self.warn_ok(e).await;
                    }
                    return self
                        .sync_status(CanaryPhase::Progressing, 0, 0, 0, rev)
                        .await;
                }
                Step::PromoteWithoutAnalysis => return self.promote_without_analysis(b).await,
                Step::Rollback { warning, rollback } => {
                    if let Some(warning) = warning {
                        self.warn(warning).await;
                    }
                    return self.rollback(b, rollback.cause()).await;
                }
                Step::Promote(shift) => {
                    // The template copied, the primary autoscaler updated, then traffic
                    // shifted to the primary.
                    if !self.ensure_copied(b).await? {
                        return Ok(());
                    }
                    if let Some(scaler) = &b.scaler
                        && let Err(e) = scaler.reconcile_primary(&self.canary, false).await
                    {
                        return self.warn_ok(e).await;
                    }
                    return self.promotion_traffic_shift(b, shift).await;
                }
                Step::Finalise => return self.finalise(b).await,
                Step::Analyse { routes } => return self.analyse_timed(b, routes).await,
            }
        }
    }

    /// Steps 26-29, timed: the analysis and the strategy step.
    async fn analyse_timed(&mut self, b: &Backends, routes: Routes) -> Result<(), SchedulerError> {
        let start = self.s.ports.clock.now();
        self.wrote = false;
        self.analyse_and_advance(b, routes).await?;
        if !self.wrote {
            // The analysis ran but nothing moved (a gate held the step): persist the time
            // anyway, it is the fence of the next analysis after a restart.
            self.write_status(|_| {}).await?;
        }
        let end = self.s.ports.clock.now();
        self.s
            .ports
            .recorder
            .observe_duration(&self.canary, elapsed(start, end).unwrap_or(Duration::ZERO));
        Ok(())
    }
}

/// A readiness check's answer as the decisions take it.
fn readiness(checked: Result<(), WorkloadError>) -> Readiness {
    match checked {
        Ok(()) => Readiness::Ready,
        Err(e) if e.is_retriable() => Readiness::NotYet(e.to_string()),
        Err(e) => Readiness::Stuck(e.to_string()),
    }
}

impl Tick<'_> {
    /// Flagger's `advanceCanary` steps 3 to 12: the metadata of the target, the Services, the
    /// metric providers' check, the primary workload and its autoscaler, the target scaled
    /// down, the routing objects. False when a step stopped the tick (it said why).
    ///
    /// Outside initialisation these steps only verify that everything is in place, and a tick
    /// whose set-up wrote nothing keeps what it read ([`SetUp`]): the next tick skips the
    /// set-up when the Canary (its generation, phase, session-affinity cookies, labels and
    /// annotations) and every object it read are unchanged, since it would find the same.
    /// Flagger verifies on every tick; the outcome is the same.
    async fn set_up(
        &mut self,
        b: &Backends,
        init: bool,
        skip: bool,
    ) -> Result<bool, SchedulerError> {
        // 3. Metadata.
        let metadata = match b.target.metadata(&self.canary).await {
            Ok(m) => m,
            Err(e) => return self.warn_ok(e).await.map(|()| false),
        };
        // 5. Canary and primary Services.
        if let Some(svc) = &b.services
            && let Err(e) = svc.initialize(&self.canary, &metadata).await
        {
            return self.warn_ok(e).await.map(|()| false);
        }
        // 6. Metric providers.
        if !skip && init {
            match self.s.ports.metrics.check_providers(&self.canary).await {
                Ok(()) => self.info(events::PROVIDERS_AVAILABLE).await,
                Err(e) => self.error(events::provider_check_failed(&e)).await,
            }
        }
        // 7. App Mesh needs its virtual nodes before the primary pods start.
        let appmesh = matches!(self.provider, Provider::AppMesh(_));
        if appmesh && let Err(e) = b.router.reconcile(&self.canary).await {
            return self.warn_ok(e).await.map(|()| false);
        }
        // 8. Primary workload.
        if let Err(e) = b.target.initialize(&self.canary, init && !skip).await {
            self.warn(e.to_string()).await;
            if !e.is_retriable() {
                self.rollback(b, Cause::ProgressDeadline(&e.to_string()))
                    .await?;
            }
            return Ok(false);
        }
        // 9. Primary autoscaler.
        if let Some(scaler) = &b.scaler {
            if let Err(e) = scaler.reconcile_primary(&self.canary, true).await {
                return self.warn_ok(e).await.map(|()| false);
            }
            if init && let Err(e) = scaler.pause_target(&self.canary).await {
                return self.warn_ok(e).await.map(|()| false);
            }
        }
        // 10. Apex Service.
        if let Some(svc) = &b.services
            && let Err(e) = svc.reconcile(&self.canary, &metadata).await
        {
            return self.warn_ok(e).await.map(|()| false);
        }
        // 11. Scale the target down.
        if init {
            self.log(format!("Scaling down {} {}", self.kind, self.target_key));
            if let Err(e) = b.target.scale_to_zero(&self.canary).await {
                let msg = events::scaling_down_failed(&self.kind, &self.target_key, &e.to_string());
                self.warn(msg).await;
                return Ok(false);
            }
        }
        // 12. Routing objects.
        if !appmesh && let Err(e) = b.router.reconcile(&self.canary).await {
            return self.warn_ok(e).await.map(|()| false);
        }
        Ok(true)
    }
}

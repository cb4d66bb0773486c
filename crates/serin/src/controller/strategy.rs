//! The run itself, as in Flagger's `pkg/controller/scheduler.go`, carried out: starting it
//! (`checkCanaryStatus`), analysis and strategy steps (pre-rollout hooks, `runAnalysis`, then
//! `runCanary` / `runAB` / `runBlueGreen`), promotion (`runPromotionTrafficShift` and the
//! Promoting / Finalising phases of `advanceCanary`), rollback and failed promotion (`rollback`,
//! `handleFailedPromotion`), skipped analysis (`shouldSkipAnalysis`). Which strategy step and
//! which promotion step come next is decided in [`super::decide::traffic`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::alerts::{Cause, Failure};
use super::decide;
use super::decide::checks::{self, Judgement, Unpassed};
use super::decide::traffic::{self, Advance, Complete, Shift};
use super::events;
use super::ports::{AnalysisStatus, EventKind};
use super::scheduler::{Backends, SchedulerError, Tick};
use super::status::whole_seconds;
use crate::api::analysis::AlertSeverity;
use crate::api::{CanaryPhase, CanaryStatus};
use crate::metrics::compare;
use crate::router::Routes;
use crate::workload::Revision;

impl Tick<'_> {
    /// Step 18: a new revision of an idle canary (or one waiting for confirm-rollout).
    pub(super) async fn start_run(
        &mut self,
        b: &Backends,
        rev: &Revision,
    ) -> Result<(), SchedulerError> {
        if !self.confirm_rollout().await? {
            return Ok(());
        }
        self.event(
            EventKind::Normal,
            CanaryPhase::Progressing,
            &events::new_revision(&self.target_key),
        )
        .await;
        self.alert(events::alert::NEW_REVISION, true, AlertSeverity::Info)
            .await;
        if let Some(scaler) = &b.scaler
            && let Err(e) = scaler.resume_target(&self.canary).await
        {
            return self.warn_ok(e).await;
        }
        if let Err(e) = b.target.scale_from_zero(&self.canary).await {
            self.error(e.to_string()).await;
            return Ok(());
        }
        self.reset_preflight();
        self.sync_status(CanaryPhase::Progressing, 0, 0, 0, rev)
            .await?;
        self.s
            .ports
            .recorder
            .set_status(&self.canary, CanaryPhase::Progressing);
        Ok(())
    }

    /// Steps 27–29: pre-rollout hooks on the first tick, the analysis on the others, then the
    /// strategy step.
    pub(super) async fn analyse_and_advance(
        &mut self,
        b: &Backends,
        routes: Routes,
    ) -> Result<(), SchedulerError> {
        let analysis = self.analysis();
        let status = self.status();
        if traffic::first_step(&self.provider, &analysis, routes, status.iterations) {
            // Serin: no traffic moves before every metric query answers for the primary.
            if !self.preflight_allows(b).await? {
                return Ok(());
            }
            self.info(events::starting_analysis(&self.target_key)).await;
            if let Err(failed) = self.pre_rollout().await {
                self.set_failed_checks(status.failed_checks.saturating_add(1))
                    .await?;
                // Once the count is written: a lost write retries the check, not the alert.
                self.alert_failure(Failure::PreRollout {
                    canary: &self.key,
                    hook: &failed.hook,
                    reason: &failed.reason,
                    failed_checks: status.failed_checks,
                    threshold: self.analysis().threshold(),
                    muted: failed.muted,
                })
                .await;
                return Ok(());
            }
        } else {
            if !self.rollout_hooks().await {
                return self
                    .set_failed_checks(status.failed_checks.saturating_add(1))
                    .await;
            }
            let checked = self.s.ports.metrics.run_checks(&self.canary).await;
            self.record_checks(match &checked {
                Ok(measured) => &measured.checks,
                Err(failed) => &failed.checks,
            });
            if let Err(failed) = &checked {
                // Comparisons that passed before the failure keep their verdicts.
                for verdict in &failed.verdicts {
                    self.info(verdict).await;
                }
            }
            let failed = match checked {
                Ok(measured) => {
                    self.end_hold(&status).await?;
                    for verdict in &measured.verdicts {
                        self.info(verdict).await;
                    }
                    for (metric, value) in measured.values {
                        self.s
                            .ports
                            .recorder
                            .set_metric_value(&self.canary, &metric, value);
                    }
                    None
                }
                Err(failed) => Some(failed),
            };
            if let Some(failed) = failed {
                let mut failure = Unpassed::from(&failed);
                loop {
                    match checks::judge(failure) {
                        Judgement::AskHold => {
                            failure.holding = Some(self.keep_holding(&status).await?);
                        }
                        Judgement::Hold => {
                            // Not evidence against the canary: hold, retry next interval.
                            self.warn(&failed.message).await;
                            return Ok(());
                        }
                        Judgement::KeepHolding => {
                            // Serin: too few samples to compare; hold like a closed gate.
                            self.info(&failed.message).await;
                            return Ok(());
                        }
                        Judgement::Count { kind } => {
                            self.end_hold(&status).await?;
                            self.event(kind, self.phase(), &failed.message).await;
                            return self
                                .set_failed_checks(status.failed_checks.saturating_add(1))
                                .await;
                        }
                    }
                }
            }
        }

        // 28. The kubernetes provider can only do blue/green.
        for warning in traffic::provider_warnings(&self.provider, &analysis) {
            self.warn(warning).await;
        }

        // 29. Strategy.
        let step = traffic::advance(
            &self.key,
            &self.provider,
            &analysis,
            self.phase(),
            routes,
            self.status().iterations,
        );
        if step.traffic_gate && !self.confirm_traffic_increase().await {
            return Ok(());
        }
        self.take(b, step.advance).await
    }

    /// Carries out the strategy step of an analysed tick.
    async fn take(&mut self, b: &Backends, advance: Advance) -> Result<(), SchedulerError> {
        match advance {
            Advance::Hold => Ok(()),
            Advance::Weight { routes, log, event } => {
                if let Some(log) = log {
                    self.log(log);
                }
                if let Err(e) = self.set_routes(b, routes).await {
                    return self.warn_ok(e).await;
                }
                self.set_weight(routes.canary).await?;
                self.info(event).await;
                Ok(())
            }
            Advance::Iterate {
                routes,
                log,
                iterations,
                event,
            } => {
                if let Some(log) = log {
                    self.log(log);
                }
                if let Some(routes) = routes
                    && let Err(e) = self.set_routes(b, routes).await
                {
                    return self.warn_ok(e).await;
                }
                self.set_iterations(iterations, None).await?;
                self.info(event).await;
                Ok(())
            }
            Advance::Complete(complete) => {
                if !self.confirm_promotion().await? {
                    return Ok(());
                }
                match complete {
                    Complete::Promote => self.promote(b).await,
                    Complete::Nothing => Ok(()),
                    Complete::LastIteration {
                        event,
                        routes,
                        iterations,
                    } => {
                        if let Some(event) = event {
                            self.info(event).await;
                        }
                        let mut weight = None;
                        if let Some(routes) = routes {
                            if let Err(e) = self.set_routes(b, routes).await {
                                return self.warn_ok(e).await;
                            }
                            weight = Some(routes.canary);
                        }
                        self.set_iterations(iterations, weight).await
                    }
                }
            }
        }
    }

    /// Serin: whether an inconclusive comparison still holds the step, i.e. the hold has not
    /// lasted the progress deadline. Its start is kept in the status (so it survives a restart)
    /// and in memory (where Flagger's CRDs drop the status field).
    async fn keep_holding(&mut self, status: &CanaryStatus) -> Result<bool, SchedulerError> {
        let now = self.s.ports.clock.now();
        let recorded = status.comparison_held_since.as_ref().map(|t| t.0);
        let since = self
            .s
            .holds
            .hold(&self.key, compare::hold_start(recorded, whole_seconds(now)));
        if compare::hold_expired(since, self.canary.spec.progress_deadline_seconds(), now) {
            return Ok(false);
        }
        if recorded.is_none() {
            self.write_status(|s| s.comparison_held_since = Some(Time(since)))
                .await?;
        }
        Ok(true)
    }

    /// Serin: the step was judged (or its hold counted as a failed check): the hold ends.
    async fn end_hold(&mut self, status: &CanaryStatus) -> Result<(), SchedulerError> {
        self.s.holds.release(&self.key);
        if status.comparison_held_since.is_some() {
            self.write_status(|s| s.comparison_held_since = None)
                .await?;
        }
        Ok(())
    }

    /// Phase Promoting, then the target's template copied to the primary. The phase is
    /// written first: once the primary may run the new version the run is promoting, so a
    /// lost write can never leave an analysis going on (and rolling "back" onto the new
    /// version). A copy that fails is retried by the Promoting ticks ([`Self::ensure_copied`]).
    pub(super) async fn promote(&mut self, b: &Backends) -> Result<(), SchedulerError> {
        self.info(events::copying_template(
            &self.target_key,
            &self.primary_key,
        ))
        .await;
        self.set_phase(CanaryPhase::Promoting).await?;
        if let Err(e) = b.target.promote(&self.canary).await {
            return self.warn_ok(e).await;
        }
        self.s
            .note_copied(&self.memo, self.status().last_applied_spec);
        Ok(())
    }

    /// In Promoting: copies the template to the primary unless this process saw the copy of
    /// this revision succeed (after a failed copy or a restart; a primary that has the template
    /// already is left alone), then waits for the primary to be ready. Returns whether the
    /// promotion can go on in this tick.
    pub(super) async fn ensure_copied(&mut self, b: &Backends) -> Result<bool, SchedulerError> {
        let applied = self.status().last_applied_spec;
        if self.s.copied(&self.memo, &applied) {
            return Ok(true);
        }
        self.log(format!(
            "Making sure the template spec of {} is copied to {}",
            self.target_key, self.primary_key
        ));
        if let Err(e) = b.target.promote(&self.canary).await {
            self.warn(e.to_string()).await;
            return Ok(false);
        }
        self.s.note_copied(&self.memo, applied);
        if let Err(e) = b.target.is_primary_ready(&self.canary).await {
            self.warn(e.to_string()).await;
            return Ok(false);
        }
        Ok(true)
    }

    /// Step 23 (primary ready): route traffic back to the primary, at once or by
    /// `stepWeightPromotion`; phase Finalising when all traffic is on the primary.
    pub(super) async fn promotion_traffic_shift(
        &mut self,
        b: &Backends,
        shift: Shift,
    ) -> Result<(), SchedulerError> {
        match shift {
            Shift::Finalise => self.set_phase(CanaryPhase::Finalising).await,
            Shift::AllToPrimary { event } => {
                self.info(event).await;
                if let Err(e) = self.set_routes(b, Routes::new(100, 0, false)).await {
                    return self.warn_ok(e).await;
                }
                self.set_phase(CanaryPhase::Finalising).await
            }
            Shift::Step {
                routes,
                event,
                finalise,
            } => {
                if let Err(e) = self.set_routes(b, routes).await {
                    return self.warn_ok(e).await;
                }
                self.info(event).await;
                if finalise {
                    return self.set_phase(CanaryPhase::Finalising).await;
                }
                self.set_weight(routes.canary).await
            }
        }
    }

    /// Step 24: scale the canary down; Succeeded.
    pub(super) async fn finalise(&mut self, b: &Backends) -> Result<(), SchedulerError> {
        if let Some(scaler) = &b.scaler
            && let Err(e) = scaler.pause_target(&self.canary).await
        {
            return self.warn_ok(e).await;
        }
        if let Err(e) = b.target.scale_to_zero(&self.canary).await {
            return self.warn_ok(e).await;
        }
        self.succeeded(AnalysisStatus::Completed).await?;
        self.info(events::promotion_completed(&self.target_key))
            .await;
        self.alert(events::alert::SUCCEEDED, false, AlertSeverity::Info)
            .await;
        Ok(())
    }

    /// Phase Succeeded, gauges, counter and post-rollout hooks.
    async fn succeeded(&mut self, status: AnalysisStatus) -> Result<(), SchedulerError> {
        self.set_phase(CanaryPhase::Succeeded).await?;
        let recorder = &self.s.ports.recorder;
        recorder.set_status(&self.canary, CanaryPhase::Succeeded);
        recorder.inc_successes(&self.canary, self.strategy(), status);
        self.post_rollout(CanaryPhase::Succeeded).await;
        Ok(())
    }

    /// Step 21: analysis skipped: promote and finish at once.
    pub(super) async fn promote_without_analysis(
        &mut self,
        b: &Backends,
    ) -> Result<(), SchedulerError> {
        if let Err(e) = self.set_routes(b, Routes::new(100, 0, false)).await {
            return self.warn_ok(e).await;
        }
        self.info(events::copying_template(
            &self.target_key,
            &self.primary_key,
        ))
        .await;
        if let Err(e) = b.target.promote(&self.canary).await {
            return self.warn_ok(e).await;
        }
        if let Some(scaler) = &b.scaler {
            if let Err(e) = scaler.reconcile_primary(&self.canary, false).await {
                return self.warn_ok(e).await;
            }
            if let Err(e) = scaler.pause_target(&self.canary).await {
                return self.warn_ok(e).await;
            }
        }
        if let Err(e) = b.target.scale_to_zero(&self.canary).await {
            return self.warn_ok(e).await;
        }
        self.succeeded(AnalysisStatus::Skipped).await?;
        self.info(events::promotion_skipped_analysis(&self.target_key))
            .await;
        self.alert(events::alert::SKIPPED, false, AlertSeverity::Info)
            .await;
        Ok(())
    }

    /// Flagger's `rollback`: all traffic to the primary, canary scaled to zero, phase Failed.
    /// The alert for `cause` goes out once the run is Failed, so a rollback retried after an
    /// error alerts once.
    pub(super) async fn rollback(
        &mut self,
        b: &Backends,
        cause: Cause<'_>,
    ) -> Result<(), SchedulerError> {
        let failed_checks = self.status().failed_checks;
        if let Some(warning) = decide::threshold_warning(&self.key, failed_checks, &self.analysis())
        {
            self.warn(warning).await;
        }
        if let Err(e) = self.set_routes(b, Routes::new(100, 0, false)).await {
            return self.warn_ok(e).await;
        }
        self.event(
            EventKind::Warning,
            CanaryPhase::Failed,
            &events::canary_failed(&self.key),
        )
        .await;
        if let Some(scaler) = &b.scaler
            && let Err(e) = scaler.pause_target(&self.canary).await
        {
            return self.warn_ok(e).await;
        }
        if let Err(e) = b.target.scale_to_zero(&self.canary).await {
            return self.warn_ok(e).await;
        }
        self.failed(b, 0).await?;
        if self.phase() == CanaryPhase::Failed {
            self.alert_failure(Failure::RolledBack {
                canary: &self.key,
                cause,
            })
            .await;
        }
        Ok(())
    }

    /// Flagger's `handleFailedPromotion`: the primary broke during promotion: all traffic to
    /// the canary (still running).
    pub(super) async fn handle_failed_promotion(
        &mut self,
        b: &Backends,
        err: &str,
    ) -> Result<(), SchedulerError> {
        self.warn(events::promotion_failed(&self.target_key, err))
            .await;
        if let Err(e) = self.set_routes(b, Routes::new(0, 100, false)).await {
            return self.warn_ok(e).await;
        }
        self.failed(b, 100).await?;
        if self.phase() == CanaryPhase::Failed {
            self.alert_failure(Failure::PromotionFailed { reason: err })
                .await;
        }
        Ok(())
    }

    /// Phase Failed with `weight`, gauges, counter and post-rollout hooks.
    async fn failed(&mut self, b: &Backends, weight: i32) -> Result<(), SchedulerError> {
        let rev = match self.revision(b.target.as_ref()).await {
            Ok(r) => r,
            Err(e) => return self.warn_ok(e).await,
        };
        self.sync_status(CanaryPhase::Failed, weight, 0, 0, &rev)
            .await?;
        let recorder = &self.s.ports.recorder;
        recorder.set_status(&self.canary, CanaryPhase::Failed);
        recorder.inc_failures(&self.canary, self.strategy(), AnalysisStatus::Completed);
        self.post_rollout(CanaryPhase::Failed).await;
        Ok(())
    }
}

//! The analysis scheduler: one reconcile of one Canary, following Flagger's `advanceCanary`
//! (`pkg/controller/scheduler.go`) step by step, with two clocks:
//!
//! * **Revisions react at once.** Every reconcile reads the target's revision; a new revision
//!   (pod template or tracked ConfigMap/Secret) of an idle or progressing canary runs the tick
//!   immediately, whatever the interval, so "New revision detected!" follows a change as fast
//!   as the watch delivers it.
//! * **Analysis advances once per interval.** Otherwise a tick runs only when
//!   `now >= status.lastTransitionTime + interval` in the phases of a run (Waiting,
//!   Progressing, WaitingPromotion, Promoting, Finalising). Every status write sets
//!   `lastTransitionTime` (as Flagger does), so the persisted status alone says when the next
//!   step is due: extra reconciles triggered by watch events are harmless, and a restarted
//!   controller neither repeats nor skips a step. In addition, ticks that write nothing
//!   (waiting for readiness or a gate) are spaced by the interval with an in-memory note of the
//!   last attempt, so they do not repeat their events on every watch event; losing that note on
//!   restart costs at most one early attempt, never a step.
//!
//! Traffic: a step sets the routes first and then records them in the status. If the process
//! dies in between, the next reconcile finds routes that differ from the status (the router
//! is the source of truth, as in Flagger), records them, and takes the next step one interval
//! later.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::decide;
use super::events::{self, canary_key};
use super::ports::{EventKind, PortError, Ports, ServiceRouter};
use super::status::{add, elapsed, revision_changed, revision_differs};
use crate::api::analysis::{AlertSeverity, DEFAULT_INTERVAL, MIN_INTERVAL};
use crate::api::{Canary, CanaryPhase, CanaryStatus, Provider, Strategy};
use crate::k8s::cache::journal::recorded;
use crate::router::{Router, Routes};
use crate::workload::{Revision, ScalerReconciler, TargetController, WorkloadError};

mod advance;

/// Configuration of the scheduler (controller flags).
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// `-mesh-provider`: the provider of canaries without `spec.provider`.
    pub default_provider: Provider,
    /// `-event-webhook` / `EVENT_WEBHOOK_URL`: receives every event of canaries without an
    /// `event` webhook.
    pub event_webhook: Option<String>,
    /// Lower bound of `analysis.interval` (Flagger: 10 s). Only tests lower it, through the
    /// controller's hidden `--min-analysis-interval` flag.
    pub min_interval: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            default_provider: Provider::Istio,
            event_webhook: None,
            min_interval: MIN_INTERVAL,
        }
    }
}

/// What the caller should do after a reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Next {
    /// Reconcile again after this long (watch events may come earlier; that is harmless).
    pub requeue_after: Duration,
}

/// Errors that should be retried with back-off (status writes, finalisation). Everything else
/// (unready workloads, failed hooks or checks, router errors) is reported on the Canary and
/// retried on the next tick.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("finalizing {key}: {message}")]
    Finalize { key: String, message: String },
}

impl SchedulerError {
    /// The label of the reconcile-failure metric: the [`crate::k8s::error::Category`] of a port's error
    /// (`not-found`, `conflict`, `forbidden`, `invalid`, `server`, `transport`, `decode`), or
    /// `finalize` for a finalisation step that failed.
    pub fn category(&self) -> &'static str {
        match self {
            SchedulerError::Port(e) => e.category().as_str(),
            SchedulerError::Finalize { .. } => "finalize",
        }
    }
}

/// Why a tick runs now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The target has a revision the status does not describe yet: act now.
    Revision,
    /// The interval since the last step (and the last attempt) has passed.
    Due,
    /// Nothing to do before `after` has passed.
    NotDue { after: Duration },
}

/// What the scheduler remembers between reconciles of one Canary (lost on restart, by design).
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub at: Timestamp,
    pub revision: Option<Revision>,
}

/// Decides whether a tick runs now: a pure function of the status, the observed revision, the
/// interval, the time and the last attempt.
pub fn trigger(
    status: &CanaryStatus,
    revision: Option<&Revision>,
    interval: Duration,
    now: Timestamp,
    last: Option<&Attempt>,
) -> Trigger {
    if let Some(rev) = revision {
        let phase = status.phase;
        let new = if phase.is_settled() || phase.is_analysing() {
            revision_changed(status, rev)
        } else if phase == CanaryPhase::Failed {
            revision_differs(status, rev)
        } else {
            false
        };
        let seen = last.is_some_and(|a| a.revision.as_ref() == Some(rev));
        if new && !seen {
            return Trigger::Revision;
        }
    }
    match due_at(status, interval, last).and_then(|d| elapsed(now, d)) {
        Some(after) if !after.is_zero() => Trigger::NotDue { after },
        _ => Trigger::Due,
    }
}

/// When the next tick is due, apart from new revisions: one interval after the last attempt
/// (in memory) and, in the phases of a run, one interval after the persisted step time
/// (`status.lastTransitionTime`), whichever is later. `None`: due now.
pub fn due_at(
    status: &CanaryStatus,
    interval: Duration,
    last: Option<&Attempt>,
) -> Option<Timestamp> {
    let mut due_at = last.map(|a| add(a.at, interval));
    if status.phase.is_running()
        && let Some(t) = &status.last_transition_time
    {
        let step_at = add(t.0, interval);
        due_at = Some(due_at.map_or(step_at, |d| d.max(step_at)));
    }
    due_at
}

/// `<namespace>/<name>/<uid>`: the key of the scheduler's in-memory notes of a Canary.
pub fn memo_key(canary: &Canary) -> String {
    format!(
        "{}/{}/{}",
        canary.metadata.namespace.as_deref().unwrap_or_default(),
        canary.metadata.name.as_deref().unwrap_or_default(),
        canary.metadata.uid.as_deref().unwrap_or("")
    )
}

/// The analysis scheduler.
pub struct Scheduler {
    pub(super) ports: Ports,
    pub(super) config: SchedulerConfig,
    attempts: Mutex<HashMap<String, Attempt>>,
    /// Canaries whose promotion copied the template of a revision (`lastAppliedSpec`) in this
    /// process.
    copies: Mutex<HashMap<String, Option<String>>>,
    /// Serin: the `kubectl serin` request and pause each Canary's ticks last recorded, for
    /// where Flagger's CRDs prune `status.lastRequest` and `status.paused`.
    pub(super) seen: Mutex<HashMap<String, super::requests::Seen>>,
    /// Serin: inconclusive comparison checks holding a step.
    pub(super) holds: crate::metrics::compare::Holds,
    /// What each Canary's last set-up found in place (`Tick::set_up`).
    set_ups: Mutex<HashMap<String, SetUp>>,
}

/// A set-up that found everything in place and wrote nothing: the Canary as it saw it
/// ([`set_up_fingerprint`]) and what it read. While both are unchanged, the set-up would find
/// the same again.
pub(super) struct SetUp {
    pub(super) fingerprint: u64,
    pub(super) reads: crate::k8s::cache::journal::Reads,
}

/// What of a Canary the set-up depends on besides the objects it reads: its spec (the
/// generation), its phase, the session-affinity cookies of its status (the routers render them),
/// its labels and annotations, and its uid. `0` (never equal to a hash in practice) when the
/// server keeps no generation.
pub(super) fn set_up_fingerprint(canary: &Canary) -> u64 {
    use std::hash::{Hash, Hasher};
    let Some(generation) = canary.metadata.generation else {
        return 0;
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    generation.hash(&mut h);
    canary.metadata.uid.hash(&mut h);
    canary.metadata.labels.hash(&mut h);
    canary.metadata.annotations.hash(&mut h);
    let status = canary.status.as_ref();
    status.map(|s| s.phase).hash(&mut h);
    status.map(|s| &s.session_affinity_cookie).hash(&mut h);
    status
        .map(|s| &s.primary_session_affinity_cookie)
        .hash(&mut h);
    status
        .map(|s| &s.previous_session_affinity_cookie)
        .hash(&mut h);
    h.finish()
}

impl Scheduler {
    pub fn new(ports: Ports, config: SchedulerConfig) -> Self {
        Self {
            ports,
            config,
            attempts: Mutex::new(HashMap::new()),
            copies: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            holds: Default::default(),
            set_ups: Mutex::new(HashMap::new()),
        }
    }

    /// Notes that the promotion of `revision` copied the template to the primary.
    pub(super) fn note_copied(&self, key: &str, revision: Option<String>) {
        let mut map = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(key.to_string(), revision);
    }

    /// Whether this process saw the template of `revision` copied to the primary.
    pub(super) fn copied(&self, key: &str, revision: &Option<String>) -> bool {
        let map = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key) == Some(revision)
    }

    fn last_attempt(&self, key: &str) -> Option<Attempt> {
        let map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).cloned()
    }

    fn remember(&self, key: &str, attempt: Option<Attempt>) {
        let mut map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        match attempt {
            Some(a) => map.insert(key.to_string(), a),
            None => {
                self.put_set_up(key, None);
                map.remove(key)
            }
        };
    }

    /// Takes out what the Canary's last set-up found in place, if anything.
    pub(super) fn take_set_up(&self, key: &str) -> Option<SetUp> {
        let mut map = self.set_ups.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key)
    }

    fn put_set_up(&self, key: &str, set_up: Option<SetUp>) {
        let mut map = self.set_ups.lock().unwrap_or_else(|e| e.into_inner());
        match set_up {
            Some(s) => map.insert(key.to_string(), s),
            None => map.remove(key),
        };
    }

    /// Keeps the in-memory notes of the Canaries for which `live(key)` holds, where `key` is
    /// `<namespace>/<name>/<uid>`; the runtime calls it with the Canaries still in its cache so
    /// that deleted Canaries leave nothing behind.
    pub fn retain_canaries(&self, live: impl Fn(&str) -> bool) {
        let mut map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|key, _| live(key));
        let mut copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        copies.retain(|key, _| live(key));
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|key, _| live(key));
        let mut set_ups = self.set_ups.lock().unwrap_or_else(|e| e.into_inner());
        set_ups.retain(|key, _| live(key));
    }

    /// The number of Canaries with in-memory notes.
    pub fn remembered_canaries(&self) -> usize {
        self.attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Reconciles one Canary: re-reads it, handles the finalizer, and runs a tick when a new
    /// revision appeared or an analysis step is due. `canary` only names the object; the
    /// state comes from a fresh read.
    pub async fn reconcile(&self, canary: &Canary) -> Result<Next, SchedulerError> {
        let namespace = canary.metadata.namespace.clone().unwrap_or_default();
        let name = canary.metadata.name.clone().unwrap_or_default();
        let memo_key = memo_key(canary);
        let Some(mut canary) = self.ports.store.get(&namespace, &name).await? else {
            tracing::info!(canary = %format!("{name}.{namespace}"), "Canary {name}.{namespace} not found");
            self.remember(&memo_key, None);
            return Ok(Next {
                requeue_after: DEFAULT_INTERVAL,
            });
        };
        canary.spec.normalize();
        let interval = canary
            .spec
            .analysis()
            .map(|a| a.interval_with_min(self.config.min_interval))
            .unwrap_or(DEFAULT_INTERVAL);

        if canary.metadata.deletion_timestamp.is_some() {
            self.remember(&memo_key, None);
            // Boxed, as `Tick::run` below: see there.
            return Box::pin(self.finalize(&mut canary, interval)).await;
        }
        self.sync_finalizer(&mut canary).await?;

        let now = self.ports.clock.now();
        let last = self.last_attempt(&memo_key);
        if canary
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_none()
        {
            // First sight (Flagger's syncHandler): phase Initializing.
            let mut tick = Tick::bare(self, canary, now);
            // Boxed, as `Tick::run` below: see there.
            Box::pin(tick.set_phase(CanaryPhase::Initializing)).await?;
            canary = tick.canary;
        }

        if canary.spec.suspend() {
            if matches!(
                trigger(&CanaryStatus::default(), None, interval, now, last.as_ref()),
                Trigger::Due
            ) {
                events::record(
                    &self.ports,
                    self.config.event_webhook.as_deref(),
                    &canary,
                    EventKind::Normal,
                    canary.status.as_ref().map(|s| s.phase).unwrap_or_default(),
                    events::SUSPENDED,
                )
                .await;
                self.remember(
                    &memo_key,
                    Some(Attempt {
                        at: now,
                        revision: None,
                    }),
                );
            }
            return Ok(Next {
                requeue_after: interval,
            });
        }

        let target = self.ports.backends.target(&canary);
        let revision = match &target {
            Ok(t) => t.revision(&canary).await.ok(),
            Err(_) => None,
        };
        let status = canary.status.clone().unwrap_or_default();
        let mut why = trigger(&status, revision.as_ref(), interval, now, last.as_ref());
        // Serin: a `kubectl serin` request or a pause starting or ending acts at once.
        let seen = self.seen_requests(&memo_key, &status);
        let urgent = super::actions::urgent(
            canary.metadata.annotations.as_ref(),
            seen.last_request.as_ref(),
            seen.paused.as_ref(),
        );
        if urgent && matches!(why, Trigger::NotDue { .. }) {
            why = Trigger::Due;
        }
        if let Trigger::NotDue { after } = why {
            return Ok(Next {
                requeue_after: after,
            });
        }
        if why == Trigger::Due
            && !urgent
            && status.phase.is_running()
            && let Some(due) = due_at(&status, interval, last.as_ref())
        {
            // An analysis step of a run: how late it starts.
            let delay = elapsed(due, now).unwrap_or(Duration::ZERO);
            self.ports.recorder.observe_step_delay(&canary, delay);
        }
        let mut tick = Tick::bare(self, canary, now);
        tick.trigger = why;
        // The revision that decided the trigger is the tick's: the target is read once.
        tick.revision = revision.clone();
        match target {
            // Boxed: a tick's future (about 10 KB: the futures of the step it takes) would
            // otherwise sit inside this one and be copied with it each time the reconcile's
            // future moves (docs/performance.md, issue 18's eighth pass).
            Ok(t) => Box::pin(tick.run(t)).await?,
            Err(e) => tick.warn(e.to_string()).await,
        }
        let attempt = Attempt { at: now, revision };
        let status = tick.status();
        self.remember(&memo_key, Some(attempt.clone()));
        self.put_set_up(&memo_key, tick.set_up_memo.take());
        let requeue_after = match trigger(&status, None, interval, now, Some(&attempt)) {
            Trigger::NotDue { after } => after,
            _ => interval,
        };
        Ok(Next { requeue_after })
    }

    /// Adds the finalizer when `revertOnDeletion` is set, removes it when it was unset.
    async fn sync_finalizer(&self, canary: &mut Canary) -> Result<(), SchedulerError> {
        let has = super::finalizer::has_finalizer(canary);
        let wants = canary.spec.revert_on_deletion();
        let written = if wants && !has {
            self.ports.store.set_finalizer(canary, true).await?
        } else if !wants && has {
            tracing::info!(canary = %canary_key(canary), "{} opting out, deleting finalizers", canary_key(canary));
            self.ports.store.set_finalizer(canary, false).await?
        } else {
            None
        };
        if let Some(stored) = written {
            // The conditional writes later in this reconcile need the new resourceVersion.
            canary.metadata.resource_version = stored.metadata.resource_version;
            canary.metadata.finalizers = stored.metadata.finalizers;
        }
        Ok(())
    }
}

/// One tick over one Canary: the working copy of the object and what the tick has looked up.
pub(super) struct Tick<'a> {
    pub(super) s: &'a Scheduler,
    pub(super) canary: Canary,
    pub(super) now: Timestamp,
    pub(super) trigger: Trigger,
    /// `<name>.<namespace>`.
    pub(super) key: String,
    /// `<namespace>/<name>/<uid>`: the key of the scheduler's in-memory notes.
    pub(super) memo: String,
    /// `<target>.<namespace>`.
    pub(super) target_key: String,
    /// `<target>-primary.<namespace>`.
    pub(super) primary_key: String,
    /// `spec.targetRef.kind`.
    pub(super) kind: String,
    pub(super) provider: Provider,
    pub(super) revision: Option<Revision>,
    /// Whether this tick wrote the status.
    pub(super) wrote: bool,
    /// The status as the API server holds it (as read, then as each write returned it); the
    /// working copy in `canary` may be ahead of it.
    pub(super) stored: Option<CanaryStatus>,
    /// The decision record of an analysis tick, stored with each of its status writes.
    pub(super) draft: Mutex<Option<super::decision::Draft>>,
    /// What this tick's set-up found in place (kept for the next tick when the tick ends).
    pub(super) set_up_memo: Option<SetUp>,
}

/// The implementations one tick works with.
pub(super) struct Backends {
    pub(super) target: Arc<dyn TargetController>,
    pub(super) scaler: Option<Arc<dyn ScalerReconciler>>,
    pub(super) services: Option<Arc<dyn ServiceRouter>>,
    pub(super) router: Arc<dyn Router>,
}

impl<'a> Tick<'a> {
    pub(super) fn bare(s: &'a Scheduler, canary: Canary, now: Timestamp) -> Self {
        let ns = canary.metadata.namespace.clone().unwrap_or_default();
        let target = canary.spec.target_ref.name.clone();
        let provider = canary
            .spec
            .provider(&s.config.default_provider)
            .unwrap_or_else(|_| s.config.default_provider.clone());
        Self {
            key: canary_key(&canary),
            memo: memo_key(&canary),
            target_key: format!("{target}.{ns}"),
            primary_key: format!("{target}-primary.{ns}"),
            kind: canary.spec.target_ref.kind.clone(),
            provider,
            s,
            stored: canary.status.clone(),
            canary,
            now,
            trigger: Trigger::Due,
            revision: None,
            wrote: false,
            draft: Mutex::new(None),
            set_up_memo: None,
        }
    }

    pub(super) async fn event(&self, kind: EventKind, phase: CanaryPhase, message: &str) {
        events::record(
            &self.s.ports,
            self.s.config.event_webhook.as_deref(),
            &self.canary,
            kind,
            phase,
            message,
        )
        .await;
    }

    pub(super) async fn info(&self, message: impl AsRef<str>) {
        self.event(EventKind::Normal, self.phase(), message.as_ref())
            .await;
    }

    pub(super) async fn warn(&self, message: impl AsRef<str>) {
        self.event(EventKind::Warning, self.phase(), message.as_ref())
            .await;
    }

    pub(super) async fn error(&self, message: impl AsRef<str>) {
        self.event(EventKind::Error, self.phase(), message.as_ref())
            .await;
    }

    pub(super) fn log(&self, message: impl AsRef<str>) {
        events::log(&self.key, EventKind::Normal, message.as_ref());
    }

    pub(super) async fn alert(&self, message: &str, with_metadata: bool, severity: AlertSeverity) {
        self.s
            .ports
            .alerter
            .alert(&self.canary, message, with_metadata, severity)
            .await;
    }

    /// The analysis (an empty one when the canary has none, i.e. skips analysis).
    pub(super) fn analysis(&self) -> crate::api::CanaryAnalysis {
        self.canary.spec.analysis().cloned().unwrap_or_default()
    }

    /// The deployment strategy, as the kubernetes provider forces it (blue/green).
    pub(super) fn strategy(&self) -> Strategy {
        decide::strategy(&self.provider, &self.analysis())
    }

    /// The target's current revision (read once per tick).
    pub(super) async fn revision(
        &mut self,
        target: &dyn TargetController,
    ) -> Result<Revision, WorkloadError> {
        if let Some(rev) = &self.revision {
            return Ok(rev.clone());
        }
        let rev = target.revision(&self.canary).await?;
        self.revision = Some(rev.clone());
        Ok(rev)
    }

    fn backends(&self, target: Arc<dyn TargetController>) -> Result<Backends, PortError> {
        let ports = &self.s.ports;
        Ok(Backends {
            target,
            scaler: ports.backends.scaler(&self.canary)?,
            services: ports.backends.services(&self.canary),
            router: ports.backends.router(&self.canary, &self.provider)?,
        })
    }

    /// Sets the routes (keeping the session-affinity cookies the router writes into the working
    /// status, persisted by the next status write) and the weight gauges.
    pub(super) async fn set_routes(
        &mut self,
        b: &Backends,
        routes: Routes,
    ) -> Result<(), crate::router::RouterError> {
        let mut status = self.status();
        let (set, journal) = recorded(b.router.set_routes(&self.canary, &mut status, routes)).await;
        set?;
        // The routes are what the routing objects' set-up ignores: its reads stay good past
        // this write (`k8s/cache/journal.rs`).
        if let Some(memo) = &mut self.set_up_memo {
            memo.reads.advance(&journal);
        }
        self.canary.status = Some(status);
        self.s
            .ports
            .recorder
            .set_weight(&self.canary, routes.primary, routes.canary);
        Ok(())
    }

    /// Warns with the error's text and ends the tick.
    pub(super) async fn warn_ok(&self, e: impl std::fmt::Display) -> Result<(), SchedulerError> {
        self.warn(e.to_string()).await;
        Ok(())
    }
}

#[cfg(test)]
mod retain_tests {
    use super::*;
    use crate::controller::ports::Clock;

    #[test]
    fn notes_of_deleted_canaries_are_dropped() {
        let w = super::super::tests::World::new(super::super::tests::canary(
            None,
            serde_json::json!({}),
        ));
        let note = Attempt {
            at: w.clock.now(),
            revision: None,
        };
        w.scheduler.remember("test/podinfo/u-1", Some(note.clone()));
        w.scheduler.remember("test/gone/u-2", Some(note));
        assert_eq!(w.scheduler.remembered_canaries(), 2);
        w.scheduler.retain_canaries(|key| key == "test/podinfo/u-1");
        assert_eq!(w.scheduler.remembered_canaries(), 1);
        assert!(w.scheduler.last_attempt("test/podinfo/u-1").is_some());
    }
}

//! Serin only: the scheduler acting on `kubectl serin` requests and pauses
//! ([`super::actions`] decides what they mean). Runs in every tick once the workloads and
//! routing objects are reconciled and before the analysis; a Canary without the annotations
//! goes straight on.

use super::actions::{self, Incoming, PauseChange, Plan};
use super::alerts::Cause;
use super::scheduler::{Backends, Scheduler, SchedulerError, Tick};
use super::status::{revision_changed, whole_seconds};
use crate::api::CanaryStatus;
use crate::api::request::{HandledRequest, PauseStatus, Request, RequestAction, RequestOutcome};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The request and pause a Canary's ticks last recorded (and persisted).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Seen {
    pub last_request: Option<HandledRequest>,
    pub paused: Option<PauseStatus>,
}

impl Scheduler {
    /// What the controller recorded of `status`'s Canary: the status's fields, else (where
    /// Flagger's CRDs prune them) what this process's ticks wrote. A restart with Flagger's
    /// CRDs forgets it (docs/operations.md).
    pub(super) fn seen_requests(&self, memo: &str, status: &CanaryStatus) -> Seen {
        let map = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let noted = map.get(memo).cloned().unwrap_or_default();
        Seen {
            last_request: status.last_request.clone().or(noted.last_request),
            paused: status.paused.clone().or(noted.paused),
        }
    }

    fn note_requests(&self, memo: &str, seen: Seen) {
        let mut map = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen == Seen::default() {
            map.remove(memo);
        } else {
            map.insert(memo.to_string(), seen);
        }
    }
}

impl Tick<'_> {
    /// Handles the canary's request and pause. Returns whether the tick ends here (an action
    /// was taken or refused, or the canary is paused).
    pub(super) async fn requests(&mut self, b: &Backends) -> Result<bool, SchedulerError> {
        let annotations = self.canary.metadata.annotations.clone();
        let mut status = self.status();
        let seen = self.s.seen_requests(&self.memo, &status);
        let pause = actions::pause_change(annotations.as_ref(), seen.paused.as_ref());
        let incoming = actions::incoming(annotations.as_ref(), seen.last_request.as_ref());
        if pause == PauseChange::Running && incoming.is_none() {
            return Ok(false);
        }
        // The working copy starts from what was recorded (a no-op unless pruned).
        status.last_request = seen.last_request;
        status.paused = seen.paused;
        self.canary.status = Some(status);
        let ends = self.carry_out(b, pause, incoming).await?;
        let status = self.status();
        self.s.note_requests(
            &self.memo,
            Seen {
                last_request: status.last_request,
                paused: status.paused,
            },
        );
        Ok(ends)
    }

    async fn carry_out(
        &mut self,
        b: &Backends,
        pause: PauseChange,
        incoming: Option<Incoming>,
    ) -> Result<bool, SchedulerError> {
        let status = self.status();
        let paused = pause.paused();

        // The pause ends: said by a resume request (below) or by the annotation's removal.
        let resuming = pause == PauseChange::Resume;
        let by_request =
            matches!(&incoming, Some(Incoming::New(r)) if r.action == RequestAction::Resume);
        if resuming && !by_request {
            self.info(actions::resumed_by_hand(&self.key)).await;
            self.write_status(|s| s.paused = None).await?;
        }

        // A new revision goes first (it restarts the analysis, which supersedes a waiting
        // promotion); a request waits for the next reconcile.
        let changed = match self.revision(b.target.as_ref()).await {
            Ok(rev) => revision_changed(&status, &rev),
            Err(e) => {
                self.warn(e.to_string()).await;
                return Ok(true);
            }
        };
        let mut acted = false;
        if changed
            && !paused
            && let Some(Incoming::Waiting(r)) = &incoming
        {
            // The new revision's run supersedes it (persisted with the run's restart).
            let record = self.handled(r, RequestOutcome::Superseded, None);
            let mut status = self.status();
            status.last_request = Some(record);
            self.canary.status = Some(status);
        }
        if !changed || paused || by_request {
            acted = match incoming {
                None => false,
                Some(Incoming::Unreadable { id, error }) => {
                    self.warn(actions::unreadable(&error)).await;
                    let record = HandledRequest {
                        id,
                        action: None,
                        by: String::new(),
                        outcome: RequestOutcome::Refused,
                        message: Some(error),
                        time: Time(whole_seconds(self.now)),
                    };
                    self.write_status(|s| s.last_request = Some(record)).await?;
                    true
                }
                Some(Incoming::Waiting(_)) if paused => false,
                Some(Incoming::Waiting(r)) => {
                    let plan = actions::plan(&r, &self.key, self.phase(), paused, false, true);
                    self.act(b, &r, plan, true).await?
                }
                Some(Incoming::New(r)) => {
                    let plan = actions::plan(&r, &self.key, self.phase(), paused, resuming, false);
                    self.act(b, &r, plan, false).await?
                }
            };
        }

        // The pause starts (or holds).
        if let PauseChange::Pause(note) = &pause {
            self.info(actions::paused(note, &self.key)).await;
            let record = PauseStatus {
                by: note.by.clone(),
                since: Time(whole_seconds(self.now)),
            };
            self.write_status(|s| s.paused = Some(record)).await?;
        }
        Ok(acted || resuming || paused)
    }

    /// Carries out `plan` for `request` (`waiting`: a promotion accepted earlier). Returns
    /// whether the tick ends here.
    async fn act(
        &mut self,
        b: &Backends,
        request: &Request,
        plan: Plan,
        waiting: bool,
    ) -> Result<bool, SchedulerError> {
        if matches!(plan, Plan::Promote { .. } | Plan::Abort) {
            // A step of the run: in the decision record (with the gate's answers).
            self.start_record();
        }
        match plan {
            Plan::Promote { force } => {
                if !waiting {
                    self.info(actions::accepted(request, &self.key)).await;
                }
                if !force && !self.confirm_promotion().await? {
                    // Held at the gate: the request stays, tried again every interval.
                    let held = self.handled(request, RequestOutcome::Waiting, None);
                    let recorded = self.status().last_request;
                    if recorded.as_ref().map(|r| (&r.id, r.outcome))
                        != Some((&held.id, held.outcome))
                    {
                        self.write_status(|s| s.last_request = Some(held)).await?;
                    }
                    return Ok(true);
                }
                let before = self.acknowledge(request);
                self.promote(b).await?;
                self.unless_written(before);
            }
            Plan::Abort => {
                self.warn(actions::accepted(request, &self.key)).await;
                let before = self.acknowledge(request);
                self.rollback(b, Cause::Aborted { by: &request.by }).await?;
                self.unless_written(before);
            }
            Plan::Retry => {
                self.info(actions::accepted(request, &self.key)).await;
                let rev = match self.revision(b.target.as_ref()).await {
                    Ok(r) => r,
                    Err(e) => {
                        self.warn(e.to_string()).await;
                        return Ok(true);
                    }
                };
                let before = self.acknowledge(request);
                self.start_run(b, &rev).await?;
                self.unless_written(before);
            }
            Plan::Refuse(why) => {
                self.warn(actions::refused(request, &why)).await;
                let record = self.handled(request, RequestOutcome::Refused, Some(why));
                self.write_status(|s| s.last_request = Some(record)).await?;
            }
            Plan::Resume => {
                self.info(actions::accepted(request, &self.key)).await;
                let record = self.handled(request, RequestOutcome::Done, None);
                self.write_status(|s| {
                    s.paused = None;
                    s.last_request = Some(record);
                })
                .await?;
            }
            Plan::Drop => {
                let record = self.handled(request, RequestOutcome::Superseded, None);
                self.write_status(|s| s.last_request = Some(record)).await?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn handled(
        &self,
        request: &Request,
        outcome: RequestOutcome,
        message: Option<String>,
    ) -> HandledRequest {
        actions::handled(request, outcome, message, whole_seconds(self.now))
    }

    /// Puts the request, done, in the working status: the action's own status write persists
    /// it with its effect, so a restart never applies it twice. Returns the record it replaces.
    fn acknowledge(&mut self, request: &Request) -> Option<HandledRequest> {
        let record = self.handled(request, RequestOutcome::Done, None);
        let mut status = self.status();
        let before = status.last_request.replace(record);
        self.canary.status = Some(status);
        self.wrote = false;
        before
    }

    /// After the action: when it failed before writing the status (a router or workload
    /// error, reported as an event), the request was not carried out and stays to be tried
    /// again.
    fn unless_written(&mut self, before: Option<HandledRequest>) {
        if !self.wrote {
            let mut status = self.status();
            status.last_request = before;
            self.canary.status = Some(status);
        }
    }
}

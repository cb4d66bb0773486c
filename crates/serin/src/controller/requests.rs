//! Serin only: the scheduler acting on `kubectl serin` requests and pauses
//! ([`super::actions`] decides what they mean). Runs in every tick once the workloads and
//! routing objects are reconciled and before the analysis; a Canary without the annotations
//! goes straight on.

use super::actions::{self, Incoming, PauseChange, Plan};
use super::alerts::Cause;
use super::scheduler::{Backends, SchedulerError, Tick};
use super::status::{revision_changed, whole_seconds};
use crate::api::request::{PauseStatus, Request, RequestAction, RequestOutcome};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

impl Tick<'_> {
    /// Handles the canary's request and pause. Returns whether the tick ends here (an action
    /// was taken or refused, or the canary is paused).
    pub(super) async fn requests(&mut self, b: &Backends) -> Result<bool, SchedulerError> {
        let annotations = self.canary.metadata.annotations.clone();
        let status = self.status();
        let pause = actions::pause_change(annotations.as_ref(), status.paused.as_ref());
        let incoming = actions::incoming(annotations.as_ref(), status.last_request.as_ref());
        if pause == PauseChange::Running && incoming.is_none() {
            return Ok(false);
        }
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
        if !changed || paused || by_request {
            acted = match incoming {
                None => false,
                Some(Incoming::Unreadable { id, error }) => {
                    self.warn(actions::unreadable(&error)).await;
                    let record = crate::api::request::HandledRequest {
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
                self.acknowledge(request);
                self.promote(b).await?;
            }
            Plan::Abort => {
                self.warn(actions::accepted(request, &self.key)).await;
                self.acknowledge(request);
                self.rollback(b, Cause::Aborted { by: &request.by }).await?;
            }
            Plan::Retry => {
                self.info(actions::accepted(request, &self.key)).await;
                self.acknowledge(request);
                let rev = match self.revision(b.target.as_ref()).await {
                    Ok(r) => r,
                    Err(e) => {
                        self.warn(e.to_string()).await;
                        return Ok(true);
                    }
                };
                self.start_run(b, &rev).await?;
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
    ) -> crate::api::request::HandledRequest {
        actions::handled(request, outcome, message, whole_seconds(self.now))
    }

    /// Puts the request, done, in the working status: the action's own status write persists
    /// it with its effect, so a restart never applies it twice.
    fn acknowledge(&mut self, request: &Request) {
        let record = self.handled(request, RequestOutcome::Done, None);
        let mut status = self.status();
        status.last_request = Some(record);
        self.canary.status = Some(status);
    }
}

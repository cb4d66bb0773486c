//! Webhook firing points and gating (Flagger's `pkg/controller/scheduler_hooks.go` and their
//! call sites in `scheduler.go`): which hooks run, with which payload phase, and what
//! their failure does. Within a type hooks run in spec order and the first failure stops the
//! rest, except rollback hooks (polled until one signals a rollback).

use super::events;
use super::scheduler::{SchedulerError, Tick};
use super::webhook::{HookPayload, HookResponse, WebhookError, checksum};
use crate::api::analysis::AlertSeverity;
use crate::api::{CanaryPhase, CanaryWebhook, HookType};

/// A hook that failed: its name, the error in words and its `muteAlert`.
pub(super) struct HookFailure {
    pub hook: String,
    pub reason: String,
    pub muted: bool,
}

impl Tick<'_> {
    /// The canary's hooks of one type, in spec order.
    pub(super) fn hooks(&self, hook_type: HookType) -> Vec<CanaryWebhook> {
        self.analysis()
            .webhooks()
            .iter()
            .filter(|h| h.hook_type().ok() == Some(hook_type))
            .cloned()
            .collect()
    }

    /// Calls one hook with the payload for `phase`.
    pub(super) async fn call_hook(
        &self,
        hook: &CanaryWebhook,
        phase: CanaryPhase,
    ) -> Result<HookResponse, WebhookError> {
        let status = self.status();
        let payload = HookPayload {
            name: self.canary.metadata.name.clone().unwrap_or_default(),
            namespace: self.canary.metadata.namespace.clone().unwrap_or_default(),
            phase,
            checksum: checksum(&status),
            metadata: hook.metadata.clone().unwrap_or_default(),
        };
        let answer = self.s.ports.webhooks.post(hook, &payload).await;
        self.record_webhook(hook, &answer);
        answer
    }

    /// confirm-rollout (payload: the current phase). On the first failure the phase becomes
    /// Waiting (Warning event and alert the first time only). Returns whether all passed.
    pub(super) async fn confirm_rollout(&mut self) -> Result<bool, SchedulerError> {
        let phase = self.phase();
        for hook in self.hooks(HookType::ConfirmRollout) {
            if self.call_hook(&hook, phase).await.is_err() {
                if phase != CanaryPhase::Waiting {
                    self.set_phase(CanaryPhase::Waiting).await?;
                    self.warn(events::waiting_for_approval(&self.key, &hook.name))
                        .await;
                    if !hook.mute_alert.unwrap_or(false) {
                        self.alert(
                            events::alert::WAITING_FOR_APPROVAL,
                            false,
                            AlertSeverity::Warn,
                        )
                        .await;
                    }
                }
                return Ok(false);
            }
            self.info(events::confirm_rollout_passed(&hook.name)).await;
        }
        Ok(true)
    }

    /// pre-rollout (payload: Progressing). Returns the first failure, if any; it is a failed
    /// check (counted, then alerted, by the caller).
    pub(super) async fn pre_rollout(&self) -> Result<(), HookFailure> {
        for hook in self.hooks(HookType::PreRollout) {
            match self.call_hook(&hook, CanaryPhase::Progressing).await {
                Ok(_) => self.info(events::pre_rollout_passed(&hook.name)).await,
                Err(e) => {
                    let reason = e.to_string();
                    let msg = events::pre_rollout_failed(&self.key, &hook.name, &reason);
                    self.warn(msg).await;
                    return Err(HookFailure {
                        muted: hook.mute_alert.unwrap_or(false),
                        hook: hook.name,
                        reason,
                    });
                }
            }
        }
        Ok(())
    }

    /// rollout (payload: Progressing), before the metric checks of every analysed tick.
    pub(super) async fn rollout_hooks(&self) -> bool {
        for hook in self.hooks(HookType::Rollout) {
            if let Err(e) = self.call_hook(&hook, CanaryPhase::Progressing).await {
                let msg = events::rollout_hook_failed(&self.key, &hook.name, &e.to_string());
                self.warn(msg).await;
                return false;
            }
        }
        true
    }

    /// confirm-traffic-increase (payload: Progressing): a failure holds the weight (Warning
    /// event and alert on every tick), without counting as a failed check.
    pub(super) async fn confirm_traffic_increase(&self) -> bool {
        for hook in self.hooks(HookType::ConfirmTrafficIncrease) {
            if self
                .call_hook(&hook, CanaryPhase::Progressing)
                .await
                .is_err()
            {
                self.warn(events::waiting_for_traffic_increase(&self.key, &hook.name))
                    .await;
                if !hook.mute_alert.unwrap_or(false) {
                    self.alert(
                        events::alert::WAITING_FOR_TRAFFIC_INCREASE,
                        false,
                        AlertSeverity::Warn,
                    )
                    .await;
                }
                return false;
            }
            self.info(events::confirm_traffic_increase_passed(&hook.name))
                .await;
        }
        true
    }

    /// confirm-promotion (payload: Progressing): on the first failure the phase becomes
    /// WaitingPromotion (Warning event and alert the first time only); the analysis keeps
    /// running every tick meanwhile.
    pub(super) async fn confirm_promotion(&mut self) -> Result<bool, SchedulerError> {
        for hook in self.hooks(HookType::ConfirmPromotion) {
            if self
                .call_hook(&hook, CanaryPhase::Progressing)
                .await
                .is_err()
            {
                if self.phase() != CanaryPhase::WaitingPromotion {
                    self.set_phase(CanaryPhase::WaitingPromotion).await?;
                    self.warn(events::waiting_for_promotion(&self.key, &hook.name))
                        .await;
                    if !hook.mute_alert.unwrap_or(false) {
                        self.alert(
                            events::alert::WAITING_FOR_PROMOTION,
                            false,
                            AlertSeverity::Warn,
                        )
                        .await;
                    }
                }
                return Ok(false);
            }
            self.info(events::confirm_promotion_passed(&hook.name))
                .await;
        }
        Ok(true)
    }

    /// post-rollout (payload: Succeeded or Failed): failures are only reported.
    pub(super) async fn post_rollout(&self, phase: CanaryPhase) {
        for hook in self.hooks(HookType::PostRollout) {
            match self.call_hook(&hook, phase).await {
                Ok(_) => self.info(events::post_rollout_passed(&hook.name)).await,
                Err(e) => {
                    self.warn(events::post_rollout_failed(&hook.name, &e.to_string()))
                        .await;
                    return;
                }
            }
        }
    }

    /// rollback (payload: the current phase): the first hook that answers with success
    /// signals a rollback.
    pub(super) async fn rollback_hooks_fired(&self, phase: CanaryPhase) -> bool {
        for hook in self.hooks(HookType::Rollback) {
            match self.call_hook(&hook, phase).await {
                Ok(_) => {
                    self.warn(events::rollback_check_passed(&hook.name)).await;
                    return true;
                }
                Err(_) => {
                    self.info(events::rollback_hook_not_signaling(&hook.name))
                        .await
                }
            }
        }
        false
    }
}

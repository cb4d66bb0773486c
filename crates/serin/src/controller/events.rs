//! The event catalogue (Flagger's texts in `pkg/controller/scheduler*.go`) and event recording
//! (Flagger's `pkg/controller/events.go`): every event is a Kubernetes Event on the Canary
//! (reason `Synced`), a log line with fields `canary = "<name>.<ns>"` and the message, and a
//! POST to the canary's `event` webhooks (or the global event webhook, `sendEventToWebhook`
//! there).
//!
//! `key` arguments are `<canary name>.<namespace>`, `target` arguments `<target name>.<namespace>`
//! (as Flagger formats them); the texts are exactly Flagger's.

use std::collections::BTreeMap;

use super::ports::{EventKind, Ports};
use super::webhook::{HookPayload, checksum};
use crate::api::{Canary, CanaryPhase, CanaryWebhook, HookType};

pub const PROVIDERS_AVAILABLE: &str = "all the metrics providers are available!";
pub const SUSPENDED: &str = "skipping canary run as object is suspended";
pub const ROUTING_ALL_TO_PRIMARY: &str = "Routing all traffic to primary";
pub const ROUTING_ALL_TO_CANARY: &str = "Routing all traffic to canary";
pub const STOP_MIRRORING: &str = "Stop traffic mirroring and route all traffic to canary";
pub const AB_NOT_SUPPORTED_KUBERNETES: &str =
    "A/B testing is not supported when using the kubernetes provider";
pub const PROGRESSIVE_NOT_SUPPORTED_KUBERNETES: &str =
    "Progressive traffic is not supported when using the kubernetes provider";
pub const SETTING_ITERATIONS_10: &str = "Setting canaryAnalysis.iterations: 10";

pub fn initialization_done(key: &str) -> String {
    format!("Initialization done! {key}")
}
pub fn provider_check_failed(err: &str) -> String {
    format!("Error checking metric providers: {err}")
}
pub fn new_revision(target: &str) -> String {
    format!("New revision detected! Scaling up {target}")
}
pub fn restarting_analysis(target: &str) -> String {
    format!("New revision detected! Restarting analysis for {target}")
}
pub fn starting_analysis(target: &str) -> String {
    format!("Starting canary analysis for {target}")
}
pub fn pre_rollout_passed(hook: &str) -> String {
    format!("Pre-rollout check {hook} passed")
}
pub fn pre_rollout_failed(key: &str, hook: &str, err: &str) -> String {
    format!("Halt {key} advancement pre-rollout check {hook} failed {err}")
}
pub fn rollout_hook_failed(key: &str, hook: &str, err: &str) -> String {
    format!("Halt {key} advancement external check {hook} failed {err}")
}
pub fn confirm_rollout_passed(hook: &str) -> String {
    format!("Confirm-rollout check {hook} passed")
}
pub fn waiting_for_approval(key: &str, hook: &str) -> String {
    format!("Halt {key} advancement waiting for approval {hook}")
}
pub fn confirm_traffic_increase_passed(hook: &str) -> String {
    format!("Confirm-traffic-increase check {hook} passed")
}
pub fn waiting_for_traffic_increase(key: &str, hook: &str) -> String {
    format!("Halt {key} advancement waiting for traffic increase approval {hook}")
}
pub fn confirm_promotion_passed(hook: &str) -> String {
    format!("Confirm-promotion check {hook} passed")
}
pub fn waiting_for_promotion(key: &str, hook: &str) -> String {
    format!("Halt {key} advancement waiting for promotion approval {hook}")
}
pub fn rollback_hook_not_signaling(hook: &str) -> String {
    format!("Rollback hook {hook} not signaling a rollback")
}
pub fn rollback_check_passed(hook: &str) -> String {
    format!("Rollback check {hook} passed")
}
pub fn rolling_back_manual(key: &str) -> String {
    format!("Rolling back {key} manual webhook invoked")
}
pub fn post_rollout_passed(hook: &str) -> String {
    format!("Post-rollout check {hook} passed")
}
pub fn post_rollout_failed(hook: &str, err: &str) -> String {
    format!("Post-rollout hook {hook} failed {err}")
}
pub fn advance_weight(key: &str, weight: i32) -> String {
    format!("Advance {key} canary weight {weight}")
}
pub fn advance_iteration(key: &str, iteration: i32, iterations: i32) -> String {
    format!("Advance {key} canary iteration {iteration}/{iterations}")
}
pub fn copying_template(target: &str, primary: &str) -> String {
    format!("Copying {target} template spec to {primary}")
}
pub fn advance_primary_weight(key: &str, weight: i32) -> String {
    format!("Advance {key} primary weight {weight}")
}
pub fn promotion_completed(target: &str) -> String {
    format!("Promotion completed! Scaling down {target}")
}
pub fn promotion_skipped_analysis(target: &str) -> String {
    format!("Promotion completed! Canary analysis was skipped for {target}")
}
pub fn threshold_reached(key: &str, failed_checks: i32) -> String {
    format!("Rolling back {key} failed checks threshold reached {failed_checks}")
}
pub fn canary_failed(key: &str) -> String {
    format!("Canary failed! Scaling down {key}")
}
pub fn promotion_failed(target: &str, err: &str) -> String {
    format!("Promotion of {target} failed, primary not ready: {err}")
}
pub fn scaling_down_failed(kind: &str, target: &str, err: &str) -> String {
    format!("scaling down canary {kind} {target} failed: {err}")
}
pub fn terminating(key: &str) -> String {
    format!("Terminating canary {key}")
}
pub fn terminated(key: &str) -> String {
    format!("Terminated canary {key}")
}

/// Alert texts (Flagger's `c.alert(...)` calls in `pkg/controller/scheduler*.go`).
pub mod alert {
    pub fn initialized(kind: &str) -> String {
        format!("New {kind} detected, initialization completed.")
    }
    pub const NEW_REVISION: &str = "New revision detected, progressing canary analysis.";
    pub const WAITING_FOR_APPROVAL: &str = "Canary is waiting for approval.";
    pub const WAITING_FOR_TRAFFIC_INCREASE: &str =
        "Canary traffic increase is waiting for approval.";
    pub const WAITING_FOR_PROMOTION: &str = "Canary promotion is waiting for approval.";
    pub const MANUAL_ROLLBACK: &str = "Rolling back manual webhook invoked";
    pub fn threshold_reached(failed_checks: i32) -> String {
        format!("Failed checks threshold reached {failed_checks}")
    }
    pub fn promotion_failed(err: &str) -> String {
        format!("Promotion failed, primary not ready: {err}")
    }
    pub const SUCCEEDED: &str = "Canary analysis completed successfully, promotion finished.";
    pub const SKIPPED: &str = "Canary analysis was skipped, promotion finished.";
}

/// `<name>.<namespace>` of a Canary.
pub fn canary_key(canary: &Canary) -> String {
    format!(
        "{}.{}",
        canary.metadata.name.as_deref().unwrap_or(""),
        canary.metadata.namespace.as_deref().unwrap_or("")
    )
}

/// Writes the log line for an event or a log-only message.
pub fn log(key: &str, kind: EventKind, message: &str) {
    match kind {
        EventKind::Normal => tracing::info!(canary = %key, "{message}"),
        EventKind::Warning => tracing::warn!(canary = %key, "{message}"),
        EventKind::Error => tracing::error!(canary = %key, "{message}"),
    }
}

/// Records an event: log line, Kubernetes Event, event webhooks. `phase` is the phase the
/// event is recorded "as" (sent in the event-webhook payload, Flagger's `CallEventWebhook` in
/// `pkg/controller/webhook.go`).
pub async fn record(
    ports: &Ports,
    global_webhook: Option<&str>,
    canary: &Canary,
    kind: EventKind,
    phase: CanaryPhase,
    message: &str,
) {
    let key = canary_key(canary);
    log(&key, kind, message);
    ports.events.publish(canary, kind, message).await;

    let event_hooks: Vec<&CanaryWebhook> = canary
        .spec
        .analysis()
        .map(|a| a.webhooks())
        .unwrap_or(&[])
        .iter()
        .filter(|h| h.hook_type().ok() == Some(HookType::Event))
        .collect();
    let global;
    let hooks: Vec<&CanaryWebhook> = if !event_hooks.is_empty() {
        event_hooks
    } else if let Some(url) = global_webhook.filter(|u| !u.is_empty()) {
        global = CanaryWebhook {
            name: "events".into(),
            url: url.to_string(),
            ..Default::default()
        };
        vec![&global]
    } else {
        return;
    };
    let status = canary.status.clone().unwrap_or_default();
    let timestamp = ports.clock.now().as_millisecond().to_string();
    for hook in hooks {
        let mut metadata = BTreeMap::from([
            ("eventMessage".to_string(), message.to_string()),
            ("eventType".to_string(), kind.event_type().to_string()),
            ("timestamp".to_string(), timestamp.clone()),
        ]);
        for (k, v) in hook.metadata.iter().flatten() {
            metadata.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let payload = HookPayload {
            name: canary.metadata.name.clone().unwrap_or_default(),
            namespace: canary.metadata.namespace.clone().unwrap_or_default(),
            phase,
            checksum: checksum(&status),
            metadata,
        };
        if let Err(e) = ports.webhooks.post(hook, &payload).await {
            tracing::error!(canary = %key, "error sending event to webhook: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The two lines `log` writes under a JSON subscriber installed for this thread.
    fn logged_lines() -> Vec<serde_json::Value> {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(
            crate::telemetry::logging::JsonLayer::new(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            // Other tests log on other threads without a subscriber; make sure the callsites'
            // cached interest includes this one.
            tracing::callsite::rebuild_interest_cache();
            log(
                "podinfo.test",
                EventKind::Warning,
                &canary_failed("podinfo.test"),
            );
            log(
                "podinfo.test",
                EventKind::Normal,
                &advance_weight("podinfo.test", 10),
            );
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn log_lines_carry_the_canary_and_the_message() {
        // The callsites of `log` are shared with every test that reconciles, and tracing caches
        // their interest process-wide: another test thread can recompute it between the rebuild
        // in `logged_lines` and a call (finding no subscriber on its own thread): a line is lost.
        // A few attempts make that race irrelevant; a `log` that writes wrong lines fails all.
        let mut lines = logged_lines();
        for _ in 0..4 {
            if lines.len() == 2 {
                break;
            }
            lines = logged_lines();
        }
        assert_eq!(lines.len(), 2, "{lines:?}");
        // What `kubectl logs … | jq .msg` reads.
        assert_eq!(lines[0]["msg"], "Canary failed! Scaling down podinfo.test");
        assert_eq!(lines[0]["canary"], "podinfo.test");
        assert_eq!(lines[0]["level"], "warn");
        assert_eq!(lines[1]["msg"], "Advance podinfo.test canary weight 10");
        assert_eq!(lines[1]["level"], "info");
    }

    #[test]
    fn catalogue_texts() {
        assert_eq!(
            new_revision("podinfo.test"),
            "New revision detected! Scaling up podinfo.test"
        );
        assert_eq!(
            copying_template("podinfo.test", "podinfo-primary.test"),
            "Copying podinfo.test template spec to podinfo-primary.test"
        );
        assert_eq!(
            advance_iteration("frontend.prod", 1, 10),
            "Advance frontend.prod canary iteration 1/10"
        );
        assert_eq!(
            threshold_reached("frontend.prod", 10),
            "Rolling back frontend.prod failed checks threshold reached 10"
        );
        assert_eq!(
            scaling_down_failed("Deployment", "podinfo.test", "boom"),
            "scaling down canary Deployment podinfo.test failed: boom"
        );
    }
}

//! `serin simulate`: runs the real scheduler on a fake clock with in-memory ports against a
//! script of metric values, webhook answers and new revisions ([`script`]), and reports the
//! timeline and the outcome. Nothing talks to a cluster or a network.

pub mod fakes;
pub mod script;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use self::fakes::*;
use self::script::Timeline;
use crate::api::{Canary, CanaryPhase, Provider, duration, manifest};
use crate::controller::ports::{EventKind, Ports};
use crate::controller::scheduler::{Scheduler, SchedulerConfig};

/// Reads the first Canary of a YAML stream.
pub fn load_canary(text: &str) -> Result<Canary, String> {
    let docs = manifest::parse_documents(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let doc = docs
        .into_iter()
        .find(|d| d.get("kind").and_then(|k| k.as_str()) == Some("Canary"))
        .ok_or_else(|| "no Canary in the file".to_string())?;
    serde_json::from_value(doc).map_err(|e| format!("the Canary cannot be read: {e}"))
}

/// How a simulation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The last revision was promoted, this long after it arrived.
    Promoted(Duration),
    /// The last revision was rolled back, this long after it arrived.
    RolledBack(Duration),
    /// Neither within the script's duration.
    Undecided,
}

/// The result of a simulation.
#[derive(Clone, Debug)]
pub struct Report {
    /// One line per event and per change of phase or weight, with the simulated time.
    pub timeline: Vec<String>,
    pub outcome: Outcome,
    /// Scheduler runs (reconciles) simulated.
    pub reconciles: usize,
}

/// Most reconciles of one simulation (a guard against a requeue loop).
const MAX_RECONCILES: usize = 100_000;

/// Runs the simulation of `canary` against `script`; `provider` is the controller's default
/// mesh provider for a Canary without `spec.provider`.
pub async fn run(mut canary: Canary, script: Timeline, provider: Provider) -> Report {
    canary.status = None;
    if canary.metadata.namespace.is_none() {
        canary.metadata.namespace = Some("default".into());
    }
    if canary.metadata.uid.is_none() {
        canary.metadata.uid = Some("simulated".into());
    }
    let start = Timestamp::from_second(1_767_225_600).unwrap_or(Timestamp::UNIX_EPOCH);
    let clock = Arc::new(FakeClock {
        start,
        now: Mutex::new(start),
    });
    let script = Arc::new(script);
    let store = Arc::new(Store(Mutex::new(Some(canary))));
    let events = Arc::new(Events {
        clock: clock.clone(),
        log: Mutex::new(Vec::new()),
    });
    let target = Arc::new(Target {
        revision: Mutex::new("rev1".into()),
    });
    let traffic = Arc::new(Traffic::default());
    let ports = Ports {
        clock: clock.clone(),
        events: events.clone(),
        store: store.clone(),
        webhooks: Arc::new(Webhooks {
            clock: clock.clone(),
            script: script.clone(),
        }),
        metrics: Arc::new(Metrics {
            clock: clock.clone(),
            script: script.clone(),
        }),
        alerter: Arc::new(Quiet),
        recorder: Arc::new(Quiet),
        backends: Arc::new(Workloads {
            target: target.clone(),
            traffic: traffic.clone(),
            noop: Arc::new(NoOp),
        }),
    };
    let scheduler = Scheduler::new(
        ports,
        SchedulerConfig {
            default_provider: provider,
            ..SchedulerConfig::default()
        },
    );

    let last_revision = script.revisions.last().map(|(t, _)| *t).unwrap_or_default();
    let mut timeline = Vec::new();
    let mut seen_events = 0;
    let mut shown: Option<(CanaryPhase, i32, i32)> = None;
    let mut running_last = false;
    let mut reconciles = 0;
    let outcome = loop {
        let now = clock.elapsed();
        // Revisions come once the Canary is initialised (the primary runs `rev1`).
        let initialised = lock(&store.0)
            .as_ref()
            .and_then(|c| c.status.as_ref())
            .is_some_and(|s| s.phase != CanaryPhase::Initializing);
        if initialised && let Some(rev) = script.revision(now) {
            let mut current = lock(&target.revision);
            if *current != rev {
                timeline.push(format!("{:>8}  new revision {rev}", duration::format(now)));
                *current = rev.to_string();
            }
        }
        let Some(object) = lock(&store.0).clone() else {
            break Outcome::Undecided;
        };
        let next = scheduler.reconcile(&object).await;
        reconciles += 1;
        for (t, kind, message) in lock(&events.log).iter().skip(seen_events) {
            let kind = match kind {
                EventKind::Normal => "Normal ",
                EventKind::Warning | EventKind::Error => "Warning",
            };
            timeline.push(format!("{:>8}  {kind}  {message}", duration::format(*t)));
        }
        seen_events = lock(&events.log).len();
        let status = lock(&store.0)
            .as_ref()
            .and_then(|c| c.status.clone())
            .unwrap_or_default();
        let now_shown = (status.phase, status.canary_weight, status.failed_checks);
        if shown != Some(now_shown) {
            shown = Some(now_shown);
            timeline.push(format!(
                "{:>8}  phase {} canary weight {} failed checks {}",
                duration::format(now),
                status.phase,
                status.canary_weight,
                status.failed_checks
            ));
        }
        if now >= last_revision && status.phase.is_running() {
            running_last = true;
        }
        if running_last {
            match status.phase {
                CanaryPhase::Succeeded => break Outcome::Promoted(now - last_revision),
                CanaryPhase::Failed => break Outcome::RolledBack(now - last_revision),
                _ => {}
            }
        }
        let pending = script
            .revision(now)
            .is_some_and(|rev| *lock(&target.revision) != rev);
        if pending && status.phase != CanaryPhase::Initializing && reconciles < MAX_RECONCILES {
            continue;
        }
        let wait = match next {
            Ok(n) => n.requeue_after,
            Err(e) => {
                timeline.push(format!("{:>8}  error    {e}", duration::format(now)));
                Duration::from_secs(1)
            }
        }
        .max(Duration::from_secs(1));
        let mut until = now + wait;
        if let Some(rev_at) = script.next_revision_after(now) {
            until = until.min(rev_at);
        }
        if until > script.duration || reconciles >= MAX_RECONCILES {
            break Outcome::Undecided;
        }
        clock.advance(until - now);
    };
    Report {
        timeline,
        outcome,
        reconciles,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn canary(metrics: serde_json::Value) -> Canary {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898},
                "analysis": {"interval": "1m", "threshold": 3, "maxWeight": 50, "stepWeight": 10,
                             "metrics": metrics},
            }
        }))
        .unwrap()
    }

    fn simulate(c: Canary, script: &str) -> Report {
        let t = Timeline::parse(script).unwrap();
        futures::executor::block_on(run(c, t, Provider::Istio))
    }

    #[test]
    fn healthy_canary_is_promoted() {
        let c = canary(
            serde_json::json!([{"name": "request-success-rate", "thresholdRange": {"min": 99}}]),
        );
        let r = simulate(
            c,
            "metrics:\n  request-success-rate:\n    - {at: 0s, value: 99.9}\n",
        );
        assert!(
            matches!(r.outcome, Outcome::Promoted(_)),
            "{:#?}",
            r.timeline
        );
        let text = r.timeline.join("\n");
        assert!(
            text.contains("Copying podinfo.test template spec to podinfo-primary.test"),
            "{text}"
        );
        assert!(
            text.contains("phase Progressing canary weight 50"),
            "{text}"
        );
    }

    #[test]
    fn degrading_canary_is_rolled_back_after_threshold_failed_checks() {
        let c = canary(
            serde_json::json!([{"name": "request-success-rate", "thresholdRange": {"min": 99}}]),
        );
        let r = simulate(
            c,
            "metrics:\n  request-success-rate:\n    - {at: 0s, value: 99.9}\n    - {at: 3m, value: 80}\n",
        );
        let Outcome::RolledBack(after) = r.outcome else {
            panic!("{:#?}", r.timeline)
        };
        assert!(after > Duration::from_secs(180), "{after:?}");
        let text = r.timeline.join("\n");
        assert!(
            text.contains("Halt podinfo.test advancement success rate 80.00% < 99%"),
            "{text}"
        );
        assert!(
            text.contains("Rolling back podinfo.test failed checks threshold reached 3"),
            "{text}"
        );
    }

    #[test]
    fn comparison_and_webhooks_from_the_script() {
        let c = canary(serde_json::json!([{
            "name": "latency", "query": "q{pod=~\"{{ target }}-.*\"}",
            "compare": {"minSamples": 5, "relativeDegradation": 0.05}
        }]));
        let slow = "metrics:\n  latency:\n    - {at: 0s, canary: [2, 2.1, 2.2, 2.3, 2.4, 2.5], primary: [1, 1.1, 1.2, 1.3, 1.4, 1.5]}\n";
        let r = simulate(c.clone(), slow);
        assert!(
            matches!(r.outcome, Outcome::RolledBack(_)),
            "{:#?}",
            r.timeline
        );
        assert!(
            r.timeline
                .join("\n")
                .contains("canary worse than primary: mann-whitney U=")
        );
        let few = "duration: 1h\nmetrics:\n  latency:\n    - {at: 0s, canary: [1], primary: [1, 1.1, 1.2, 1.3, 1.4, 1.5]}\n";
        let r = simulate(c, few);
        assert!(r.timeline.join("\n").contains("comparison inconclusive"));
        // Each hold lasts the 10 min progress deadline, then counts as a failed check:
        // threshold 3 rolls back within the hour.
        assert!(
            matches!(r.outcome, Outcome::RolledBack(_)),
            "{:#?}",
            r.timeline
        );
    }

    #[test]
    fn the_examples_promote_and_roll_back() {
        let c = load_canary(include_str!("../../../../examples/simulate/canary.yaml")).unwrap();
        let r = simulate(
            c.clone(),
            include_str!("../../../../examples/simulate/promote.metrics"),
        );
        assert_eq!(
            r.outcome,
            Outcome::Promoted(Duration::from_secs(600)),
            "{:#?}",
            r.timeline
        );
        let r = simulate(
            c,
            include_str!("../../../../examples/simulate/rollback.metrics"),
        );
        assert_eq!(
            r.outcome,
            Outcome::RolledBack(Duration::from_secs(300)),
            "{:#?}",
            r.timeline
        );
    }

    #[test]
    fn an_hour_of_analysis_simulates_quickly() {
        let mut c = canary(
            serde_json::json!([{"name": "request-success-rate", "thresholdRange": {"min": 99}}]),
        );
        if let Some(a) = c.spec.analysis.as_mut() {
            a.step_weight = Some(1);
            a.max_weight = Some(60);
        }
        let r = simulate(
            c,
            "metrics:\n  request-success-rate:\n    - {at: 0s, value: 99.9}\n",
        );
        let Outcome::Promoted(after) = r.outcome else {
            panic!("{:#?}", r.timeline)
        };
        assert!(after >= Duration::from_secs(3600), "{after:?}");
    }
}

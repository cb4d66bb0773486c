//! Serin's own Prometheus metrics: Flagger's `flagger_*` series with Flagger's names, types and
//! labels (`pkg/metrics/recorder.go`), so existing dashboards and alert rules keep working, plus
//! `serin_reconcile_*` series about the controller itself.
//!
//! One [`Recorder`] owns one prometheus-client registry. It is cheap to clone (all clones update
//! the same series); the telemetry server serves its text exposition on `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The Prometheus client libraries' default histogram buckets (Flagger uses them for
/// `flagger_canary_duration_seconds`).
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets of `serin_analysis_step_delay_seconds`: 1 ms to 10 s.
pub const STEP_DELAY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Content type of [`Recorder::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("encoding the metrics failed")]
    Encode(#[from] std::fmt::Error),
}

/// `flagger_canary_status` value for a phase: 0 = Progressing, 2 = Failed, 1 = anything else.
pub fn status_code(phase: &str) -> i64 {
    match phase {
        "Progressing" => 0,
        "Failed" => 2,
        _ => 1,
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    version: String,
    mesh_provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceLabels {
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CanaryLabels {
    name: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WeightLabels {
    workload: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricLabels {
    name: String,
    namespace: String,
    metric: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    name: String,
    namespace: String,
    check: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    name: String,
    namespace: String,
    deployment_strategy: String,
    analysis_status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: String,
}

fn default_histogram() -> Histogram {
    Histogram::new(DEFAULT_BUCKETS)
}

/// Serin's metrics registry. Clone it freely.
#[derive(Clone)]
pub struct Recorder {
    registry: Arc<Registry>,
    info: Family<InfoLabels, Gauge>,
    total: Family<NamespaceLabels, Gauge>,
    status: Family<CanaryLabels, Gauge>,
    weight: Family<WeightLabels, Gauge>,
    duration: Family<CanaryLabels, Histogram>,
    metric_analysis: Family<MetricLabels, Gauge<f64, AtomicU64>>,
    successes: Family<OutcomeLabels, Counter>,
    failures: Family<OutcomeLabels, Counter>,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_duration: Histogram,
    step_delay: Histogram,
    undecodable: Family<CanaryLabels, Gauge>,
    check_value: Family<CheckLabels, Gauge<f64, AtomicU64>>,
    check_min: Family<CheckLabels, Gauge<f64, AtomicU64>>,
    check_max: Family<CheckLabels, Gauge<f64, AtomicU64>>,
    /// The length of the last exposition, so that the next one is allocated once: grown by
    /// doubling, the text (about 2.5 KB per Canary, 25 MB at 10,000) held up to half as much
    /// again in the buffer it outgrew.
    last_len: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// A registry with every series registered (and none populated yet).
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let info = Family::<InfoLabels, Gauge>::default();
        registry.register(
            "flagger_info",
            "Flagger version and mesh provider information",
            info.clone(),
        );
        let total = Family::<NamespaceLabels, Gauge>::default();
        registry.register(
            "flagger_canary_total",
            "Total number of canary object",
            total.clone(),
        );
        let status = Family::<CanaryLabels, Gauge>::default();
        registry.register(
            "flagger_canary_status",
            "Last canary analysis result (0 = progressing, 1 = done, 2 = failed)",
            status.clone(),
        );
        let weight = Family::<WeightLabels, Gauge>::default();
        registry.register(
            "flagger_canary_weight",
            "The virtual service destination weight current value",
            weight.clone(),
        );
        let duration = Family::<CanaryLabels, Histogram>::new_with_constructor(
            default_histogram as fn() -> Histogram,
        );
        registry.register(
            "flagger_canary_duration_seconds",
            "Seconds spent performing canary analysis.",
            duration.clone(),
        );
        let metric_analysis = Family::<MetricLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "flagger_canary_metric_analysis",
            "Last canary analysis result per metric",
            metric_analysis.clone(),
        );
        // prometheus-client appends `_total` to counter names.
        let successes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "flagger_canary_successes",
            "Total number of canary successes",
            successes.clone(),
        );
        let failures = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "flagger_canary_failures",
            "Total number of canary failures",
            failures.clone(),
        );
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "serin_reconcile",
            "Canary reconciliations by result (success or error)",
            reconciles.clone(),
        );
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "serin_reconcile_errors",
            "Failed canary reconciliations by error kind",
            reconcile_errors.clone(),
        );
        let reconcile_duration = default_histogram();
        registry.register(
            "serin_reconcile_duration_seconds",
            "Duration of canary reconciliations",
            reconcile_duration.clone(),
        );
        let step_delay = Histogram::new(STEP_DELAY_BUCKETS);
        registry.register(
            "serin_analysis_step_delay_seconds",
            "How late analysis steps started after their due time",
            step_delay.clone(),
        );
        let undecodable = Family::<CanaryLabels, Gauge>::default();
        registry.register(
            "serin_canary_undecodable",
            "Canaries that cannot be decoded (1 while the stored version is unreadable)",
            undecodable.clone(),
        );
        let check_value = Family::<CheckLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "serin_canary_check_value",
            "Last value of a metric check of the decision record (request duration in ms)",
            check_value.clone(),
        );
        let check_min = Family::<CheckLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "serin_canary_check_threshold_min",
            "Lower bound of a metric check's threshold range",
            check_min.clone(),
        );
        let check_max = Family::<CheckLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "serin_canary_check_threshold_max",
            "Upper bound of a metric check's threshold range",
            check_max.clone(),
        );
        Recorder {
            registry: Arc::new(registry),
            info,
            total,
            status,
            weight,
            duration,
            metric_analysis,
            successes,
            failures,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            step_delay,
            undecodable,
            check_value,
            check_min,
            check_max,
            last_len: Arc::default(),
        }
    }

    /// `flagger_info{version, mesh_provider} 1`, set once at start-up.
    pub fn set_info(&self, version: &str, mesh_provider: &str) {
        self.info
            .get_or_create(&InfoLabels {
                version: version.to_owned(),
                mesh_provider: mesh_provider.to_owned(),
            })
            .set(1);
    }

    /// `flagger_canary_total{namespace}`: number of canaries in the namespace.
    pub fn set_total(&self, namespace: &str, count: i64) {
        self.total
            .get_or_create(&NamespaceLabels {
                namespace: namespace.to_owned(),
            })
            .set(count);
    }

    /// `flagger_canary_status{name, namespace}` where `name` is the **target** name; use
    /// [`status_code`] to map a phase.
    pub fn set_status(&self, target: &str, namespace: &str, code: i64) {
        self.status
            .get_or_create(&canary_labels(target, namespace))
            .set(code);
    }

    /// `flagger_canary_weight{workload, namespace}` for the primary workload
    /// (`<target>-primary`) and the canary workload (`<target>`).
    pub fn set_weight(
        &self,
        primary_workload: &str,
        canary_workload: &str,
        namespace: &str,
        primary: i64,
        canary: i64,
    ) {
        for (workload, value) in [(primary_workload, primary), (canary_workload, canary)] {
            self.weight
                .get_or_create(&WeightLabels {
                    workload: workload.to_owned(),
                    namespace: namespace.to_owned(),
                })
                .set(value);
        }
    }

    /// Observes one analysis tick in `flagger_canary_duration_seconds{name, namespace}`.
    pub fn observe_duration(&self, target: &str, namespace: &str, seconds: f64) {
        self.duration
            .get_or_create(&canary_labels(target, namespace))
            .observe(seconds);
    }

    /// `flagger_canary_metric_analysis{name, namespace, metric}`: the last value of a check.
    pub fn set_metric_analysis(&self, target: &str, namespace: &str, metric: &str, value: f64) {
        self.metric_analysis
            .get_or_create(&MetricLabels {
                name: target.to_owned(),
                namespace: namespace.to_owned(),
                metric: metric.to_owned(),
            })
            .set(value);
    }

    /// `flagger_canary_successes_total`: `deployment_strategy` is `canary`, `blue-green` or
    /// `ab-testing`; `analysis_status` is `completed` or `skipped`.
    pub fn inc_successes(
        &self,
        target: &str,
        namespace: &str,
        deployment_strategy: &str,
        analysis_status: &str,
    ) {
        self.successes
            .get_or_create(&outcome(
                target,
                namespace,
                deployment_strategy,
                analysis_status,
            ))
            .inc();
    }

    /// `flagger_canary_failures_total` (Flagger always uses `analysis_status="completed"`).
    pub fn inc_failures(
        &self,
        target: &str,
        namespace: &str,
        deployment_strategy: &str,
        analysis_status: &str,
    ) {
        self.failures
            .get_or_create(&outcome(
                target,
                namespace,
                deployment_strategy,
                analysis_status,
            ))
            .inc();
    }

    /// A successful reconcile: `serin_reconcile_total{result="success"}` and the duration.
    pub fn reconcile_succeeded(&self, seconds: f64) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: "success".to_owned(),
            })
            .inc();
        self.reconcile_duration.observe(seconds);
    }

    /// A failed reconcile: `serin_reconcile_total{result="error"}`,
    /// `serin_reconcile_errors_total{error}` and the duration. `error` must be a short, bounded
    /// kind (a [`crate::k8s::error::Category`] label or `finalize`), never an error message.
    pub fn reconcile_failed(&self, error: &str, seconds: f64) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: "error".to_owned(),
            })
            .inc();
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                error: error.to_owned(),
            })
            .inc();
        self.reconcile_duration.observe(seconds);
    }

    /// Observes one analysis step in `serin_analysis_step_delay_seconds`: seconds between the
    /// time the step was due and the time the scheduler started it.
    pub fn observe_step_delay(&self, seconds: f64) {
        self.step_delay.observe(seconds);
    }

    /// `serin_canary_undecodable{name, namespace}`: 1 while the Canary's stored version cannot
    /// be decoded; the series is removed once it can (or the Canary is gone).
    pub fn set_undecodable(&self, name: &str, namespace: &str, undecodable: bool) {
        let labels = canary_labels(name, namespace);
        if undecodable {
            self.undecodable.get_or_create(&labels).set(1);
        } else {
            self.undecodable.remove(&labels);
        }
    }

    /// `serin_canary_check_value{name, namespace, check}` (the Canary's name) and the
    /// threshold bounds of one check of a tick; a series without a value in this tick (no
    /// value measured, no such bound) is removed rather than left stale.
    pub fn set_check(
        &self,
        canary: &str,
        namespace: &str,
        check: &str,
        value: Option<f64>,
        min: Option<f64>,
        max: Option<f64>,
    ) {
        let labels = CheckLabels {
            name: canary.to_owned(),
            namespace: namespace.to_owned(),
            check: check.to_owned(),
        };
        for (family, v) in [
            (&self.check_value, value),
            (&self.check_min, min),
            (&self.check_max, max),
        ] {
            match v {
                Some(v) => {
                    family.get_or_create(&labels).set(v);
                }
                None => {
                    family.remove(&labels);
                }
            }
        }
    }

    /// The OpenMetrics text exposition of every series ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> Result<String, RecorderError> {
        let last = self.last_len.load(Ordering::Relaxed);
        let mut out = String::with_capacity(last + last / 16);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        self.last_len.store(out.len(), Ordering::Relaxed);
        Ok(out)
    }
}

fn canary_labels(name: &str, namespace: &str) -> CanaryLabels {
    CanaryLabels {
        name: name.to_owned(),
        namespace: namespace.to_owned(),
    }
}

fn outcome(name: &str, namespace: &str, strategy: &str, status: &str) -> OutcomeLabels {
    OutcomeLabels {
        name: name.to_owned(),
        namespace: namespace.to_owned(),
        deployment_strategy: strategy.to_owned(),
        analysis_status: status.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    #[test]
    fn status_codes_follow_flagger() {
        assert_eq!(status_code("Progressing"), 0);
        assert_eq!(status_code("Failed"), 2);
        for phase in [
            "",
            "Initializing",
            "Initialized",
            "Succeeded",
            "Promoting",
            "Waiting",
        ] {
            assert_eq!(status_code(phase), 1, "{phase}");
        }
    }

    #[test]
    fn an_exposition_is_allocated_once_at_the_size_of_the_last() {
        let r = Recorder::new();
        for i in 0..500 {
            r.observe_duration(&format!("app-{i}"), "test", 0.3);
        }
        let first = r.encode().unwrap();
        let second = r.encode().unwrap();
        assert_eq!(first, second);
        assert_eq!(second.capacity(), first.len() + first.len() / 16);
    }

    #[test]
    fn exposition_has_flagger_names_types_and_labels() {
        let r = Recorder::new();
        r.set_info("0.1.0", "istio");
        r.set_total("test", 2);
        r.set_status("podinfo", "test", status_code("Progressing"));
        r.set_weight("podinfo-primary", "podinfo", "test", 90, 10);
        r.observe_duration("podinfo", "test", 0.3);
        r.set_metric_analysis("podinfo", "test", "request-success-rate", 99.5);
        r.inc_successes("podinfo", "test", "canary", "completed");
        r.inc_successes("podinfo", "test", "canary", "completed");
        r.inc_failures("podinfo", "test", "blue-green", "completed");
        r.reconcile_succeeded(0.02);
        r.reconcile_failed("KubeError", 0.5);
        r.observe_step_delay(0.003);
        let text = r.encode().unwrap();
        let l = lines(&text);
        let has = |line: &str| assert!(l.contains(&line), "missing {line:?} in\n{text}");

        has("# TYPE flagger_info gauge");
        has(r#"flagger_info{version="0.1.0",mesh_provider="istio"} 1"#);
        has("# TYPE flagger_canary_total gauge");
        has(r#"flagger_canary_total{namespace="test"} 2"#);
        has("# TYPE flagger_canary_status gauge");
        has(r#"flagger_canary_status{name="podinfo",namespace="test"} 0"#);
        has("# TYPE flagger_canary_weight gauge");
        has(r#"flagger_canary_weight{workload="podinfo-primary",namespace="test"} 90"#);
        has(r#"flagger_canary_weight{workload="podinfo",namespace="test"} 10"#);
        has("# TYPE flagger_canary_duration_seconds histogram");
        has(r#"flagger_canary_duration_seconds_count{name="podinfo",namespace="test"} 1"#);
        has(
            r#"flagger_canary_duration_seconds_bucket{le="0.25",name="podinfo",namespace="test"} 0"#,
        );
        has(
            r#"flagger_canary_duration_seconds_bucket{le="0.5",name="podinfo",namespace="test"} 1"#,
        );
        has(
            r#"flagger_canary_duration_seconds_bucket{le="10.0",name="podinfo",namespace="test"} 1"#,
        );
        has("# TYPE flagger_canary_metric_analysis gauge");
        has(
            r#"flagger_canary_metric_analysis{name="podinfo",namespace="test",metric="request-success-rate"} 99.5"#,
        );
        has("# TYPE flagger_canary_successes counter");
        has(
            r#"flagger_canary_successes_total{name="podinfo",namespace="test",deployment_strategy="canary",analysis_status="completed"} 2"#,
        );
        has("# TYPE flagger_canary_failures counter");
        has(
            r#"flagger_canary_failures_total{name="podinfo",namespace="test",deployment_strategy="blue-green",analysis_status="completed"} 1"#,
        );
        has(r#"serin_reconcile_total{result="success"} 1"#);
        has(r#"serin_reconcile_total{result="error"} 1"#);
        has(r#"serin_reconcile_errors_total{error="KubeError"} 1"#);
        has("serin_reconcile_duration_seconds_count 2");
        has("# TYPE serin_analysis_step_delay_seconds histogram");
        has(r#"serin_analysis_step_delay_seconds_bucket{le="0.0025"} 0"#);
        has(r#"serin_analysis_step_delay_seconds_bucket{le="0.005"} 1"#);
        has("serin_analysis_step_delay_seconds_count 1");
        assert_eq!(l.last(), Some(&"# EOF"));
    }

    #[test]
    fn values_are_overwritten_and_clones_share_series() {
        let r = Recorder::new();
        let clone = r.clone();
        r.set_status("podinfo", "test", 0);
        clone.set_status("podinfo", "test", 2);
        r.set_weight("podinfo-primary", "podinfo", "test", 100, 0);
        let text = r.encode().unwrap();
        assert!(text.contains(r#"flagger_canary_status{name="podinfo",namespace="test"} 2"#));
        assert!(!text.contains(r#"flagger_canary_status{name="podinfo",namespace="test"} 0"#));
        assert!(text.contains(r#"flagger_canary_weight{workload="podinfo",namespace="test"} 0"#));
    }

    #[test]
    fn checks_have_a_value_and_bounds_until_a_tick_lacks_them() {
        let r = Recorder::new();
        r.set_check("podinfo", "test", "error-rate", Some(0.5), None, Some(1.0));
        let text = r.encode().unwrap();
        let labels = r#"{name="podinfo",namespace="test",check="error-rate"}"#;
        assert!(
            text.contains("# TYPE serin_canary_check_value gauge"),
            "{text}"
        );
        assert!(text.contains(&format!("serin_canary_check_value{labels} 0.5")));
        assert!(text.contains(&format!("serin_canary_check_threshold_max{labels} 1.0")));
        assert!(!text.contains(&format!("serin_canary_check_threshold_min{labels}")));
        r.set_check("podinfo", "test", "error-rate", None, None, Some(1.0));
        let text = r.encode().unwrap();
        assert!(!text.contains(&format!("serin_canary_check_value{labels}")));
    }

    #[test]
    fn undecodable_canaries_have_a_series_until_they_can_be_read() {
        let r = Recorder::new();
        r.set_undecodable("bad", "test", true);
        let series = r#"serin_canary_undecodable{name="bad",namespace="test"} 1"#;
        assert!(r.encode().unwrap().contains(series));
        r.set_undecodable("bad", "test", false);
        assert!(!r.encode().unwrap().contains(r#"name="bad""#));
    }
}

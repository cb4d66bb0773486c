//! The small traits the scheduler talks to besides the router and workload traits.
//!
//! Real implementations (kube-rs, reqwest, prometheus-client, notifiers) are adapters written
//! where everything lands; the scheduler's tests use in-memory fakes and a fake clock.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use k8s_openapi::jiff::Timestamp;

pub use super::webhook::WebhookClient;
use crate::api::analysis::AlertSeverity;
use crate::api::decision::{CheckRecord, Decision};
use crate::api::{Canary, CanaryPhase, CanaryStatus, Provider, Strategy};
use crate::k8s::error::Category;
pub use crate::metrics::preflight::Finding;
use crate::router::{Router, RouterError};
use crate::workload::{ScalerReconciler, TargetController, TargetMetadata};

/// Errors reported by the ports' adapters.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The Canary asks for something that cannot be built (message for the user).
    #[error("{0}")]
    Invalid(String),
    /// An API call failed: what failed on which object, then the API error in words.
    #[error("{context}: {}", crate::k8s::error::describe(.source))]
    Api {
        context: String,
        #[source]
        source: kube::Error,
    },
}

impl PortError {
    /// `context` (e.g. `canary podinfo.test status update error`) failed with `source`.
    pub fn api(context: impl Into<String>, source: kube::Error) -> Self {
        PortError::Api {
            context: context.into(),
            source,
        }
    }

    /// The kind of failure, for the reconcile-failure metric.
    pub fn category(&self) -> Category {
        match self {
            PortError::Invalid(_) => Category::Invalid,
            PortError::Api { source, .. } => crate::k8s::error::category(source),
        }
    }
}

/// Wall-clock time. The scheduler never reads the system time directly.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let seconds = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
        let nanos = i32::try_from(since_epoch.subsec_nanos()).unwrap_or(0);
        Timestamp::new(seconds, nanos).unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

/// The kind of a Kubernetes Event recorded on a Canary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Type `Normal`, logged at info level.
    Normal,
    /// Type `Warning`, logged at warn level.
    Warning,
    /// Type `Warning`, logged at error level (Flagger's `recordEventErrorf`).
    Error,
}

impl EventKind {
    /// The Kubernetes Event `type`.
    pub fn event_type(self) -> &'static str {
        match self {
            EventKind::Normal => "Normal",
            EventKind::Warning | EventKind::Error => "Warning",
        }
    }
}

/// Kubernetes Events on the Canary (reason `Synced`, reporting component `flagger`). Failures
/// to record are the adapter's to log; they never fail a tick. The scheduler writes the log
/// line and calls the event webhooks itself.
#[async_trait]
pub trait EventSink: Send + Sync {
    async fn publish(&self, canary: &Canary, kind: EventKind, message: &str);
}

/// Reads and writes the Canary object.
#[async_trait]
pub trait StatusStore: Send + Sync {
    /// A fresh read from the API server (not a possibly stale cache), like Flagger's re-read at
    /// the start of every tick. `None` when the Canary is gone.
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<Canary>, PortError>;
    /// Persists `status` as the Canary's whole status (fields it leaves out are removed) in one
    /// request, without reading first. `canary` is the object as last read or written: nothing
    /// is written when its status is already `status`. Returns the object as stored after the
    /// write (its resourceVersion, its managed fields and the status the server kept), `None`
    /// when nothing was written. A failure is returned, not retried: the reconcile retries
    /// with back-off.
    async fn write_status(
        &self,
        canary: &Canary,
        status: &CanaryStatus,
    ) -> Result<Option<Canary>, PortError>;
    /// Adds (`present`) or removes `finalizer.flagger.app` from the finalizers of `canary` as
    /// read, on the condition that the object is still at its resourceVersion (a conflict is
    /// returned, not retried). Nothing to do when the finalizer is already as wanted. Returns
    /// the object as stored after the write, `None` when nothing was written (or it is gone).
    async fn set_finalizer(
        &self,
        canary: &Canary,
        present: bool,
    ) -> Result<Option<Canary>, PortError>;
}

/// A failed metric check: the message becomes a Warning event (`error` = log at error level,
/// for query failures as opposed to values out of range).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct FailedCheck {
    pub message: String,
    pub error: bool,
    /// Serin's own inputs could not be read (server-side or network failure after retries):
    /// the step is held and retried at the next interval, not counted as a failed check.
    pub held: bool,
    /// Serin: a comparison check had too few samples. The step holds (no failed check, no
    /// advance) until the progress deadline; see [`crate::metrics::compare::hold_expired`].
    pub inconclusive: bool,
    /// The checks run, for the decision record (the last one is the failure).
    pub checks: Vec<CheckRecord>,
    /// Serin: verdicts of the comparison checks that passed in this run before the failure;
    /// recorded as Normal events before it, as on a run where every check passes.
    pub verdicts: Vec<String>,
}

/// What a successful run of the checks measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measured {
    /// The value per metric name, for `flagger_canary_metric_analysis`.
    pub values: Vec<(String, f64)>,
    /// Verdicts of comparison checks (Serin only), recorded as Normal events.
    pub verdicts: Vec<String>,
    /// The checks run, for the decision record.
    pub checks: Vec<CheckRecord>,
}

impl From<Vec<(String, f64)>> for Measured {
    fn from(values: Vec<(String, f64)>) -> Self {
        Self {
            values,
            verdicts: Vec::new(),
            checks: Vec::new(),
        }
    }
}

/// The metric analysis (built-in and template metrics, Flagger's
/// `pkg/controller/scheduler_metrics.go`).
#[async_trait]
pub trait MetricChecks: Send + Sync {
    /// Whether the metric providers the canary uses are reachable (init ticks).
    async fn check_providers(&self, canary: &Canary) -> Result<(), String>;
    /// Runs every metric check in order and stops at the first failure. On success returns the
    /// measured value per metric name.
    async fn run_checks(&self, canary: &Canary) -> Result<Measured, FailedCheck>;
    /// Serin's query pre-flight: every metric query rendered for the primary and run once;
    /// the first one that errors or returns no series ([`crate::metrics::preflight::run`]).
    async fn preflight(&self, canary: &Canary) -> Result<(), Finding>;
}

/// Notifications (per-canary `analysis.alerts` or the global notifier). Failures are the
/// adapter's to log.
#[async_trait]
pub trait Alerter: Send + Sync {
    /// `with_metadata` adds the Target / threshold / deadline / routing fields (Flagger's
    /// `alertMetadata` in `pkg/controller/events.go`).
    async fn alert(
        &self,
        canary: &Canary,
        message: &str,
        with_metadata: bool,
        severity: AlertSeverity,
    );
}

/// `analysis_status` label of the success and failure counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AnalysisStatus {
    Completed,
    Skipped,
}

impl AnalysisStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AnalysisStatus::Completed => "completed",
            AnalysisStatus::Skipped => "skipped",
        }
    }
}

/// Serin's own Prometheus metrics (Flagger's names, `pkg/metrics/recorder.go`).
pub trait Recorder: Send + Sync {
    /// `flagger_canary_status` ([`CanaryPhase::status_gauge`]).
    fn set_status(&self, canary: &Canary, phase: CanaryPhase);
    /// `flagger_canary_weight` for `<target>-primary` and `<target>`.
    fn set_weight(&self, canary: &Canary, primary: i32, canary_weight: i32);
    /// `flagger_canary_successes_total`.
    fn inc_successes(&self, canary: &Canary, strategy: Strategy, status: AnalysisStatus);
    /// `flagger_canary_failures_total`.
    fn inc_failures(&self, canary: &Canary, strategy: Strategy, status: AnalysisStatus);
    /// `flagger_canary_duration_seconds`.
    fn observe_duration(&self, canary: &Canary, duration: Duration);
    /// `flagger_canary_metric_analysis`.
    fn set_metric_value(&self, canary: &Canary, metric: &str, value: f64);
    /// `serin_analysis_step_delay_seconds`: how late an analysis step of a run started
    /// compared with the time it was due ([`super::scheduler::due_at`]).
    fn observe_step_delay(&self, canary: &Canary, delay: Duration);
    /// `serin_canary_check_value` and its threshold bounds, per check of a tick's decision.
    fn record_decision(&self, canary: &Canary, decision: &Decision);
}

/// Flagger's `KubernetesRouter`: the generated ClusterIP Services `<apex>`, `<apex>-primary`
/// and `<apex>-canary` (Deployment and DaemonSet targets).
#[async_trait]
pub trait ServiceRouter: Send + Sync {
    /// Creates or updates `<apex>-canary` and `<apex>-primary`.
    async fn initialize(
        &self,
        canary: &Canary,
        metadata: &TargetMetadata,
    ) -> Result<(), RouterError>;
    /// Creates or updates the apex Service selecting the primary pods.
    async fn reconcile(
        &self,
        canary: &Canary,
        metadata: &TargetMetadata,
    ) -> Result<(), RouterError>;
    /// Reverts the apex Service on deletion with `revertOnDeletion`.
    async fn finalize(&self, canary: &Canary) -> Result<(), RouterError>;
}

/// Picks the implementations for one Canary (Flagger's factories).
pub trait Backends: Send + Sync {
    /// The target controller for `spec.targetRef.kind`.
    fn target(&self, canary: &Canary) -> Result<Arc<dyn TargetController>, PortError>;
    /// The primary autoscaler reconciler for `spec.autoscalerRef`, if any.
    fn scaler(&self, canary: &Canary) -> Result<Option<Arc<dyn ScalerReconciler>>, PortError>;
    /// The generated Services (Deployment/DaemonSet targets only).
    fn services(&self, canary: &Canary) -> Option<Arc<dyn ServiceRouter>>;
    /// The mesh or ingress router for `provider`.
    fn router(&self, canary: &Canary, provider: &Provider) -> Result<Arc<dyn Router>, PortError>;
}

/// Everything the scheduler needs, as shared trait objects.
#[derive(Clone)]
pub struct Ports {
    pub clock: Arc<dyn Clock>,
    pub events: Arc<dyn EventSink>,
    pub store: Arc<dyn StatusStore>,
    pub webhooks: Arc<dyn WebhookClient>,
    pub metrics: Arc<dyn MetricChecks>,
    pub alerter: Arc<dyn Alerter>,
    pub recorder: Arc<dyn Recorder>,
    pub backends: Arc<dyn Backends>,
}

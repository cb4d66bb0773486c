#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn backoff_doubles_to_a_minute() {
    let secs: Vec<u64> = (1..=9).map(|n| backoff_for(n).as_secs()).collect();
    assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
}

fn canary(analysis: serde_json::Value) -> Canary {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "upstreamRef": {"apiVersion": "gloo.solo.io/v1", "kind": "Upstream", "name": "up", "namespace": "gloo"},
            "service": {"port": 80},
            "analysis": analysis
        }
    }))
    .unwrap()
}

#[test]
fn only_spec_finalizer_and_deletion_changes_trigger_a_reconcile() {
    let mut c = canary(serde_json::json!({"interval": "1m"}));
    c.metadata.generation = Some(1);
    c.metadata.resource_version = Some("10".into());
    let base = canary_trigger(&c);

    let mut status_write = c.clone();
    status_write.metadata.resource_version = Some("11".into());
    status_write.status = Some(crate::api::CanaryStatus {
        canary_weight: 20,
        ..Default::default()
    });
    assert_eq!(canary_trigger(&status_write), base, "own status writes");

    let mut spec = c.clone();
    spec.metadata.generation = Some(2);
    assert_ne!(canary_trigger(&spec), base, "spec change");

    let mut finalizer = c.clone();
    finalizer.metadata.finalizers = Some(vec!["finalizer.flagger.app".into()]);
    assert_ne!(canary_trigger(&finalizer), base, "finalizer added");

    let mut deleted = c.clone();
    deleted.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
    assert_ne!(canary_trigger(&deleted), base, "deletion");

    // Without a generation every version counts.
    let mut no_gen = c.clone();
    no_gen.metadata.generation = None;
    let mut no_gen_next = no_gen.clone();
    no_gen_next.metadata.resource_version = Some("11".into());
    assert_ne!(canary_trigger(&no_gen), canary_trigger(&no_gen_next));
}

#[test]
fn canaries_sharing_a_target_are_reported_once_per_other_canary() {
    let set = [
        ("test", "a", "podinfo"),
        ("test", "b", "podinfo"),
        ("other", "c", "podinfo"),
        ("test", "d", "backend"),
    ];
    assert_eq!(
        duplicate_targets(set),
        [
            ("a.test".to_string(), "podinfo.test".to_string()),
            ("b.test".to_string(), "podinfo.test".to_string()),
        ]
    );
    assert!(duplicate_targets(set[2..].iter().copied()).is_empty());
}

#[test]
fn kubernetes_versions_are_read_from_git_versions() {
    assert_eq!(major_minor("v1.33.0"), Some((1, 33)));
    assert_eq!(major_minor("v1.30.4-gke.1200"), Some((1, 30)));
    assert_eq!(major_minor("1.29.1+k3s1"), Some((1, 29)));
    assert_eq!(major_minor("v1.33.0-serin-devcluster"), Some((1, 33)));
    assert_eq!(major_minor("v1.10.13"), Some((1, 10)));
    assert!(major_minor("v1.10.13").unwrap() < MIN_KUBERNETES);
    assert!(major_minor("v1.11.0").unwrap() >= MIN_KUBERNETES);
    assert!(major_minor("v2.0.0").unwrap() >= MIN_KUBERNETES);
    assert_eq!(major_minor("unknown"), None);
    assert_eq!(
        RuntimeError::UnsupportedVersion("v1.10.13".into()).to_string(),
        "Kubernetes version v1.10.13 does not match constraint ^1.11.0"
    );
}

#[test]
fn cross_namespace_references_are_reported_with_flaggers_messages() {
    let c = canary(serde_json::json!({
        "interval": "1m", "threshold": 5, "stepWeight": 10,
        "metrics": [
            {"name": "a", "templateRef": {"name": "error-rate", "namespace": "flagger"}},
            {"name": "b", "templateRef": {"name": "latency", "namespace": "test"}},
            {"name": "c", "templateRef": {"name": "latency"}}
        ],
        "alerts": [{"name": "x", "providerRef": {"name": "slack", "namespace": "ops"}}]
    }));
    assert_eq!(
        cross_namespace_problems(&c),
        [
            "can't access gloo upstream up.gloo, cross-namespace references are blocked",
            "can't access metric template error-rate.flagger, cross-namespace references are blocked",
            "can't access alert provider slack.ops, cross-namespace references are blocked",
        ]
    );
    let problems = canary_problems(&c, &Provider::Istio, false);
    assert!(
        problems.iter().all(|p| !p.contains("cross-namespace")),
        "{problems:?}"
    );
}

/// A writer collecting JSON log lines in memory.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn parsed(&self) -> Vec<serde_json::Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Logs `inside` lines within the reconcile span of podinfo.test and one line after it, through
/// the JSON format and Serin's filter for `level`.
fn log_through_reconcile_span(
    level: tracing_subscriber::filter::LevelFilter,
    inside: impl FnOnce(),
) -> Vec<serde_json::Value> {
    use tracing_subscriber::layer::SubscriberExt;
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::registry()
        .with(crate::telemetry::logging::JsonLayer::new(move || {
            writer.clone()
        }))
        .with(crate::telemetry::logging::filter_for(level));
    let c = canary(serde_json::json!({"interval": "1m"}));
    tracing::subscriber::with_default(subscriber, || {
        reconcile_span(&c).in_scope(inside);
        tracing::error!("after the reconcile");
    });
    lines.parsed()
}

#[test]
fn every_line_of_a_reconcile_carries_the_canary() {
    let lines = log_through_reconcile_span(tracing_subscriber::filter::LevelFilter::DEBUG, || {
        tracing::debug!("a debug line");
        tracing::error!("reconcile failed, retrying in 1s: boom");
    });
    let fields: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["msg"].as_str().unwrap(),
                l.get("canary").and_then(|c| c.as_str()).unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("a debug line", "podinfo.test"),
            ("reconcile failed, retrying in 1s: boom", "podinfo.test"),
            ("after the reconcile", "-"),
        ]
    );
}

#[test]
fn the_reconcile_span_stays_on_at_the_error_level() {
    let lines = log_through_reconcile_span(tracing_subscriber::filter::LevelFilter::ERROR, || {
        tracing::info!("filtered out");
        tracing::error!("reconcile failed, retrying in 1s: boom");
    });
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["msg"], "reconcile failed, retrying in 1s: boom");
    assert_eq!(lines[0]["canary"], "podinfo.test");
    assert!(lines[1].get("canary").is_none(), "{}", lines[1]);
}

fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
    let mut status = kube::core::Status::failure(message, reason);
    status.code = code;
    kube::Error::Api(Box::new(status))
}

/// What the controller's events and logs carry: what failed on which object, then the API
/// error in words (the kube errors of the workload, router and start-up code).
#[test]
fn workload_router_and_startup_errors_read_in_words() {
    let workload = crate::workload::WorkloadError::Api {
        context: "Deployment podinfo.test get query error".into(),
        source: api_error(500, "InternalError", "injected fault: internal error"),
    };
    assert_eq!(
        workload.to_string(),
        "Deployment podinfo.test get query error: the API server answered HTTP 500 Internal Server Error (InternalError): injected fault: internal error"
    );
    let router = crate::router::RouterError::Api {
        context: "VirtualService podinfo.test update error".into(),
        source: api_error(409, "Conflict", "the object has been modified"),
    };
    assert_eq!(
        router.to_string(),
        "VirtualService podinfo.test update error: the API server answered HTTP 409 Conflict (Conflict): the object has been modified"
    );
    let startup = RuntimeError::CrdMissing {
        kind: "Canary",
        source: api_error(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
    };
    assert_eq!(
        startup.to_string(),
        "Canary CRD is not registered: the API server answered HTTP 404 Not Found (NotFound): the server could not find the requested resource"
    );
}

/// The errors at the ports keep the API error as their source and tell its category, the
/// label of the reconcile-failure metric; their text is what it always was.
#[test]
fn port_router_and_workload_errors_keep_their_category() {
    use crate::k8s::error::{Category, status_code};
    use std::error::Error as _;

    use crate::controller::ports::PortError;
    use crate::controller::scheduler::SchedulerError;
    use crate::router::RouterError;
    use crate::workload::WorkloadError;

    let port = PortError::api(
        "canary podinfo.test status update error",
        api_error(409, "Conflict", "the object has been modified"),
    );
    assert_eq!(
        port.to_string(),
        "canary podinfo.test status update error: the API server answered HTTP 409 Conflict (Conflict): the object has been modified"
    );
    assert_eq!(port.category(), Category::Conflict);
    let source = port.source().and_then(|s| s.downcast_ref::<kube::Error>());
    assert_eq!(source.and_then(status_code), Some(409));
    let scheduler = SchedulerError::from(port);
    assert_eq!(scheduler.category(), "conflict");
    assert!(
        scheduler
            .to_string()
            .starts_with("canary podinfo.test status update error: ")
    );

    let invalid = SchedulerError::from(PortError::Invalid("unknown provider".into()));
    assert_eq!(invalid.category(), "invalid");
    assert_eq!(invalid.to_string(), "unknown provider");
    let finalize = SchedulerError::Finalize {
        key: "podinfo.test".into(),
        message: "gone".into(),
    };
    assert_eq!(finalize.category(), "finalize");

    let forbidden = api_error(403, "Forbidden", "no");
    let router = RouterError::Api {
        context: "VirtualService podinfo.test get query error".into(),
        source: forbidden,
    };
    assert_eq!(router.category(), Category::Forbidden);
    assert_eq!(
        RouterError::Routes("no http route".into()).category(),
        Category::Invalid
    );
    let workload = WorkloadError::Api {
        context: "Deployment podinfo.test get query error".into(),
        source: kube::Error::Service("connection refused".into()),
    };
    assert_eq!(workload.category(), Some(Category::Transport));
    assert_eq!(WorkloadError::NotReady("waiting".into()).category(), None);
    assert_eq!(
        WorkloadError::Invalid("no such kind".into()).category(),
        Some(Category::Invalid)
    );
}

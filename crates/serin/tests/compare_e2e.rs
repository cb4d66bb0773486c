#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Comparison checks end to end (issue 16): on one dev cluster with real traffic through the dev
//! mesh, a real Prometheus (Debian package `prometheus`) scraping the mesh's Istio metrics and
//! the real controller, two Canaries compare their new version with the primary on the error
//! rate (proportions) and the median latency (Mann-Whitney). The new version of `slow` answers
//! 100 ms later (`SAMPLE_APP_DELAY_MS`): it is rolled back and its primary keeps the old image.
//! The new version of `same` is the same program: it is promoted. Both first hold on too few
//! samples. The platform (cluster, mesh, Prometheus, loadtester, controller) is the one
//! `serin demo` runs (`serin::demo::platform`); every process it starts is stopped.

#[path = "prometheus_support/mod.rs"]
mod prometheus_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use serin::demo::apply;
use serin::demo::platform::{Platform, PlatformOptions};
use serin::demo::processes::alive;
use serin::demo::traffic::{Traffic, Users};

const NS: &str = "e2e";
const OLD: &str = "ghcr.io/stefanprodan/podinfo:6.0.0";
const NEW: &str = "ghcr.io/stefanprodan/podinfo:6.0.1";
/// How much later the slow version answers, in milliseconds.
const DELAY_MS: &str = "100";
/// Share of requests every version answers with HTTP 500: high enough that the 5xx series of a
/// new version exists after its first few requests (`increase()` does not count a series' first
/// sample), so the error-rate comparison counts the canary's errors within seconds.
const ERROR_PERCENT: &str = "10";
/// Requests per second to each app, through the mesh.
const RATE: u32 = 20;

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": name, "image": OLD,
                    "ports": [{"name": "http", "containerPort": 9898}],
                    "env": [{"name": devcluster::sampleapp::ENV_ERROR_PERCENT, "value": ERROR_PERCENT}],
                    "readinessProbe": {"httpGet": {"path": "/readyz", "port": 9898}},
                }]},
            },
        },
    })
}

/// Istio's request metrics of one version: `{{ target }}` is `<name>` for the canary and
/// `<name>-primary` for the primary.
const SELECTOR: &str =
    r#"destination_workload_namespace="{{ namespace }}",destination_workload="{{ target }}""#;

fn canary(name: &str) -> Value {
    json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "progressDeadlineSeconds": 60,
            "service": {"port": 9898, "targetPort": 9898},
            "analysis": {
                "interval": "2s", "threshold": 2, "maxWeight": 50, "stepWeight": 25,
                "metrics": [
                    {
                        "name": "errors", "interval": "12s",
                        "query": format!("sum(increase(istio_requests_total{{{SELECTOR},response_code=~\"5..\"}}[{{{{ interval }}}}]))"),
                        "compare": {
                            "statistic": "proportion", "relativeDegradation": 0.5,
                            "minSamples": 50,
                            "totalQuery": format!("sum(increase(istio_requests_total{{{SELECTOR}}}[{{{{ interval }}}}]))"),
                        },
                    },
                    {
                        // The median of each 3 s window, one sample per second.
                        "name": "latency", "interval": "12s",
                        "query": format!("histogram_quantile(0.5, sum by (le) (rate(istio_request_duration_milliseconds_bucket{{{SELECTOR}}}[3s])))"),
                        "compare": {
                            "relativeDegradation": 0.1, "absoluteDegradation": 10,
                            "minSamples": 10, "step": "1s",
                        },
                    },
                ],
            },
        },
    })
}

async fn phase(client: &kube::Client, name: &str) -> String {
    let api = Api::<kube::api::DynamicObject>::namespaced_with(
        client.clone(),
        NS,
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("flagger.app", "v1beta1", "Canary"),
            "canaries",
        ),
    );
    api.get(name)
        .await
        .ok()
        .and_then(|c| Some(c.data.pointer("/status/phase")?.as_str()?.to_string()))
        .unwrap_or_default()
}

async fn primary_image(client: &kube::Client, name: &str) -> String {
    Api::<Deployment>::namespaced(client.clone(), NS)
        .get(&format!("{name}-primary"))
        .await
        .ok()
        .and_then(|d| d.spec?.template.spec?.containers.first()?.image.clone())
        .unwrap_or_default()
}

/// The canary events of `name`, oldest first.
async fn events(client: &kube::Client, name: &str) -> Vec<String> {
    let mut items: Vec<Event> = Api::<Event>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some("Canary")
                && e.involved_object.name.as_deref() == Some(name)
        })
        .collect();
    items.sort_by_key(|e| {
        e.metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    });
    items.into_iter().filter_map(|e| e.message).collect()
}

/// Polls until every named Canary is in one of `phases` (checking the processes meanwhile and
/// noting their process ids in `pids`).
async fn wait_phases(
    platform: &mut Platform,
    pids: &mut BTreeSet<u32>,
    names: &[&str],
    phases: &[&str],
    within: Duration,
) {
    let client = platform.cluster.client();
    let deadline = Instant::now() + within;
    loop {
        pids.extend(platform.pids());
        let mut now = Vec::new();
        for n in names {
            now.push(phase(&client, n).await);
        }
        if now.iter().all(|p| phases.contains(&p.as_str())) {
            return;
        }
        if let Err(e) = platform.check() {
            panic!("{e} (logs in {})", platform.work.display());
        }
        assert!(
            Instant::now() < deadline,
            "{names:?} are {now:?}, not {phases:?} after {within:?} (controller log: {})",
            platform.work.join("controller.log").display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The number after `key` in a verdict (`p=0.0012 (alpha …` → 0.0012).
fn number_after(text: &str, key: &str) -> f64 {
    let rest = &text[text
        .find(key)
        .unwrap_or_else(|| panic!("no {key:?} in {text}"))
        + key.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e')))
        .unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|_| panic!("{key:?} is not followed by a number in {text}"))
}

/// The verdict of `metric` starting with `prefix`, with its sample sizes checked.
fn verdict<'a>(events: &'a [String], prefix: &str, unit: &str, min: f64) -> &'a str {
    let v = events
        .iter()
        .find(|e| e.starts_with(prefix))
        .unwrap_or_else(|| panic!("no event starting {prefix:?} in {events:#?}"));
    let sizes = &v[v
        .find(&format!(", {unit} canary "))
        .unwrap_or_else(|| panic!("no sample sizes in {v}"))..];
    let canary_n = number_after(sizes, " canary ");
    let primary_n = number_after(sizes, " primary ");
    assert!(canary_n >= min && primary_n >= min, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slower_canary_is_rolled_back_equal_canary_is_promoted() {
    let Some(prometheus) = prometheus_support::require_prometheus("compare_e2e") else {
        return;
    };
    let started = Instant::now();
    let work = std::env::temp_dir().join(format!(
        "serin-compare-e2e-{}-{}",
        std::process::id(),
        prometheus_support::free_port()
    ));
    std::fs::create_dir_all(&work).unwrap();
    let mut platform = Platform::start(&PlatformOptions {
        serin: env!("CARGO_BIN_EXE_serin").into(),
        prometheus,
        work: work.clone(),
        scrape: "1s".into(),
        loadtester_namespace: NS.into(),
        controller_args: vec!["--min-analysis-interval=1s".into()],
    })
    .await
    .unwrap();
    platform.wait_ready().await.unwrap();
    let mut pids = BTreeSet::new();
    let client = platform.cluster.client();
    let mut docs = vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})];
    for name in ["slow", "same"] {
        docs.push(deployment(name));
        docs.push(canary(name));
    }
    apply::apply_all(&client, &docs).await.unwrap();
    wait_phases(
        &mut platform,
        &mut pids,
        &["slow", "same"],
        &["Initialized"],
        Duration::from_secs(60),
    )
    .await;

    // Callers inside the mesh: the apex Services' weights pick primary or canary.
    let traffic = Traffic::through_mesh(
        &format!("http://{}", platform.mesh.addr()),
        &[
            ("slow", "http://slow.e2e:9898/"),
            ("same", "http://same.e2e:9898/"),
        ],
        RATE,
    )
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    for (name, delay) in [("slow", Some(DELAY_MS)), ("same", None)] {
        let mut env =
            vec![json!({"name": devcluster::sampleapp::ENV_ERROR_PERCENT, "value": ERROR_PERCENT})];
        if let Some(ms) = delay {
            env.push(json!({"name": devcluster::sampleapp::ENV_DELAY_MS, "value": ms}));
        }
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": name, "image": NEW, "env": env}
        ]}}}});
        deployments
            .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .unwrap();
    }
    let rollout = Instant::now();
    wait_phases(
        &mut platform,
        &mut pids,
        &["slow", "same"],
        &["Succeeded", "Failed"],
        Duration::from_secs(150),
    )
    .await;
    let analysed = rollout.elapsed();

    let (slow_phase, same_phase) = (phase(&client, "slow").await, phase(&client, "same").await);
    let (slow_primary, same_primary) = (
        primary_image(&client, "slow").await,
        primary_image(&client, "same").await,
    );
    let (slow_events, same_events) = (events(&client, "slow").await, events(&client, "same").await);
    let answered = traffic.total();
    pids.extend(platform.pids());
    traffic.stop().await;
    platform.stop().await;
    let _ = std::fs::remove_dir_all(&work);

    println!(
        "slow.e2e: {slow_phase}, primary {slow_primary}\n  {}",
        slow_events.join("\n  ")
    );
    println!(
        "same.e2e: {same_phase}, primary {same_primary}\n  {}",
        same_events.join("\n  ")
    );
    let served = |workload: &str| -> u64 {
        answered
            .iter()
            .filter(|((users, a), _)| *users == Users::Backend && a.workload == workload)
            .map(|(_, n)| *n)
            .sum()
    };
    println!(
        "requests answered: slow-primary {}, slow {}, same-primary {}, same {}; analysis {:.0} s, whole test {:.0} s",
        served("slow-primary"),
        served("slow"),
        served("same-primary"),
        served("same"),
        analysed.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    // Every process the platform started is gone.
    // Prometheus, the loadtester, the controller and at least the first and the new pod of each
    // version.
    assert!(pids.len() >= 7, "{pids:?}");
    let left: Vec<u32> = pids.into_iter().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "still running: {left:?}");

    // Both versions of both apps served the traffic.
    for workload in ["slow-primary", "slow", "same-primary", "same"] {
        assert!(
            served(workload) > 0,
            "{workload} answered nothing: {answered:?}"
        );
    }

    // Too few samples at first: the step holds instead of passing or failing.
    for (name, events) in [("slow", &slow_events), ("same", &same_events)] {
        assert!(
            events
                .iter()
                .any(|e| e.starts_with(&format!("Hold {name}.e2e advancement "))
                    && e.contains(" comparison inconclusive: too few ")),
            "{events:#?}"
        );
    }

    // The slower version: its latency fails with the figures, then the rollback.
    assert_eq!(slow_phase, "Failed", "{slow_events:#?}");
    assert_eq!(slow_primary, OLD);
    let halt = verdict(
        &slow_events,
        "Halt slow.e2e advancement latency canary worse than primary: mann-whitney U=",
        "samples",
        10.0,
    );
    assert!(number_after(halt, " p=") < 0.05, "{halt}");
    assert!(halt.contains("(alpha 0.05)"), "{halt}");
    let effect = number_after(halt, ", effect ");
    let allowed = number_after(halt, ", allowed ");
    assert!(
        effect > 50.0 && allowed >= 10.0 && effect > allowed,
        "{halt}"
    );
    assert!(
        slow_events
            .contains(&"Rolling back slow.e2e failed checks threshold reached 2".to_string()),
        "{slow_events:#?}"
    );
    assert!(slow_events.contains(&"Canary failed! Scaling down slow.e2e".to_string()));
    // Its error rate is the primary's: that check passed on the same steps.
    verdict(
        &slow_events,
        "slow.e2e errors canary not worse than primary: proportion difference=",
        "events counted",
        50.0,
    );

    // The equal version: both checks pass with their figures, then the promotion.
    assert_eq!(same_phase, "Succeeded", "{same_events:#?}");
    assert_eq!(same_primary, NEW);
    let pass = verdict(
        &same_events,
        "same.e2e latency canary not worse than primary: mann-whitney U=",
        "samples",
        10.0,
    );
    assert!(number_after(pass, " p=") >= 0.05, "{pass}");
    verdict(
        &same_events,
        "same.e2e errors canary not worse than primary: proportion difference=",
        "events counted",
        50.0,
    );
    assert!(
        same_events.contains(&"Promotion completed! Scaling down same.e2e".to_string()),
        "{same_events:#?}"
    );
}

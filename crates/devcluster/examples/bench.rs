//! Dev cluster benchmark: requests/s for get, list and patch with 2,000 objects, watch
//! fan-out to 200 watchers, and writes of Deployments whose fields three managers own (the
//! writes a progressive-delivery controller and a workload controller make). Run:
//! `cargo run --release -p devcluster --example bench [deployments]`.

use std::time::{Duration, Instant};

use devcluster::DevCluster;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};

const OBJECTS: usize = 2_000;
const WATCHERS: usize = 200;
const CONCURRENCY: usize = 32;
const LISTS: usize = 50;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn cm(i: usize) -> Result<ConfigMap, BoxError> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("cm-{i:05}"), "labels": {"bench": "yes", "shard": (i % 10).to_string()}},
        "data": {"payload": "x".repeat(256)},
    }))?)
}

/// A Deployment shaped like an application's: two containers with ports, environment, probes
/// and resources.
fn deployment(i: usize) -> Result<Deployment, BoxError> {
    let container = |name: &str, port: u16| {
        serde_json::json!({
            "name": name, "image": format!("registry.example/{name}:1.0.0"),
            "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
            "env": [{"name": "MODE", "value": "bench"}, {"name": "SHARD", "value": (i % 10).to_string()}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": port}, "periodSeconds": 5},
            "livenessProbe": {"httpGet": {"path": "/live", "port": port}, "periodSeconds": 10},
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        })
    };
    let name = format!("app-{i:05}");
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": name, "team": "bench"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {"prometheus.io/scrape": "true"}},
                "spec": {"containers": [container("app", 8080), container("sidecar", 9090)]},
            },
        },
    }))?)
}

/// Runs `write(i)` for every object, `CONCURRENCY` at a time, reports it and returns how long
/// it took.
async fn each<F, Fut, T>(what: &str, write: F) -> Result<Duration, BoxError>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let t = Instant::now();
    futures::stream::iter(0..OBJECTS)
        .map(write)
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let took = t.elapsed();
    report(what, OBJECTS, took);
    Ok(took)
}

/// Deployments written as a workload's users and controllers write them: created by one
/// manager, the image changed by a second (merge patch), the status written by a third (merge
/// patch of `status`), the status applied by a fourth (server-side apply); two rounds each.
async fn deployments(c: &DevCluster) -> Result<(), BoxError> {
    let api: Api<Deployment> = Api::namespaced(c.client(), "default");
    let by = |m: &str| PatchParams {
        field_manager: Some(m.to_string()),
        ..PatchParams::default()
    };
    let create = PostParams {
        field_manager: Some("maker".into()),
        ..PostParams::default()
    };
    each("create Deployment", |i| {
        let (api, create) = (api.clone(), create.clone());
        async move {
            api.create(&create, &deployment(i).map_err(kube::Error::Service)?)
                .await
        }
    })
    .await?;
    for round in 1..=2 {
        each(&format!("patch Deployment image, round {round}"), |i| {
            let (api, by) = (api.clone(), by("deployer"));
            let image = format!("registry.example/app:1.{round}.0");
            let p = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
            async move { api.patch(&format!("app-{i:05}"), &by, &Patch::Strategic(&p)).await }
        })
        .await?;
        each(&format!("patch Deployment status, round {round}"), |i| {
            let (api, by) = (api.clone(), by("rollouts"));
            let p = serde_json::json!({"status": {"observedGeneration": round + 1, "replicas": 2,
                "updatedReplicas": round, "readyReplicas": 2, "availableReplicas": 2,
                "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]}});
            async move { api.patch_status(&format!("app-{i:05}"), &by, &Patch::Merge(&p)).await }
        })
        .await?;
        each(&format!("apply Deployment status, round {round}"), |i| {
            let api = api.clone();
            let params = PatchParams::apply("checker").force();
            let p = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": format!("app-{i:05}")},
                "status": {"conditions": [{"type": "Progressing", "status": "True", "reason": format!("Round{round}")}]}});
            async move { api.patch_status(&format!("app-{i:05}"), &params, &Patch::Apply(&p)).await }
        })
        .await?;
    }
    Ok(())
}

fn report(what: &str, n: usize, t: Duration) {
    println!(
        "{what:<40} {n:>8} in {:>8.3} s = {:>10.0} /s",
        t.as_secs_f64(),
        n as f64 / t.as_secs_f64()
    );
}

/// Merge-patches ConfigMap `i`'s `round` key.
async fn set_round(api: &Api<ConfigMap>, i: usize, round: &str) -> Result<ConfigMap, kube::Error> {
    let p = serde_json::json!({"data": {"round": round}});
    api.patch(
        &format!("cm-{i:05}"),
        &PatchParams::default(),
        &Patch::Merge(&p),
    )
    .await
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let c = DevCluster::start().await?;
    // `bench deployments` runs only the Deployment writes.
    if std::env::args().nth(1).as_deref() == Some("deployments") {
        deployments(&c).await?;
        c.shutdown().await;
        return Ok(());
    }
    let api: Api<ConfigMap> = Api::namespaced(c.client(), "default");

    each("create", |i| {
        let api = api.clone();
        async move {
            api.create(
                &PostParams::default(),
                &cm(i).map_err(kube::Error::Service)?,
            )
            .await
        }
    })
    .await?;
    each("get", |i| {
        let api = api.clone();
        async move { api.get(&format!("cm-{i:05}")).await }
    })
    .await?;

    let t = Instant::now();
    for _ in 0..LISTS {
        let l = api.list(&ListParams::default()).await?;
        assert_eq!(l.items.len(), OBJECTS);
    }
    report(&format!("list ({OBJECTS} items each)"), LISTS, t.elapsed());

    let t = Instant::now();
    for _ in 0..LISTS {
        api.list(&ListParams::default().labels("shard=3")).await?;
    }
    report("list with label selector (200 items)", LISTS, t.elapsed());

    each("patch (merge)", |i| {
        let api = api.clone();
        async move { set_round(&api, i, "1").await }
    })
    .await?;

    // Watch fan-out: 200 watchers each receive all 2,000 modifications.
    let rv = c.resource_version().to_string();
    let mut handles = Vec::new();
    for _ in 0..WATCHERS {
        let api = api.clone();
        let rv = rv.clone();
        let stream = api.watch(&WatchParams::default().timeout(290), &rv).await?;
        handles.push(tokio::spawn(async move {
            let mut stream = stream.boxed();
            let mut seen = 0usize;
            while seen < OBJECTS {
                match stream.try_next().await {
                    Ok(Some(WatchEvent::Modified(_))) => seen += 1,
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            seen
        }));
    }
    let t = Instant::now();
    each(&format!("patch while {WATCHERS} watchers"), |i| {
        let api = api.clone();
        async move { set_round(&api, i, "2").await }
    })
    .await?;
    let mut delivered = 0;
    for h in handles {
        delivered += h.await?;
    }
    let all = t.elapsed();
    report(
        &format!("watch events delivered ({WATCHERS} watchers)"),
        delivered,
        all,
    );
    assert_eq!(delivered, OBJECTS * WATCHERS, "some watcher missed events");
    deployments(&c).await?;
    c.shutdown().await;
    Ok(())
}

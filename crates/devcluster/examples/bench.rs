//! Dev cluster benchmark: requests/s for get, list and patch with 2,000 objects, and watch
//! fan-out to 200 watchers. Run: `cargo run --release -p devcluster --example bench`.

use std::time::{Duration, Instant};

use devcluster::DevCluster;
use futures::{StreamExt, TryStreamExt};
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

fn report(what: &str, n: usize, t: Duration) {
    println!(
        "{what:<40} {n:>8} in {:>8.3} s = {:>10.0} /s",
        t.as_secs_f64(),
        n as f64 / t.as_secs_f64()
    );
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let c = DevCluster::start().await?;
    let api: Api<ConfigMap> = Api::namespaced(c.client(), "default");

    let t = Instant::now();
    futures::stream::iter(0..OBJECTS)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &cm(i)?)
                    .await
                    .map_err(BoxError::from)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    report("create", OBJECTS, t.elapsed());

    let t = Instant::now();
    futures::stream::iter(0..OBJECTS)
        .map(|i| {
            let api = api.clone();
            async move { api.get(&format!("cm-{i:05}")).await }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    report("get", OBJECTS, t.elapsed());

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

    let t = Instant::now();
    futures::stream::iter(0..OBJECTS)
        .map(|i| {
            let api = api.clone();
            async move {
                let p = serde_json::json!({"data": {"round": "1"}});
                api.patch(
                    &format!("cm-{i:05}"),
                    &PatchParams::default(),
                    &Patch::Merge(&p),
                )
                .await
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    report("patch (merge)", OBJECTS, t.elapsed());

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
    futures::stream::iter(0..OBJECTS)
        .map(|i| {
            let api = api.clone();
            async move {
                let p = serde_json::json!({"data": {"round": "2"}});
                api.patch(
                    &format!("cm-{i:05}"),
                    &PatchParams::default(),
                    &Patch::Merge(&p),
                )
                .await
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let writes = t.elapsed();
    let mut delivered = 0;
    for h in handles {
        delivered += h.await?;
    }
    let all = t.elapsed();
    report(&format!("patch while {WATCHERS} watchers"), OBJECTS, writes);
    report(
        &format!("watch events delivered ({WATCHERS} watchers)"),
        delivered,
        all,
    );
    assert_eq!(delivered, OBJECTS * WATCHERS, "some watcher missed events");
    c.shutdown().await;
    Ok(())
}

//! Test only: the check each router family runs with a watch cache. Once the cache's watches
//! have synced, an analysis step (reconcile, set the routes, read them back) makes no GET, and
//! the routers write exactly what they write without a cache.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use kube::Api;
use kube::api::{ApiResource, DynamicObject};

use super::{Router, Routes};
use crate::api::Canary;
use crate::k8s::cache::{Cache, Cacheable, Source};
use crate::testing::TestCluster;
use devcluster::testing::Write;

/// Reads `name` through `cache` until its kind's watch answers (the first reads of a kind go to
/// the API server while the watch lists).
pub async fn until_cached<K: Cacheable>(cache: &Cache, api: &Api<K>, name: &str) {
    for _ in 0..500 {
        if cache.read(api, name).await.unwrap().1 == Source::Cache {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the watch of {} never synced", api.resource_url());
}

/// [`until_cached`] for a kind the routers read untyped; `namespace` `None` for a
/// cluster-scoped kind.
pub async fn until_cached_dynamic(
    cache: &Cache,
    client: kube::Client,
    resource: &ApiResource,
    namespace: Option<&str>,
    name: &str,
) {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client, ns, resource),
        None => Api::all_with(client, resource),
    };
    until_cached(cache, &api, name).await;
}

/// One analysis step: reconcile, route `routes`, read them back.
async fn step(router: &dyn Router, canary: &Canary, routes: Routes) {
    router.reconcile(canary).await.unwrap();
    let mut status = canary.status.clone().unwrap_or_default();
    router
        .set_routes(canary, &mut status, routes)
        .await
        .unwrap();
    assert_eq!(router.get_routes(canary).await.unwrap(), routes);
}

/// The steps both runs make: the first creates the objects, the second shifts traffic, the
/// third changes nothing.
const STEPS: [Routes; 3] = [
    Routes {
        primary: 100,
        canary: 0,
        mirrored: false,
    },
    Routes {
        primary: 90,
        canary: 10,
        mirrored: false,
    },
    Routes {
        primary: 90,
        canary: 10,
        mirrored: false,
    },
];

/// Runs [`STEPS`] with the router `build` makes, first without a cache on one cluster, then
/// with one on another (both prepared by `setup`, which returns the stored Canary). With the
/// cache, after the first step and once `synced` has waited for the watches of every kind the
/// router reads, the later steps make no GET; both runs make the same writes.
pub async fn assert_cached_steps_read_nothing<S, B, W>(setup: S, build: B, synced: W)
where
    S: AsyncFn(&TestCluster) -> Canary,
    B: Fn(kube::Client, Cache) -> Box<dyn Router>,
    W: AsyncFn(&Cache, kube::Client),
{
    let fake = TestCluster::start().await;
    let c = setup(&fake).await;
    fake.clear_writes();
    let router = build(fake.client(), Cache::disabled());
    for routes in STEPS {
        step(&*router, &c, routes).await;
    }
    let uncached = normalised(fake.writes(), &c);
    assert!(!uncached.is_empty(), "the steps write something");

    let fake = TestCluster::start().await;
    let c = setup(&fake).await;
    fake.clear_writes();
    let cache = Cache::new(None);
    let router = build(fake.client(), cache.clone());
    step(&*router, &c, STEPS[0]).await;
    synced(&cache, fake.client()).await;
    let mut writes = fake.writes();
    fake.clear_writes();
    for routes in &STEPS[1..] {
        step(&*router, &c, *routes).await;
        assert_eq!(fake.gets(), Vec::<String>::new(), "GETs of a cached step");
        writes.extend(fake.writes());
        fake.clear_writes();
    }
    assert_eq!(normalised(writes, &c), uncached);
}

/// The writes as text, with the Canary's uid (each cluster gives its own) replaced.
fn normalised(writes: Vec<Write>, canary: &Canary) -> Vec<String> {
    let uid = canary.metadata.uid.clone().filter(|u| !u.is_empty());
    writes
        .into_iter()
        .map(|w| {
            let text = format!("{} {} {} {}", w.method, w.path, w.content_type, w.body);
            match &uid {
                Some(uid) => text.replace(uid, "<uid>"),
                None => text,
            }
        })
        .collect()
}

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use devcluster::{Config, DevCluster};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ApiResource, DynamicObject};
use serde_json::json;

use super::*;

async fn cluster() -> (DevCluster, kube::Client) {
    let cluster = DevCluster::start_with(Config {
        namespaces: vec!["default".into(), "test".into(), "other".into()],
        ..Config::default()
    })
    .await
    .unwrap();
    cluster.simulator().set_enabled(false);
    let mut config = kube::Config::new(cluster.url().parse().unwrap());
    config.default_namespace = "test".into();
    config.auth_info.token = Some(cluster.token().to_string().into());
    config.root_cert = Some(vec![cluster.ca_der().to_vec()]);
    let client = kube::Client::try_from(config).unwrap();
    (cluster, client)
}

fn config_map(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"k": value},
    }))
    .unwrap()
}

fn value(cm: &ConfigMap) -> String {
    cm.data.as_ref().unwrap()["k"].clone()
}

/// GETs of ConfigMaps the cluster answered since the last call.
fn gets(cluster: &DevCluster) -> usize {
    cluster
        .requests()
        .take()
        .iter()
        .filter(|r| r.verb == "get" && r.path.contains("configmaps"))
        .count()
}

/// Reads until the kind's watch has synced (the first reads go to the API server).
async fn until_cached(cache: &Cache, api: &Api<ConfigMap>, name: &str) {
    for _ in 0..200 {
        if cache.read(api, name).await.unwrap().1 == Source::Cache {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the ConfigMap watch never synced");
}

#[tokio::test]
async fn reads_come_from_the_watch_once_it_synced() {
    let (cluster, client) = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "test");
    api.create(&PostParams::default(), &config_map("a", "1"))
        .await
        .unwrap();
    let cache = Cache::new(None);
    until_cached(&cache, &api, "a").await;
    cluster.requests().set_enabled(true);
    for _ in 0..5 {
        let cm = cache.get(&api, "a").await.unwrap().unwrap();
        assert_eq!(value(&cm), "1");
        assert!(cm.metadata.managed_fields.is_none());
    }
    assert_eq!(gets(&cluster), 0, "no GET once cached");

    // A change by someone else arrives through the watch.
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await
    .unwrap();
    let mut seen = String::new();
    for _ in 0..200 {
        seen = value(&cache.get(&api, "a").await.unwrap().unwrap());
        if seen == "2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, "2");
    assert_eq!(gets(&cluster), 0);
}

fn versioned(value: &str, rv: &str) -> ConfigMap {
    let mut cm = config_map("a", value);
    cm.metadata.namespace = Some("test".into());
    cm.metadata.resource_version = Some(rv.into());
    cm
}

fn kept(kind: &Kind<ConfigMap>) -> Option<String> {
    kind.cached("test", "a").map(|(c, _)| value(&c))
}

fn synced(kind: Kind<ConfigMap>) -> Kind<ConfigMap> {
    kind.apply(&watcher::Event::Init);
    kind.apply(&watcher::Event::InitDone);
    kind
}

#[test]
fn a_store_never_goes_back_in_time() {
    never_back_in_time(synced(Kind::all().0));
    let managed = synced(Kind::managed());
    managed.keep("test", "a");
    never_back_in_time(managed);
}

fn never_back_in_time(kind: Kind<ConfigMap>) {
    kind.apply(&watcher::Event::Apply(versioned("2", "7")));
    // An event from before Serin's own write arrives late.
    kind.apply(&watcher::Event::Apply(versioned("1", "5")));
    assert_eq!(kept(&kind).as_deref(), Some("2"));
    // The watch's copy of the version kept is not taken again.
    kind.apply(&watcher::Event::Apply(versioned("copy", "7")));
    assert_eq!(kept(&kind).as_deref(), Some("2"));
    kind.apply(&watcher::Event::Apply(versioned("3", "9")));
    assert_eq!(kept(&kind).as_deref(), Some("3"));
    kind.apply(&watcher::Event::Delete(versioned("3", "10")));
    assert_eq!(kept(&kind), None);
}

#[test]
fn only_managed_objects_are_kept() {
    let kind = synced(Kind::managed());
    kind.apply(&watcher::Event::Apply(versioned("1", "5")));
    assert_eq!(kind.len(), 0, "nobody read it");
    kind.keep("test", "a");
    kind.apply(&watcher::Event::Apply(versioned("2", "6")));
    assert_eq!(kept(&kind).as_deref(), Some("2"));
    // A relist keeps what is managed.
    kind.apply(&watcher::Event::Init);
    kind.apply(&watcher::Event::InitApply(versioned("3", "8")));
    let mut other = versioned("x", "8");
    other.metadata.name = Some("b".into());
    kind.apply(&watcher::Event::InitApply(other));
    kind.apply(&watcher::Event::InitDone);
    assert_eq!(kept(&kind).as_deref(), Some("3"));
    assert_eq!(kind.len(), 1);
    // Deleted: no longer managed (a re-created object is kept again once read).
    kind.apply(&watcher::Event::Delete(versioned("3", "9")));
    kind.apply(&watcher::Event::Apply(versioned("4", "10")));
    assert_eq!(kept(&kind), None);
}

#[test]
fn a_relist_keeps_a_later_write_made_while_it_ran() {
    let kind = synced(Kind::managed());
    kind.keep("test", "a");
    kind.apply(&watcher::Event::Apply(versioned("1", "5")));
    kind.apply(&watcher::Event::Init);
    kind.apply(&watcher::Event::InitApply(versioned("2", "6")));
    // Serin's own write lands while the list is under way.
    kind.apply(&watcher::Event::Apply(versioned("3", "8")));
    kind.apply(&watcher::Event::InitDone);
    assert_eq!(kept(&kind).as_deref(), Some("3"));
    // The next relist does not list it: deleted meanwhile.
    kind.apply(&watcher::Event::Init);
    kind.apply(&watcher::Event::InitDone);
    assert_eq!(kept(&kind), None);
}

#[tokio::test]
async fn writes_through_the_cache_are_read_back() {
    let (_cluster, client) = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "test");
    api.create(&PostParams::default(), &config_map("a", "1"))
        .await
        .unwrap();
    let cache = Cache::new(None);
    until_cached(&cache, &api, "a").await;
    let patched = cache
        .patch(
            &api,
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(value(&patched), "2");
    let (cm, source) = cache.read(&api, "a").await.unwrap();
    assert_eq!(
        (value(&cm.unwrap()), source),
        ("2".to_string(), Source::Cache)
    );
    cache
        .delete(&api, "a", &DeleteParams::default())
        .await
        .unwrap();
    // Gone, whether the watch delivered the deletion yet or not.
    assert_eq!(cache.get(&api, "a").await.unwrap(), None);
    let created = cache
        .create(&api, &PostParams::default(), &config_map("b", "1"))
        .await
        .unwrap();
    assert_eq!(value(&created), "1");
    let (cm, source) = cache.read(&api, "b").await.unwrap();
    assert_eq!(
        (value(&cm.unwrap()), source),
        ("1".to_string(), Source::Cache)
    );
}

#[tokio::test]
async fn an_object_missing_from_the_watch_is_confirmed_with_a_get() {
    let (cluster, client) = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "test");
    api.create(&PostParams::default(), &config_map("a", "1"))
        .await
        .unwrap();
    let cache = Cache::new(None);
    until_cached(&cache, &api, "a").await;
    cluster.requests().set_enabled(true);
    assert_eq!(cache.get(&api, "missing").await.unwrap(), None);
    assert_eq!(gets(&cluster), 1);
}

#[tokio::test]
async fn reads_outside_the_controllers_namespace_go_to_the_api_server() {
    let (cluster, client) = cluster().await;
    let other: Api<ConfigMap> = Api::namespaced(client, "other");
    other
        .create(&PostParams::default(), &config_map("a", "1"))
        .await
        .unwrap();
    let cache = Cache::new(Some("test".into()));
    cluster.requests().set_enabled(true);
    for _ in 0..3 {
        assert!(cache.get(&other, "a").await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gets(&cluster), 3);
}

/// A dev cluster holding ConfigMap `test/a` (`k: 1`), and the ConfigMaps' API, untyped.
async fn untyped_config_map_a() -> (DevCluster, Api<DynamicObject>) {
    let (cluster, client) = cluster().await;
    let typed: Api<ConfigMap> = Api::namespaced(client.clone(), "test");
    typed
        .create(&PostParams::default(), &config_map("a", "1"))
        .await
        .unwrap();
    let resource = ApiResource::erase::<ConfigMap>(&());
    (cluster, Api::namespaced_with(client, "test", &resource))
}

#[tokio::test]
async fn dynamic_kinds_are_cached_by_their_api_resource() {
    let (cluster, api) = untyped_config_map_a().await;
    let cache = Cache::new(None);
    let mut source = Source::Api;
    for _ in 0..200 {
        source = cache.read(&api, "a").await.unwrap().1;
        if source == Source::Cache {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(source, Source::Cache);
    let object = cache.get(&api, "a").await.unwrap().unwrap();
    assert_eq!(object.data["data"]["k"], "1");
    cluster.requests().set_enabled(true);
    assert_eq!(gets(&cluster), 0);
}

/// An untyped kind read typed: the API server's answer is converted, the kept JSON is decoded
/// into the typed form, and both agree with the untyped read.
#[tokio::test]
async fn an_untyped_kind_is_read_as_another_type() {
    let (cluster, api) = untyped_config_map_a().await;
    for cache in [Cache::disabled(), Cache::new(None)] {
        cluster.requests().set_enabled(true);
        let cm: ConfigMap = cache.get_as(&api, "a").await.unwrap().unwrap();
        assert_eq!(value(&cm), "1");
        assert_eq!(gets(&cluster), 1, "the first read asks the API server");
        let missing: Option<ConfigMap> = cache.get_as(&api, "b").await.unwrap();
        assert!(missing.is_none());
        assert_eq!(
            gets(&cluster),
            1,
            "a missing object is one GET, answered 404"
        );
    }
    let cache = Cache::new(None);
    for _ in 0..200 {
        if cache.read(&api, "a").await.unwrap().1 == Source::Cache {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cluster.requests().take();
    let cm: ConfigMap = cache.get_as(&api, "a").await.unwrap().unwrap();
    assert_eq!(value(&cm), "1");
    assert_eq!(cm.metadata.name.as_deref(), Some("a"));
    let raw: serde_json::Value = cache.get_as(&api, "a").await.unwrap().unwrap();
    let untyped = cache.get(&api, "a").await.unwrap().unwrap();
    assert_eq!(raw, serde_json::to_value(&untyped).unwrap());
    assert_eq!(gets(&cluster), 0, "synced reads come from the watch");
}

#[tokio::test]
async fn a_disabled_cache_always_reads_the_api_server() {
    let (cluster, client) = cluster().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "test");
    api.create(&PostParams::default(), &config_map("a", "1"))
        .await
        .unwrap();
    let cache = Cache::disabled();
    cluster.requests().set_enabled(true);
    for _ in 0..2 {
        let (cm, source) = cache.read(&api, "a").await.unwrap();
        assert_eq!(source, Source::Api);
        assert!(cm.is_some());
    }
    assert_eq!(gets(&cluster), 2);
}

#[test]
fn collections_drop_the_namespace() {
    assert_eq!(
        collection("/apis/apps/v1/namespaces/x/deployments"),
        "/apis/apps/v1/deployments"
    );
    assert_eq!(collection("/api/v1/namespaces"), "/api/v1/namespaces");
    assert_eq!(
        collection("/apis/kuma.io/v1alpha1/trafficroutes"),
        "/apis/kuma.io/v1alpha1/trafficroutes"
    );
}

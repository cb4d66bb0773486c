#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;
use crate::testing::TestCluster;
use crate::testing::assert_golden;
use crate::workload::TargetController;

fn canary() -> Canary {
    serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test", "uid": "canary-uid"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {"interval": "1m", "threshold": 5, "iterations": 3}
        }
    }))
    .unwrap()
}

fn target_json() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "podinfo", "namespace": "test", "labels": {"name": "podinfo"}},
        "spec": {
            "minReadySeconds": 3,
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": {"name": "podinfo"}},
            "template": {
                "metadata": {"labels": {"name": "podinfo"}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "containers": [{"name": "podinfo", "image": "podinfo:1", "volumeMounts": [{"name": "s", "mountPath": "/s"}]}],
                    "volumes": [{"name": "s", "secret": {"secretName": "podinfo-secret"}}]
                }
            }
        },
        "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberMisscheduled": 0, "numberReady": 2, "updatedNumberScheduled": 2, "numberAvailable": 2}
    })
}

fn target() -> DaemonSet {
    serde_json::from_value(target_json()).unwrap()
}

#[test]
fn golden_primary_daemonset() {
    let mut t = target();
    t.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .node_selector
        .as_mut()
        .unwrap()
        .insert(SCALE_TO_ZERO_KEY.into(), "true".into());
    let mut tracked = TrackedConfigs::default();
    tracked
        .secrets
        .insert("podinfo-secret".into(), Default::default());
    let c = canary();
    let owner = crate::k8s::meta::require_owner_reference(&c).unwrap();
    let primary = build_primary(
        &c,
        &t,
        &WorkloadConfig::default(),
        &tracked,
        "00000000-0000-4000-8000-000000000000",
        owner,
    )
    .unwrap();
    assert_golden("workload/testdata/daemonset/primary.yaml", &primary);
}

#[test]
fn update_strategy_must_be_rolling() {
    let mut t = target();
    assert!(check_update_strategy(&t).is_ok());
    t.spec
        .as_mut()
        .unwrap()
        .update_strategy
        .as_mut()
        .unwrap()
        .type_ = Some("OnDelete".into());
    assert_eq!(
        check_update_strategy(&t).unwrap_err().to_string(),
        "daemonset podinfo.test must have RollingUpdate strategy but have OnDelete"
    );
}

#[test]
fn hash_ignores_the_scale_to_zero_selector() {
    let a = target();
    let mut b = target();
    b.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .node_selector
        .as_mut()
        .unwrap()
        .insert(SCALE_TO_ZERO_KEY.into(), "true".into());
    assert_eq!(template_hash(&a), template_hash(&b));
    let mut c = target();
    c.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .node_selector = None;
    let mut d = target();
    d.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .node_selector = Some([(SCALE_TO_ZERO_KEY.to_string(), "true".to_string())].into());
    assert_eq!(
        template_hash(&c),
        template_hash(&d),
        "nil selector equals an emptied one"
    );
    assert_ne!(template_hash(&a), template_hash(&c));
}

fn ds_status(status: Value, generation: i64) -> DaemonSet {
    serde_json::from_value(json!({"metadata": {"name": "p", "generation": generation}, "spec": {"selector": {}, "template": {}}, "status": status})).unwrap()
}

#[test]
fn readiness_rules() {
    let now = Timestamp::from_second(10_000).unwrap();
    let base = json!({"currentNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0, "observedGeneration": 1});
    let with = |extra: Value| {
        let mut s = base.clone();
        crate::k8s::meta::apply_merge_patch(&mut s, &extra);
        ds_status(s, 1)
    };
    assert_eq!(
        daemonset_readiness(&ds_status(base.clone(), 2), None, 600, 100, now)
            .unwrap_err()
            .message,
        "waiting for rollout to finish: observed daemonset generation less then desired generation"
    );
    let err = daemonset_readiness(
        &with(
            json!({"desiredNumberScheduled": 3, "updatedNumberScheduled": 1, "numberAvailable": 1}),
        ),
        None,
        600,
        100,
        now,
    )
    .unwrap_err();
    assert_eq!(
        err,
        NotReady::retriable(
            "waiting for rollout to finish: 1 out of 3 new pods have been updated".into()
        )
    );
    let err = daemonset_readiness(
        &with(
            json!({"desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberAvailable": 1}),
        ),
        None,
        600,
        100,
        now,
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "waiting for rollout to finish: 1 of 3 updated pods are available"
    );
    assert!(daemonset_readiness(&with(json!({"desiredNumberScheduled": 4, "updatedNumberScheduled": 4, "numberAvailable": 2})), None, 600, 50, now).is_ok());
    let stale = Some(Timestamp::from_second(1_000).unwrap());
    let err = daemonset_readiness(
        &with(json!({"desiredNumberScheduled": 3, "updatedNumberScheduled": 1})),
        stale,
        600,
        100,
        now,
    )
    .unwrap_err();
    assert_eq!(
        err,
        NotReady {
            retriable: false,
            message: "exceeded its progressDeadlineSeconds: 600".into()
        }
    );
    let fresh = Some(Timestamp::from_second(9_900).unwrap());
    assert!(
        daemonset_readiness(
            &with(json!({"desiredNumberScheduled": 3, "updatedNumberScheduled": 1})),
            fresh,
            600,
            100,
            now
        )
        .unwrap_err()
        .retriable
    );
}

#[tokio::test]
async fn scale_to_zero_uses_the_node_selector_and_promote_drops_it() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    let mut t = target_json();
    // The DaemonSet controller has observed the target (the server set generation 1).
    t["status"]["observedGeneration"] = json!(1);
    fake.insert(t).await;
    fake.insert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "podinfo-secret", "namespace": "test"}, "type": "Opaque", "data": {"k": "dg=="}})).await;
    let ctl = DaemonSetController::new(client, WorkloadConfig::default());
    let c = fake.store_canary(canary()).await;
    ctl.initialize(&c, false).await.unwrap();
    assert!(
        fake.get("v1", "Secret", "test", "podinfo-secret-primary")
            .await
            .is_some()
    );
    // Observed by the DaemonSet controller, no node matches yet: nothing desired, nothing
    // missing (as in Flagger).
    fake.set_status(
        "apps/v1",
        "DaemonSet",
        "test",
        "podinfo-primary",
        json!({"observedGeneration": 1, "desiredNumberScheduled": 0, "currentNumberScheduled": 0,
            "numberMisscheduled": 0, "numberReady": 0}),
    )
    .await;
    ctl.is_primary_ready(&c).await.unwrap();
    ctl.is_canary_ready(&c).await.unwrap();

    let before = ctl.revision(&c).await.unwrap();
    ctl.scale_to_zero(&c).await.unwrap();
    let t = fake
        .get("apps/v1", "DaemonSet", "test", "podinfo")
        .await
        .unwrap();
    assert_eq!(
        t["spec"]["template"]["spec"]["nodeSelector"][SCALE_TO_ZERO_KEY],
        "true"
    );
    assert_eq!(
        t["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/os"],
        "linux"
    );
    assert_eq!(
        before,
        ctl.revision(&c).await.unwrap(),
        "scaling does not change the revision"
    );
    fake.clear_writes();
    ctl.scale_to_zero(&c).await.unwrap();
    assert!(fake.writes().is_empty());

    ctl.promote(&c).await.unwrap();
    let p = fake
        .get("apps/v1", "DaemonSet", "test", "podinfo-primary")
        .await
        .unwrap();
    assert!(
        p["spec"]["template"]["spec"]["nodeSelector"]
            .get(SCALE_TO_ZERO_KEY)
            .is_none()
    );
    assert_eq!(
        p["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"],
        "podinfo-secret-primary"
    );

    ctl.finalize(&c).await.unwrap();
    let t = fake
        .get("apps/v1", "DaemonSet", "test", "podinfo")
        .await
        .unwrap();
    assert_eq!(
        t["spec"]["template"]["spec"]["nodeSelector"],
        json!({"kubernetes.io/os": "linux"})
    );
}

#[tokio::test]
async fn canary_readiness_message_keeps_flaggers_spelling() {
    let fake = TestCluster::start().await;
    let client = fake.client();
    let mut t = target_json();
    t["status"]["numberAvailable"] = json!(0);
    t["status"]["observedGeneration"] = json!(1);
    fake.insert(t).await;
    let ctl = DaemonSetController::new(client, WorkloadConfig::default());
    let err = ctl.is_canary_ready(&canary()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "canary damonset podinfo.test not ready with retryable true: waiting for rollout to finish: 0 of 2 updated pods are available"
    );
}

/// One analysis step's calls on the DaemonSet controller.
async fn step(ctl: &DaemonSetController, c: &Canary) {
    ctl.metadata(c).await.unwrap();
    ctl.initialize(c, false).await.unwrap();
    ctl.revision(c).await.unwrap();
    ctl.is_canary_ready(c).await.unwrap();
    assert!(ctl.is_primary_ready(c).await.is_err());
    ctl.promote(c).await.unwrap();
    ctl.scale_from_zero(c).await.unwrap();
}

async fn step_cluster() -> (TestCluster, Canary) {
    let fake = TestCluster::start().await;
    let mut t = target_json();
    t["status"]["observedGeneration"] = json!(1);
    fake.insert(t).await;
    fake.insert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "podinfo-secret", "namespace": "test"}, "type": "Opaque", "data": {"k": "dg=="}})).await;
    let c = fake.store_canary(canary()).await;
    (fake, c)
}

/// Only the tracked Secret is read from the API server on a cached step: Secrets are not
/// cached (see `ConfigTracker`).
#[tokio::test]
async fn a_cached_step_reads_only_secrets_from_the_api_server() {
    use crate::k8s::cache::Cache;
    use crate::testing::until_cached;
    use kube::Api;

    let (fake, c) = step_cluster().await;
    let plain = DaemonSetController::new(fake.client(), WorkloadConfig::default());
    step(&plain, &c).await;
    fake.clear_writes();
    step(&plain, &c).await;
    let uncached_writes = fake.write_paths();
    assert!(!uncached_writes.is_empty(), "promotion always writes");

    let (fake, c) = step_cluster().await;
    let cache = Cache::new(None);
    let ctl = DaemonSetController::new(fake.client(), WorkloadConfig::default())
        .with_cache(cache.clone());
    step(&ctl, &c).await;
    let daemonsets: Api<DaemonSet> = Api::namespaced(fake.client(), "test");
    until_cached(&cache, &daemonsets, "podinfo").await;
    until_cached(&cache, &daemonsets, "podinfo-primary").await;
    fake.clear_writes();
    step(&ctl, &c).await;
    let reads = fake.gets();
    assert!(!reads.is_empty());
    assert!(reads.iter().all(|p| p.contains("/secrets/")), "{reads:?}");
    assert_eq!(fake.write_paths(), uncached_writes);
}

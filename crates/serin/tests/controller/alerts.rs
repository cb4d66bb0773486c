//! Alerts for every failure, end to end on the dev cluster: a failing pre-rollout hook reaches
//! the AlertProviders through their severity filter, and the global notifier.

use std::time::Duration;

use crate::support::*;
use kube::api::PostParams;
use serde_json::{Value, json};
use serin::api::alert_provider::AlertProvider;

const PRE_ROLLOUT: &str = "Pre-rollout check acceptance-test of podinfo.test failed";
const THRESHOLD: &str = "Failed checks threshold reached 2";

fn pre_rollout_hooks(hooks: &Hooks) -> Value {
    json!([
        {"name": "events", "type": "event", "url": format!("{}/events", hooks.url)},
        {"name": "acceptance-test", "type": "pre-rollout", "url": format!("{}/pre", hooks.url)}
    ])
}

/// Texts of the Slack messages posted to `path`.
fn posted(hooks: &Hooks, path: &str) -> Vec<String> {
    hooks
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == path)
        .map(|(_, v)| v.to_string())
        .collect()
}

/// Waits until `path` received a message containing each of `texts`.
async fn wait_posted(hooks: &Hooks, path: &str, texts: &[&str]) -> Vec<String> {
    wait_for(
        &format!("alerts on {path}"),
        Duration::from_secs(10),
        || async {
            let got = posted(hooks, path);
            texts
                .iter()
                .all(|t| got.iter().any(|m| m.contains(t)))
                .then_some(got)
        },
    )
    .await
}

fn count(messages: &[String], text: &str) -> usize {
    messages.iter().filter(|m| m.contains(text)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_pre_rollout_hook_alerts_through_the_severity_filter() {
    guarded(async {
        let cluster = Cluster::start().await;
        let prom = FakeProm::start(100.0, 100.0).await;
        let hooks = Hooks::start().await;
        hooks.set_status("/pre", 403);
        cluster
            .create_deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0")
            .await;
        let ctrl = Controller::start(&cluster, &prom, &[]);
        for (name, path) in [("pager", "/pager"), ("on-call", "/on-call")] {
            let provider: AlertProvider = serde_json::from_value(json!({
                "apiVersion": "flagger.app/v1beta1", "kind": "AlertProvider",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"type": "slack", "channel": name, "address": format!("{}{path}", hooks.url)}
            }))
            .unwrap();
            kube::Api::<AlertProvider>::namespaced(cluster.client.clone(), NS)
                .create(&PostParams::default(), &provider)
                .await
                .unwrap();
        }
        let canary = podinfo_canary(
            &hooks,
            json!({
                "webhooks": pre_rollout_hooks(&hooks),
                "alerts": [
                    {"name": "pager", "severity": "warn", "providerRef": {"name": "pager"}},
                    {"name": "on-call", "severity": "error", "providerRef": {"name": "on-call"}}
                ]
            }),
        );
        cluster.create_canary(canary).await;
        wait_phase(&cluster, "podinfo", "Initialized", Duration::from_secs(10)).await;

        cluster
            .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
            .await;
        wait_phase(&cluster, "podinfo", "Failed", Duration::from_secs(15)).await;
        assert_eq!(cluster.vs_weights("podinfo").await, Some((100, 0)));

        // warn: the pre-rollout failure (once, for two failed checks) and the rollback.
        let pager = wait_posted(&hooks, "/pager", &[PRE_ROLLOUT, THRESHOLD]).await;
        assert_eq!(count(&pager, PRE_ROLLOUT), 1, "{pager:?}");
        assert_eq!(count(&pager, THRESHOLD), 1, "{pager:?}");
        // error: the rollback only.
        let on_call = wait_posted(&hooks, "/on-call", &[THRESHOLD]).await;
        assert_eq!(count(&on_call, PRE_ROLLOUT), 0, "{on_call:?}");
        assert_eq!(count(&on_call, THRESHOLD), 1, "{on_call:?}");

        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_pre_rollout_hook_reaches_the_global_notifier() {
    guarded(async {
        let cluster = Cluster::start().await;
        let prom = FakeProm::start(100.0, 100.0).await;
        let hooks = Hooks::start().await;
        hooks.set_status("/pre", 403);
        cluster
            .create_deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0")
            .await;
        let slack = format!("--slack-url={}/global", hooks.url);
        let ctrl = Controller::start(
            &cluster,
            &prom,
            &[slack.as_str(), "--slack-channel=deploys"],
        );
        cluster
            .create_canary(podinfo_canary(
                &hooks,
                json!({"webhooks": pre_rollout_hooks(&hooks)}),
            ))
            .await;
        wait_phase(&cluster, "podinfo", "Initialized", Duration::from_secs(10)).await;
        cluster
            .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
            .await;
        wait_phase(&cluster, "podinfo", "Failed", Duration::from_secs(15)).await;

        let global = wait_posted(&hooks, "/global", &[PRE_ROLLOUT, THRESHOLD]).await;
        assert_eq!(count(&global, PRE_ROLLOUT), 1, "{global:?}");
        assert_eq!(count(&global, THRESHOLD), 1, "{global:?}");

        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}

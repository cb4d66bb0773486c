//! `kubectl serin promote|abort|retry|pause|resume` end to end: the plugin binary writes the
//! request on the Canary, the controller acts on it, and the events say who asked.

use std::path::Path;
use std::time::Duration;

use crate::support::*;
use serde_json::json;
use serin::api::request::RequestOutcome;

/// Runs `kubectl-serin ARGS -n test` with the operator's kubeconfig; returns its output and
/// the user it wrote the request as (`... by USER ...`).
async fn serin(kubeconfig: &Path, args: &[&str]) -> String {
    let kubeconfig = real_cluster().unwrap_or_else(|| kubeconfig.to_path_buf());
    let mut argv: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    argv.push(format!("--kubeconfig={}", kubeconfig.display()));
    argv.push("-n".into());
    argv.push(NS.into());
    let (ok, stdout, stderr) = run_plugin(argv).await;
    assert!(ok, "kubectl-serin {args:?}: {stderr}\n{stdout}");
    println!("$ kubectl serin {}\n{stdout}", args.join(" "));
    stdout
}

/// The user named in a confirmation (`... by USER (request ...`, `... paused by USER`).
fn user_in(confirmation: &str) -> String {
    let first = confirmation.lines().next().unwrap_or_default();
    let after = first.split(" by ").nth(1).unwrap_or_default();
    after.split(" (").next().unwrap_or_default().to_string()
}

async fn last_request(cluster: &Cluster) -> Option<(RequestOutcome, String)> {
    let r = cluster.canary("podinfo").await?.status?.last_request?;
    Some((r.outcome, r.id))
}

async fn wait_event(hooks: &Hooks, text: &str) {
    wait_for(text, Duration::from_secs(10), || async {
        hooks
            .event_messages()
            .iter()
            .any(|m| m == text)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_resume_and_promote_through_the_gate() {
    guarded(async {
        let cluster = Cluster::start().await;
        let prom = FakeProm::start(100.0, 100.0).await;
        let hooks = Hooks::start().await;
        hooks.set_status("/gate", 403);
        cluster
            .create_deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0")
            .await;
        let ctrl = Controller::start(&cluster, &prom, &[]);
        cluster
            .create_canary(podinfo_canary(
                &hooks,
                json!({
                    "maxWeight": 50,
                    "webhooks": [
                        {"name": "events", "type": "event", "url": format!("{}/events", hooks.url)},
                        {"name": "gate", "type": "confirm-promotion", "url": format!("{}/gate", hooks.url)}
                    ]
                }),
            ))
            .await;
        wait_phase(&cluster, "podinfo", "Initialized", Duration::from_secs(10)).await;
        cluster
            .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
            .await;
        wait_for("canary weight 10", Duration::from_secs(10), || async {
            (cluster.vs_weights("podinfo").await == Some((90, 10))).then_some(())
        })
        .await;

        // Pause: the run holds, failing checks are not counted.
        let out = serin(&cluster.kubeconfig, &["pause", "podinfo"]).await;
        let user = user_in(&out);
        assert_eq!(out, format!("podinfo.test paused by {user}\n"));
        // The API server's answer where it serves SelfSubjectReview (the real control plane's
        // admin certificate is for `serin-admin`, its kubeconfig entry is `admin`), else the
        // kubeconfig's user.
        let expected = if real_cluster().is_some() {
            "serin-admin"
        } else {
            "serin-dev"
        };
        assert_eq!(user, expected);
        wait_event(
            &hooks,
            &format!("podinfo.test paused by {user} via kubectl serin: no step, no check and no weight change until it is resumed"),
        )
        .await;
        let held = cluster.canary("podinfo").await.unwrap().status.unwrap();
        prom.set(50.0, 100.0);
        // The controller handles requests while paused: a promotion is refused, and by then
        // it has reconciled the paused canary with failing metrics.
        serin(&cluster.kubeconfig, &["promote", "podinfo"]).await;
        wait_event(
            &hooks,
            &format!("Promotion requested by {user} via kubectl serin ignored: podinfo.test is paused: resume it first"),
        )
        .await;
        let s = cluster.canary("podinfo").await.unwrap().status.unwrap();
        assert_eq!(
            (s.phase, s.canary_weight, s.failed_checks),
            (held.phase, held.canary_weight, 0)
        );
        assert_eq!(
            serin(&cluster.kubeconfig, &["pause", "podinfo"]).await,
            format!("podinfo.test is already paused (by {user})\n")
        );

        // Resume: the run carries on.
        prom.set(100.0, 100.0);
        serin(&cluster.kubeconfig, &["resume", "podinfo"]).await;
        wait_event(
            &hooks,
            &format!("Resume requested by {user} via kubectl serin: podinfo.test carries on"),
        )
        .await;
        // The event comes just before the status write that ends the pause.
        wait_for("the pause recorded as ended", Duration::from_secs(10), || async {
            cluster
                .canary("podinfo")
                .await?
                .status?
                .paused
                .is_none()
                .then_some(())
        })
        .await;
        let weight = held.canary_weight;
        wait_for("the next step", Duration::from_secs(10), || async {
            let w = cluster.canary("podinfo").await?.status?.canary_weight;
            (w > weight).then_some(())
        })
        .await;

        // Promote: the closed gate still decides...
        let out = serin(&cluster.kubeconfig, &["promote", "podinfo"]).await;
        assert!(out.starts_with(&format!("promotion of podinfo.test requested by {user} (request ")), "{out}");
        wait_phase(&cluster, "podinfo", "WaitingPromotion", Duration::from_secs(10)).await;
        wait_for("the promotion waits", Duration::from_secs(10), || async {
            let (outcome, _) = last_request(&cluster).await?;
            (outcome == RequestOutcome::Waiting).then_some(())
        })
        .await;
        // ...unless forced.
        let out = serin(&cluster.kubeconfig, &["promote", "podinfo", "--force"]).await;
        assert!(out.contains("(past the confirm-promotion gate) requested"), "{out}");
        wait_phase(&cluster, "podinfo", "Succeeded", Duration::from_secs(20)).await;
        assert_eq!(
            cluster.image("podinfo-primary").await.as_deref(),
            Some("ghcr.io/stefanprodan/podinfo:6.0.1")
        );
        hooks
            .wait_events_in_order(&[
                &format!("Promotion requested by {user} via kubectl serin: skipping the rest of the analysis of podinfo.test"),
                "Halt podinfo.test advancement waiting for promotion approval gate",
                &format!("Promotion past the confirm-promotion gate requested by {user} via kubectl serin: skipping the rest of the analysis of podinfo.test"),
                "Copying podinfo.test template spec to podinfo-primary.test",
                "Promotion completed! Scaling down podinfo.test",
            ])
            .await;
        let (outcome, _) = last_request(&cluster).await.unwrap();
        assert_eq!(outcome, RequestOutcome::Done);
        let status = serin(&cluster.kubeconfig, &["status", "podinfo"]).await;
        assert!(
            status.contains(&format!("Last request: promote by {user} at ")),
            "{status}"
        );
        assert!(status.contains("Z: done.\n"), "{status}");

        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abort_then_retry_and_refusals() {
    guarded(async {
        let (cluster, _prom, hooks, ctrl, _rec) =
            initialized_scene(json!({"maxWeight": 50}), json!({})).await;

        // Nothing to abort yet: refused with a Warning, once.
        let out = serin(&cluster.kubeconfig, &["abort", "podinfo"]).await;
        let user = user_in(&out);
        let refusal = format!("Abort requested by {user} via kubectl serin ignored: podinfo.test has no analysis in progress (phase Initialized)");
        wait_event(&hooks, &refusal).await;
        // The event comes just before the status write that records the request.
        let first = wait_for("the refusal recorded", Duration::from_secs(10), || async {
            let (outcome, id) = last_request(&cluster).await?;
            (outcome == RequestOutcome::Refused).then_some(id)
        })
        .await;

        cluster
            .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
            .await;
        wait_for("canary weight 10", Duration::from_secs(10), || async {
            (cluster.vs_weights("podinfo").await == Some((90, 10))).then_some(())
        })
        .await;
        serin(&cluster.kubeconfig, &["abort", "podinfo"]).await;
        wait_phase(&cluster, "podinfo", "Failed", Duration::from_secs(10)).await;
        assert_eq!(cluster.vs_weights("podinfo").await, Some((100, 0)));
        wait_for("canary scaled to zero", Duration::from_secs(5), || async {
            (cluster.replicas("podinfo").await == Some(0)).then_some(())
        })
        .await;
        assert_eq!(
            cluster.image("podinfo-primary").await.as_deref(),
            Some("ghcr.io/stefanprodan/podinfo:6.0.0")
        );
        hooks
            .wait_events_in_order(&[
                &format!("Abort requested by {user} via kubectl serin: rolling back podinfo.test"),
                "Canary failed! Scaling down podinfo.test",
            ])
            .await;
        let (outcome, id) = last_request(&cluster).await.unwrap();
        assert_eq!(outcome, RequestOutcome::Done);
        assert_ne!(id, first);
        let refusals = hooks.event_messages().iter().filter(|m| **m == refusal).count();
        assert_eq!(refusals, 1, "each request is handled once");

        // Retry: the same revision is analysed again and promoted.
        serin(&cluster.kubeconfig, &["retry", "podinfo"]).await;
        wait_phase(&cluster, "podinfo", "Succeeded", Duration::from_secs(25)).await;
        assert_eq!(
            cluster.image("podinfo-primary").await.as_deref(),
            Some("ghcr.io/stefanprodan/podinfo:6.0.1")
        );
        hooks
            .wait_events_in_order(&[
                &format!("Retry requested by {user} via kubectl serin: analysing podinfo.test again from the start"),
                "New revision detected! Scaling up podinfo.test",
                "Starting canary analysis for podinfo.test",
                "Promotion completed! Scaling down podinfo.test",
            ])
            .await;

        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}

/// A user who may read canaries but not patch them is told so in words. On the dev cluster a
/// 403 fault stands in for RBAC; on the real control plane the user `bob` (impersonated
/// through the kubeconfig's `as`) gets a Role with get and list only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forbidden_without_patch_rights() {
    guarded(async {
        let cluster = Cluster::start().await;
        let hooks = Hooks::start().await;
        cluster.create_canary(podinfo_canary(&hooks, json!({}))).await;
        let (kubeconfig, user) = match real_cluster() {
            Some(admin) => (reader_kubeconfig(&cluster, &admin).await, "bob"),
            None => {
                cluster
                    .dev()
                    .faults()
                    .set_error_share("patch", 403, 1.0)
                    .unwrap();
                (cluster.kubeconfig.clone(), "serin-dev")
            }
        };
        let (ok, stdout, stderr) = run_plugin(vec![
            "abort".into(),
            "podinfo".into(),
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--namespace={NS}"),
        ])
        .await;
        println!("$ kubectl serin abort podinfo\n{stderr}");
        assert!(!ok, "{stdout}");
        assert_eq!(
            stderr,
            format!(
                "error: user \"{user}\" may not patch canaries.flagger.app in namespace \"test\": ask for the \"patch\" verb on canaries\n"
            )
        );
        let annotations = cluster
            .canary("podinfo")
            .await
            .unwrap()
            .metadata
            .annotations
            .unwrap_or_default();
        assert!(
            !annotations.contains_key(serin::api::request::REQUEST_ANNOTATION),
            "{annotations:?}"
        );
        if real_cluster().is_some() {
            let _ = std::fs::remove_file(&kubeconfig);
        } else {
            cluster.dev().faults().clear();
        }
        cluster.shutdown().await;
    })
    .await;
}

/// A kubeconfig that acts as `bob`, who may get and list canaries in the test namespace.
async fn reader_kubeconfig(cluster: &Cluster, admin: &Path) -> std::path::PathBuf {
    let apply = kube::api::PatchParams::apply("serin-e2e").force();
    let roles: kube::Api<k8s_openapi::api::rbac::v1::Role> =
        kube::Api::namespaced(cluster.client.clone(), NS);
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "canary-reader", "namespace": NS},
        "rules": [{"apiGroups": ["flagger.app"], "resources": ["canaries"], "verbs": ["get", "list"]}]
    });
    roles
        .patch("canary-reader", &apply, &kube::api::Patch::Apply(&role))
        .await
        .unwrap();
    let bindings: kube::Api<k8s_openapi::api::rbac::v1::RoleBinding> =
        kube::Api::namespaced(cluster.client.clone(), NS);
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "canary-reader-bob", "namespace": NS},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "canary-reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}]
    });
    bindings
        .patch(
            "canary-reader-bob",
            &apply,
            &kube::api::Patch::Apply(&binding),
        )
        .await
        .unwrap();
    let mut kc = kube::config::Kubeconfig::read_from(admin).unwrap();
    for user in &mut kc.auth_infos {
        if let Some(info) = user.auth_info.as_mut() {
            info.impersonate = Some("bob".into());
        }
    }
    let path = std::env::temp_dir().join(format!("serin-bob-{}.kubeconfig", std::process::id()));
    std::fs::write(&path, serde_saphyr::to_string(&kc).unwrap()).unwrap();
    // RBAC is in force once bob can read the canary.
    wait_for("bob may read canaries", Duration::from_secs(10), || {
        let path = path.clone();
        async move {
            let (ok, _, _) = run_plugin(vec![
                "get".into(),
                "podinfo".into(),
                format!("--kubeconfig={}", path.display()),
                format!("--namespace={NS}"),
            ])
            .await;
            ok.then_some(())
        }
    })
    .await;
    path
}

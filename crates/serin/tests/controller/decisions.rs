//! Controller end to end on the dev cluster: the decision record (`status.decisions`) of a
//! progressing Canary, and what `kubectl serin` shows of it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;
use serde_json::json;

/// Runs `kubectl-serin ARGS -n test` as an operator would (on a real cluster with the admin
/// kubeconfig, not the controller's restricted one) and returns its standard output.
async fn plugin(kubeconfig: &Path, args: &[&str]) -> String {
    let kubeconfig = real_cluster().unwrap_or_else(|| kubeconfig.to_path_buf());
    let mut argv: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    argv.push(format!("--kubeconfig={}", kubeconfig.display()));
    argv.push(format!("--namespace={NS}"));
    let (ok, stdout, stderr) = run_plugin(argv).await;
    assert!(ok, "kubectl-serin {args:?}: {stderr}\n{stdout}");
    stdout
}

/// `--context` picks a context of the kubeconfig, and its namespace is the default one.
async fn contexts_are_honoured(kubeconfig: &Path) {
    let operator = real_cluster().unwrap_or_else(|| kubeconfig.to_path_buf());
    let mut kc = kube::config::Kubeconfig::read_from(&operator).unwrap();
    let current = kc.current_context.clone().unwrap();
    let mut on_call = kc
        .contexts
        .iter()
        .find(|c| c.name == current)
        .unwrap()
        .clone();
    on_call.name = "on-call".into();
    on_call.context.as_mut().unwrap().namespace = Some(NS.into());
    let mut elsewhere = on_call.clone();
    elsewhere.name = "elsewhere".into();
    elsewhere.context.as_mut().unwrap().namespace = Some("nowhere".into());
    kc.contexts.push(on_call);
    kc.contexts.push(elsewhere);
    kc.current_context = Some("elsewhere".into());
    let path = std::env::temp_dir().join(format!("serin-plugin-{}.kubeconfig", std::process::id()));
    std::fs::write(&path, serde_saphyr::to_string(&kc).unwrap()).unwrap();
    let file = format!("--kubeconfig={}", path.display());
    let (ok, chosen, stderr) =
        run_plugin(vec!["get".into(), file.clone(), "--context=on-call".into()]).await;
    assert!(ok, "{stderr}");
    assert!(
        chosen
            .lines()
            .nth(1)
            .unwrap_or_default()
            .starts_with("podinfo "),
        "{chosen}"
    );
    let (ok, current, stderr) = run_plugin(vec!["get".into(), file]).await;
    let _ = std::fs::remove_file(&path);
    assert!(ok, "{stderr}");
    assert_eq!(current, "No canaries found.\n");
}

/// The kubectl on PATH, if any.
fn kubectl() -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn decisions_are_recorded_and_explained() {
    guarded(scenario()).await;
}

async fn scenario() {
    let cluster = Cluster::start().await;
    let prom = FakeProm::start(99.5, 120.0).await;
    let hooks = Hooks::start().await;
    // The promotion gate stays closed until the record has been read.
    hooks.set_status("/gate", 403);
    cluster
        .create_deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0")
        .await;
    let ctrl = Controller::start(&cluster, &prom, &[]);
    let secret_url = format!("{}/load?token=s3cr3t-query", hooks.url);
    cluster
        .create_canary(podinfo_canary(
            &hooks,
            json!({
                "maxWeight": 20,
                "webhooks": [
                    {"name": "events", "type": "event", "url": format!("{}/events", hooks.url)},
                    {"name": "load", "type": "rollout", "url": secret_url,
                     "metadata": {"cmd": "hey -H 'Authorization: Bearer s3cr3t-meta' http://podinfo-canary"}},
                    {"name": "gate", "type": "confirm-promotion", "url": format!("{}/gate", hooks.url)}
                ]
            }),
        ))
        .await;
    wait_phase(&cluster, "podinfo", "Initialized", Duration::from_secs(10)).await;
    cluster
        .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
        .await;
    wait_phase(
        &cluster,
        "podinfo",
        "WaitingPromotion",
        Duration::from_secs(20),
    )
    .await;

    // The analysis keeps running while the gate is closed: wait for a held tick.
    let record = wait_for(
        "a held tick in the record",
        Duration::from_secs(10),
        || async {
            let c = cluster.canary("podinfo").await?;
            let d = c.status?.decisions?;
            (d.last()?.step.action == serin::api::decision::StepAction::Hold).then_some(d)
        },
    )
    .await;
    let summaries: Vec<&str> = record.iter().map(|d| d.step.summary.as_str()).collect();
    assert!(
        contains_in_order(
            &summaries.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &[
                "canary weight 0 → 10 (max 20)",
                "canary weight 10 → 20 (max 20)",
                "analysis passed, waiting for confirm-promotion",
                "held at canary weight 20",
            ]
        ),
        "{summaries:#?}"
    );
    let held = record.last().unwrap();
    let names: Vec<&str> = held.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["request-success-rate", "request-duration"]);
    let rate = &held.checks[0];
    assert_eq!(rate.value, Some(99.5));
    assert_eq!((rate.min, rate.max), (Some(99.0), None));
    assert_eq!(rate.provider, "prometheus");
    assert!(
        rate.query
            .as_deref()
            .unwrap()
            .contains("istio_requests_total"),
        "{:?}",
        rate.query
    );
    let latency = &held.checks[1];
    assert_eq!(latency.value, Some(120.0), "milliseconds: {latency:?}");
    assert_eq!(latency.max, Some(500.0));
    let hooks_seen: Vec<(&str, &str, Option<u16>, bool)> = held
        .webhooks
        .iter()
        .map(|h| (h.name.as_str(), h.hook_type.as_str(), h.status_code, h.ok))
        .collect();
    assert_eq!(
        hooks_seen,
        [
            ("load", "rollout", Some(200), true),
            ("gate", "confirm-promotion", Some(403), false)
        ]
    );
    println!(
        "status.decisions[-1]:\n{}",
        serde_saphyr::to_string(held).unwrap()
    );
    let stored = serde_json::to_string(&record).unwrap();
    assert!(!stored.contains("s3cr3t"), "{stored}");

    // What the people on call see.
    let why = plugin(
        &cluster.kubeconfig,
        &["why", "podinfo", "--last=1", "--queries"],
    )
    .await;
    println!("$ kubectl serin why podinfo --last=1 --queries\n{why}");
    assert!(
        why.starts_with("podinfo.test  WaitingPromotion  [##########] 20/20  failed checks 0/2\n"),
        "{why}"
    );
    assert!(why.contains("hold: held at canary weight 20"), "{why}");
    let cells = |first: &str| -> Vec<String> {
        let row = why.lines().find(|l| l.trim_start().starts_with(first));
        let row = row.unwrap_or_else(|| panic!("no {first} row in\n{why}"));
        row.split_whitespace().map(str::to_string).collect()
    };
    assert_eq!(
        cells("request-success-rate"),
        [
            "request-success-rate",
            "pass",
            "99.5",
            "≥",
            "99",
            "prometheus"
        ]
    );
    assert_eq!(
        cells("request-duration"),
        ["request-duration", "pass", "120", "≤", "500", "prometheus"]
    );
    assert_eq!(
        cells("gate"),
        [
            "gate",
            "confirm-promotion",
            "failed",
            "(403)",
            "HTTP",
            "403",
            "Forbidden"
        ]
    );
    assert!(why.contains("query request-success-rate: sum("), "{why}");

    let get = plugin(&cluster.kubeconfig, &["get"]).await;
    println!("$ kubectl serin get\n{get}");
    let row = get.lines().nth(1).unwrap();
    assert!(
        row.starts_with("podinfo  WaitingPromotion  [##########] 20/20  0/2  "),
        "{get}"
    );

    contexts_are_honoured(&cluster.kubeconfig).await;

    // kubectl finds the plugin on PATH and hands it the same arguments.
    if let Some(kubectl) = kubectl() {
        let dir = Path::new(env!("CARGO_BIN_EXE_kubectl-serin"))
            .parent()
            .unwrap();
        let path = std::env::join_paths(std::iter::once(dir.to_path_buf()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .unwrap();
        let operator = real_cluster().unwrap_or_else(|| cluster.kubeconfig.clone());
        let kubeconfig = format!("--kubeconfig={}", operator.display());
        let out = tokio::task::spawn_blocking(move || {
            Command::new(kubectl)
                .args(["serin", "get", &kubeconfig, "-n", NS])
                .env("PATH", path)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let via_kubectl = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            via_kubectl
                .lines()
                .nth(1)
                .unwrap_or_default()
                .starts_with("podinfo  WaitingPromotion"),
            "{via_kubectl}"
        );
    } else {
        println!("kubectl is not installed: `kubectl serin` through kubectl not checked");
    }

    let status = plugin(&cluster.kubeconfig, &["status", "podinfo"]).await;
    println!("$ kubectl serin status podinfo\n{status}");
    // Events and steps each in order (a step is stamped with its tick's start, so it may come
    // before an event of the same tick in the next second).
    let lines: Vec<String> = status
        .lines()
        .skip(3)
        .map(|l| l[22..].to_string())
        .collect();
    assert_in_order(
        &lines,
        &[
            "Normal   New revision detected! Scaling up podinfo.test",
            "Normal   Starting canary analysis for podinfo.test",
            "Normal   Advance podinfo.test canary weight 10",
            "Normal   Advance podinfo.test canary weight 20",
            "Warning  Halt podinfo.test advancement waiting for promotion approval gate",
        ],
    );
    assert_in_order(
        &lines,
        &[
            "Normal   New revision detected! Scaling up podinfo.test",
            "Step     advance: canary weight 0 → 10 (max 20)",
            "Step     advance: canary weight 10 → 20 (max 20)",
            "Step     waitPromotion: analysis passed, waiting for confirm-promotion",
        ],
    );

    // The gate opens: the record ends with the promotion.
    hooks.set_status("/gate", 200);
    wait_phase(&cluster, "podinfo", "Succeeded", Duration::from_secs(20)).await;
    let c = cluster.canary("podinfo").await.unwrap();
    let actions: Vec<&str> = c
        .status
        .as_ref()
        .unwrap()
        .decisions
        .as_ref()
        .unwrap()
        .iter()
        .map(|d| d.step.action.as_str())
        .collect();
    assert_eq!(
        actions[actions.len() - 3..],
        ["promote", "finalise", "succeed"],
        "{actions:?}"
    );

    ctrl.stop().await.unwrap();
    cluster.shutdown().await;
}

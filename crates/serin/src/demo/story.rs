//! The story of seed 000, chapter by chapter: bootstrap, ship backend 5.0.1, ship frontend 5.0.1
//! as an A/B test, ship a bad backend; then the summary and the commands to explore.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use super::live::refresh;
use super::traffic::{Counts, Targets, Traffic, Users};
use super::{
    AbCount, DemoError, NS, Options, Stack, Summary, apply, canary_api, check_children, manifests,
};

pub(super) async fn story(stack: &mut Stack, opts: &Options) -> Result<Summary, DemoError> {
    let client = stack.platform.cluster.client();
    let pace = stack.pace.clone();
    let docs = |text: &str| {
        manifests::documents(text, &pace)
            .map_err(|e| DemoError::Step(format!("the demo's manifests: {e}")))
    };
    let mut summary = Summary::default();

    chapter(stack, "1. Bootstrap: namespaces, gateway, loadtester, frontend and backend with HPAs and Canaries").await;
    for text in [
        manifests::ISTIO_SYSTEM,
        manifests::PROD,
        manifests::BACKEND,
        manifests::FRONTEND,
    ] {
        apply_retrying(&client, &docs(text)?).await?;
    }
    publish_ingress_address(&client, stack.platform.mesh.addr()).await?;
    follow(stack, &["backend", "frontend"], &["Initialized"], None).await?;
    show_kubectl_get(stack).await;
    stack.traffic = Some(
        Traffic::start(&Targets {
            ingress: format!("http://{}/", stack.platform.mesh.addr()),
            proxy: format!("http://{}", stack.platform.mesh.addr()),
            rate: 10,
        })
        .map_err(|e| DemoError::Step(format!("starting the users' traffic: {e}")))?,
    );
    stack.screen.say(&["  users now send 10 req/s to the frontend through the ingress gateway (1 in 4 with Firefox, 1 in 4 with the type=insider cookie) and 10 req/s to backend.prod:9898 through the mesh".to_string()]);
    pause(stack).await;

    chapter(
        stack,
        "2. Ship backend 5.0.1: weights advance on real traffic, then promotion",
    )
    .await;
    set_image(
        &client,
        "backend",
        "ghcr.io/stefanprodan/podinfo:5.0.1",
        &[],
    )
    .await?;
    follow(stack, &["backend"], &["Progressing"], None).await?;
    let phase = follow(stack, &["backend"], &["Succeeded", "Failed"], None).await?;
    summary.backend_after_promotion = primary_image(&client, "backend").await;
    expect(
        &phase,
        "Succeeded",
        "backend 5.0.1",
        &summary.backend_after_promotion,
    )?;
    pause(stack).await;

    chapter(stack, "3. Ship frontend 5.0.1 as an A/B test: only Firefox users and type=insider reach the canary").await;
    set_image(
        &client,
        "frontend",
        "ghcr.io/stefanprodan/podinfo:5.0.1",
        &[],
    )
    .await?;
    follow(stack, &["frontend"], &["Progressing"], None).await?;
    // Count from the first iteration on: the match routes are in place by then.
    wait_iteration(stack, "frontend").await?;
    if let Some(t) = &stack.traffic {
        t.count_window(true);
    }
    let phase = follow(
        stack,
        &["frontend"],
        &["Succeeded", "Failed"],
        Some("Progressing"),
    )
    .await?;
    let window = stack
        .traffic
        .as_ref()
        .map(Traffic::window)
        .unwrap_or_default();
    summary.ab_counts = ab_rows(&window);
    summary.frontend_after_ab = primary_image(&client, "frontend").await;
    let table = ab_table(&summary.ab_counts);
    stack.screen.say(&table);
    expect(
        &phase,
        "Succeeded",
        "frontend 5.0.1",
        &summary.frontend_after_ab,
    )?;
    pause(stack).await;

    chapter(stack, "4. Ship a bad backend 5.0.2 (30% errors, 600 ms latency): the analysis halts and rolls back").await;
    set_image(
        &client,
        "backend",
        "ghcr.io/stefanprodan/podinfo:5.0.2",
        &[
            (devcluster::sampleapp::ENV_ERROR_PERCENT, "30"),
            (devcluster::sampleapp::ENV_DELAY_MS, "600"),
        ],
    )
    .await?;
    follow(stack, &["backend"], &["Progressing"], None).await?;
    let phase = follow(stack, &["backend"], &["Failed", "Succeeded"], None).await?;
    summary.backend_after_rollback = primary_image(&client, "backend").await;
    // The last notifications arrive just after the phase changes.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline
        && !stack
            .slack
            .received()
            .iter()
            .any(|n| n.subject.starts_with("backend") && n.color == "danger")
    {
        refresh(stack, &["backend", "frontend"]).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    refresh(stack, &["backend", "frontend"]).await;
    stack.screen.freeze();
    if phase != "Failed" {
        return Err(DemoError::Step(format!(
            "the bad backend ended {phase}, not Failed (logs in {})",
            stack.platform.work.display()
        )));
    }

    summary.backend_phase = phase;
    summary.frontend_phase = canary_phase(&client, "frontend").await;
    summary.events = stack.screen.events.clone();
    summary.notifications = stack.slack.received();
    summary.seconds = stack.started.elapsed().as_secs_f64();
    for p in stack.platform.mesh.pods() {
        if let Some(pid) = p.pid {
            stack.pids_seen.insert(pid);
        }
    }
    let lines = final_lines(stack, &summary, opts);
    stack.screen.say(&lines);
    Ok(summary)
}

fn expect(phase: &str, want: &str, what: &str, image: &str) -> Result<(), DemoError> {
    if phase == want {
        Ok(())
    } else {
        Err(DemoError::Step(format!(
            "{what} ended {phase}, not {want} (primary runs {image})"
        )))
    }
}

async fn chapter(stack: &mut Stack, title: &str) {
    stack.screen.freeze();
    stack.screen.say(&[String::new(), format!("== {title}")]);
}

async fn pause(stack: &mut Stack) {
    let until = Instant::now() + stack.pace.pause;
    while Instant::now() < until {
        refresh(stack, &["backend", "frontend"]).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Applies documents, retrying for a while: a CRD's kinds are served a moment after it is
/// created, as in Kubernetes.
async fn apply_retrying(client: &kube::Client, docs: &[Value]) -> Result<(), DemoError> {
    for d in docs {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match apply::apply(client, d).await {
                Ok(()) => break,
                Err(e) if Instant::now() > deadline => return Err(e.into()),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    Ok(())
}

/// Writes the dev mesh's address as the ingress gateway Service's load balancer, where the
/// seed looks it up (`kubectl -n istio-system get svc istio-ingressgateway`).
async fn publish_ingress_address(client: &kube::Client, addr: SocketAddr) -> Result<(), DemoError> {
    let api: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), "istio-system");
    let status = json!({"status": {"loadBalancer": {"ingress": [
        {"ip": addr.ip().to_string(), "ports": [{"port": addr.port(), "protocol": "TCP"}]}
    ]}}});
    api.patch_status(
        "istio-ingressgateway",
        &PatchParams::default(),
        &Patch::Merge(&status),
    )
    .await
    .map_err(|e| DemoError::Step(format!("publishing the ingress gateway address: {e}")))?;
    Ok(())
}

async fn set_image(
    client: &kube::Client,
    name: &str,
    image: &str,
    env: &[(&str, &str)],
) -> Result<(), DemoError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let env: Vec<Value> = env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    let mut container = json!({"name": name, "image": image});
    if !env.is_empty() {
        container["env"] = Value::Array(env);
    }
    let patch = json!({"spec": {"template": {"spec": {"containers": [container]}}}});
    api.patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .map_err(|e| DemoError::Step(format!("setting the image of deployment/{name}: {e}")))?;
    let mut line = format!("  $ kubectl -n {NS} set image deployment/{name} {name}={image}");
    if let Some(c) = patch.pointer("/spec/template/spec/containers/0/env") {
        line.push_str(&format!("   # and env {c}"));
    }
    println!("{line}");
    Ok(())
}

async fn primary_image(client: &kube::Client, name: &str) -> String {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NS);
    api.get(&format!("{name}-primary"))
        .await
        .ok()
        .and_then(|d| d.spec?.template.spec?.containers.first()?.image.clone())
        .unwrap_or_default()
}

async fn canary_phase(client: &kube::Client, name: &str) -> String {
    canary_api(client)
        .get(name)
        .await
        .ok()
        .and_then(|c| {
            c.data
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default()
}

async fn show_kubectl_get(stack: &mut Stack) {
    let client = stack.platform.cluster.client();
    let mut lines = vec![format!("  $ kubectl -n {NS} get canaries")];
    lines.push(format!("  {:<10} {:<13} {}", "NAME", "STATUS", "WEIGHT"));
    for name in ["backend", "frontend"] {
        if let Ok(c) = canary_api(&client).get(name).await {
            let p = |k: &str| c.data.pointer(k).cloned().unwrap_or(Value::Null);
            lines.push(format!(
                "  {:<10} {:<13} {}",
                name,
                p("/status/phase").as_str().unwrap_or(""),
                p("/status/canaryWeight").as_i64().unwrap_or(0)
            ));
        }
    }
    stack.screen.freeze();
    stack.screen.say(&lines);
}

/// Refreshes the view until the canary's analysis has advanced one iteration.
async fn wait_iteration(stack: &mut Stack, name: &str) -> Result<(), DemoError> {
    let client = stack.platform.cluster.client();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        refresh(stack, &["backend", "frontend"]).await;
        check_children(stack)?;
        let status = canary_api(&client)
            .get(name)
            .await
            .ok()
            .and_then(|c| c.data.get("status").cloned())
            .unwrap_or(Value::Null);
        let iterations = status
            .get("iterations")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let phase = status.get("phase").and_then(Value::as_str).unwrap_or("");
        if iterations >= 1 || phase != "Progressing" {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(DemoError::Step(format!(
                "{name} did not start its analysis within 60 s (controller log: {})",
                stack.platform.work.join("controller.log").display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Refreshes the view until every named canary is in one of `phases`; returns the phase of the
/// first. With `left`, also returns as soon as the first canary leaves that phase.
async fn follow(
    stack: &mut Stack,
    names: &[&str],
    phases: &[&str],
    left: Option<&str>,
) -> Result<String, DemoError> {
    let timeout = Duration::from_secs(if stack.fast { 120 } else { 240 });
    let deadline = Instant::now() + timeout;
    let client = stack.platform.cluster.client();
    loop {
        refresh(stack, &["backend", "frontend"]).await;
        check_children(stack)?;
        let mut all = true;
        let mut first = String::new();
        for (i, n) in names.iter().enumerate() {
            let phase = canary_phase(&client, n).await;
            if i == 0 {
                first = phase.clone();
            }
            all &= phases.contains(&phase.as_str());
        }
        if let Some(l) = left
            && !first.is_empty()
            && first != l
        {
            if let Some(t) = &stack.traffic {
                t.count_window(false);
            }
            if phases.contains(&first.as_str()) {
                return Ok(first);
            }
            // Promoting / Finalising: keep following to the end.
            return Box::pin(follow(stack, names, phases, None)).await;
        }
        if all {
            return Ok(first);
        }
        if Instant::now() > deadline {
            return Err(DemoError::Step(format!(
                "{} did not reach {} within {} s (controller log: {})",
                names.join(", "),
                phases.join(" or "),
                timeout.as_secs(),
                stack.platform.work.join("controller.log").display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn ab_rows(counts: &Counts) -> Vec<AbCount> {
    counts
        .iter()
        .filter(|((u, _), _)| *u != Users::Backend)
        .map(|((users, answer), n)| AbCount {
            users: *users,
            workload: answer.workload.clone(),
            version: answer.version.clone(),
            requests: *n,
        })
        .collect()
}

fn ab_table(rows: &[AbCount]) -> Vec<String> {
    let mut lines = vec!["  Requests at the ingress gateway during the A/B analysis:".to_string()];
    for r in rows {
        lines.push(format!(
            "    {:<22} -> {:<17} {:<6} {:>5}",
            r.users.label(),
            r.workload,
            r.version,
            r.requests
        ));
    }
    lines
}

fn final_lines(stack: &Stack, summary: &Summary, opts: &Options) -> Vec<String> {
    let ingress = format!("http://{}", stack.platform.mesh.addr());
    let mut lines = vec![
        String::new(),
        format!("== Summary ({:.0} s)", summary.seconds),
        format!(
            "  backend:  5.0.1 promoted (primary {}); bad 5.0.2 rolled back, primary still {} ({})",
            summary.backend_after_promotion, summary.backend_after_rollback, summary.backend_phase
        ),
        format!(
            "  frontend: 5.0.1 promoted after the A/B test (primary {}, {})",
            summary.frontend_after_ab, summary.frontend_phase
        ),
        format!(
            "  notifications received by the Slack receiver: {}",
            summary.notifications.len()
        ),
    ];
    let users = stack
        .traffic
        .as_ref()
        .map(Traffic::total)
        .unwrap_or_default();
    let backend_errors: u64 = users
        .iter()
        .filter(|((u, a), _)| *u == Users::Backend && a.workload.starts_with("HTTP 5"))
        .map(|(_, n)| *n)
        .sum();
    let backend_total: u64 = users
        .iter()
        .filter(|((u, _), _)| *u == Users::Backend)
        .map(|(_, n)| *n)
        .sum();
    lines.push(format!(
        "  backend callers: {backend_errors} errors in {backend_total} requests while the bad release was analysed on a share of the traffic"
    ));
    lines.push(String::new());
    let (ingress, prometheus) = if opts.keep {
        lines.push("== Explore (everything keeps running):".to_string());
        lines.push(format!(
            "  export KUBECONFIG={}",
            stack.platform.kubeconfig.display()
        ));
        (ingress, stack.platform.prometheus.clone())
    } else {
        lines.push(
            "== Explore: `serin demo --keep` leaves everything running and prints its KUBECONFIG, then:"
                .to_string(),
        );
        (
            "http://$INGRESS".to_string(),
            "http://$PROMETHEUS".to_string(),
        )
    };
    lines.extend([
        format!("  kubectl -n {NS} get canaries"),
        format!("  kubectl -n {NS} describe canary backend"),
        format!("  kubectl -n {NS} get deployments,services,virtualservices,destinationrules,hpa"),
        "  kubectl -n istio-system get svc istio-ingressgateway -o jsonpath='{.status.loadBalancer.ingress}'".to_string(),
        format!("  curl -s {ingress}/                      # frontend through the ingress gateway"),
        format!("  curl -s -A Firefox -b 'type=insider' {ingress}/"),
        format!("  curl -s -x {ingress} http://backend.prod:9898/version   # a cluster name through the mesh"),
        format!(
            "  curl -sg '{prometheus}/api/v1/query?query=sum(rate(istio_requests_total[1m]))by(destination_workload,response_code)'"
        ),
    ]);
    lines
}

//! start-up checks, the HTTP server (metrics, readiness) and invalid
//! Canaries (spec problems and `-no-cross-namespace-refs`).

use std::time::Duration;

use crate::support::*;
use devcluster::DevCluster;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use serin::cli::controller::{ControllerError, serve};
use serin::controller::runtime::RuntimeError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_clearly_without_the_canary_crd() {
    guarded(async {
        init_logs();
        let dev = DevCluster::start().await.unwrap();
        let path = std::env::temp_dir().join(format!(
            "serin-controller-nocrd-{}.kubeconfig",
            std::process::id()
        ));
        dev.write_kubeconfig(&path).unwrap();
        let args = controller_args(&[
            format!("--kubeconfig={}", path.display()),
            "--port=0".into(),
            "--metrics-server=http://127.0.0.1:1".into(),
        ]);
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let err = serve(args, rx).await.unwrap_err();
        assert!(
            matches!(
                err,
                ControllerError::Runtime(RuntimeError::CrdMissing { kind: "Canary", .. })
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with("Canary CRD is not registered"),
            "{err}"
        );
        let _ = std::fs::remove_file(&path);
        dev.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_and_readiness() {
    guarded(async {
        let cluster = Cluster::start().await;
        let prom = FakeProm::start(100.0, 100.0).await;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let port_flag = format!("--port={port}");
        let hooks = Hooks::start().await;
        cluster
            .create_deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0")
            .await;
        let ctrl = Controller::start(
            &cluster,
            &prom,
            &[port_flag.as_str(), "--control-loop-interval=200ms"],
        );
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        wait_for("ready", Duration::from_secs(10), || async {
            let r = http.get(format!("{base}/readyz")).send().await.ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
        cluster
            .create_canary(podinfo_canary(&hooks, json!({})))
            .await;
        wait_phase(&cluster, "podinfo", "Initialized", Duration::from_secs(10)).await;
        let body = wait_for("canary metrics", Duration::from_secs(5), || async {
            let body = http
                .get(format!("{base}/metrics"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            // The status gauge is set right after the status write the phase wait saw, so it
            // may trail it: wait for both.
            (body.contains("flagger_canary_total{namespace=\"test\"} 1")
                && body.contains("flagger_canary_status{name=\"podinfo\",namespace=\"test\"}"))
            .then_some(body)
        })
        .await;
        assert!(
            body.contains("flagger_info{version=\"0.1.0\",mesh_provider=\"istio\"} 1"),
            "{body}"
        );
        assert!(
            body.contains("flagger_canary_status{name=\"podinfo\",namespace=\"test\"} 1"),
            "{body}"
        );
        // The total drops when the Canary goes away.
        cluster
            .canaries()
            .delete("podinfo", &Default::default())
            .await
            .unwrap();
        wait_for("total 0", Duration::from_secs(5), || async {
            let body = http
                .get(format!("{base}/metrics"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            body.contains("flagger_canary_total{namespace=\"test\"} 0")
                .then_some(())
        })
        .await;
        ctrl.stop().await.unwrap();
        assert!(
            http.get(format!("{base}/healthz")).send().await.is_err(),
            "server stopped"
        );
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_canaries_wait_for_a_change() {
    guarded(async {
        let cluster = Cluster::start().await;
        let prom = FakeProm::start(100.0, 100.0).await;
        let hooks = Hooks::start().await;
        cluster
            .create_deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0")
            .await;
        let ctrl = Controller::start(&cluster, &prom, &["--no-cross-namespace-refs"]);
        let mut canary = podinfo_canary(&hooks, json!({}));
        canary["spec"]["analysis"]["metrics"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "errors", "templateRef": {"name": "error-rate", "namespace": "flagger"},
                         "thresholdRange": {"max": 1}, "interval": "1m"}));
        cluster.create_canary(canary).await;
        let event = wait_for("warning event", Duration::from_secs(5), || async {
            cluster
                .k8s_events("podinfo")
                .await
                .into_iter()
                .find(|e| e.type_.as_deref() == Some("Warning"))
        })
        .await;
        assert_eq!(
            event.message.as_deref(),
            Some(
                "invalid canary spec: can't access metric template error-rate.flagger, \
                 cross-namespace references are blocked"
            )
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(cluster.canary("podinfo").await.unwrap().status.is_none(), "not scheduled");
        let warnings = cluster
            .k8s_events("podinfo")
            .await
            .into_iter()
            .filter(|e| e.type_.as_deref() == Some("Warning"))
            .collect::<Vec<_>>();
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].count, Some(1), "reported once per version");

        // The spec is fixed: the canary is scheduled.
        let fixed = json!({"spec": {"analysis": {"metrics": [
            {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"}
        ]}}});
        cluster
            .canaries()
            .patch("podinfo", &PatchParams::default(), &Patch::Merge(&fixed))
            .await
            .unwrap();
        wait_phase(&cluster, "podinfo", "Initialized", Duration::from_secs(10)).await;
        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn namespace_flag_restricts_the_watch() {
    guarded(async {
        let cluster = Cluster::start().await;
        let prom = FakeProm::start(100.0, 100.0).await;
        let hooks = Hooks::start().await;
        cluster
            .create_deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0")
            .await;
        let ctrl = Controller::start(&cluster, &prom, &["--namespace=default"]);
        cluster
            .create_canary(podinfo_canary(&hooks, json!({})))
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let c = cluster.canary("podinfo").await.unwrap();
        assert!(
            c.status.is_none(),
            "a Canary outside -namespace was reconciled"
        );
        ctrl.stop().await.unwrap();

        let ctrl = Controller::start(&cluster, &prom, &["--namespace=test"]);
        wait_phase(&cluster, "podinfo", "Initialized", Duration::from_secs(10)).await;
        ctrl.stop().await.unwrap();
        cluster.shutdown().await;
    })
    .await;
}

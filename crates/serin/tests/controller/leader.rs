//! leader election. Only the lease holder reconciles; a released lease
//! is taken over by the follower; a leader that loses its lease stops with an error (the CLI
//! exits with status 1).

use std::time::Duration;

use crate::support::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use serin::cli::controller::ControllerError;

const ELECTION: &[&str] = &[
    "--enable-leader-election",
    "--leader-election-lease-duration=2s",
    "--leader-election-renew-deadline=1s",
    "--leader-election-retry-period=200ms",
];

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("flagger-leader-election")
        .await
        .unwrap()?
        .spec?
        .holder_identity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_leader_reconciles() {
    guarded(async {
        let cluster = Cluster::start().await;
        let prom = FakeProm::start(100.0, 100.0).await;
        let hooks = Hooks::start().await;
        let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "kube-system");
        // Someone else holds the lease.
        let foreign: Lease = serde_json::from_value(json!({
            "metadata": {"name": "flagger-leader-election", "namespace": "kube-system"},
            "spec": {"holderIdentity": "elsewhere_1", "leaseDurationSeconds": 3600,
                     "renewTime": MicroTime(Timestamp::now())}
        }))
        .unwrap();
        leases
            .create(&PostParams::default(), &foreign)
            .await
            .unwrap();

        cluster
            .create_deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0")
            .await;
        let a = Controller::start(&cluster, &prom, ELECTION);
        cluster
            .create_canary(podinfo_canary(&hooks, json!({"maxWeight": 10})))
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let c = cluster.canary("podinfo").await.unwrap();
        assert!(
            c.status.is_none(),
            "a follower wrote a status: {:?}",
            c.status
        );
        assert!(
            hooks.event_messages().is_empty(),
            "a follower recorded events"
        );
        assert_eq!(holder(&leases).await.as_deref(), Some("elsewhere_1"));

        // The lease is freed: controller A takes it and reconciles.
        leases
            .delete("flagger-leader-election", &DeleteParams::default())
            .await
            .unwrap();
        wait_phase(&cluster, "podinfo", "Initialized", Duration::from_secs(10)).await;
        let a_id = holder(&leases).await.unwrap();
        assert!(a_id.contains('_') && a_id != "elsewhere_1", "{a_id}");

        // B follows while A leads.
        let b = Controller::start(&cluster, &prom, ELECTION);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(holder(&leases).await.as_deref(), Some(a_id.as_str()));

        // A stops and releases the lease; B takes over and runs the next analysis.
        a.stop().await.unwrap();
        let b_id = wait_for("B leads", Duration::from_secs(5), || async {
            holder(&leases)
                .await
                .filter(|h| *h != a_id && !h.is_empty())
        })
        .await;
        cluster
            .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
            .await;
        wait_phase(&cluster, "podinfo", "Succeeded", Duration::from_secs(15)).await;

        // Someone takes the lease from B: B loses leadership and stops with an error. B renews
        // the lease meanwhile, so the intruder's replace may conflict with a renewal: it reads
        // the lease again and retries, as any client of a contended object does.
        let mut attempts = 0;
        loop {
            let mut lease = leases.get("flagger-leader-election").await.unwrap();
            let spec = lease.spec.as_mut().unwrap();
            assert_eq!(spec.holder_identity.as_deref(), Some(b_id.as_str()));
            spec.holder_identity = Some("intruder_2".into());
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            spec.lease_duration_seconds = Some(3600);
            match leases
                .replace("flagger-leader-election", &PostParams::default(), &lease)
                .await
            {
                Ok(_) => break,
                Err(kube::Error::Api(e)) if e.code == 409 && attempts < 10 => attempts += 1,
                Err(e) => panic!("taking the lease: {e}"),
            }
        }
        let result = tokio::time::timeout(Duration::from_secs(5), b.task)
            .await
            .expect("B did not stop after losing the lease")
            .unwrap();
        assert!(
            matches!(result, Err(ControllerError::Leader(_))),
            "{result:?}"
        );
        cluster.shutdown().await;
    })
    .await;
}

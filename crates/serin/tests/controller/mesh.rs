//! `-kubeconfig-service-mesh` writes the routing objects to another
//! cluster (without owner references), everything else to the workload cluster.

use std::time::Duration;

use crate::support::*;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routing_objects_land_in_the_mesh_cluster() {
    if dev_cluster_only("needs two separate clusters (workload and mesh)") {
        return;
    }
    guarded(async {
        let workload = Cluster::start().await;
        let mesh = Cluster::start().await;
        let prom = FakeProm::start(100.0, 100.0).await;
        let hooks = Hooks::start().await;
        workload
            .create_deployment("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0")
            .await;
        let mesh_flag = format!("--kubeconfig-service-mesh={}", mesh.kubeconfig.display());
        let ctrl = Controller::start(&workload, &prom, &[mesh_flag.as_str()]);
        workload
            .create_canary(podinfo_canary(&hooks, json!({"maxWeight": 10})))
            .await;
        wait_phase(&workload, "podinfo", "Initialized", Duration::from_secs(10)).await;

        let vs = mesh.virtual_services().get("podinfo").await.unwrap();
        assert!(
            vs.metadata.owner_references.unwrap_or_default().is_empty(),
            "no owner reference to a Canary of another cluster"
        );
        assert!(
            workload
                .virtual_services()
                .get_opt("podinfo")
                .await
                .unwrap()
                .is_none(),
            "no VirtualService in the workload cluster"
        );
        let services: Api<Service> = Api::namespaced(workload.client.clone(), NS);
        for name in ["podinfo", "podinfo-primary", "podinfo-canary"] {
            assert!(services.get_opt(name).await.unwrap().is_some(), "{name}");
        }
        let mesh_services: Api<Service> = Api::namespaced(mesh.client.clone(), NS);
        assert!(mesh_services.get_opt("podinfo").await.unwrap().is_none());

        workload
            .set_image("podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
            .await;
        wait_for(
            "canary weight 10 in the mesh",
            Duration::from_secs(10),
            || async { (mesh.vs_weights("podinfo").await == Some((90, 10))).then_some(()) },
        )
        .await;
        wait_phase(&workload, "podinfo", "Succeeded", Duration::from_secs(15)).await;
        assert_eq!(mesh.vs_weights("podinfo").await, Some((100, 0)));
        ctrl.stop().await.unwrap();
        workload.shutdown().await;
        mesh.shutdown().await;
    })
    .await;
}

//! The chaos suite's objects: the healthy and hostile Canaries (with what each is expected to
//! end as), the Istio CRDs and namespace they need, and their Deployments and MetricTemplates.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::{BoxError, Case, Expect, ISTIO_CRDS, MAX_WEIGHT, NS, Profile, dynamic};

pub fn cases(profile: &Profile, hostile: bool, fake: &str) -> Vec<Case> {
    let metric = |q: &str| json!([{"name": "chaos", "query": q, "thresholdRange": {"max": 1}, "interval": "1m"}]);
    let base = |metrics: Value, hooks: Value| {
        json!({"interval": "2s", "threshold": 2, "stepWeight": 20, "maxWeight": MAX_WEIGHT,
               "metrics": metrics, "webhooks": hooks})
    };
    let ok_hook = json!([{"name": "load", "type": "rollout", "url": format!("{fake}/hook"), "timeout": "5s"}]);
    // Every second healthy canary reads its check from a MetricTemplate, so that API faults on
    // GET hit the template reads (retried, then held; never a failed check).
    let templated = json!([{"name": "chaos", "templateRef": {"name": "healthy"}, "thresholdRange": {"max": 1}, "interval": "1m"}]);
    let mut out: Vec<Case> = (0..profile.canaries)
        .map(|i| Case {
            name: format!("good-{i:02}"),
            expect: Expect::Succeeded,
            what: "healthy",
            analysis: if i % 2 == 1 {
                base(templated.clone(), ok_hook.clone())
            } else {
                base(metric("chaos_ok"), ok_hook.clone())
            },
            extra_spec: json!({}),
        })
        .collect();
    if !hostile {
        return out;
    }
    let mut add = |name: &str, expect, what, analysis: Value, extra_spec: Value| {
        out.push(Case {
            name: name.to_string(),
            expect,
            what,
            analysis,
            extra_spec,
        })
    };
    add(
        "nan-metric",
        Expect::Failed,
        "metric answers NaN",
        base(metric("chaos_nan"), ok_hook.clone()),
        json!({}),
    );
    add(
        "empty-metric",
        Expect::Failed,
        "metric answers an empty vector",
        base(metric("chaos_empty"), ok_hook.clone()),
        json!({}),
    );
    add(
        "garbage-metric",
        Expect::Failed,
        "metric answers non-JSON",
        base(metric("chaos_garbage"), ok_hook.clone()),
        json!({}),
    );
    add(
        "hanging-metric",
        Expect::Failed,
        "metric server never answers",
        base(metric("chaos_hang"), ok_hook.clone()),
        json!({}),
    );
    add(
        "broken-template",
        Expect::Failed,
        "MetricTemplate with a broken query",
        base(
            json!([{"name": "broken", "templateRef": {"name": "broken"}, "thresholdRange": {"max": 1}}]),
            ok_hook.clone(),
        ),
        json!({}),
    );
    add(
        "missing-template",
        Expect::Failed,
        "MetricTemplate that does not exist",
        base(
            json!([{"name": "missing", "templateRef": {"name": "no-such-template"}, "thresholdRange": {"max": 1}}]),
            ok_hook.clone(),
        ),
        json!({}),
    );
    add(
        "unreachable-hook",
        Expect::Failed,
        "rollout webhook nobody listens on",
        base(
            metric("chaos_ok"),
            json!([{"name": "load", "type": "rollout", "url": "http://127.0.0.1:1/", "timeout": "2s"}]),
        ),
        json!({}),
    );
    add(
        "hanging-hook",
        Expect::Succeeded,
        "rollout webhook answering after 15 s (timeout 1m)",
        base(
            metric("chaos_ok"),
            json!([{"name": "load", "type": "rollout", "url": format!("{fake}/hook?hang=15"), "timeout": "1m"}]),
        ),
        json!({}),
    );
    let mut huge = base(metric("chaos_ok"), ok_hook.clone());
    huge["stepWeightPromotion"] = json!(2147483647);
    huge["maxWeight"] = json!(1000);
    add(
        "out-of-range",
        Expect::Refused,
        "stepWeightPromotion 2147483647, maxWeight 1000",
        huge,
        json!({}),
    );
    let mut huge_step = base(metric("chaos_ok"), ok_hook);
    huge_step["stepWeight"] = json!(2147483647);
    huge_step["maxWeight"] = json!(2147483647);
    add(
        "huge-step",
        Expect::Refused,
        "stepWeight = maxWeight = 2147483647",
        huge_step,
        json!({}),
    );
    out
}

pub async fn install(client: &Client) -> Result<(), BoxError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut crds = serin::api::crd::all();
    // The hostile Canaries need a CRD that stores out-of-range numbers, as an older one does.
    crds.iter_mut()
        .for_each(serin::api::crd::without_integer_bounds);
    for doc in ISTIO_CRDS.split("\n---\n") {
        if !doc.trim().is_empty() {
            crds.push(serde_saphyr::from_str(doc)?);
        }
    }
    for crd in crds {
        api.create(&PostParams::default(), &crd).await?;
    }
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": NS}}))?,
    )
    .await?;
    Ok(())
}

pub async fn create_objects(
    client: &Client,
    cases: &[Case],
    undecodable: bool,
    fake: &str,
) -> Result<(), BoxError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    // Canaries go in as raw JSON: the dev cluster (like an older CRD) stores out-of-range values.
    let canaries = dynamic(client, "flagger.app", "v1beta1", "Canary", "canaries");
    let templates = dynamic(
        client,
        "flagger.app",
        "v1beta1",
        "MetricTemplate",
        "metrictemplates",
    );
    let template: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
        "metadata": {"name": "broken", "namespace": NS},
        "spec": {"provider": {"type": "prometheus", "address": "http://127.0.0.1:1"},
                 "query": "sum(rate({{ broken"}
    }))?;
    templates.create(&PostParams::default(), &template).await?;
    let healthy: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
        "metadata": {"name": "healthy", "namespace": NS},
        "spec": {"provider": {"type": "prometheus", "address": fake}, "query": "chaos_ok"}
    }))?;
    templates.create(&PostParams::default(), &healthy).await?;
    let mut all: Vec<(String, Value, Value)> = cases
        .iter()
        .map(|c| (c.name.clone(), c.analysis.clone(), c.extra_spec.clone()))
        .collect();
    if undecodable {
        let mut analysis = cases
            .first()
            .map(|c| c.analysis.clone())
            .unwrap_or_else(|| json!({"interval": "2s", "stepWeight": 20}));
        analysis["threshold"] = json!(2147483648u64);
        all.push(("undecodable".into(), analysis, json!({})));
    }
    for (app, analysis, extra) in all {
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": app, "namespace": NS, "labels": {"app": app}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": app}},
                "template": {
                    "metadata": {"labels": {"app": app}},
                    "spec": {"containers": [{"name": "app", "image": "example/app:1.0.0",
                        "ports": [{"name": "http", "containerPort": 9898}]}]}
                }
            }
        }))?;
        deployments.create(&PostParams::default(), &d).await?;
        let mut spec = json!({
            "provider": "istio",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app},
            "progressDeadlineSeconds": 120,
            "service": {"port": 9898},
            "analysis": analysis,
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        let c: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": app, "namespace": NS},
            "spec": spec,
        }))?;
        canaries.create(&PostParams::default(), &c).await?;
    }
    Ok(())
}

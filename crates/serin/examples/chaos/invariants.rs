//! The invariants checked continuously: samples of every Canary's status, its VirtualService's
//! weights and its primary Deployment, and the violations they show.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::Value;

use super::{BoxError, Expect, MAX_WEIGHT, NS, dynamic};

#[derive(Default)]
pub struct Observed {
    pub phase: String,
    status_weight: i64,
    primary_image: String,
    /// When status and routes started to disagree.
    disagree_since: Option<Instant>,
    /// Samples in a row with a changed primary template outside promotion.
    template_outside_promotion: u32,
    progressing_seen: bool,
    pub max_canary_weight: i64,
    /// The longest disagreement of status and routes seen, in seconds.
    pub max_disagree_secs: f64,
}

#[derive(Default)]
pub struct Monitor {
    pub objects: BTreeMap<String, Observed>,
    pub violations: Vec<String>,
    pub samples: u64,
}

impl Monitor {
    pub fn violation(&mut self, text: String) {
        if self.violations.len() < 200 && !self.violations.contains(&text) {
            println!("VIOLATION {text}");
            self.violations.push(text);
        }
    }
}

/// `(primary, canary)` weights of the first HTTP route of a VirtualService, or a problem.
fn vs_weights(vs: &Value, app: &str) -> Result<Option<(i64, i64)>, String> {
    let Some(routes) = vs.pointer("/spec/http/0/route").and_then(Value::as_array) else {
        return Ok(None);
    };
    let mut primary = 0;
    let mut canary = 0;
    for r in routes {
        let host = r
            .pointer("/destination/host")
            .and_then(Value::as_str)
            .unwrap_or("");
        let weight = r.get("weight").and_then(Value::as_i64).unwrap_or(0);
        if !(0..=100).contains(&weight) {
            return Err(format!("weight {weight} for {host} outside 0-100"));
        }
        if host.starts_with(&format!("{app}-primary")) {
            primary += weight;
        } else if host.starts_with(&format!("{app}-canary")) {
            canary += weight;
        }
    }
    if primary + canary != 100 {
        return Err(format!("weights {primary}/{canary} do not sum to 100"));
    }
    Ok(Some((primary, canary)))
}

pub async fn sample(
    client: &Client,
    cases: &BTreeMap<String, Expect>,
    m: &mut Monitor,
    interval: Duration,
) -> Result<(), BoxError> {
    let canaries = dynamic(client, "flagger.app", "v1beta1", "Canary", "canaries");
    let services = dynamic(
        client,
        "networking.istio.io",
        "v1beta1",
        "VirtualService",
        "virtualservices",
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let list = canaries.list(&ListParams::default()).await?;
    let vss: BTreeMap<String, Value> = services
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|o| Some((o.metadata.name.clone()?, serde_json::to_value(&o).ok()?)))
        .collect();
    let deps: BTreeMap<String, Deployment> = deployments
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|d| Some((d.metadata.name.clone()?, d)))
        .collect();
    m.samples += 1;
    for c in list.items {
        let Some(name) = c.metadata.name.clone() else {
            continue;
        };
        if !cases.contains_key(&name) {
            continue;
        }
        let data = &c.data;
        let phase = data
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let status_weight = data
            .pointer("/status/canaryWeight")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let routes = vss.get(&name).map(|vs| vs_weights(vs, &name));
        let primary = deps.get(&format!("{name}-primary"));
        let image = primary
            .and_then(|d| {
                d.spec
                    .as_ref()?
                    .template
                    .spec
                    .as_ref()?
                    .containers
                    .first()?
                    .image
                    .clone()
            })
            .unwrap_or_default();
        let replicas = primary.and_then(|d| d.spec.as_ref()?.replicas);

        let mut found = Vec::new();
        let obs = m.objects.entry(name.clone()).or_default();
        match routes {
            Some(Err(e)) => found.push(format!("{name}: VirtualService {e}")),
            Some(Ok(Some((_, canary)))) => {
                obs.max_canary_weight = obs.max_canary_weight.max(canary);
                if canary > MAX_WEIGHT {
                    found.push(format!(
                        "{name}: canary weight {canary} above maxWeight {MAX_WEIGHT}"
                    ));
                }
                let settled = matches!(
                    phase.as_str(),
                    "Progressing" | "Succeeded" | "Failed" | "Initialized"
                );
                if settled && canary != status_weight {
                    let since = *obs.disagree_since.get_or_insert_with(Instant::now);
                    let secs = since.elapsed().as_secs_f64();
                    obs.max_disagree_secs = obs.max_disagree_secs.max(secs);
                    let limit = interval * 2 + Duration::from_secs(3);
                    if since.elapsed() > limit {
                        found.push(format!(
                            "{name}: status.canaryWeight {status_weight} and the VirtualService's {canary} disagree for more than {} s (phase {phase})",
                            limit.as_secs()
                        ));
                    }
                } else {
                    obs.disagree_since = None;
                }
            }
            _ => {}
        }
        if replicas == Some(0) {
            found.push(format!("{name}: primary at 0 replicas (phase {phase})"));
        }
        if !obs.primary_image.is_empty() && !image.is_empty() && image != obs.primary_image {
            if matches!(phase.as_str(), "Promoting" | "Finalising" | "Succeeded") {
                obs.primary_image = image.clone();
                obs.template_outside_promotion = 0;
            } else {
                obs.template_outside_promotion += 1;
                if obs.template_outside_promotion >= 3 {
                    found.push(format!(
                        "{name}: primary template changed to {image} while phase {phase}"
                    ));
                }
            }
        } else if obs.primary_image.is_empty() {
            obs.primary_image = image;
        }
        if phase == "Progressing" {
            obs.progressing_seen = true;
        }
        if cases.get(&name) == Some(&Expect::Refused) && obs.progressing_seen {
            found.push(format!("{name}: refused spec ran (phase {phase})"));
        }
        obs.phase = phase;
        obs.status_weight = status_weight;
        for f in found {
            m.violation(f);
        }
    }
    Ok(())
}

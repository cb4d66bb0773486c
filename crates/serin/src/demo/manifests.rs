//! The demo's manifests (examples/demo/, compiled in) and its pace: the seed's intervals are
//! shortened so the story fits in a few minutes, and further in `--fast` mode.

use std::time::Duration;

use serde_json::Value;

use crate::api::manifest::{YamlError, parse_documents};

/// Istio's Gateway, VirtualService and DestinationRule CRDs.
pub const ISTIO_CRDS: &str = include_str!("../../../../examples/demo/istio-crds.yaml");
/// istio-system: gateway, Services, MetricTemplates.
pub const ISTIO_SYSTEM: &str = include_str!("../../../../examples/demo/istio-system.yaml");
/// prod: the namespace and the loadtester.
pub const PROD: &str = include_str!("../../../../examples/demo/prod.yaml");
/// The backend Deployment, HPA and Canary.
pub const BACKEND: &str = include_str!("../../../../examples/demo/backend.yaml");
/// The frontend Deployment, HPA and Canary.
pub const FRONTEND: &str = include_str!("../../../../examples/demo/frontend.yaml");

/// How fast the story runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pace {
    /// `analysis.interval` of the Canaries.
    pub analysis_interval: &'static str,
    /// The metrics' query window.
    pub metric_interval: &'static str,
    /// `stepWeight` of the weighted (backend) Canary.
    pub step_weight: u64,
    /// `iterations` of the A/B (frontend) Canary.
    pub iterations: u64,
    /// `threshold` of the backend Canary.
    pub threshold: u64,
    /// Reading time between the chapters.
    pub pause: Duration,
    /// Prometheus scrape interval.
    pub scrape: &'static str,
}

impl Pace {
    /// The default pace: the seed's story with intervals of 5 s.
    pub fn normal() -> Self {
        Self {
            analysis_interval: "5s",
            metric_interval: "15s",
            step_weight: 10,
            iterations: 6,
            threshold: 5,
            pause: Duration::from_secs(3),
            scrape: "1s",
        }
    }

    /// `--fast`: the shortest intervals the metrics still have data for, no pauses.
    pub fn fast() -> Self {
        Self {
            analysis_interval: "2s",
            metric_interval: "6s",
            step_weight: 25,
            iterations: 3,
            threshold: 3,
            pause: Duration::ZERO,
            scrape: "1s",
        }
    }
}

/// The documents of a manifest file, paced.
pub fn documents(text: &str, pace: &Pace) -> Result<Vec<Value>, YamlError> {
    Ok(parse_documents(text)?
        .into_iter()
        .map(|d| paced(d, pace))
        .collect())
}

/// A Canary with the pace's intervals (other documents unchanged): `analysis.interval`, every
/// metric's `interval`, the rollout hey's `-z` (one interval of load per call), `stepWeight`
/// (weighted analysis), `iterations` (A/B) and `threshold` (weighted analysis).
pub fn paced(mut doc: Value, pace: &Pace) -> Value {
    if doc.get("kind").and_then(Value::as_str) != Some("Canary") {
        return doc;
    }
    let Some(analysis) = doc
        .pointer_mut("/spec/analysis")
        .and_then(Value::as_object_mut)
    else {
        return doc;
    };
    analysis.insert("interval".into(), pace.analysis_interval.into());
    if analysis.contains_key("stepWeight") {
        analysis.insert("stepWeight".into(), pace.step_weight.into());
        analysis.insert("threshold".into(), pace.threshold.into());
    }
    if analysis.contains_key("iterations") {
        analysis.insert("iterations".into(), pace.iterations.into());
    }
    for m in analysis
        .get_mut("metrics")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(m) = m.as_object_mut() {
            m.insert("interval".into(), pace.metric_interval.into());
        }
    }
    for w in analysis
        .get_mut("webhooks")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(cmd) = w.pointer_mut("/metadata/cmd")
            && let Some(text) = cmd.as_str()
            && text.starts_with("hey ")
        {
            *cmd = Value::String(with_hey_duration(text, pace.analysis_interval));
        }
    }
    doc
}

/// Replaces the value of hey's `-z` flag.
fn with_hey_duration(cmd: &str, duration: &str) -> String {
    let mut words: Vec<String> = cmd.split(' ').map(str::to_string).collect();
    if let Some(i) = words.iter().position(|w| w == "-z")
        && let Some(v) = words.get_mut(i + 1)
    {
        *v = duration.to_string();
    }
    words.join(" ")
}

/// The metric templates' PromQL by name (for the live view's own queries).
pub fn metric_templates(pace: &Pace) -> Result<Vec<(String, String)>, YamlError> {
    Ok(documents(ISTIO_SYSTEM, pace)?
        .into_iter()
        .filter(|d| d.get("kind").and_then(Value::as_str) == Some("MetricTemplate"))
        .filter_map(|d| {
            Some((
                d.pointer("/metadata/name")?.as_str()?.to_string(),
                d.pointer("/spec/query")?.as_str()?.to_string(),
            ))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::manifest::check_yaml;
    use crate::api::structural::Severity;
    use crate::api::validation::Options;

    #[test]
    fn every_manifest_parses_and_validates() -> Result<(), YamlError> {
        for text in [ISTIO_CRDS, ISTIO_SYSTEM, PROD, BACKEND, FRONTEND] {
            for report in check_yaml(text, &Options::default())? {
                let errors: Vec<_> = report
                    .problems
                    .iter()
                    .filter(|p| p.severity == Severity::Error)
                    .collect();
                assert!(errors.is_empty(), "{}: {errors:?}", report.describe());
            }
        }
        Ok(())
    }

    #[test]
    fn pace_rewrites_canary_intervals_only() -> Result<(), YamlError> {
        let fast = Pace::fast();
        let docs = documents(BACKEND, &fast)?;
        let canary = docs
            .iter()
            .find(|d| d["kind"] == "Canary")
            .ok_or_else(|| YamlError("no canary".into()))?;
        let a = &canary["spec"]["analysis"];
        assert_eq!(a["interval"], "2s");
        assert_eq!(a["stepWeight"], 25);
        assert_eq!(a["threshold"], 3);
        assert_eq!(a["metrics"][0]["interval"], "6s");
        assert_eq!(
            a["webhooks"][1]["metadata"]["cmd"],
            "hey -z 2s -q 10 -c 2 http://backend-canary.prod:9898/"
        );
        let front = documents(FRONTEND, &fast)?;
        let ab = &front[2]["spec"]["analysis"];
        assert_eq!(ab["iterations"], 3);
        assert_eq!(ab["threshold"], 10, "the A/B threshold stays the seed's");
        assert!(ab.get("stepWeight").is_none());
        assert_eq!(docs[0], parse_documents(BACKEND)?[0]);
        Ok(())
    }

    #[test]
    fn templates_are_found() -> Result<(), YamlError> {
        let names: Vec<String> = metric_templates(&Pace::normal())?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["error-rate", "latency"]);
        Ok(())
    }
}

//! The script of a simulation (docs/simulate.md): scripted metric values, webhook answers and
//! new revisions over simulated time.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::api::duration;
use crate::api::manifest;

/// A script that cannot be used, in plain words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScriptError(pub String);

/// `--metrics SCRIPT`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// Longest simulated time (Go duration, default 2h).
    #[serde(default)]
    pub duration: Option<String>,
    /// New revisions of the target. Default: one at 0s.
    #[serde(default)]
    pub revisions: Vec<RevisionAt>,
    /// Values per metric name, each holding from its `at` until the next.
    #[serde(default)]
    pub metrics: BTreeMap<String, Vec<MetricAt>>,
    /// Answers per webhook name (default: every call succeeds).
    #[serde(default)]
    pub webhooks: BTreeMap<String, Vec<HookAt>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevisionAt {
    pub at: String,
    /// A name for the revision (default `rev<n>`).
    #[serde(default)]
    pub name: Option<String>,
}

/// A metric value from `at` on: `value` for threshold checks; `canary` and `primary` samples
/// for comparison checks (`[bad events, all events]` for the proportion statistic); neither
/// means "no values found".
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricAt {
    pub at: String,
    #[serde(default)]
    pub value: Option<f64>,
    #[serde(default)]
    pub canary: Option<Vec<f64>>,
    #[serde(default)]
    pub primary: Option<Vec<f64>>,
}

/// A webhook answer from `at` on.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookAt {
    pub at: String,
    pub ok: bool,
    #[serde(default)]
    pub message: Option<String>,
}

fn at(text: &str, what: &str) -> Result<Duration, ScriptError> {
    duration::parse(text).ok_or_else(|| {
        ScriptError(format!(
            "{what}: cannot parse {text:?} as a time (e.g. 0s, 90s, 5m, 1h)"
        ))
    })
}

/// The script with its times parsed and each series in time order.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub duration: Duration,
    pub revisions: Vec<(Duration, String)>,
    pub metrics: BTreeMap<String, Vec<(Duration, MetricAt)>>,
    pub webhooks: BTreeMap<String, Vec<(Duration, HookAt)>>,
}

impl Timeline {
    /// Parses a script (YAML or JSON).
    pub fn parse(text: &str) -> Result<Self, ScriptError> {
        let docs = manifest::parse_documents(text)
            .map_err(|e| ScriptError(format!("the script is not valid YAML: {e}")))?;
        let doc = match docs.as_slice() {
            [] => serde_json::Value::Object(Default::default()),
            [one] => one.clone(),
            _ => {
                return Err(ScriptError(
                    "the script must be a single YAML document".into(),
                ));
            }
        };
        let script: Script = serde_json::from_value(doc)
            .map_err(|e| ScriptError(format!("the script does not match the format: {e}")))?;
        Self::from_script(&script)
    }

    pub fn from_script(script: &Script) -> Result<Self, ScriptError> {
        let duration = match script.duration.as_deref() {
            Some(d) => at(d, "duration")?,
            None => Duration::from_secs(2 * 3600),
        };
        let mut revisions = Vec::new();
        for (i, r) in script.revisions.iter().enumerate() {
            let name = r.name.clone().unwrap_or_else(|| format!("rev{}", i + 2));
            revisions.push((at(&r.at, &format!("revisions[{i}].at"))?, name));
        }
        if revisions.is_empty() {
            revisions.push((Duration::ZERO, "rev2".to_string()));
        }
        revisions.sort_by_key(|(t, _)| *t);
        let mut metrics = BTreeMap::new();
        for (name, points) in &script.metrics {
            let mut series = Vec::new();
            for (i, p) in points.iter().enumerate() {
                series.push((at(&p.at, &format!("metrics.{name}[{i}].at"))?, p.clone()));
            }
            series.sort_by_key(|(t, _)| *t);
            metrics.insert(name.clone(), series);
        }
        let mut webhooks = BTreeMap::new();
        for (name, points) in &script.webhooks {
            let mut series = Vec::new();
            for (i, p) in points.iter().enumerate() {
                series.push((at(&p.at, &format!("webhooks.{name}[{i}].at"))?, p.clone()));
            }
            series.sort_by_key(|(t, _)| *t);
            webhooks.insert(name.clone(), series);
        }
        Ok(Self {
            duration,
            revisions,
            metrics,
            webhooks,
        })
    }

    /// The metric's value at `t`: the last point at or before `t`.
    pub fn metric(&self, name: &str, t: Duration) -> Option<&MetricAt> {
        latest(self.metrics.get(name)?, t)
    }

    /// The webhook's answer at `t` (`None`: succeeds).
    pub fn webhook(&self, name: &str, t: Duration) -> Option<&HookAt> {
        latest(self.webhooks.get(name)?, t)
    }

    /// The latest revision at `t`, if any has come yet.
    pub fn revision(&self, t: Duration) -> Option<&str> {
        self.revisions
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .map(|(_, name)| name.as_str())
    }

    /// When the next revision after `t` comes.
    pub fn next_revision_after(&self, t: Duration) -> Option<Duration> {
        self.revisions.iter().map(|(at, _)| *at).find(|at| *at > t)
    }
}

fn latest<T>(series: &[(Duration, T)], t: Duration) -> Option<&T> {
    series.iter().rev().find(|(at, _)| *at <= t).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn values_hold_until_the_next_point() {
        let t = Timeline::parse(
            "duration: 1h\nmetrics:\n  error-rate:\n    - {at: 5m, value: 3}\n    - {at: 0s, value: 0.5}\nwebhooks:\n  gate:\n    - {at: 10m, ok: false, message: closed}\n",
        )
        .unwrap();
        assert_eq!(t.duration, Duration::from_secs(3600));
        let v = |s: u64| {
            t.metric("error-rate", Duration::from_secs(s))
                .unwrap()
                .value
        };
        assert_eq!(
            (v(0), v(299), v(300), v(9999)),
            (Some(0.5), Some(0.5), Some(3.0), Some(3.0))
        );
        assert!(t.webhook("gate", Duration::from_secs(599)).is_none());
        assert!(!t.webhook("gate", Duration::from_secs(600)).unwrap().ok);
        assert_eq!(t.revision(Duration::ZERO), Some("rev2"));
    }

    #[test]
    fn bad_scripts_say_what_is_wrong() {
        let e = Timeline::parse("metrics:\n  x:\n    - {at: soon, value: 1}\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "metrics.x[0].at: cannot parse \"soon\" as a time (e.g. 0s, 90s, 5m, 1h)"
        );
        let e = Timeline::parse("metric: {}\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("the script does not match the format: unknown field `metric`"),
            "{e}"
        );
    }
}

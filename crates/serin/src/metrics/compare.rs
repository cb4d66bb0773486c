//! The comparison check of a metric with a `compare` block (Serin only): the metric's query is
//! rendered for the canary and for the primary (`{{ target }}` → `<target>-primary`), both are
//! measured, and [`crate::stats`] judges the canary. The texts of the verdicts, and when a hold
//! has lasted too long, are pure functions here; the queries go through [`MetricsProvider`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::providers::{MetricsProvider, ProviderError};
use super::template::{self, QueryModel};
use crate::api::analysis::CanaryMetric;
use crate::api::comparison::{MetricComparison, Statistic};
use crate::api::duration;
use crate::stats::judge::Num;
use crate::stats::{self, Counts, Judgement, Outcome};

/// Why a comparison could not be judged (a query or template error).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct CompareError(pub String);

/// The model of the primary: the same names with `target` → `<target>-primary`.
pub fn primary_model(model: &QueryModel) -> QueryModel {
    QueryModel {
        target: format!("{}-primary", model.target),
        ..model.clone()
    }
}

/// Runs the comparison of `metric` (its `compare` block is `c`) whose query text is `query`.
pub async fn judge(
    provider: &dyn MetricsProvider,
    query: &str,
    model: &QueryModel,
    metric: &CanaryMetric,
    c: &MetricComparison,
) -> Result<Judgement, CompareError> {
    let primary = primary_model(model);
    let render = |text: &str, m: &QueryModel| {
        template::render(text, m).map_err(|e| CompareError(format!("query render error: {e}")))
    };
    let settings = c.settings();
    let judgement = match c.statistic() {
        Some(Statistic::MannWhitney) => {
            let window = duration::parse(metric.interval()).unwrap_or(Duration::from_secs(60));
            let step = c.step();
            let samples = async |m: &QueryModel| -> Result<Vec<f64>, CompareError> {
                let q = render(query, m)?;
                let mut values = match provider.run_range_query(&q, window, step).await {
                    Ok(v) => v,
                    Err(ProviderError::NoValuesFound) => Vec::new(),
                    Err(e) => return Err(CompareError(e.to_string())),
                };
                if c.lower_is_worse() {
                    values.iter_mut().for_each(|v| *v = -*v);
                }
                Ok(values)
            };
            let canary = samples(model).await?;
            let primary = samples(&primary).await?;
            stats::compare_samples(&canary, &primary, &settings)
        }
        Some(Statistic::Proportion) => {
            let total_query = c.total_query.as_deref().unwrap_or_default();
            let count = async |text: &str, m: &QueryModel| -> Result<f64, CompareError> {
                let q = render(text, m)?;
                match provider.run_query(&q).await {
                    Ok(v) => Ok(v),
                    Err(ProviderError::NoValuesFound) => Ok(0.0),
                    Err(e) => Err(CompareError(e.to_string())),
                }
            };
            let canary = Counts {
                events: count(query, model).await?,
                total: count(total_query, model).await?,
            };
            let primary_counts = Counts {
                events: count(query, &primary).await?,
                total: count(total_query, &primary).await?,
            };
            stats::compare_proportions(canary, primary_counts, &settings)
        }
        None => {
            return Err(CompareError(format!(
                "unknown statistic {:?}",
                c.statistic.as_deref().unwrap_or_default()
            )));
        }
    };
    judgement.ok_or_else(|| {
        CompareError(
            "the measured values are not usable numbers (infinite, negative counts or more bad events than events)"
                .to_string(),
        )
    })
}

/// The event text of a verdict on the canary `id` (`<name>.<namespace>`).
pub fn verdict_message(id: &str, metric: &str, j: &Judgement) -> String {
    match j.outcome {
        Outcome::Fail => {
            format!("Halt {id} advancement {metric} canary worse than primary: {j}")
        }
        Outcome::Pass => format!("{id} {metric} canary not worse than primary: {j}"),
        Outcome::Inconclusive => {
            let unit = match j.test {
                stats::Test::MannWhitney => "samples",
                stats::Test::Proportion => "events counted",
            };
            // Counts from `increase()` are extrapolated, so not whole numbers.
            format!(
                "Hold {id} advancement {metric} comparison inconclusive: too few {unit} (canary {}, primary {}, at least {} needed)",
                Num(j.canary_n),
                Num(j.primary_n),
                j.min_samples
            )
        }
    }
}

/// When a hold noticed `now` began: the start recorded in the Canary's status
/// (`status.comparisonHeldSince`, which survives a controller restart), else `now`; never
/// later than `now`.
pub fn hold_start(recorded: Option<Timestamp>, now: Timestamp) -> Timestamp {
    recorded.filter(|t| *t <= now).unwrap_or(now)
}

/// Whether an inconclusive comparison that has held the analysis since `since` has reached the
/// progress deadline. Then the hold counts as a failed check, so a canary that never gets
/// enough traffic is rolled back after `analysis.threshold` deadlines instead of waiting for
/// ever.
pub fn hold_expired(since: Timestamp, deadline_seconds: i32, now: Timestamp) -> bool {
    let held = now.as_second().saturating_sub(since.as_second());
    held >= i64::from(deadline_seconds.max(0))
}

/// When each Canary's current run of inconclusive comparisons began, in memory (the scheduler
/// keeps one), beside `status.comparisonHeldSince`: a restarted controller takes the start from
/// the status ([`hold_start`]); where Flagger's CRDs drop that field, the start kept here still
/// ends the hold after one deadline.
#[derive(Debug, Default)]
pub struct Holds(Mutex<HashMap<String, Timestamp>>);

impl Holds {
    /// The start of the hold of `key`, which begins `now` if it was not holding.
    pub fn hold(&self, key: &str, now: Timestamp) -> Timestamp {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(key.to_string()).or_insert(now)
    }

    /// Ends the hold of `key` (a conclusive check, or a hold counted as a failure).
    pub fn release(&self, key: &str) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::VecDeque;

    use async_trait::async_trait;

    use super::*;

    /// Answers each query from a script and records what it was asked.
    struct Scripted {
        range: Mutex<VecDeque<Result<Vec<f64>, ProviderError>>>,
        instant: Mutex<VecDeque<Result<f64, ProviderError>>>,
        asked: Mutex<Vec<String>>,
    }

    impl Scripted {
        fn new(
            range: Vec<Result<Vec<f64>, ProviderError>>,
            instant: Vec<Result<f64, ProviderError>>,
        ) -> Self {
            Self {
                range: Mutex::new(range.into()),
                instant: Mutex::new(instant.into()),
                asked: Mutex::new(Vec::new()),
            }
        }
    }

    #[async_trait]
    impl MetricsProvider for Scripted {
        async fn run_query(&self, query: &str) -> Result<f64, ProviderError> {
            self.asked.lock().unwrap().push(query.to_string());
            self.instant.lock().unwrap().pop_front().unwrap()
        }
        async fn is_online(&self) -> Result<(), ProviderError> {
            Ok(())
        }
        async fn run_range_query(
            &self,
            query: &str,
            window: Duration,
            step: Duration,
        ) -> Result<Vec<f64>, ProviderError> {
            self.asked
                .lock()
                .unwrap()
                .push(format!("{query} window={window:?} step={step:?}"));
            self.range.lock().unwrap().pop_front().unwrap()
        }
    }

    fn model() -> QueryModel {
        QueryModel {
            name: "podinfo".into(),
            namespace: "test".into(),
            target: "podinfo".into(),
            service: "podinfo".into(),
            ingress: "podinfo".into(),
            route: "podinfo".into(),
            interval: "2m".into(),
            variables: Default::default(),
        }
    }

    fn metric(compare: serde_json::Value) -> CanaryMetric {
        serde_json::from_value(serde_json::json!({
            "name": "latency", "interval": "2m", "query": "q{pod=~\"{{ target }}-.*\"}",
            "compare": compare,
        }))
        .unwrap()
    }

    fn run(p: &Scripted, m: &CanaryMetric) -> Result<Judgement, CompareError> {
        let c = m.compare.clone().unwrap();
        let q = m.query.clone().unwrap();
        futures::executor::block_on(judge(p, &q, &model(), m, &c))
    }

    #[test]
    fn rank_test_queries_canary_then_primary_over_the_interval() {
        let primary: Vec<f64> = (0..12).map(|i| 0.1 + f64::from(i) * 0.001).collect();
        let slow: Vec<f64> = primary.iter().map(|v| v * 1.5).collect();
        let p = Scripted::new(vec![Ok(slow), Ok(primary)], vec![]);
        let m = metric(serde_json::json!({"relativeDegradation": 0.1, "step": "10s"}));
        let j = run(&p, &m).unwrap();
        assert_eq!(j.outcome, Outcome::Fail);
        assert_eq!(
            *p.asked.lock().unwrap(),
            vec![
                "q{pod=~\"podinfo-.*\"} window=120s step=10s".to_string(),
                "q{pod=~\"podinfo-primary-.*\"} window=120s step=10s".to_string(),
            ]
        );
        let text = verdict_message("podinfo.test", "latency", &j);
        assert!(
            text.starts_with(
                "Halt podinfo.test advancement latency canary worse than primary: mann-whitney U="
            ),
            "{text}"
        );
    }

    #[test]
    fn no_canary_values_is_inconclusive_and_lower_is_worse_flips() {
        let primary: Vec<f64> = (0..12).map(f64::from).collect();
        let p = Scripted::new(
            vec![Err(ProviderError::NoValuesFound), Ok(primary.clone())],
            vec![],
        );
        let j = run(&p, &metric(serde_json::json!({}))).unwrap();
        assert_eq!(j.outcome, Outcome::Inconclusive);
        assert_eq!(
            verdict_message("podinfo.test", "latency", &j),
            "Hold podinfo.test advancement latency comparison inconclusive: too few samples (canary 0, primary 12, at least 10 needed)"
        );
        // Throughput-like metric: the canary serving half as much is worse.
        let half: Vec<f64> = primary.iter().map(|v| v / 2.0 - 10.0).collect();
        let p = Scripted::new(vec![Ok(half), Ok(primary)], vec![]);
        let j = run(&p, &metric(serde_json::json!({"worse": "lower"}))).unwrap();
        assert_eq!(j.outcome, Outcome::Fail);
    }

    #[test]
    fn proportions_count_events_and_totals_of_both_versions() {
        let m = metric(serde_json::json!({
            "statistic": "proportion", "totalQuery": "t{pod=~\"{{ target }}-.*\"}"
        }));
        let p = Scripted::new(vec![], vec![Ok(30.0), Ok(1000.0), Ok(10.0), Ok(1000.0)]);
        let j = run(&p, &m).unwrap();
        assert_eq!(j.outcome, Outcome::Fail);
        assert_eq!(p.asked.lock().unwrap()[3], "t{pod=~\"podinfo-primary-.*\"}");
        let p = Scripted::new(vec![], vec![Ok(3.0), Ok(50.0), Ok(10.0), Ok(1000.0)]);
        assert_eq!(run(&p, &m).unwrap().outcome, Outcome::Inconclusive);
        // Prometheus' increase() extrapolates: the hold shows the counts as the verdicts do.
        let p = Scripted::new(
            vec![],
            vec![
                Ok(0.0),
                Ok(7.922465208747515),
                Ok(1.0),
                Ok(33.47415506958251),
            ],
        );
        assert_eq!(
            verdict_message("podinfo.test", "errors", &run(&p, &m).unwrap()),
            "Hold podinfo.test advancement errors comparison inconclusive: too few events counted (canary 7.922, primary 33.47, at least 100 needed)"
        );
        let p = Scripted::new(
            vec![],
            vec![Err(ProviderError::Request("connection refused".into()))],
        );
        assert_eq!(
            run(&p, &m).unwrap_err().to_string(),
            "connection refused".to_string()
        );
    }

    #[test]
    fn holds_expire_after_the_progress_deadline() {
        let t0 = Timestamp::new(1_000, 0).unwrap();
        let at = |s: i64| Timestamp::new(1_000 + s, 0).unwrap();
        assert_eq!(hold_start(Some(t0), at(60)), t0, "from the status");
        assert_eq!(hold_start(None, at(60)), at(60));
        assert_eq!(
            hold_start(Some(at(90)), at(60)),
            at(60),
            "never ahead of now"
        );
        assert!(!hold_expired(t0, 600, at(599)));
        assert!(hold_expired(t0, 600, at(600)));
        let holds = Holds::default();
        assert_eq!(holds.hold("a", t0), t0);
        assert_eq!(holds.hold("a", at(60)), t0, "a hold keeps its start");
        holds.release("a");
        assert_eq!(holds.hold("a", at(120)), at(120));
    }
}

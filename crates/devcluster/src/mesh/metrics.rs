//! Istio's standard request metrics as the destination sidecar reports them:
//! `istio_requests_total` and `istio_request_duration_milliseconds` (a histogram with Istio's
//! default buckets), with Istio's label names, in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Istio's default buckets of `istio_request_duration_milliseconds`.
pub const BUCKETS_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// The labels of one request, by Istio's names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct RequestLabels {
    pub source_workload: String,
    pub source_workload_namespace: String,
    pub destination_workload: String,
    pub destination_workload_namespace: String,
    pub destination_app: String,
    pub destination_version: String,
    /// The FQDN, e.g. `backend-canary.prod.svc.cluster.local`.
    pub destination_service: String,
    pub destination_service_name: String,
    pub destination_service_namespace: String,
    pub response_code: u16,
}

impl RequestLabels {
    fn render(&self) -> String {
        let pairs = [
            ("reporter", "destination"),
            ("source_workload", self.source_workload.as_str()),
            (
                "source_workload_namespace",
                self.source_workload_namespace.as_str(),
            ),
            ("destination_workload", self.destination_workload.as_str()),
            (
                "destination_workload_namespace",
                self.destination_workload_namespace.as_str(),
            ),
            ("destination_app", self.destination_app.as_str()),
            ("destination_version", self.destination_version.as_str()),
            ("destination_service", self.destination_service.as_str()),
            (
                "destination_service_name",
                self.destination_service_name.as_str(),
            ),
            (
                "destination_service_namespace",
                self.destination_service_namespace.as_str(),
            ),
            ("request_protocol", "http"),
            ("response_flags", "-"),
            ("connection_security_policy", "none"),
        ];
        let mut out = String::new();
        for (k, v) in pairs {
            let _ = write!(out, "{k}=\"{}\",", escape(v));
        }
        let _ = write!(out, "response_code=\"{}\"", self.response_code);
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[derive(Debug, Default, Clone)]
struct Series {
    count: u64,
    sum_ms: f64,
    buckets: [u64; BUCKETS_MS.len()],
}

/// The request metrics of one mesh.
#[derive(Debug, Default)]
pub struct MeshMetrics {
    series: Mutex<BTreeMap<RequestLabels, Series>>,
}

impl MeshMetrics {
    /// Records one request that took `ms` milliseconds.
    pub fn record(&self, labels: RequestLabels, ms: f64) {
        let mut series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = series.entry(labels).or_default();
        s.count += 1;
        s.sum_ms += ms;
        for (i, le) in BUCKETS_MS.iter().enumerate() {
            if ms <= *le {
                s.buckets[i] += 1;
            }
        }
    }

    /// Requests recorded for a destination workload, by response code.
    pub fn count(&self, namespace: &str, workload: &str) -> BTreeMap<u16, u64> {
        let series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = BTreeMap::new();
        for (l, s) in series.iter() {
            if l.destination_workload == workload && l.destination_workload_namespace == namespace {
                *out.entry(l.response_code).or_insert(0) += s.count;
            }
        }
        out
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut out = String::new();
        out.push_str("# HELP istio_requests_total Total requests.\n");
        out.push_str("# TYPE istio_requests_total counter\n");
        for (l, s) in &series {
            let _ = writeln!(out, "istio_requests_total{{{}}} {}", l.render(), s.count);
        }
        out.push_str("# HELP istio_request_duration_milliseconds Request duration.\n");
        out.push_str("# TYPE istio_request_duration_milliseconds histogram\n");
        for (l, s) in &series {
            let labels = l.render();
            for (i, le) in BUCKETS_MS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "istio_request_duration_milliseconds_bucket{{{labels},le=\"{le}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "istio_request_duration_milliseconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "istio_request_duration_milliseconds_sum{{{labels}}} {}",
                s.sum_ms
            );
            let _ = writeln!(
                out,
                "istio_request_duration_milliseconds_count{{{labels}}} {}",
                s.count
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_istio_names_and_cumulative_buckets() {
        let m = MeshMetrics::default();
        let labels = RequestLabels {
            destination_workload: "backend".into(),
            destination_workload_namespace: "prod".into(),
            response_code: 200,
            ..Default::default()
        };
        m.record(labels.clone(), 3.0);
        m.record(labels.clone(), 700.0);
        m.record(
            RequestLabels {
                response_code: 500,
                ..labels
            },
            1.0,
        );
        let text = m.render();
        assert!(text.contains("istio_requests_total{reporter=\"destination\","));
        assert!(
            text.contains(
                "destination_workload=\"backend\",destination_workload_namespace=\"prod\""
            )
        );
        assert!(text.contains("response_code=\"200\"} 2\n"), "{text}");
        assert!(text.contains("response_code=\"500\"} 1\n"));
        assert!(
            text.contains("response_code=\"200\",le=\"5\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("response_code=\"200\",le=\"1000\"} 2\n"));
        assert!(text.contains("response_code=\"200\",le=\"+Inf\"} 2\n"));
        assert_eq!(m.count("prod", "backend").get(&500), Some(&1));
    }
}

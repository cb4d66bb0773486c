//! Built-in queries: App Mesh (Envoy sidecar metrics).

use super::{BuiltinQueries, DurationUnit};

pub const QUERIES: BuiltinQueries = BuiltinQueries {
    request_success_rate: r#"sum( rate( envoy_cluster_upstream_rq{ kubernetes_namespace="{{ namespace }}", kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)", envoy_response_code!~"5.*" }[{{ interval }}] ) ) / sum( rate( envoy_cluster_upstream_rq{ kubernetes_namespace="{{ namespace }}", kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)" }[{{ interval }}] ) ) * 100"#,
    request_duration: r#"histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ kubernetes_namespace="{{ namespace }}", kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)" }[{{ interval }}] ) ) by (le) )"#,
    duration_unit: DurationUnit::Milliseconds,
};

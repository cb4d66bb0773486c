//! Built-in queries: Kuma (Envoy metrics of the canary service).

use super::{BuiltinQueries, DurationUnit};

pub const QUERIES: BuiltinQueries = BuiltinQueries {
    request_success_rate: r#"sum( rate( envoy_cluster_upstream_rq{ service=~"{{ target }}-canary_{{ namespace }}_svc_[0-9a-zA-Z-]+", envoy_response_code!~"5.*" }[{{ interval }}] ) ) / sum( rate( envoy_cluster_upstream_rq{ service=~"{{ target }}-canary_{{ namespace }}_svc_[0-9a-zA-Z-]+", }[{{ interval }}] ) ) * 100"#,
    request_duration: r#"histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ service=~"{{ target }}-canary_{{ namespace }}_svc_[0-9a-zA-Z-]+", }[{{ interval }}] ) ) by (le) )"#,
    duration_unit: DurationUnit::Milliseconds,
};

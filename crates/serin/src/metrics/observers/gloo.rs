//! Built-in queries: Gloo Edge (Envoy metrics of the canary upstream). Like Flagger, the cluster name uses `target`, although the generated upstreams are named after the apex Service; set `service.name` equal to the target name or use a MetricTemplate when they differ.

use super::{BuiltinQueries, DurationUnit};

pub const QUERIES: BuiltinQueries = BuiltinQueries {
    request_success_rate: r#"sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"{{ namespace }}-{{ target }}-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+", envoy_response_code!~"5.*" }[{{ interval }}] ) ) / sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"{{ namespace }}-{{ target }}-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+", }[{{ interval }}] ) ) * 100"#,
    request_duration: r#"histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ envoy_cluster_name=~"{{ namespace }}-{{ target }}-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+", }[{{ interval }}] ) ) by (le) )"#,
    duration_unit: DurationUnit::Milliseconds,
};

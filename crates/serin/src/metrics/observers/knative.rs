//! Built-in queries: Knative (`route` is the latest created revision of the Knative Service).

use super::{BuiltinQueries, DurationUnit};

pub const QUERIES: BuiltinQueries = BuiltinQueries {
    request_success_rate: r#"sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"{{ namespace }}/{{ route }}", envoy_response_code!~"5.*" }[{{ interval }}] ) ) / sum( rate( envoy_cluster_upstream_rq{ envoy_cluster_name=~"{{ namespace }}/{{ route }}", }[{{ interval }}] ) ) * 100"#,
    request_duration: r#"histogram_quantile( 0.99, sum( rate( envoy_cluster_upstream_rq_time_bucket{ envoy_cluster_name=~"{{ namespace }}/{{ route }}", }[{{ interval }}] ) ) by (le) )"#,
    duration_unit: DurationUnit::Milliseconds,
};

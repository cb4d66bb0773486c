//! Built-in queries: Traefik (P99 in seconds × 1000).

use super::{BuiltinQueries, DurationUnit};

pub const QUERIES: BuiltinQueries = BuiltinQueries {
    request_success_rate: r#"sum( rate( traefik_service_request_duration_seconds_bucket{ service=~"{{ namespace }}-{{ target }}-canary-[0-9a-zA-Z-]+@kubernetescrd", code!~"5..", le="+Inf" }[{{ interval }}] ) ) / sum( rate( traefik_service_request_duration_seconds_bucket{ service=~"{{ namespace }}-{{ target }}-canary-[0-9a-zA-Z-]+@kubernetescrd", le="+Inf" }[{{ interval }}] ) ) * 100"#,
    request_duration: r#"histogram_quantile( 0.99, sum( rate( traefik_service_request_duration_seconds_bucket{ service=~"{{ namespace }}-{{ target }}-canary-[0-9a-zA-Z-]+@kubernetescrd" }[{{ interval }}] ) ) by (le) ) * 1000"#,
    duration_unit: DurationUnit::Milliseconds,
};

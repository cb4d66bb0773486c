//! Built-in queries: NGINX ingress controller; the duration is an average (seconds × 1000), not a P99.

use super::{BuiltinQueries, DurationUnit};

pub const QUERIES: BuiltinQueries = BuiltinQueries {
    request_success_rate: r#"sum( rate( nginx_ingress_controller_requests{ namespace="{{ namespace }}", ingress="{{ ingress }}", canary!="", status!~"5.*" }[{{ interval }}] ) ) / sum( rate( nginx_ingress_controller_requests{ namespace="{{ namespace }}", ingress="{{ ingress }}", canary!="" }[{{ interval }}] ) ) * 100"#,
    request_duration: r#"sum( rate( nginx_ingress_controller_response_duration_seconds_sum{ namespace="{{ namespace }}", ingress="{{ ingress }}", canary!="" }[{{ interval }}] ) ) / sum( rate( nginx_ingress_controller_response_duration_seconds_count{ namespace="{{ namespace }}", ingress="{{ ingress }}", canary!="" }[{{ interval }}] ) ) * 1000"#,
    duration_unit: DurationUnit::Milliseconds,
};

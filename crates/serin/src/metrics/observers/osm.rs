//! Built-in queries: Open Service Mesh.

use super::{BuiltinQueries, DurationUnit};

pub const QUERIES: BuiltinQueries = BuiltinQueries {
    request_success_rate: r#"sum( rate( osm_request_total{ destination_namespace="{{ namespace }}", destination_kind="Deployment", destination_name="{{ target }}", response_code!~"5.*" }[{{ interval }}] ) ) / sum( rate( osm_request_total{ destination_namespace="{{ namespace }}", destination_kind="Deployment", destination_name="{{ target }}" }[{{ interval }}] ) ) * 100"#,
    request_duration: r#"histogram_quantile( 0.99, sum( rate( osm_request_duration_ms_bucket{ destination_namespace="{{ namespace }}", destination_kind="Deployment", destination_name="{{ target }}" }[{{ interval }}] ) ) by (le) )"#,
    duration_unit: DurationUnit::Milliseconds,
};

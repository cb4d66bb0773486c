//! Hand-written OpenAPI schema fragments for fields whose Rust type is looser than the CRD
//! (string enums kept as `String` so that unknown values reach `serin validate` with a clear
//! message instead of a serde error, and Istio sub-policies kept verbatim).

use schemars::{Schema, SchemaGenerator, json_schema};

use super::provider::CRD_PROVIDER_VALUES;

/// Go duration accepted by Flagger's CRD for intervals and timeouts (prefix match, as Flagger's).
pub const INTERVAL_PATTERN: &str = "^[0-9]+(m|s)";

/// The routing provider. `""` is accepted (Flagger's CRD refuses it) because the controller
/// reads it as "unset": the `-mesh-provider` default applies.
pub fn provider(_: &mut SchemaGenerator) -> Schema {
    let values: Vec<&str> = std::iter::once("")
        .chain(CRD_PROVIDER_VALUES.iter().copied())
        .collect();
    json_schema!({
        "description": "Traffic management provider",
        "type": "string",
        "enum": values,
    })
}

pub fn interval(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "pattern": INTERVAL_PATTERN})
}

pub fn webhook_type(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Type of this webhook",
        "type": "string",
        "enum": ["", "confirm-rollout", "pre-rollout", "rollout", "confirm-traffic-increase",
                 "confirm-promotion", "post-rollout", "rollback", "event"],
    })
}

pub fn alert_severity(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Severity of the alerts sent to this provider: info, warn or error",
        "type": "string",
        "enum": ["", "info", "warn", "error"],
    })
}

pub fn same_site(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "enum": ["Strict", "Lax", "None"]})
}

pub fn traffic_distribution(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Traffic distribution of the generated services",
        "type": "string",
        "enum": ["PreferClose", "PreferSameZone", "PreferSameNode"],
    })
}

pub fn target_kind(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "enum": ["DaemonSet", "Deployment", "Service"]})
}

pub fn autoscaler_kind(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "enum": ["HorizontalPodAutoscaler", "ScaledObject"]})
}

pub fn metric_provider_type(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Type of this provider",
        "type": "string",
        "enum": super::metric_template::METRIC_PROVIDER_TYPES,
    })
}

pub fn alert_provider_type(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Type of this provider",
        "type": "string",
        "enum": super::alert_provider::ALERT_PROVIDER_TYPES,
    })
}

/// An object whose content the API server keeps as written (Istio traffic policy).
pub fn preserved_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

pub fn string_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "object", "additionalProperties": {"type": "string"}})
}

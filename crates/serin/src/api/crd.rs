//! The CustomResourceDefinitions Serin installs, generated from the types.
//!
//! `serin crds` prints them; `deploy/crds/` holds the committed output and a test fails when the
//! two drift apart. On top of what kube-derive produces, this adds:
//! - the `flagger.app/v1alpha3` version, served with the same schema (v1beta1 is stored), so
//!   manifests written for Flagger's older API still apply;
//! - `helm.sh/resource-policy: keep`, as Flagger's CRDs carry;
//! - schema rules derive macros cannot express (one of `analysis`/`canaryAnalysis`, one of
//!   `address`/`secretRef`);
//! - `minimum`/`maximum` on every integer: an API server does not enforce `format: int32`, so
//!   without explicit bounds it stores `threshold: 2147483648`, which no client can decode.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion, JSONSchemaProps,
};
use kube::CustomResourceExt;
use serde_json::{Value, json};

use super::json::from_json;
use super::{AlertProvider, Canary, LEGACY_VERSION, MetricTemplate};

/// Errors while rendering the CRDs.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error("serializing the CRD {name}: {source}")]
    Json {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("rendering YAML: {0}")]
    Yaml(String),
}

/// The three CRDs, in the order Flagger ships them.
pub fn all() -> Vec<CustomResourceDefinition> {
    let mut canary = Canary::crd();
    require_one_of(
        &mut canary,
        &[&["targetRef"]],
        &[&["analysis"], &["canaryAnalysis"]],
    );
    let mut template = MetricTemplate::crd();
    let mut alert = AlertProvider::crd();
    require_one_of(&mut alert, &[&["type"]], &[&["address"], &["secretRef"]]);
    for crd in [&mut canary, &mut template, &mut alert] {
        bound_integers(crd);
        finish(crd);
    }
    vec![canary, template, alert]
}

/// The CRDs as one multi-document YAML stream (what `serin crds` prints).
pub fn render_yaml() -> Result<String, CrdError> {
    let mut out = String::new();
    for crd in all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let value = serde_json::to_value(&crd).map_err(|source| CrdError::Json { name, source })?;
        let yaml = serde_saphyr::to_string(&value).map_err(|e| CrdError::Yaml(e.to_string()))?;
        out.push_str("---\n");
        out.push_str(&yaml);
        if !yaml.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

/// The `openAPIV3Schema` of the stored version of a kind (`Canary`, `MetricTemplate`,
/// `AlertProvider`) as JSON, for [`super::structural`] validation.
pub fn schema_for(kind: &str) -> Option<Value> {
    all()
        .into_iter()
        .find(|crd| crd.spec.names.kind == kind)
        .and_then(|crd| {
            let version = crd.spec.versions.into_iter().find(|v| v.storage)?;
            let schema = version.schema?.open_api_v3_schema?;
            serde_json::to_value(schema).ok()
        })
}

/// Adds the range of the integer's `format` (`int32`, `uint32`) as `minimum`/`maximum`
/// wherever the types did not set a tighter bound.
fn bound_integers(crd: &mut CustomResourceDefinition) {
    for version in &mut crd.spec.versions {
        let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        let Ok(mut value) = serde_json::to_value(&*schema) else {
            continue;
        };
        add_integer_bounds(&mut value);
        if let Ok(bounded) = from_json::<JSONSchemaProps>(&value) {
            *schema = bounded;
        }
    }
}

/// The CRD without the integer bounds and formats of [`all`]: what an older Serin or Flagger CRD
/// left installed accepts. The chaos suite and the hostile-input scenarios store out-of-range
/// Canaries through it, as a user's cluster can.
pub fn without_integer_bounds(crd: &mut CustomResourceDefinition) {
    for version in &mut crd.spec.versions {
        let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        let Ok(mut value) = serde_json::to_value(&*schema) else {
            continue;
        };
        strip_integer_bounds(&mut value);
        if let Ok(stripped) = from_json::<JSONSchemaProps>(&value) {
            *schema = stripped;
        }
    }
}

fn strip_integer_bounds(schema: &mut Value) {
    match schema {
        Value::Object(obj) => {
            if obj.get("type").and_then(Value::as_str) == Some("integer") {
                for key in ["minimum", "maximum", "format"] {
                    obj.remove(key);
                }
            }
            obj.values_mut().for_each(strip_integer_bounds);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_integer_bounds),
        _ => {}
    }
}

/// The range of an integer `format`.
fn format_range(format: &str) -> Option<(f64, f64)> {
    match format {
        "int32" => Some((f64::from(i32::MIN), f64::from(i32::MAX))),
        "uint32" => Some((0.0, f64::from(u32::MAX))),
        _ => None,
    }
}

fn add_integer_bounds(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    let is_integer = obj.get("type").and_then(Value::as_str) == Some("integer");
    if let Some((min, max)) = obj
        .get("format")
        .and_then(Value::as_str)
        .and_then(format_range)
        .filter(|_| is_integer)
    {
        obj.entry("minimum").or_insert(json!(min));
        obj.entry("maximum").or_insert(json!(max));
    }
    for key in ["properties", "items", "additionalProperties"] {
        match obj.get_mut(key) {
            Some(Value::Object(children)) if key == "properties" => {
                children.values_mut().for_each(add_integer_bounds);
            }
            Some(child) if child.is_object() => add_integer_bounds(child),
            _ => {}
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(list)) = obj.get_mut(key) {
            list.iter_mut().for_each(add_integer_bounds);
        }
    }
}

fn finish(crd: &mut CustomResourceDefinition) {
    crd.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("helm.sh/resource-policy".to_string(), "keep".to_string());
    let Some(stored) = crd.spec.versions.first().cloned() else {
        return;
    };
    let legacy = CustomResourceDefinitionVersion {
        name: LEGACY_VERSION.to_string(),
        served: true,
        storage: false,
        ..stored
    };
    crd.spec.versions.push(legacy);
}

/// Replaces `spec.required` of the stored schema with `always`, and adds an `anyOf` requiring one
/// of the `alternatives`.
fn require_one_of(
    crd: &mut CustomResourceDefinition,
    always: &[&[&str]],
    alternatives: &[&[&str]],
) {
    let Some(version) = crd.spec.versions.first_mut() else {
        return;
    };
    let Some(spec) = version
        .schema
        .as_mut()
        .and_then(|s| s.open_api_v3_schema.as_mut())
        .and_then(|root| root.properties.as_mut())
        .and_then(|props| props.get_mut("spec"))
    else {
        return;
    };
    spec.required = Some(
        always
            .iter()
            .flat_map(|fields| fields.iter().map(|f| f.to_string()))
            .collect(),
    );
    let any_of: Vec<JSONSchemaProps> = alternatives
        .iter()
        .filter_map(|fields| serde_json::from_value(json!({"required": fields})).ok())
        .collect();
    spec.any_of = Some(any_of);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn walk(path: &str, schema: &Value, problems: &mut Vec<String>) {
        let obj = schema.as_object().unwrap();
        let structural = obj.contains_key("type")
            || obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
            || obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        if !structural {
            problems.push(format!("{path}: no type"));
        }
        if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
            problems.push(format!("{path}: both properties and additionalProperties"));
        }
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                walk(&format!("{path}.{k}"), v, problems);
            }
        }
        if let Some(items) = obj.get("items") {
            walk(&format!("{path}[]"), items, problems);
        }
        if let Some(extra) = obj.get("additionalProperties").filter(|v| v.is_object()) {
            walk(&format!("{path}{{}}"), extra, problems);
        }
    }

    #[test]
    fn generated_schemas_are_structural() {
        for crd in all() {
            for version in &crd.spec.versions {
                let schema = serde_json::to_value(
                    version
                        .schema
                        .as_ref()
                        .unwrap()
                        .open_api_v3_schema
                        .as_ref()
                        .unwrap(),
                )
                .unwrap();
                let mut problems = Vec::new();
                walk(&crd.spec.names.kind, &schema, &mut problems);
                assert!(problems.is_empty(), "{problems:#?}");
            }
        }
    }

    /// Every integer of every schema carries bounds the API server enforces.
    #[test]
    fn every_integer_is_bounded() {
        fn walk(path: &str, schema: &Value, unbounded: &mut Vec<String>) {
            if schema["type"] == "integer"
                && (schema.get("minimum").is_none() || schema.get("maximum").is_none())
            {
                unbounded.push(path.to_string());
            }
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    walk(&format!("{path}.{k}"), v, unbounded);
                }
            }
            if let Some(items) = schema.get("items") {
                walk(&format!("{path}[]"), items, unbounded);
            }
        }
        for crd in all() {
            for version in &crd.spec.versions {
                let schema = serde_json::to_value(&version.schema).unwrap();
                let mut unbounded = Vec::new();
                walk(
                    &crd.spec.names.kind,
                    &schema["openAPIV3Schema"],
                    &mut unbounded,
                );
                assert!(unbounded.is_empty(), "{unbounded:#?}");
            }
        }
        let canary = serde_json::to_value(&all()[0]).unwrap();
        let spec = &canary["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"];
        let analysis = &spec["analysis"]["properties"];
        assert_eq!(analysis["threshold"]["minimum"], json!(0.0));
        assert_eq!(analysis["threshold"]["maximum"], json!(2147483647.0));
        assert_eq!(analysis["stepWeights"]["items"]["minimum"], json!(1.0));
        assert_eq!(analysis["stepWeights"]["items"]["maximum"], json!(100.0));
        assert_eq!(
            analysis["webhooks"]["items"]["properties"]["retries"]["maximum"],
            json!(2147483647.0)
        );
        assert_eq!(
            spec["progressDeadlineSeconds"]["maximum"],
            json!(2147483647.0)
        );
        assert_eq!(spec["provider"]["enum"][0], json!(""));
    }

    #[test]
    fn canary_crd_matches_flagger_surface() {
        let crd = serde_json::to_value(&all()[0]).unwrap();
        assert_eq!(crd["metadata"]["name"], "canaries.flagger.app");
        assert_eq!(crd["spec"]["names"]["categories"], json!(["all"]));
        let versions = crd["spec"]["versions"].as_array().unwrap();
        let names: Vec<_> = versions
            .iter()
            .map(|v| (v["name"].as_str().unwrap(), v["storage"].as_bool().unwrap()))
            .collect();
        assert_eq!(names, [("v1beta1", true), ("v1alpha3", false)]);
        let columns: Vec<_> = versions[0]["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c.get("priority").is_none())
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(columns, ["Status", "Weight", "LastTransitionTime"]);
        assert_eq!(versions[0]["subresources"]["status"], json!({}));
        let spec = &versions[0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(spec["required"], json!(["targetRef"]));
        let analysis = &spec["properties"]["analysis"]["properties"];
        assert_eq!(analysis["stepWeight"]["maximum"], json!(100.0));
        assert_eq!(analysis["interval"]["pattern"], json!("^[0-9]+(m|s)"));
        assert!(
            spec["properties"]["provider"]["enum"]
                .as_array()
                .unwrap()
                .contains(&json!("gatewayapi:v1beta1"))
        );
        assert_eq!(
            spec["properties"]["service"]["properties"]["targetPort"]["x-kubernetes-int-or-string"],
            json!(true)
        );
    }
}

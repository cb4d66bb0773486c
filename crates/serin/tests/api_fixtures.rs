//! Every fixture deserialises, round-trips without losing a field and validates; the committed
//! CRDs match the generator.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use serin::api::manifest::{self, parse_documents};
use serin::api::validation::Options;
use serin::api::{AlertProvider, Canary, MetricTemplate, crd};
use serin::k8s::packed::PackedStore;

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// JSON equality where numbers compare by value (`500` == `500.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn round_trip(doc: &Value) -> Value {
    match doc["kind"].as_str().unwrap() {
        "Canary" => {
            serde_json::to_value(serde_json::from_value::<Canary>(doc.clone()).unwrap()).unwrap()
        }
        "MetricTemplate" => {
            serde_json::to_value(serde_json::from_value::<MetricTemplate>(doc.clone()).unwrap())
                .unwrap()
        }
        "AlertProvider" => {
            serde_json::to_value(serde_json::from_value::<AlertProvider>(doc.clone()).unwrap())
                .unwrap()
        }
        other => panic!("unexpected kind {other}"),
    }
}

#[test]
fn seeds_and_flagger_fixtures_round_trip_without_losing_a_field() {
    let mut count = 0;
    for file in fixtures("seeds").into_iter().chain(fixtures("flagger")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in parse_documents(&text).unwrap() {
            let mut expected = doc.clone();
            // The legacy version is served with the same schema; objects read back as v1beta1.
            if expected["apiVersion"] == "flagger.app/v1alpha3" {
                expected["apiVersion"] = Value::from("flagger.app/v1beta1");
            }
            // Serde fills in status counters Flagger always writes; compare what was given.
            let back = round_trip(&doc);
            if let (Some(given), Some(written)) = (expected.get_mut("status"), back.get("status")) {
                for (k, v) in written.as_object().unwrap() {
                    given
                        .as_object_mut()
                        .unwrap()
                        .entry(k.clone())
                        .or_insert(v.clone());
                }
            }
            assert!(
                same(&expected, &back),
                "{}: round trip changed the document\n{expected:#}\n{back:#}",
                file.display()
            );
            count += 1;
        }
    }
    assert_eq!(count, 29, "fixture documents");
}

#[test]
fn fixture_canaries_read_back_unchanged_from_the_controllers_cache() {
    // The controller keeps every Canary as compressed JSON and decodes it on each read.
    let store = PackedStore::<Canary>::default();
    let mut count = 0;
    for file in fixtures("seeds").into_iter().chain(fixtures("flagger")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in parse_documents(&text).unwrap() {
            if doc["kind"] != "Canary" {
                continue;
            }
            let canary: Canary = serde_json::from_value(doc).unwrap();
            store.apply(&kube::runtime::watcher::Event::Apply(canary.clone()));
            let ns = canary.metadata.namespace.as_deref().unwrap_or_default();
            let name = canary.metadata.name.as_deref().unwrap_or_default();
            let read = store
                .find(ns, name)
                .map(|c| serde_json::to_value(c).unwrap());
            assert_eq!(
                read,
                Some(serde_json::to_value(&canary).unwrap()),
                "{}",
                file.display()
            );
            count += 1;
        }
    }
    assert!(count >= 10, "{count} fixture Canaries");
}

#[test]
fn seeds_and_flagger_fixtures_validate_without_errors() {
    for file in fixtures("seeds").into_iter().chain(fixtures("flagger")) {
        let text = std::fs::read_to_string(&file).unwrap();
        let reports = manifest::check_yaml(&text, &Options::default()).unwrap();
        assert!(!reports.is_empty());
        for report in reports {
            assert!(report.checked, "{}: {:?}", file.display(), report);
            let errors: Vec<_> = report.problems.iter().filter(|p| p.is_error()).collect();
            assert!(
                errors.is_empty(),
                "{}: {}: {errors:?}",
                file.display(),
                report.describe()
            );
        }
    }
}

#[test]
fn seed_canary_reads_as_flagger_reads_it() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seeds/001-podinfo-canary.yaml"),
    )
    .unwrap();
    let canary: Canary = serde_json::from_value(parse_documents(&text).unwrap().remove(0)).unwrap();
    let analysis = canary.spec.analysis().unwrap();
    assert_eq!(analysis.interval(), std::time::Duration::from_secs(60));
    assert_eq!(analysis.max_weight(), 50);
    assert_eq!(analysis.next_step_weight(0), 10);
    assert_eq!(analysis.strategy(), serin::api::Strategy::Canary);
    assert_eq!(canary.spec.progress_deadline_seconds(), 60);
    assert_eq!(
        canary.spec.autoscaler_ref.as_ref().unwrap().api_version,
        "autoscaling/v2beta2"
    );
    let hooks = analysis.webhooks();
    assert_eq!(
        hooks[0].hook_type().unwrap(),
        serin::api::HookType::PreRollout
    );
    assert_eq!(hooks[1].hook_type().unwrap(), serin::api::HookType::Rollout);
    assert_eq!(hooks[1].timeout(), std::time::Duration::from_secs(5));
    let service = canary.spec.service.as_ref().unwrap();
    assert_eq!(service.retries.as_ref().unwrap().attempts, Some(3));
    assert_eq!(
        service
            .traffic_policy
            .as_ref()
            .unwrap()
            .tls
            .as_ref()
            .unwrap()
            .mode
            .as_deref(),
        Some("DISABLE")
    );
}

#[test]
fn legacy_manifest_is_normalised() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/flagger/canary-legacy-v1alpha3.yaml"),
    )
    .unwrap();
    let mut canary: Canary =
        serde_json::from_value(parse_documents(&text).unwrap().remove(0)).unwrap();
    canary.spec.normalize();
    let analysis = canary.spec.analysis.as_ref().unwrap();
    let builtins: Vec<_> = analysis.metrics().iter().map(|m| m.builtin()).collect();
    use serin::api::analysis::BuiltinMetric::*;
    assert_eq!(
        builtins,
        [Some(RequestSuccessRate), Some(RequestDuration), None]
    );
    assert_eq!(analysis.metrics()[0].threshold, Some(99.0));
    assert!(analysis.metrics()[2].has_query());
}

#[test]
fn committed_crds_match_the_generator() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds/crds.yaml");
    let generated = crd::render_yaml().unwrap();
    if std::env::var_os("SERIN_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap();
    assert!(
        committed == generated,
        "deploy/crds/crds.yaml is out of date: run `cargo run -p serin -- crds > deploy/crds/crds.yaml`"
    );
}

#[test]
fn crds_are_valid_crd_objects() {
    let docs = parse_documents(&crd::render_yaml().unwrap()).unwrap();
    let names: Vec<_> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "canaries.flagger.app",
            "metrictemplates.flagger.app",
            "alertproviders.flagger.app"
        ]
    );
    for doc in docs {
        let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_json::from_value(doc).unwrap();
        assert_eq!(crd.spec.scope, "Namespaced");
        assert!(
            crd.spec
                .versions
                .iter()
                .all(|v| v.subresources.as_ref().unwrap().status.is_some())
        );
    }
}

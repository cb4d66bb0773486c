//! `serin validate`: malformed fixtures produce the expected messages (golden files), exit codes.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serin::api::validation::Options;
use serin::cli::validate::validate_paths;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn malformed_fixtures_produce_the_expected_messages() {
    let dir = fixtures_dir().join("invalid");
    let files = yaml_files(&dir);
    assert!(files.len() >= 10);
    for file in files {
        check_golden(&dir, &file, |summary| {
            assert!(summary.errors > 0, "{} produced no error", file.display());
        });
    }
}

/// Deprecated spellings and absurd durations are warnings naming the replacement; the
/// manifests pass (exit status 0).
#[test]
fn deprecated_spellings_are_warnings() {
    let dir = fixtures_dir().join("warnings");
    let files = yaml_files(&dir);
    assert!(!files.is_empty());
    for file in files {
        check_golden(&dir, &file, |summary| {
            assert_eq!(summary.errors, 0, "{}", file.display());
            assert!(summary.warnings > 0, "{}", file.display());
        });
    }
    let out = serin()
        .arg("validate")
        .arg(dir.join("deprecated.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "apiVersion: flagger.app/v1alpha3 is deprecated; use flagger.app/v1beta1",
        "spec.canaryAnalysis: deprecated spelling: rename it to spec.analysis",
        "\"istio_requests_total\" is the deprecated name of the built-in check request-success-rate; use name: request-success-rate",
        "threshold: deprecated: use thresholdRange: {min: 99}",
        "use apiVersion: autoscaling/v2",
        "100000000m is above the 24h maximum; 24h is used",
        "100000000m is above the 1h maximum; 1h is used",
    ] {
        assert!(stdout.contains(expected), "{expected}\n{stdout}");
    }
}

/// `serin validate examples/`, the README's command, passes.
#[test]
fn the_examples_validate() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let out = serin().arg("validate").arg(&examples).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains(" 0 error(s)"));
}

/// One set of rules: every Canary of the refused corpus is rejected by `serin validate` and by
/// the check the controller runs before scheduling a Canary (which then gets an invalid-spec
/// event instead of a run). The corpus holds values a real API server refuses with the
/// generated CRDs but stores with an older CRD, and that the dev cluster always stores.
#[test]
fn the_controller_refuses_every_canary_validate_rejects() {
    use serin::api::manifest;
    use serin::api::{Canary, Provider};
    use serin::controller::runtime::canary_problems;

    let text =
        std::fs::read_to_string(fixtures_dir().join("invalid/controller-refused.yaml")).unwrap();
    let docs = manifest::parse_documents(&text).unwrap();
    let reports = manifest::check_yaml(&text, &Options::default()).unwrap();
    assert_eq!(docs.len(), reports.len());
    assert!(docs.len() >= 27, "{} cases", docs.len());
    for (doc, report) in docs.iter().zip(&reports) {
        let name = report.describe();
        assert!(
            report.problems.iter().any(|p| p.is_error()),
            "validate accepts {name}"
        );
        let canary: Canary = serde_json::from_value(doc.clone())
            .unwrap_or_else(|e| panic!("{name} does not decode as a Canary: {e}"));
        let problems = canary_problems(&canary, &Provider::Istio, false);
        assert!(!problems.is_empty(), "the controller would run {name}");
        // The controller says what validate says (its errors, in its words).
        for p in report.problems.iter().filter(|p| p.is_error()) {
            assert!(
                problems.iter().any(|c| c == &p.to_string()),
                "{name}: {p} missing from {problems:?}"
            );
        }
    }
}

fn check_golden(dir: &Path, file: &Path, check: impl Fn(&serin::cli::validate::Summary)) {
    let update = std::env::var_os("SERIN_UPDATE_GOLDEN").is_some();
    {
        let mut out = String::new();
        let summary = validate_paths(&[file.to_path_buf()], &Options::default(), false, &mut out);
        check(&summary);
        let prefix = format!("{}/", dir.display());
        let out = out.replace(&prefix, "");
        let expected_path = file.with_extension("expected");
        if update {
            std::fs::write(&expected_path, &out).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| {
            panic!(
                "missing {}; run with SERIN_UPDATE_GOLDEN=1",
                expected_path.display()
            )
        });
        assert_eq!(out, expected, "{}", file.display());
    }
}

fn serin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_serin"))
}

#[test]
fn exit_status_is_zero_for_valid_and_one_for_invalid_manifests() {
    let ok = serin()
        .arg("validate")
        .arg(fixtures_dir().join("seeds"))
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stderr).contains("7 document(s) checked: 0 error(s)"));

    let bad = serin()
        .arg("validate")
        .arg(fixtures_dir().join("invalid/weights.yaml"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stdout)
            .contains("stepWeight (60) is greater than maxWeight (50)")
    );

    let missing = serin()
        .args(["validate", "/nonexistent/file.yaml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stdout).contains("/nonexistent/file.yaml: error:"));
}

#[test]
fn reads_standard_input() {
    use std::io::Write;
    let mut child = serin()
        .args(["validate", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"apiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata: {name: x}\nspec: {type: slack}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "<stdin>: document 1 (AlertProvider x): error: spec: must set address or secretRef\n"
    );
}

/// Random mutations of every fixture never make the checker panic (a cheap, deterministic
/// companion of the cargo-fuzz target in fuzz/).
#[test]
fn mutated_fixtures_never_panic() {
    let mut inputs = Vec::new();
    for dir in ["seeds", "flagger", "invalid"] {
        for entry in std::fs::read_dir(fixtures_dir().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                inputs.push(std::fs::read(path).unwrap());
            }
        }
    }
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let tokens: &[&[u8]] = &[
        b"-1",
        b"999999999999999999999",
        b"null",
        b"[]",
        b"{}",
        b"\"\"",
        b"~",
        b"1.5e308",
        b": ",
        b"\n- ",
        b"&a",
        b"*a",
    ];
    for round in 0..800 {
        let base = &inputs[round % inputs.len()];
        let mut data = base.clone();
        for _ in 0..(1 + next() % 4) {
            if data.is_empty() {
                break;
            }
            let at = (next() as usize) % data.len();
            match next() % 4 {
                0 => data[at] = (next() % 256) as u8,
                1 => data.truncate(at),
                2 => {
                    let token = tokens[(next() as usize) % tokens.len()];
                    data.splice(at..at, token.iter().copied());
                }
                _ => {
                    let end = (at + (next() as usize % 64)).min(data.len());
                    let chunk: Vec<u8> = data[at..end].to_vec();
                    data.splice(at..at, chunk);
                }
            }
        }
        serin::api::manifest::fuzz_check(&data);
    }
}

//! `serin validate`: malformed fixtures produce the expected messages (golden files), exit codes.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serin::api::validation::Options;
use serin::cli::validate::validate_paths;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn malformed_fixtures_produce_the_expected_messages() {
    let dir = fixtures_dir().join("invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10);
    let update = std::env::var_os("SERIN_UPDATE_GOLDEN").is_some();
    for file in files {
        let mut out = String::new();
        let summary = validate_paths(
            std::slice::from_ref(&file),
            &Options::default(),
            false,
            &mut out,
        );
        assert!(summary.errors > 0, "{} produced no error", file.display());
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

//! `serin simulate`: the exit status tells the outcome (0 promoted, 1 rolled back, 2 undecided,
//! 3 unusable input), on the examples in examples/simulate.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/simulate")
}

fn simulate(script: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_serin"))
        .arg("simulate")
        .arg(examples().join("canary.yaml"))
        .arg("--metrics")
        .arg(script)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn exit_status_tells_the_outcome() {
    let (code, out, _) = simulate(&examples().join("promote.metrics"));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("outcome: promoted 10m0s after the new revision"),
        "{out}"
    );
    assert!(
        out.contains("Confirm-promotion check approve passed"),
        "{out}"
    );

    let (code, out, _) = simulate(&examples().join("rollback.metrics"));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("outcome: rolled back 5m0s after the new revision"),
        "{out}"
    );
    assert!(
        out.contains("canary worse than primary: mann-whitney"),
        "{out}"
    );

    let dir = std::env::temp_dir().join(format!("serin-simulate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // No values for the metrics within 5 minutes: neither outcome.
    let short = dir.join("short.yaml");
    std::fs::write(&short, "duration: 3m\n").unwrap();
    let (code, out, _) = simulate(&short);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("outcome: neither promoted nor rolled back"),
        "{out}"
    );
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "revisions:\n  - {at: later}\n").unwrap();
    let (code, _, err) = simulate(&bad);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 3);
    assert!(
        err.contains("revisions[0].at: cannot parse \"later\" as a time"),
        "{err}"
    );
}

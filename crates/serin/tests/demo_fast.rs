#![allow(clippy::unwrap_used)]
//! `serin demo --fast` end to end, as CI runs it: the real binary with its dev cluster, dev mesh,
//! sample-app processes, a real Prometheus (Debian package), the loadtester and the controller.
//! Asserts the story's outcomes and that no process is left behind.

#[path = "prometheus_support/mod.rs"]
mod prometheus_support;

use std::process::Command;

use serde_json::Value;

fn alive(pid: u64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn fast_demo_promotes_ab_tests_and_rolls_back() {
    if prometheus_support::require_prometheus("demo_fast").is_none() {
        return;
    }
    // The seed's conformance-test webhooks run curl in the loadtester.
    let has_curl = Command::new("curl").arg("--version").output().is_ok();
    if !has_curl {
        assert!(
            std::env::var_os("CI").is_none(),
            "curl is not installed (apt-get install -y curl); CI must run demo_fast"
        );
        eprintln!(
            "\n\n*** SKIPPING demo_fast: curl is not installed (apt-get install -y curl) ***\n\n"
        );
        return;
    }
    let summary = std::env::temp_dir().join(format!("serin-demo-test-{}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_serin"))
        .args(["demo", "--fast", "--summary"])
        .arg(&summary)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let _ = std::fs::remove_file(&summary);
    // The controller serves the web dashboard: the demo waited for it to answer, then printed it.
    assert!(
        stdout.contains("  dashboard: http://127.0.0.1:"),
        "no dashboard URL in:\n{stdout}"
    );

    // Promotions and the rollback.
    assert_eq!(
        s["backend_after_promotion"],
        "ghcr.io/stefanprodan/podinfo:5.0.1"
    );
    assert_eq!(s["frontend_after_ab"], "ghcr.io/stefanprodan/podinfo:5.0.1");
    assert_eq!(
        s["backend_after_rollback"],
        "ghcr.io/stefanprodan/podinfo:5.0.1"
    );
    assert_eq!(s["backend_phase"], "Failed");
    assert_eq!(s["frontend_phase"], "Succeeded");

    // A/B routing: matching users reached only the canary, the others only the primary.
    let rows = s["ab_counts"].as_array().unwrap();
    let count = |users: &str, workload: &str| -> u64 {
        rows.iter()
            .filter(|r| r["users"] == users && r["workload"] == workload)
            .map(|r| r["requests"].as_u64().unwrap())
            .sum()
    };
    let total = |users: &str| -> u64 {
        rows.iter()
            .filter(|r| r["users"] == users)
            .map(|r| r["requests"].as_u64().unwrap())
            .sum()
    };
    for users in ["firefox", "insider"] {
        assert!(count(users, "frontend") > 0, "{users}: {rows:?}");
        assert_eq!(count(users, "frontend"), total(users), "{users}: {rows:?}");
    }
    assert!(count("others", "frontend-primary") > 0, "{rows:?}");
    assert_eq!(
        count("others", "frontend-primary"),
        total("others"),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .all(|r| r["users"] != "others" || r["version"] == "5.0.0")
    );

    // The rollback names the measured metrics, as Flagger's events do.
    let events: Vec<&str> = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    let has = |prefix: &str| events.iter().any(|e| e.starts_with(prefix));
    assert!(
        has("backend: Advance backend.prod canary weight 25"),
        "{events:#?}"
    );
    assert!(has(
        "backend: Promotion completed! Scaling down backend.prod"
    ));
    assert!(
        has("frontend: Advance frontend.prod canary iteration 3/3"),
        "{events:#?}"
    );
    let halts: Vec<&&str> = events
        .iter()
        .filter(|e| {
            e.starts_with("backend: Halt backend.prod advancement error-rate ")
                || e.starts_with("backend: Halt backend.prod advancement latency ")
        })
        .collect();
    assert!(!halts.is_empty(), "{events:#?}");
    for h in &halts {
        // "<metric> <value> > <threshold>" with a measured value.
        let words: Vec<&str> = h.split(' ').collect();
        let value: f64 = words[words.len() - 3].parse().unwrap();
        assert!(value > 1.0, "{h}");
    }
    assert!(has(
        "backend: Rolling back backend.prod failed checks threshold reached 3"
    ));
    assert!(has("backend: Canary failed! Scaling down backend.prod"));
    let notes = s["notifications"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n["subject"] == "backend.prod" && n["color"] == "danger"),
        "{notes:?}"
    );

    // Nothing left behind: controller, loadtester, Prometheus and every sample-app pod.
    let pids: Vec<u64> = s["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    assert!(pids.len() >= 5, "{pids:?}");
    let left: Vec<u64> = pids.into_iter().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "still running: {left:?}");
    assert!(stdout.contains("== Summary"), "{stdout}");
}

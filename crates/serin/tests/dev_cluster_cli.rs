//! `serin dev-cluster` as a user runs it: the kubeconfig appears once the server serves, kubectl
//! works through it, SIGTERM stops it cleanly and `--dump` writes the objects.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Option<std::process::Output> {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .ok()
}

#[test]
fn serves_writes_the_kubeconfig_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("serin-dev-cluster-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    let dump = dir.join("dump.yaml");
    let _ = std::fs::remove_file(&kubeconfig);

    let mut child = Command::new(env!("CARGO_BIN_EXE_serin"))
        .args(["dev-cluster", "-kubeconfig"])
        .arg(&kubeconfig)
        .arg("--dump")
        .arg(&dump)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let started = Instant::now();
    while !kubeconfig.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no kubeconfig after 20 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "dev-cluster exited early"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Written atomically once serving: the file is complete and the server answers at once.
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(text.contains("server: https://127.0.0.1:"), "{text}");
    assert!(text.contains("token:"), "{text}");

    match which_kubectl() {
        false => eprintln!("kubectl not found: skipping the kubectl part of this test"),
        true => {
            let out = kubectl(&kubeconfig, &["get", "namespaces", "-o", "name"]).unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).contains("namespace/default"));
            let mut apply = Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(["apply", "-f", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            apply
                .stdin
                .take()
                .unwrap()
                .write_all(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kept, namespace: default}\ndata: {a: b}\n")
                .unwrap();
            let out = apply.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    let dumped = std::fs::read_to_string(&dump).unwrap();
    assert!(dumped.contains("kind: Namespace"), "{dumped}");
    if which_kubectl() {
        assert!(dumped.contains("name: kept"), "{dumped}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn which_kubectl() -> bool {
    Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success())
}

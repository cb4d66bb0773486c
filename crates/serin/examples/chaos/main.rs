//! Chaos suite (issue 19): healthy and hostile Canaries on an in-process dev cluster, analysed by
//! the real `serin controller` binary (one, or two under leader election) that is SIGKILLed at
//! random moments, with API faults, while invariants are checked continuously. See
//! `tests/chaos/README.md`; figures in `docs/reliability.md`.
//!
//! ```sh
//! cargo build -p serin --bin serin --example chaos
//! target/debug/examples/chaos --serin target/debug/serin --profile short
//! ```
//!
//! Exit status 0 when every invariant held and every Canary ended in its expected phase, 1
//! otherwise (the report names each violation).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;
use devcluster::{Config, DevCluster};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

mod controllers;
mod fakes;
mod invariants;
mod objects;

use controllers::{Controllers, log_text};
use fakes::{Fakes, start_fakes};
use invariants::{Monitor, sample};
use objects::{cases, create_objects, install};

const NS: &str = "chaos";
const ISTIO_CRDS: &str = include_str!("../../../../examples/istio-crds.yaml");
/// The weight at which healthy canaries are promoted (steps of 20).
const MAX_WEIGHT: i64 = 60;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser, Debug)]
#[command(about = "Chaos suite of `serin controller` on the dev cluster")]
struct Args {
    /// The `serin` binary to run as the controller.
    #[arg(long, default_value = "target/debug/serin")]
    serin: PathBuf,
    /// `short` (CI: 4 healthy canaries, 2 kills, 150 s budget) or `long` (20 healthy canaries,
    /// 8 kills, API faults, 600 s budget); the flags below override the profile.
    #[arg(long, default_value = "short")]
    profile: String,
    /// Healthy canaries (expected: Succeeded).
    #[arg(long)]
    canaries: Option<usize>,
    /// SIGKILLs of a controller at random moments.
    #[arg(long)]
    kills: Option<usize>,
    /// Run two controllers under leader election and kill the leader.
    #[arg(long)]
    leader: bool,
    /// API faults, `VERB=CODE:SHARE` as `serin dev-cluster --fail` (repeatable).
    #[arg(long = "fail")]
    fail: Vec<String>,
    /// Latency added to every API request.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// End every watch stream this often (0: never).
    #[arg(long, default_value_t = 0)]
    drop_watches_secs: u64,
    /// Also store a Canary that no client can decode (threshold 2147483648).
    #[arg(long)]
    undecodable: bool,
    /// Leave out the hostile Canaries.
    #[arg(long)]
    no_hostile: bool,
    /// Give up after this long (seconds).
    #[arg(long)]
    budget_secs: Option<u64>,
    /// The kills happen at random moments within this many seconds after the new revisions.
    #[arg(long)]
    kill_window_secs: Option<u64>,
    /// Seed of the kill schedule.
    #[arg(long, default_value_t = 19)]
    seed: u64,
    /// Keep the work directory (logs, kubeconfig).
    #[arg(long)]
    keep: bool,
}

struct Profile {
    canaries: usize,
    kills: usize,
    budget: Duration,
    kill_window: Duration,
    faults: Vec<String>,
    latency_ms: u64,
    drop_watches_secs: u64,
}

impl Args {
    fn profile(&self) -> Result<Profile, BoxError> {
        let mut p = match self.profile.as_str() {
            "short" => Profile {
                canaries: 4,
                kills: 2,
                budget: Duration::from_secs(150),
                kill_window: Duration::from_secs(25),
                faults: vec![],
                latency_ms: 0,
                drop_watches_secs: 0,
            },
            "long" => Profile {
                canaries: 20,
                kills: 8,
                budget: Duration::from_secs(600),
                kill_window: Duration::from_secs(240),
                faults: vec![
                    "patch=409:0.1".into(),
                    "update=503:0.1".into(),
                    "get=500:0.05".into(),
                ],
                latency_ms: 20,
                drop_watches_secs: 5,
            },
            other => return Err(format!("unknown profile {other:?} (short, long)").into()),
        };
        if let Some(n) = self.canaries {
            p.canaries = n;
        }
        if let Some(n) = self.kills {
            p.kills = n;
        }
        if let Some(s) = self.budget_secs {
            p.budget = Duration::from_secs(s);
        }
        if let Some(s) = self.kill_window_secs {
            p.kill_window = Duration::from_secs(s);
        }
        if !self.fail.is_empty() {
            p.faults = self.fail.clone();
        }
        if self.latency_ms > 0 {
            p.latency_ms = self.latency_ms;
        }
        if self.drop_watches_secs > 0 {
            p.drop_watches_secs = self.drop_watches_secs;
        }
        Ok(p)
    }
}

/// What a Canary is expected to end as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Succeeded,
    Failed,
    /// Refused as an invalid spec: never runs, gets an `invalid canary spec` event.
    Refused,
}

struct Case {
    name: String,
    expect: Expect,
    what: &'static str,
    analysis: Value,
    extra_spec: Value,
}

/// xorshift64*: the kill schedule, reproducible from `--seed`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

fn dynamic(
    client: &Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    Api::namespaced_with(client.clone(), NS, &resource)
}

// ---------------------------------------------------------------------------------------------

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("chaos: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = tokio::select! {
        r = run() => r,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        _ = term.recv() => Err("terminated".into()),
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chaos: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<bool, BoxError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let profile = args.profile()?;
    if !args.serin.exists() {
        return Err(format!(
            "{} not found: build it or pass --serin",
            args.serin.display()
        )
        .into());
    }
    let work = std::env::temp_dir().join(format!("serin-chaos-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let kubeconfig = work.join("kubeconfig");

    let dev = DevCluster::start_with(Config {
        ready_delay: Duration::from_millis(300),
        ..Config::default()
    })
    .await?;
    dev.write_kubeconfig(&kubeconfig)?;
    let client = dev.client();
    install(&client).await?;
    let fakes = Fakes::default();
    let fake_url = start_fakes(fakes.clone()).await?;
    let cases = cases(&profile, !args.no_hostile, &fake_url);
    create_objects(&client, &cases, args.undecodable, &fake_url).await?;
    let expected: BTreeMap<String, Expect> =
        cases.iter().map(|c| (c.name.clone(), c.expect)).collect();
    println!(
        "profile={} healthy={} hostile={} undecodable={} kills={} leader={} faults={:?} latency_ms={} drop_watches_secs={} seed={} work={}",
        args.profile,
        profile.canaries,
        cases.len() - profile.canaries,
        args.undecodable,
        profile.kills,
        args.leader,
        profile.faults,
        profile.latency_ms,
        profile.drop_watches_secs,
        args.seed,
        work.display()
    );

    let mut controllers = Controllers {
        serin: args.serin.clone(),
        kubeconfig: kubeconfig.clone(),
        metrics_server: fake_url.clone(),
        leader: args.leader,
        work: work.clone(),
        running: Vec::new(),
        starts: 0,
    };
    controllers.spawn()?;
    if args.leader {
        controllers.spawn()?;
    }

    // Initialisation, without faults.
    let t0 = Instant::now();
    let interval = Duration::from_secs(2);
    let mut monitor = Monitor::default();
    let runnable: Vec<&Case> = cases
        .iter()
        .filter(|c| c.expect != Expect::Refused)
        .collect();
    loop {
        sample(&client, &expected, &mut monitor, interval).await?;
        let ready = runnable
            .iter()
            .filter(|c| {
                monitor
                    .objects
                    .get(&c.name)
                    .is_some_and(|o| o.phase == "Initialized")
            })
            .count();
        if ready == runnable.len() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(90) {
            println!("only {ready} of {} Initialized after 90 s", runnable.len());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("initialised in {:.1} s", t0.elapsed().as_secs_f64());

    // Faults on, then a new revision for every Canary.
    for spec in &profile.faults {
        dev.faults().add_spec(spec)?;
    }
    if profile.latency_ms > 0 {
        dev.faults()
            .set_latency(Duration::from_millis(profile.latency_ms));
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    for c in &cases {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "example/app:2.0.0"}]}}}});
        // The benchmark's own writes must get through the faults.
        for _ in 0..20 {
            match deployments
                .patch(&c.name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                Ok(_) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    let start = Instant::now();
    let budget = profile.budget;
    let mut rng = Rng(args.seed.max(1));
    // Kill moments at random within the kill window (while the canaries run).
    let window = profile.kill_window.min(budget).as_millis() as u64;
    let mut kill_at: Vec<Duration> = (0..profile.kills)
        .map(|_| Duration::from_millis(rng.below(window)))
        .collect();
    kill_at.sort();
    let mut kills = kill_at.into_iter().peekable();
    let mut last_drop = Instant::now();
    let mut succeeded_at: BTreeMap<String, f64> = BTreeMap::new();
    let mut kill_log = Vec::new();
    let finished = |m: &Monitor| {
        expected.iter().all(|(name, e)| {
            let phase = m.objects.get(name).map(|o| o.phase.as_str()).unwrap_or("");
            match e {
                Expect::Succeeded => phase == "Succeeded",
                Expect::Failed => phase == "Failed",
                Expect::Refused => true,
            }
        })
    };
    while start.elapsed() < budget {
        if kills.peek().is_some_and(|at| start.elapsed() >= *at) {
            kills.next();
            let what = controllers.kill_one().await?;
            println!("{:>6.1} s {what}", start.elapsed().as_secs_f64());
            kill_log.push(what);
        }
        if profile.drop_watches_secs > 0
            && last_drop.elapsed() >= Duration::from_secs(profile.drop_watches_secs)
        {
            dev.faults().drop_watches();
            last_drop = Instant::now();
        }
        if let Err(e) = sample(&client, &expected, &mut monitor, interval).await {
            // The monitor's own reads go through the faults too.
            let _ = e;
        }
        for (name, o) in &monitor.objects {
            if o.phase == "Succeeded" && !succeeded_at.contains_key(name) {
                succeeded_at.insert(name.clone(), start.elapsed().as_secs_f64());
            }
        }
        if finished(&monitor) && kills.peek().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    dev.faults().clear();
    // One more sample without faults, after a settle.
    tokio::time::sleep(interval * 2).await;
    let _ = sample(&client, &expected, &mut monitor, interval).await;
    controllers.stop_all().await;

    // Final phases.
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    let events = events.list(&ListParams::default()).await?.items;
    let mut wrong = Vec::new();
    for c in &cases {
        let phase = monitor
            .objects
            .get(&c.name)
            .map(|o| o.phase.clone())
            .unwrap_or_default();
        let ok = match c.expect {
            Expect::Succeeded => phase == "Succeeded",
            Expect::Failed => phase == "Failed",
            Expect::Refused => events.iter().any(|e| {
                e.involved_object.name.as_deref() == Some(c.name.as_str())
                    && e.message
                        .as_deref()
                        .is_some_and(|m| m.starts_with("invalid canary spec"))
            }),
        };
        if !ok {
            wrong.push(format!(
                "{} ({}): expected {:?}, ended {phase:?}",
                c.name, c.what, c.expect
            ));
        }
    }
    for w in &wrong {
        monitor.violation(format!("final phase: {w}"));
    }
    // No panic in any controller log; texts in words.
    for log in controllers.logs() {
        let text = log_text(&log);
        if text.contains("panicked") {
            monitor.violation(format!("{}: a panic", log.display()));
        }
        if text.contains("Status { status: Some(") {
            monitor.violation(format!(
                "{}: a Rust debug dump of an API error",
                log.display()
            ));
        }
    }
    // Template reads under API faults: held steps, and failed checks caused by the API server.
    let mut held = 0;
    let mut template_failures = 0;
    for log in controllers.logs() {
        let text = log_text(&log);
        held += text
            .matches("cannot be read, retrying at the next interval")
            .count();
        template_failures += text
            .lines()
            .filter(|l| l.contains("Metric template healthy.") && l.contains("error:"))
            .count();
    }
    if template_failures > 0 {
        monitor.violation(format!(
            "{template_failures} failed checks of healthy canaries caused by reading their MetricTemplate"
        ));
    }
    // Healthy canaries kept progressing: all Succeeded, and when.
    let mut healthy: Vec<f64> = cases
        .iter()
        .filter(|c| c.what == "healthy")
        .filter_map(|c| succeeded_at.get(&c.name).copied())
        .collect();
    healthy.sort_by(f64::total_cmp);

    println!("---");
    println!("template reads held after retries: {held}");
    println!(
        "ran {elapsed:.1} s, {} samples, {} controller starts, {} kills, {} Prometheus queries, {} webhook calls",
        monitor.samples,
        controllers.starts,
        kill_log.len(),
        fakes.queries.load(Ordering::Relaxed),
        fakes.hooks.load(Ordering::Relaxed)
    );
    if let (Some(first), Some(last)) = (healthy.first(), healthy.last()) {
        println!(
            "healthy canaries Succeeded: {} of {} (first after {first:.1} s, last after {last:.1} s)",
            healthy.len(),
            profile.canaries
        );
    } else {
        println!("healthy canaries Succeeded: 0 of {}", profile.canaries);
    }
    for c in &cases {
        let o = monitor.objects.get(&c.name);
        println!(
            "  {:<18} {:<48} expected {:<9} ended {:<12} max canary weight {:<3} longest status/routes disagreement {:.1} s",
            c.name,
            c.what,
            format!("{:?}", c.expect),
            o.map(|o| o.phase.as_str()).unwrap_or("?"),
            o.map(|o| o.max_canary_weight).unwrap_or(0),
            o.map(|o| o.max_disagree_secs).unwrap_or(0.0)
        );
    }
    println!("violations: {}", monitor.violations.len());
    for v in &monitor.violations {
        println!("  {v}");
    }
    if args.keep || !monitor.violations.is_empty() {
        println!("logs kept in {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(monitor.violations.is_empty())
}

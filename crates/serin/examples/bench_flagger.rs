//! Head-to-head benchmark (issue 14): Flagger and Serin one after the other on the same real
//! control plane, with the same N Canaries and the same workload simulator. Run through
//! `bench/flagger/run.sh`, which starts the control plane, the simulator and the controllers'
//! identity; see `bench/flagger/README.md`.
//!
//! For each controller: N Deployments and Canaries (`istio`, 10 s interval, no metrics, no
//! webhooks) in a namespace of their own; the controller binary started as a child process
//! restricted to that namespace; once all are Initialized an idle window, then one burst of new
//! revisions (every Deployment's image changed, spread over `--spread`), until all are
//! Succeeded. Measured: revision-detection latency (image change → the controller's `New
//! revision detected!` log line), the lag of analysis steps behind their due time (the gap
//! between two consecutive step log lines of a Canary minus the interval), the time for all N
//! to reach Succeeded, the controller's peak RSS (VmHWM) and CPU seconds (`/proc`), and its API
//! requests: the API server's own count of the requests it dispatched for the controllers'
//! FlowSchema (`apiserver_flowcontrol_dispatched_requests_total{flow_schema=…}`), per analysis
//! step. Both controllers log every Event they record, with the same text, the Canary and a
//! timestamp (`ts`); the log and not the Events is the source because Flagger's Events reach
//! the API server late or never under its client-side rate limit (how many step Events arrived
//! in time is reported too, from a watch).
#![forbid(unsafe_code)]

mod bench_common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench_common::{
    BoxError, EventLog, Pending, clock_ticks_per_second, create_objects, free_port, name,
    parse_duration, percentile, phases, proc_cpu_ticks, proc_status_kb, set_image,
    spawn_detection_watch,
};
use clap::{Parser, ValueEnum};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "Flagger and Serin, one after the other, on the same API server")]
struct Args {
    /// Kubeconfig of the benchmark's own client (objects, image changes, watches, /metrics).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Kubeconfig the controllers use: an identity of their own, matched by `--flow-schema`.
    #[arg(long)]
    controller_kubeconfig: PathBuf,
    /// The FlowSchema that matches the controllers' identity (and nothing else).
    #[arg(long, default_value = "bench-controller")]
    flow_schema: String,
    /// Flagger's binary.
    #[arg(long)]
    flagger: PathBuf,
    /// Serin's binary.
    #[arg(long)]
    serin: PathBuf,
    /// Only this controller (default: Flagger, then Serin).
    #[arg(long, value_enum)]
    only: Option<Controller>,
    /// Number of Deployments and Canaries per controller.
    #[arg(long, default_value_t = 100)]
    canaries: usize,
    /// Analysis interval of every Canary.
    #[arg(long, default_value = "10s")]
    interval: String,
    /// The new revisions of all Canaries are spread evenly over this long.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    spread: Duration,
    /// Idle window measured once all are Initialized, before the new revisions.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    idle: Duration,
    /// `-threadiness` of both controllers.
    #[arg(long, default_value_t = 2)]
    threadiness: usize,
    /// Give up when not all Canaries are Initialized after this long.
    #[arg(long, default_value = "900s", value_parser = parse_duration)]
    init_timeout: Duration,
    /// Give up when not all Canaries are Succeeded this long after the first new revision.
    #[arg(long, default_value = "1200s", value_parser = parse_duration)]
    run_timeout: Duration,
    /// Where the controllers' logs go (kept).
    #[arg(long, default_value = "/tmp/serin-bench-flagger")]
    work: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Controller {
    Flagger,
    Serin,
}

impl Controller {
    fn label(self) -> &'static str {
        match self {
            Controller::Flagger => "flagger",
            Controller::Serin => "serin",
        }
    }

    /// The command line: the same settings in each controller's spelling.
    fn command(self, args: &Args, ns: &str, port: u16) -> tokio::process::Command {
        let kubeconfig = args.controller_kubeconfig.display().to_string();
        let port = port.to_string();
        let threadiness = args.threadiness.to_string();
        let settings = [
            ("kubeconfig", kubeconfig.as_str()),
            ("namespace", ns),
            ("mesh-provider", "istio"),
            ("metrics-server", "http://127.0.0.1:1"),
            ("port", port.as_str()),
            ("log-level", "info"),
            ("threadiness", threadiness.as_str()),
        ];
        let (mut cmd, dash) = match self {
            Controller::Flagger => (tokio::process::Command::new(&args.flagger), "-"),
            Controller::Serin => {
                let mut c = tokio::process::Command::new(&args.serin);
                c.arg("controller");
                (c, "--")
            }
        };
        for (flag, value) in settings {
            cmd.arg(format!("{dash}{flag}")).arg(value);
        }
        cmd
    }
}

/// What one controller's run measured.
struct Figures {
    init_secs: f64,
    idle_requests_per_sec: f64,
    idle_cpu_per_sec: f64,
    detection: Vec<f64>,
    detection_missing: usize,
    step_lag: Vec<f64>,
    steps: usize,
    step_events_in_api: usize,
    all_succeeded_secs: Option<f64>,
    window_secs: f64,
    window_cpu: f64,
    total_cpu: f64,
    peak_rss_mb: f64,
    window_requests: f64,
    all_requests: f64,
    load_before: String,
    load_after: String,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_string())
}

async fn client_for(kubeconfig: &Path) -> Result<Client, BoxError> {
    let kc = Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// The API server's own request counts: (requests dispatched for `flow_schema`, all requests).
async fn apiserver_requests(client: &Client, flow_schema: &str) -> Result<(f64, f64), BoxError> {
    let text = client
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await?;
    let label = format!("flow_schema=\"{flow_schema}\"");
    let mut ours = 0.0;
    let mut all = 0.0;
    for line in text.lines() {
        let value = || {
            line.rsplit_once(' ')
                .and_then(|(_, v)| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        if line.starts_with("apiserver_flowcontrol_dispatched_requests_total{")
            && line.contains(&label)
        {
            ours += value();
        } else if line.starts_with("apiserver_request_total{") {
            all += value();
        }
    }
    Ok((ours, all))
}

/// Step Events: one per analysis step that moves a run (weights, promotion, finalising).
fn is_step(message: &str) -> bool {
    message.starts_with("Advance ")
        || message.starts_with("Copying ")
        || message.starts_with("Routing all traffic to primary")
        || message.starts_with("Promotion completed!")
}

/// The lines of a controller's JSON log that name a Canary: `(canary name, msg, ts)`. Flagger
/// and Serin both write `ts` (RFC 3339), `msg` and `canary` (`<name>.<namespace>`).
fn log_records(path: &Path) -> Result<Vec<(String, String, Timestamp)>, BoxError> {
    let text = std::fs::read_to_string(path)?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.starts_with('{')) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let field = |k: &str| v.get(k).and_then(|x| x.as_str());
        let (Some(canary), Some(msg), Some(ts)) = (field("canary"), field("msg"), field("ts"))
        else {
            continue;
        };
        let Ok(ts) = ts.parse::<Timestamp>() else {
            continue;
        };
        let name = canary.split_once('.').map_or(canary, |(n, _)| n);
        out.push((name.to_string(), msg.to_string(), ts));
    }
    Ok(out)
}

fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    (to.as_nanosecond() - from.as_nanosecond()) as f64 / 1e9
}

/// Detection latencies: for each Canary whose image was changed at `sent[canary]`, the first
/// `New revision detected!` line after it. Also how many were never seen.
fn detections(
    records: &[(String, String, Timestamp)],
    sent: &HashMap<String, Timestamp>,
) -> (Vec<f64>, usize) {
    let mut found: HashMap<&str, f64> = HashMap::new();
    for (canary, msg, ts) in records {
        let Some(at) = sent.get(canary) else {
            continue;
        };
        if *ts >= *at && msg.starts_with("New revision detected!") {
            found
                .entry(canary)
                .or_insert_with(|| seconds_between(*at, *ts));
        }
    }
    let mut v: Vec<f64> = found.values().copied().collect();
    v.sort_by(f64::total_cmp);
    (v, sent.len() - found.len())
}

/// Step lags after `since`: for each Canary, the first line of each distinct step message, in
/// order; each gap between two consecutive ones minus `interval`. Also the number of steps.
fn step_lags(
    records: &[(String, String, Timestamp)],
    since: Timestamp,
    interval: Duration,
) -> (Vec<f64>, usize) {
    let mut seen = HashSet::new();
    let mut per_canary: HashMap<&str, Vec<Timestamp>> = HashMap::new();
    for (canary, msg, ts) in records {
        if *ts < since || !is_step(msg) || !seen.insert((canary, msg)) {
            continue;
        }
        per_canary.entry(canary).or_default().push(*ts);
    }
    let steps = per_canary.values().map(Vec::len).sum();
    let mut lags = Vec::new();
    for times in per_canary.values_mut() {
        times.sort();
        for pair in times.windows(2) {
            lags.push(seconds_between(pair[0], pair[1]) - interval.as_secs_f64());
        }
    }
    lags.sort_by(f64::total_cmp);
    (lags, steps)
}

/// How many distinct step Events of the Canaries arrived at the watch after `since`.
fn step_events_seen(log: &EventLog, since: Instant) -> usize {
    let log = log.lock().unwrap_or_else(|e| e.into_inner());
    log.iter()
        .filter(|(_, message, at)| *at >= since && is_step(message))
        .map(|(canary, message, _)| (canary, message))
        .collect::<HashSet<_>>()
        .len()
}

async fn wait_for_phase(
    client: &Client,
    ns: &str,
    phase: &str,
    n: usize,
    timeout: Duration,
    child: &mut tokio::process::Child,
) -> Result<Option<f64>, BoxError> {
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(format!("the controller exited: {status}").into());
        }
        let p = phases(client, ns).await?;
        if p.get(phase).copied().unwrap_or(0) == n {
            return Ok(Some(t.elapsed().as_secs_f64()));
        }
        if t.elapsed() > timeout {
            println!("  not all {phase} after {timeout:?}: {p:?}");
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn run_one(args: &Args, client: &Client, which: Controller) -> Result<Figures, BoxError> {
    let n = args.canaries;
    let ns = format!("h2h-{}-{n}", which.label());
    let interval = parse_duration(&args.interval)?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
        )
        .await?;
    let t = Instant::now();
    create_objects(client, &ns, n, &args.interval, true).await?;
    println!(
        "[{}] created {n} Deployments and {n} Canaries in namespace {ns} in {:.1} s",
        which.label(),
        t.elapsed().as_secs_f64()
    );

    let log_path = args.work.join(format!("{ns}.log"));
    let log = std::fs::File::create(&log_path)?;
    let (requests_start, _) = apiserver_requests(client, &args.flow_schema).await?;
    let mut child = which
        .command(args, &ns, free_port()?)
        .stderr(log.try_clone()?)
        .stdout(log)
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().ok_or("the controller exited at once")?;
    println!("[{}] pid {pid}, log {}", which.label(), log_path.display());
    let tck = clock_ticks_per_second();

    let init_secs = wait_for_phase(client, &ns, "Initialized", n, args.init_timeout, &mut child)
        .await?
        .ok_or("not all Canaries Initialized")?;
    println!(
        "[{}] all {n} Initialized after {init_secs:.1} s",
        which.label()
    );

    // Idle: every Canary Initialized, nothing to do.
    let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let events: EventLog = Arc::new(Mutex::new(Vec::new()));
    let ready = spawn_detection_watch(
        client.clone(),
        &ns,
        pending.clone(),
        latencies.clone(),
        Some(events.clone()),
    );
    let _ = tokio::time::timeout(Duration::from_secs(60), ready).await;
    let (idle_req0, _) = apiserver_requests(client, &args.flow_schema).await?;
    let idle_cpu0 = proc_cpu_ticks(pid)?;
    let idle_t0 = Instant::now();
    tokio::time::sleep(args.idle).await;
    let idle_secs = idle_t0.elapsed().as_secs_f64();
    let (idle_req1, _) = apiserver_requests(client, &args.flow_schema).await?;
    let idle_cpu1 = proc_cpu_ticks(pid)?;

    // The burst.
    let load_before = loadavg();
    let (req0, _) = apiserver_requests(client, &args.flow_schema).await?;
    let cpu0 = proc_cpu_ticks(pid)?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let gap = args.spread.div_f64(n.max(1) as f64);
    let t0 = Instant::now();
    let ts0 = Timestamp::now();
    let mut sent = HashMap::new();
    for i in 0..n {
        tokio::time::sleep_until((t0 + gap.mul_f64(i as f64)).into()).await;
        sent.insert(name(i), Timestamp::now());
        set_image(&deployments, &name(i), "example/app:2.0.0").await?;
    }
    let all_succeeded = wait_for_phase(client, &ns, "Succeeded", n, args.run_timeout, &mut child)
        .await?
        .map(|_| t0.elapsed().as_secs_f64());
    // The last Events reach the watch.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let window_secs = t0.elapsed().as_secs_f64();
    let (req1, _) = apiserver_requests(client, &args.flow_schema).await?;
    let cpu1 = proc_cpu_ticks(pid)?;
    let peak_rss_mb = proc_status_kb(pid, "VmHWM:")? as f64 / 1024.0;
    let load_after = loadavg();
    let _ = child.kill().await;

    let records = log_records(&log_path)?;
    let (detection, detection_missing) = detections(&records, &sent);
    let (step_lag, steps) = step_lags(&records, ts0, interval);
    let step_events_in_api = step_events_seen(&events, t0);
    Ok(Figures {
        init_secs,
        idle_requests_per_sec: (idle_req1 - idle_req0) / idle_secs,
        idle_cpu_per_sec: (idle_cpu1 - idle_cpu0) as f64 / tck / idle_secs,
        detection,
        detection_missing,
        step_lag,
        steps,
        step_events_in_api,
        all_succeeded_secs: all_succeeded,
        window_secs,
        window_cpu: (cpu1 - cpu0) as f64 / tck,
        total_cpu: cpu1 as f64 / tck,
        peak_rss_mb,
        window_requests: req1 - req0,
        all_requests: req1 - requests_start,
        load_before,
        load_after,
    })
}

fn report(which: Controller, f: &Figures) {
    let ms = |v: &[f64], q: f64| percentile(v, q) * 1000.0;
    println!("== {}", which.label());
    println!(
        "  initialisation: {:.1} s; idle: {:.1} requests/s, {:.3} CPU s/s",
        f.init_secs, f.idle_requests_per_sec, f.idle_cpu_per_sec
    );
    println!(
        "  revision detection: n={} (missing {}) p50={:.0} ms p99={:.0} ms max={:.0} ms",
        f.detection.len(),
        f.detection_missing,
        ms(&f.detection, 0.5),
        ms(&f.detection, 0.99),
        f.detection.last().copied().unwrap_or(f64::NAN) * 1000.0,
    );
    println!(
        "  step lag (gap between step log lines minus the interval): n={} p50={:.0} ms p99={:.0} ms max={:.0} ms",
        f.step_lag.len(),
        ms(&f.step_lag, 0.5),
        ms(&f.step_lag, 0.99),
        f.step_lag.last().copied().unwrap_or(f64::NAN) * 1000.0,
    );
    println!(
        "  all Succeeded: {} after the first new revision",
        f.all_succeeded_secs
            .map_or("never".to_string(), |s| format!("{s:.1} s"))
    );
    println!(
        "  window {:.1} s: {:.2} CPU s ({:.2} CPU s in all), peak RSS {:.1} MB",
        f.window_secs, f.window_cpu, f.total_cpu, f.peak_rss_mb
    );
    println!(
        "  step Events that reached the API server by the end of the window: {} of {}",
        f.step_events_in_api, f.steps
    );
    println!(
        "  API requests (the API server's count for the controllers' FlowSchema): {:.0} in the window, {} steps, {:.1} per step; {:.0} since start",
        f.window_requests,
        f.steps,
        f.window_requests / f.steps.max(1) as f64,
        f.all_requests,
    );
    println!(
        "  load average before/after the burst: {} / {}",
        f.load_before, f.load_after
    );
}

/// One row of the comparison: the figure, Flagger's, Serin's and Serin/Flagger.
fn row(label: &str, flagger: f64, serin: f64, unit: &str, digits: usize) {
    println!(
        "| {label} | {flagger:.digits$} {unit} | {serin:.digits$} {unit} | {:.2} |",
        serin / flagger
    );
}

fn compare(n: usize, f: &Figures, s: &Figures) {
    let p = |v: &[f64], q: f64| percentile(v, q) * 1000.0;
    println!();
    println!("N = {n}: Serin / Flagger (below 1: Serin ahead)");
    println!();
    println!("| figure | Flagger | Serin | Serin/Flagger |");
    println!("|---|---|---|---|");
    row(
        "revision detection p50",
        p(&f.detection, 0.5),
        p(&s.detection, 0.5),
        "ms",
        0,
    );
    row(
        "revision detection p99",
        p(&f.detection, 0.99),
        p(&s.detection, 0.99),
        "ms",
        0,
    );
    row(
        "step lag p50",
        p(&f.step_lag, 0.5),
        p(&s.step_lag, 0.5),
        "ms",
        0,
    );
    row(
        "step lag p99",
        p(&f.step_lag, 0.99),
        p(&s.step_lag, 0.99),
        "ms",
        0,
    );
    row(
        "all Succeeded after the burst",
        f.all_succeeded_secs.unwrap_or(f64::NAN),
        s.all_succeeded_secs.unwrap_or(f64::NAN),
        "s",
        1,
    );
    row("peak RSS", f.peak_rss_mb, s.peak_rss_mb, "MB", 1);
    row(
        "CPU, burst to all Succeeded",
        f.window_cpu,
        s.window_cpu,
        "s",
        2,
    );
    row("CPU, whole run", f.total_cpu, s.total_cpu, "s", 2);
    row(
        "API requests per step",
        f.window_requests / f.steps.max(1) as f64,
        s.window_requests / s.steps.max(1) as f64,
        "",
        1,
    );
    row(
        "API requests/s while idle",
        f.idle_requests_per_sec,
        s.idle_requests_per_sec,
        "",
        1,
    );
    row("initialisation of all N", f.init_secs, s.init_secs, "s", 1);
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = run() => r,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
        _ = term.recv() => Err("terminated".into()),
    }
}

async fn run() -> Result<(), BoxError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    std::fs::create_dir_all(&args.work)?;
    let client = client_for(&args.kubeconfig).await?;
    println!(
        "canaries={} interval={} spread={:?} idle={:?} threadiness={} cpus={} load={}",
        args.canaries,
        args.interval,
        args.spread,
        args.idle,
        args.threadiness,
        std::thread::available_parallelism().map_or(0, |p| p.get()),
        loadavg(),
    );
    let order: Vec<Controller> = match args.only {
        Some(c) => vec![c],
        None => vec![Controller::Flagger, Controller::Serin],
    };
    let mut results = Vec::new();
    for which in order {
        let f = run_one(&args, &client, which).await?;
        report(which, &f);
        results.push((which, f));
    }
    if let [(Controller::Flagger, f), (Controller::Serin, s)] = results.as_slice() {
        compare(args.canaries, f, s);
    }
    Ok(())
}

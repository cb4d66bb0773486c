//! The kube-runtime controller: a watch on Canaries (optionally in one namespace) plus watches on
//! Deployments, DaemonSets, ConfigMaps, Secrets and (when Knative is installed) Knative Services
//! mapped to the Canaries that target or track them, so a new revision reaches the scheduler as fast as the watch delivers it, whatever the
//! analysis interval. Each reconcile validates the Canary and runs [`Scheduler::reconcile`];
//! the scheduler's `requeue_after` becomes the next reconcile, errors back off per object.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Api, Resource, ResourceExt};
use tracing::Instrument;

use super::events::{self, canary_key};
use super::ports::{EventKind, Ports};
use super::scheduler::{Scheduler, SchedulerConfig, SchedulerError};
pub use super::triggers::canary_trigger;
use super::triggers::{
    CanaryIndex, canary_ref, changed, knative_served, latest_created_revision, pod_template,
    triggers_of,
};
use super::{decode, workers};
use crate::api::alert_provider::AlertProvider;
use crate::api::apis::knative::KnativeService;
use crate::api::metric_template::MetricTemplate;
use crate::api::structural::Severity;
use crate::api::validation::{self, Options};
use crate::api::{Canary, Provider};
use crate::k8s::cache::Cache;
use crate::k8s::packed::PackedStore;
use crate::metrics::recorder::Recorder;
use crate::telemetry::server::Readiness;

/// First back-off after a failed reconcile; doubles per consecutive failure.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest back-off after failed reconciles.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The oldest Kubernetes release Flagger accepts (its `^1.11.0` constraint).
pub const MIN_KUBERNETES: (u64, u64) = (1, 11);

/// Errors that stop the controller.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The API server's version cannot be read.
    #[error("error getting the Kubernetes version: {}", crate::k8s::error::describe(.0))]
    Version(#[source] kube::Error),
    /// The API server is older than [`MIN_KUBERNETES`] or its version cannot be parsed.
    #[error("Kubernetes version {0} does not match constraint ^1.11.0")]
    UnsupportedVersion(String),
    /// A CRD is missing or cannot be listed (Flagger: `… CRD is not registered`).
    #[error("{kind} CRD is not registered: {}", crate::k8s::error::describe(.source))]
    CrdMissing {
        kind: &'static str,
        #[source]
        source: kube::Error,
    },
}

/// Errors of one reconcile (retried with back-off).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
}

/// Sees the controller's Canary watch (the web dashboard's feed): [`CanaryObserver::cache`]
/// once with the Canary cache, then every watch event after the cache applied it. Called on the
/// watch's task: implementations must not block.
pub trait CanaryObserver: Send + Sync {
    /// The controller's Canary cache (read-only for the observer).
    fn cache(&self, store: PackedStore<Canary>);
    /// One watch event, after the cache applied it.
    fn event(&self, event: &watcher::Event<Canary>);
}

/// An optional [`CanaryObserver`] in [`RuntimeOptions`].
#[derive(Clone)]
pub struct Observer(pub Arc<dyn CanaryObserver>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

/// Settings of the runtime (controller flags).
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// `-namespace`: watch only this namespace.
    pub namespace: Option<String>,
    /// `-threadiness`: Canaries reconciled concurrently.
    pub threadiness: u16,
    /// `-no-cross-namespace-refs`.
    pub no_cross_namespace_refs: bool,
    /// `-enable-config-tracking`: also watch ConfigMaps and Secrets.
    pub config_tracking: bool,
    /// `-control-loop-interval`: how often `flagger_canary_total` is refreshed and duplicate
    /// targets are logged (both done by Flagger's job-sync loop).
    pub control_loop_interval: Duration,
    /// Who else sees the Canary watch (`-dashboard-port`); `None` when nobody does.
    pub observer: Option<Observer>,
    /// The watch caches the ports read from: the Canary, Deployment and DaemonSet watches
    /// below feed theirs (disabled: the ports read with GETs).
    pub cache: Cache,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            namespace: None,
            threadiness: 2,
            no_cross_namespace_refs: false,
            config_tracking: true,
            control_loop_interval: Duration::from_secs(10),
            observer: None,
            cache: Cache::disabled(),
        }
    }
}

/// Flagger's cross-namespace checks (`verifyCanary` with `-no-cross-namespace-refs`).
pub fn cross_namespace_problems(canary: &Canary) -> Vec<String> {
    let ns = canary.namespace().unwrap_or_default();
    let foreign = |other: Option<&str>| other.is_some_and(|o| !o.is_empty() && o != ns);
    let mut out = Vec::new();
    if let Some(up) = &canary.spec.upstream_ref
        && foreign(up.namespace.as_deref())
    {
        out.push(format!(
            "can't access gloo upstream {}.{}, cross-namespace references are blocked",
            up.name,
            up.namespace.as_deref().unwrap_or_default()
        ));
    }
    if let Some(analysis) = canary.spec.analysis() {
        for metric in analysis.metrics() {
            if let Some(t) = &metric.template_ref
                && foreign(t.namespace.as_deref())
            {
                out.push(format!(
                    "can't access metric template {}.{}, cross-namespace references are blocked",
                    t.name,
                    t.namespace.as_deref().unwrap_or_default()
                ));
            }
        }
        for alert in analysis.alerts() {
            let p = &alert.provider_ref;
            if foreign(p.namespace.as_deref()) {
                out.push(format!(
                    "can't access alert provider {}.{}, cross-namespace references are blocked",
                    p.name,
                    p.namespace.as_deref().unwrap_or_default()
                ));
            }
        }
    }
    out
}

/// The problems that keep a Canary off the scheduler (empty = valid).
pub fn canary_problems(
    canary: &Canary,
    default_provider: &Provider,
    no_cross_namespace_refs: bool,
) -> Vec<String> {
    let options = Options {
        default_provider: default_provider.clone(),
    };
    let mut out: Vec<String> = validation::validate_canary(canary, &options)
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| p.to_string())
        .collect();
    if no_cross_namespace_refs {
        out.extend(cross_namespace_problems(canary));
    }
    out
}

/// Shared state of the reconciles.
pub struct Context {
    scheduler: Scheduler,
    ports: Ports,
    scheduler_config: SchedulerConfig,
    options: RuntimeOptions,
    recorder: Recorder,
    store: PackedStore<Canary>,
    /// Which Canary targets what (the duplicate-target check reads it).
    index: Arc<CanaryIndex>,
    failures: Mutex<HashMap<String, u32>>,
    /// Canaries reported invalid: key → resourceVersion of the version reported.
    invalid: Mutex<HashMap<String, String>>,
    /// Last `flagger_canary_total` per namespace.
    namespaces: Mutex<BTreeMap<String, i64>>,
}

impl Context {
    fn key(canary: &Canary) -> String {
        format!(
            "{}/{}",
            canary.namespace().unwrap_or_default(),
            canary.name_any()
        )
    }

    fn backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_for(*n)
    }

    fn reset_backoff(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(key);
    }

    /// `flagger_canary_total{namespace}` from the Canary cache; namespaces whose last Canary
    /// went away drop to 0.
    fn update_totals(&self) {
        let mut seen = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        let mut totals: BTreeMap<String, i64> = seen.keys().map(|ns| (ns.clone(), 0)).collect();
        for c in self.store.list() {
            *totals.entry(c.namespace).or_insert(0) += 1;
        }
        for (ns, count) in totals {
            if seen.get(&ns) != Some(&count) {
                self.recorder.set_total(&ns, count);
                seen.insert(ns, count);
            }
        }
    }
}

/// Flagger's check in its job-sync loop: for every Canary and every other Canary with the same
/// `<targetRef.name>.<namespace>`, one `(canary key, target key)` to log (so a pair of
/// Canaries gives two lines, three give six). Takes `(namespace, name, target name)` of every
/// Canary.
pub fn duplicate_targets<'a>(
    canaries: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
) -> Vec<(String, String)> {
    let targets: Vec<(String, String)> = canaries
        .into_iter()
        .map(|(ns, name, target)| (format!("{name}.{ns}"), format!("{target}.{ns}")))
        .collect();
    let mut per_target: HashMap<&str, usize> = HashMap::new();
    for (_, target) in &targets {
        *per_target.entry(target.as_str()).or_insert(0) += 1;
    }
    let mut out = Vec::new();
    for (canary, target) in &targets {
        let others = per_target.get(target.as_str()).map_or(0, |n| n - 1);
        out.extend(std::iter::repeat_n(
            (canary.clone(), target.clone()),
            others,
        ));
    }
    out
}

impl Context {
    /// Logs Flagger's error for Canaries that share a target.
    fn report_duplicate_targets(&self) {
        let targets = self.index.targets();
        let triples = targets
            .iter()
            .map(|(ns, name, target)| (ns.as_str(), name.as_str(), target.as_str()));
        for (canary, target) in duplicate_targets(triples) {
            tracing::error!(
                canary = %canary,
                "Bad things will happen! Found more than one canary with the same target {target}"
            );
        }
    }

    /// Drops the per-Canary bookkeeping (back-off counts, invalid-version notes, the scheduler's
    /// notes) of Canaries that left the cache: kube-runtime does not reconcile deleted objects,
    /// so nothing else would, and a controller running for months would grow with every Canary
    /// ever created.
    fn forget_deleted(&self) {
        let canaries = self.store.list();
        let live: std::collections::HashSet<String> = canaries
            .iter()
            .map(|c| format!("{}/{}", c.namespace, c.name))
            .collect();
        let live_uids: std::collections::HashSet<String> = canaries
            .iter()
            .map(|c| {
                format!(
                    "{}/{}/{}",
                    c.namespace,
                    c.name,
                    c.uid.as_deref().unwrap_or("")
                )
            })
            .collect();
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| live.contains(k));
        self.invalid
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| live.contains(k));
        self.scheduler.retain_canaries(|k| live_uids.contains(k));
    }
}

/// The back-off after `failures` consecutive failures: 1 s doubling to 60 s.
pub fn backoff_for(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(6);
    (BACKOFF_MIN * 2u32.pow(exp)).min(BACKOFF_MAX)
}

/// One reconcile: `Some(d)` = run again after `d`, `None` = only on the next change.
async fn reconcile(
    canary: Arc<Canary>,
    ctx: Arc<Context>,
) -> Result<Option<Duration>, ReconcileError> {
    let started = Instant::now();
    let key = Context::key(&canary);
    if canary.metadata.deletion_timestamp.is_none() {
        let problems = canary_problems(
            &canary,
            &ctx.scheduler_config.default_provider,
            ctx.options.no_cross_namespace_refs,
        );
        if !problems.is_empty() {
            let version = canary.resource_version().unwrap_or_default();
            let first_report = {
                let mut invalid = ctx.invalid.lock().unwrap_or_else(|e| e.into_inner());
                invalid.insert(key.clone(), version.clone()).as_ref() != Some(&version)
            };
            if first_report {
                let message = format!("invalid canary spec: {}", problems.join("; "));
                let phase = canary.status.as_ref().map(|s| s.phase).unwrap_or_default();
                events::record(
                    &ctx.ports,
                    ctx.scheduler_config.event_webhook.as_deref(),
                    &canary,
                    EventKind::Warning,
                    phase,
                    &message,
                )
                .await;
            }
            ctx.reset_backoff(&key);
            return Ok(None);
        }
        let mut invalid = ctx.invalid.lock().unwrap_or_else(|e| e.into_inner());
        invalid.remove(&key);
    }
    match ctx.scheduler.reconcile(&canary).await {
        Ok(next) => {
            ctx.reset_backoff(&key);
            ctx.recorder
                .reconcile_succeeded(started.elapsed().as_secs_f64());
            Ok(Some(next.requeue_after))
        }
        Err(e) => {
            ctx.recorder
                .reconcile_failed(e.category(), started.elapsed().as_secs_f64());
            Err(e.into())
        }
    }
}

/// Runs inside the reconcile's span, which gives its log line the `canary` field.
fn error_policy(canary: Arc<Canary>, error: &ReconcileError, ctx: Arc<Context>) -> Duration {
    let delay = ctx.backoff(&Context::key(&canary));
    tracing::error!(
        "reconcile failed, retrying in {}s: {error}",
        delay.as_secs()
    );
    delay
}

/// The span of one reconcile: every log line written while it runs carries the Canary's
/// `<name>.<namespace>` as `canary` (the JSON format flattens span fields into the line), so
/// `jq 'select(.canary == "podinfo.test")'` follows one Canary. At ERROR level so that no log
/// level turns it off while this module's lines are on; lines of other modules keep their own
/// `canary` field, since a `RUST_LOG` that names only their module would turn this span off.
pub(crate) fn reconcile_span(canary: &Canary) -> tracing::Span {
    tracing::error_span!("reconcile", canary = %canary_key(canary))
}

/// `major.minor` of a `gitVersion` such as `v1.33.0`, `v1.30.4-gke.1200` or `1.29.1+k3s1`.
pub fn major_minor(git_version: &str) -> Option<(u64, u64)> {
    let v = git_version.trim().trim_start_matches('v');
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Fails when the API server is older than Kubernetes 1.11 (Flagger's start-up check).
/// Returns the server's `gitVersion`.
pub async fn check_kubernetes_version(client: &kube::Client) -> Result<String, RuntimeError> {
    let info = client
        .apiserver_version()
        .await
        .map_err(RuntimeError::Version)?;
    match major_minor(&info.git_version) {
        Some(v) if v >= MIN_KUBERNETES => Ok(info.git_version),
        _ => Err(RuntimeError::UnsupportedVersion(info.git_version)),
    }
}

/// Fails when a CRD Serin needs cannot be listed (in `-namespace` when set).
pub async fn check_crds(
    client: &kube::Client,
    namespace: Option<&str>,
) -> Result<(), RuntimeError> {
    let lp = ListParams::default().limit(1);
    macro_rules! check {
        ($t:ty, $kind:literal) => {{
            let api: Api<$t> = match namespace {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            };
            api.list_metadata(&lp)
                .await
                .map_err(|source| RuntimeError::CrdMissing {
                    kind: $kind,
                    source,
                })?;
        }};
    }
    check!(Canary, "Canary");
    check!(MetricTemplate, "MetricTemplate");
    check!(AlertProvider, "AlertProvider");
    Ok(())
}

fn api_for<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The namespace of a watched object ("" for a cluster-scoped one).
fn namespace_of<K: Resource>(object: &K) -> &str {
    object.meta().namespace.as_deref().unwrap_or_default()
}

/// Reconciles the Canaries that track a ConfigMap or Secret (`K`) when it changes (config
/// tracking). Only its name matters here, so the watch is metadata-only.
fn tracked<K>(
    client: &kube::Client,
    ns: Option<&str>,
    wc: &watcher::Config,
    index: &Arc<CanaryIndex>,
    kind: &'static str,
    prefix: &'static str,
) -> std::pin::Pin<Box<dyn futures::Stream<Item = ObjectRef<Canary>> + Send>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let index = index.clone();
    let changes = watcher(api_for::<PartialObjectMeta<K>>(client, ns), wc.clone())
        .default_backoff()
        .touched_objects();
    triggers_of(kind, changes, move |o: &PartialObjectMeta<K>| {
        index.tracking(prefix, namespace_of(o), &o.name_any())
    })
}

/// Runs the controller until `shutdown` resolves. Sets `readiness` once the Canary watch
/// synced. The CRDs must have been checked with [`check_crds`].
pub async fn run<F>(
    client: kube::Client,
    ports: Ports,
    scheduler_config: SchedulerConfig,
    options: RuntimeOptions,
    recorder: Recorder,
    readiness: Readiness,
    shutdown: F,
) where
    F: Future<Output = ()> + Send + Sync + 'static,
{
    // Webhooks, metric queries and notifications wait without holding a worker.
    let ports = workers::release_while_waiting(ports);
    let ns = options.namespace.as_deref();
    let wc = crate::k8s::cache::watch_config();
    // Canaries are watched untyped and decoded one by one, so that one undecodable Canary
    // stays out of the cache (reported) instead of failing the whole list.
    let resource = ApiResource::erase::<Canary>(&());
    let canaries: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let reporter = decode::Reporter::new(
        ports.clone(),
        scheduler_config.event_webhook.clone(),
        recorder.clone(),
    );
    let canary_events = watcher(canaries, wc.clone())
        .default_backoff()
        .filter_map(move |event| {
            let decoded = match event {
                Ok(ev) => reporter.decode(ev).map(Ok),
                Err(e) => Some(Err(e)),
            };
            futures::future::ready(decoded)
        });
    // The Canary cache holds every version (the ports read Canaries from it); only changes
    // that can matter to a reconcile trigger one (not the controller's own status writes: the
    // scheduler requeues itself).
    let (store, canary_events) = options
        .cache
        .reflect_all(&Api::<Canary>::all(client.clone()), canary_events);
    let observer = options.observer.clone();
    if let Some(Observer(o)) = &observer {
        o.cache(store.clone());
    }
    let index = Arc::new(CanaryIndex::default());
    let indexed = index.clone();
    let canary_changes = canary_events
        .inspect(move |event| {
            if let Ok(event) = event {
                indexed.apply(event);
                if let Some(Observer(o)) = &observer {
                    o.event(event);
                }
            }
        })
        .applied_objects();
    let canary_changes = changed(canary_changes, canary_trigger);
    // Keys without the resourceVersion and UID `ObjectRef::from_obj` would copy into every
    // queue entry (they are not part of a key's identity).
    let mut triggers = vec![triggers_of("Canary", canary_changes, |c: &Canary| {
        vec![canary_ref(c)]
    })];

    // Workloads trigger on a new revision only (a Deployment's pod template, a DaemonSet's
    // spec), not on a scale or the status updates of their rollouts: readiness is polled once
    // per interval, as in Flagger. Their caches keep the targets and primaries (what
    // reconciles read), every version of them.
    let api = api_for::<Deployment>(&client, ns);
    let deployments = options
        .cache
        .reflect(&api, watcher(api.clone(), wc.clone()).default_backoff());
    let deployments = changed(deployments.touched_objects(), pod_template);
    let i = index.clone();
    triggers.push(triggers_of(
        "Deployment",
        deployments,
        move |d: &Deployment| i.targeting("Deployment", namespace_of(d), &d.name_any()),
    ));
    let api = api_for::<DaemonSet>(&client, ns);
    let daemonsets = options
        .cache
        .reflect(&api, watcher(api.clone(), wc.clone()).default_backoff());
    let daemonsets = changed(daemonsets.touched_objects(), predicates::generation);
    let i = index.clone();
    triggers.push(triggers_of(
        "DaemonSet",
        daemonsets,
        move |d: &DaemonSet| i.targeting("DaemonSet", namespace_of(d), &d.name_any()),
    ));
    // Knative Services trigger on a new latest created revision (Knative's status), when the
    // API server serves them at start-up; otherwise the per-interval requeue finds it.
    if knative_served(&client).await {
        let api = api_for::<KnativeService>(&client, ns);
        let services = options
            .cache
            .reflect(&api, watcher(api.clone(), wc.clone()).default_backoff());
        let services = changed(services.touched_objects(), latest_created_revision);
        let i = index.clone();
        triggers.push(triggers_of(
            "Knative Service",
            services,
            move |k: &KnativeService| i.targeting("Service", namespace_of(k), &k.name_any()),
        ));
    }
    if options.config_tracking {
        triggers.push(tracked::<ConfigMap>(
            &client,
            ns,
            &wc,
            &index,
            "ConfigMap",
            "configmap",
        ));
        triggers.push(tracked::<Secret>(
            &client, ns, &wc, &index, "Secret", "secret",
        ));
    }

    let ready_store = store.clone();
    let ready = readiness.clone();
    let ready_task = tokio::spawn(async move {
        ready_store.wait_until_ready().await;
        tracing::info!("Canary cache synced, controller ready");
        ready.set_ready();
    });

    let limits = workers::Limits::for_threadiness(options.threadiness);
    let ctx = Arc::new(Context {
        scheduler: Scheduler::new(ports.clone(), scheduler_config.clone()),
        ports,
        scheduler_config,
        options,
        recorder,
        store: store.clone(),
        index,
        failures: Mutex::new(HashMap::new()),
        invalid: Mutex::new(HashMap::new()),
        namespaces: Mutex::new(BTreeMap::new()),
    });
    let totals_ctx = ctx.clone();
    let totals_task = tokio::spawn(async move {
        let period = totals_ctx
            .options
            .control_loop_interval
            .max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(period).await;
            totals_ctx.update_totals();
            totals_ctx.forget_deleted();
            totals_ctx.report_duplicate_targets();
        }
    });
    let queue_store = store.clone();
    let cache_synced = async move { queue_store.wait_until_ready().await };
    let reconcile_store = store;
    workers::run_queue(
        futures::stream::select_all(triggers),
        cache_synced,
        limits,
        move |key: ObjectRef<Canary>| {
            let ctx = ctx.clone();
            let canary = reconcile_store.get(&key);
            async move {
                // Only Canaries in the cache are reconciled (a deleted one is gone from it).
                let canary = canary?;
                let span = reconcile_span(&canary);
                async move {
                    match reconcile(canary.clone(), ctx.clone()).await {
                        Ok(next) => next,
                        Err(e) => Some(error_policy(canary, &e, ctx)),
                    }
                }
                .instrument(span)
                .await
            }
        },
        shutdown,
    )
    .await;
    ready_task.abort();
    totals_task.abort();
    readiness.set_not_ready();
    tracing::info!("controller stopped");
}

#[cfg(test)]
mod tests;

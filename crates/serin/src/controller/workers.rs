//! Running reconciles: the fair [`WorkQueue`] handed to `-threadiness` workers, with waiting
//! that never holds a worker.
//!
//! A reconcile runs in its own task and holds one of the `threadiness` worker permits while it
//! works (API requests, decisions). When it waits on something outside the cluster (a webhook,
//! a gate, a metric query, a notification) it goes through [`waiting`], which gives the permit
//! back for the duration of the wait and queues for one again afterwards (tokio's semaphore
//! serves waiters in order). So a webhook that answers after 90 s delays its own Canary only:
//! this is what Flagger gets from running each Canary's analysis on its own goroutine. The
//! number of reconciles in flight (working or waiting) is bounded by [`Limits::in_flight`];
//! one Canary never has two.
//!
//! Readiness and analysis intervals are not waited on at all: the scheduler checks readiness
//! once per tick and asks to be requeued, and the queue holds the key until it is due.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::ports::{Alerter, FailedCheck, Finding, Measured, MetricChecks, Ports, WebhookClient};
use super::queue::WorkQueue;
use super::webhook::{HookPayload, HookResponse, WebhookError};
use crate::api::Canary;
use crate::api::CanaryWebhook;
use crate::api::analysis::AlertSeverity;

/// How long a shutdown waits for the reconciles in flight before cancelling them (a reconcile
/// waiting on a slow webhook would otherwise keep a controller that lost its lease running).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// When a reconcile that panicked is tried again.
pub const PANIC_RETRY: Duration = Duration::from_secs(60);

/// How many reconciles run at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `-threadiness`: reconciles working (not waiting) at the same time.
    pub workers: usize,
    /// Reconciles started and not finished, working or waiting.
    pub in_flight: usize,
}

impl Limits {
    /// `threadiness` workers; up to 1,024 reconciles in flight (each waiting one costs a small
    /// task, no thread).
    pub fn for_threadiness(threadiness: u16) -> Self {
        let workers = usize::from(threadiness.max(1));
        Self {
            workers,
            in_flight: workers.max(1024),
        }
    }
}

struct Slot {
    workers: Arc<Semaphore>,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
    /// Told whenever a permit is given back for a wait (the queue may hand out work then).
    released: Option<Arc<Notify>>,
}

tokio::task_local! {
    static WORKER: Arc<Slot>;
}

/// Runs `work` holding one of the `workers` permits (except while it is in [`waiting`]).
pub async fn working<F: Future>(workers: Arc<Semaphore>, work: F) -> F::Output {
    // The semaphore is never closed, so acquiring only fails if it were; then run without one.
    let permit = workers.clone().acquire_owned().await.ok();
    run_with(workers, permit, None, work).await
}

/// `work` run with `permit`, one of the `workers` permits (except while it is in [`waiting`]).
/// A plain function, not an `async fn`: the returned future holds `work` once (an `async fn`
/// would keep its argument beside the scope's copy of it).
fn run_with<F: Future>(
    workers: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
    released: Option<Arc<Notify>>,
    work: F,
) -> impl Future<Output = F::Output> {
    let slot = Arc::new(Slot {
        workers,
        permit: Mutex::new(permit),
        released,
    });
    WORKER.scope(slot, work)
}

/// Awaits `wait` without holding a worker: the permit of the enclosing [`working`] (if any) is
/// given back first and taken again afterwards. Reconciles coming back from a wait take the
/// permits before the queue hands out new work (the queue only starts a reconcile on a free
/// permit), so a wait costs its reconcile the wait itself, not another turn in the queue.
pub async fn waiting<F: Future>(wait: F) -> F::Output {
    let slot = WORKER.try_with(Arc::clone).ok();
    let released = slot.as_ref().is_some_and(|s| {
        s.permit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .is_some()
    });
    if released && let Some(notify) = slot.as_ref().and_then(|s| s.released.as_ref()) {
        notify.notify_one();
    }
    let out = wait.await;
    if released && let Some(slot) = slot {
        let permit = slot.workers.clone().acquire_owned().await.ok();
        *slot.permit.lock().unwrap_or_else(|e| e.into_inner()) = permit;
    }
    out
}

/// Kubernetes API requests in flight at most, all reconciles together ([`ApiRequestLayer`]).
pub const API_CONCURRENCY: usize = 64;

/// The Kubernetes client's layer that makes its requests wait like webhooks do: a request in
/// flight gives its reconcile's worker permit back until the answer's headers arrive (a remote
/// API server's latency is waiting, not work), and at most `limit` requests are in flight at
/// once, so that up to [`Limits::in_flight`] reconciles do not open as many connections. A
/// reconcile waits for a slot holding its worker, so when the API server is the bottleneck the
/// queue stops starting reconciles (each one in flight holds its working memory). Watches take a
/// slot only until their stream starts.
#[derive(Clone, Debug)]
pub struct ApiRequestLayer {
    slots: Arc<Semaphore>,
}

impl ApiRequestLayer {
    pub fn new(limit: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limit.max(1))),
        }
    }
}

impl<S> tower::Layer<S> for ApiRequestLayer {
    type Service = ApiRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiRequests {
            inner,
            slots: self.slots.clone(),
        }
    }
}

/// See [`ApiRequestLayer`].
#[derive(Clone, Debug)]
pub struct ApiRequests<S> {
    inner: S,
    slots: Arc<Semaphore>,
}

impl<S, Request> tower::Service<Request> for ApiRequests<S>
where
    S: tower::Service<Request>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The client polls this future in the reconcile's task (kube's buffer hands it back),
        // so `waiting` finds that reconcile's permit.
        let response = self.inner.call(request);
        let slots = self.slots.clone();
        Box::pin(async move {
            // A set-up step that asked the API server cannot be vouched for by its cache reads
            // alone (`k8s/cache/journal.rs`).
            crate::k8s::cache::journal::spoil();
            // The slot is taken while the reconcile still holds its worker: when every slot is
            // busy the workers wait here, so the queue starts no more reconciles than the API
            // server is answering (the memory of reconciles in flight stays bounded). The slot
            // is given back before the worker is taken again (no hold-and-wait between the two).
            // The semaphore is never closed; without a slot the request still runs.
            let slot = slots.acquire_owned().await.ok();
            waiting(async move {
                let answer = response.await;
                drop(slot);
                answer
            })
            .await
        })
    }
}

/// Webhook calls (gates, rollout hooks, event webhooks) that wait without a worker.
pub struct WaitingWebhooks(pub Arc<dyn WebhookClient>);

#[async_trait]
impl WebhookClient for WaitingWebhooks {
    async fn post(
        &self,
        hook: &CanaryWebhook,
        payload: &HookPayload,
    ) -> Result<HookResponse, WebhookError> {
        waiting(self.0.post(hook, payload)).await
    }
}

/// Metric queries that wait without a worker.
pub struct WaitingMetrics(pub Arc<dyn MetricChecks>);

#[async_trait]
impl MetricChecks for WaitingMetrics {
    async fn check_providers(&self, canary: &Canary) -> Result<(), String> {
        waiting(self.0.check_providers(canary)).await
    }

    async fn run_checks(&self, canary: &Canary) -> Result<Measured, FailedCheck> {
        waiting(self.0.run_checks(canary)).await
    }

    async fn preflight(&self, canary: &Canary) -> Result<(), Finding> {
        waiting(self.0.preflight(canary)).await
    }
}

/// Notifications that wait without a worker.
pub struct WaitingAlerter(pub Arc<dyn Alerter>);

#[async_trait]
impl Alerter for WaitingAlerter {
    async fn alert(
        &self,
        canary: &Canary,
        message: &str,
        with_metadata: bool,
        severity: AlertSeverity,
    ) {
        waiting(self.0.alert(canary, message, with_metadata, severity)).await
    }
}

/// `ports` with every call that waits on the outside world wrapped in [`waiting`].
pub fn release_while_waiting(mut ports: Ports) -> Ports {
    ports.webhooks = Arc::new(WaitingWebhooks(ports.webhooks));
    ports.metrics = Arc::new(WaitingMetrics(ports.metrics));
    ports.alerter = Arc::new(WaitingAlerter(ports.alerter));
    ports
}

/// Runs reconciles until `shutdown` resolves or `triggers` ends: every key from `triggers` is
/// queued at once, `reconcile(key)` answers when to run it again (`None`: only on the next
/// trigger). Nothing runs before `ready` resolves (triggers are queued meanwhile).
pub async fn run_queue<K, T, Ready, R, Fut, S>(
    triggers: T,
    ready: Ready,
    limits: Limits,
    reconcile: R,
    shutdown: S,
) where
    K: Clone + Eq + Hash + Send + std::fmt::Display + 'static,
    T: Stream<Item = K>,
    Ready: Future<Output = ()>,
    R: Fn(K) -> Fut,
    Fut: Future<Output = Option<Duration>> + Send + 'static,
    S: Future<Output = ()>,
{
    let workers = Arc::new(Semaphore::new(limits.workers.max(1)));
    // Each key once, shared by the queue's maps and the map of running tasks (a Canary's key is
    // an `ObjectRef`: about a hundred bytes and two strings); a reconcile gets its own copy.
    let mut queue: WorkQueue<Arc<K>> = WorkQueue::new();
    let mut tasks: JoinSet<Option<Duration>> = JoinSet::new();
    let mut keys: HashMap<tokio::task::Id, Arc<K>> = HashMap::new();
    let mut triggers = std::pin::pin!(triggers.fuse());
    let mut ready = std::pin::pin!(futures::FutureExt::fuse(ready));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut is_ready = false;
    let released = Arc::new(Notify::new());
    loop {
        // A reconcile starts only on a free worker: reconciles coming back from a wait queue
        // on the semaphore and are served before new ones.
        if is_ready {
            let now = Instant::now();
            while tasks.len() < limits.in_flight.max(1) && queue.has_ready(now) {
                let Ok(permit) = workers.clone().try_acquire_owned() else {
                    break;
                };
                let Some(key) = queue.pop(now) else { break };
                // The reconcile's future is boxed once, here: tokio would otherwise copy it
                // into the task (with `run_with`'s scope around it). jemalloc's thread
                // caches keep allocations of up to 32 KB; the pages of a larger task went back
                // to the system when it ended (docs/performance.md, issue 18's eighth pass).
                let work = run_with(
                    workers.clone(),
                    Some(permit),
                    Some(released.clone()),
                    Box::pin(reconcile(K::clone(&key))),
                );
                let handle = tasks.spawn(work);
                keys.insert(handle.id(), key);
            }
        }
        // Wake up for a due key only when it can be handed out (otherwise the next event is
        // a reconcile ending or waiting, a trigger or readiness; a due key must not spin the
        // loop).
        let can_start =
            is_ready && tasks.len() < limits.in_flight.max(1) && workers.available_permits() > 0;
        let next_due = queue.next_due().filter(|_| can_start);
        tokio::select! {
            () = released.notified() => {},
            () = &mut shutdown => break,
            () = &mut ready, if !is_ready => is_ready = true,
            trigger = triggers.next() => match trigger {
                Some(key) => queue.add(Arc::new(key), Instant::now()),
                None => break,
            },
            Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let (id, requeue) = match joined {
                    Ok((id, requeue)) => (id, requeue),
                    Err(e) => {
                        tracing::error!("reconcile task failed, retrying in {}s: {e}", PANIC_RETRY.as_secs());
                        (e.id(), Some(PANIC_RETRY))
                    }
                };
                if let Some(key) = keys.remove(&id) {
                    queue.done(&key, requeue.map(|d| Instant::now() + d));
                }
            },
            () = sleep_until(next_due), if next_due.is_some() => {},
        }
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        let left: Vec<String> = keys.values().map(|k| k.to_string()).collect();
        tracing::warn!(
            "cancelling {} reconciles still running after {}s: {}",
            left.len(),
            SHUTDOWN_GRACE.as_secs(),
            left.join(", ")
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => futures::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use super::*;

    type Counts = Arc<Mutex<BTreeMap<String, usize>>>;

    fn count(counts: &Counts, key: &str) -> usize {
        let mut c = counts.lock().unwrap();
        let n = c.entry(key.to_string()).or_default();
        *n += 1;
        *n
    }

    async fn until(counts: &Counts, done: impl Fn(&BTreeMap<String, usize>) -> bool) {
        loop {
            if done(&counts.lock().unwrap()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Two Canaries whose webhooks never answer, two workers: with waits that held a worker
    /// (as before), nothing else would ever run.
    #[tokio::test(start_paused = true)]
    async fn canaries_waiting_on_webhooks_leave_the_workers_to_the_others() {
        let keys: Vec<String> = (0..12).map(|i| format!("canary-{i:02}")).collect();
        let counts: Counts = Arc::default();
        let c = counts.clone();
        let reconcile = move |key: String| {
            let c = c.clone();
            async move {
                count(&c, &key);
                if key == "canary-00" || key == "canary-01" {
                    waiting(futures::future::pending::<()>()).await;
                }
                Some(Duration::from_secs(3600))
            }
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let triggers = futures::stream::iter(keys.clone()).chain(futures::stream::pending());
        let runner = tokio::spawn(run_queue(
            triggers,
            async {},
            Limits {
                workers: 2,
                in_flight: 64,
            },
            reconcile,
            async {
                let _ = stopped.await;
            },
        ));
        let all = keys.len();
        tokio::time::timeout(Duration::from_secs(600), until(&counts, |c| c.len() == all))
            .await
            .expect("every Canary is reconciled while two wait forever");
        let _ = stop.send(());
        runner.await.unwrap();
    }

    /// A key that asks to be reconciled again at once, every time, with one worker: the others
    /// are still served in turn.
    #[tokio::test(start_paused = true)]
    async fn a_key_requeued_at_once_does_not_starve_the_others() {
        let keys: Vec<String> = (0..10).map(|i| format!("canary-{i:02}")).collect();
        let counts: Counts = Arc::default();
        let c = counts.clone();
        let reconcile = move |key: String| {
            let c = c.clone();
            async move {
                count(&c, &key);
                tokio::time::sleep(Duration::from_millis(50)).await;
                if key == "canary-00" {
                    Some(Duration::ZERO)
                } else {
                    Some(Duration::from_secs(3600))
                }
            }
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let triggers = futures::stream::iter(keys.clone()).chain(futures::stream::pending());
        let runner = tokio::spawn(run_queue(
            triggers,
            async {},
            Limits {
                workers: 1,
                in_flight: 1,
            },
            reconcile,
            async {
                let _ = stopped.await;
            },
        ));
        let all = keys.len();
        tokio::time::timeout(Duration::from_secs(600), until(&counts, |c| c.len() == all))
            .await
            .expect("every Canary is reconciled");
        let hog = counts
            .lock()
            .unwrap()
            .get("canary-00")
            .copied()
            .unwrap_or(0);
        assert!(
            hog <= 2 * all,
            "canary-00 ran {hog} times before the others ran once"
        );
        let _ = stop.send(());
        runner.await.unwrap();
    }

    /// A reconcile back from a wait takes the next free worker before the queue starts new
    /// work: the wait costs it the wait, not another turn behind every due Canary.
    #[tokio::test(start_paused = true)]
    async fn a_reconcile_back_from_a_wait_goes_before_new_work() {
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let l = log.clone();
        let reconcile = move |key: String| {
            let l = l.clone();
            async move {
                if key == "a" {
                    waiting(tokio::time::sleep(Duration::from_millis(150))).await;
                    l.lock().unwrap().push("a resumed".into());
                } else {
                    // Work that holds the worker.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    l.lock().unwrap().push(key);
                }
                None
            }
        };
        let keys = ["a", "b", "c", "d", "e", "f"].map(String::from);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runner = tokio::spawn(run_queue(
            futures::stream::iter(keys.clone()).chain(futures::stream::pending()),
            async {},
            Limits {
                workers: 1,
                in_flight: 64,
            },
            reconcile,
            async {
                let _ = stopped.await;
            },
        ));
        let done = log.clone();
        tokio::time::timeout(Duration::from_secs(60), async move {
            while done.lock().unwrap().len() < keys.len() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("all reconciled");
        let order = log.lock().unwrap().clone();
        // a waits 150 ms: b runs 0-100 ms, c 100-200 ms; a is back at 150 ms and goes next.
        assert_eq!(order, ["b", "c", "a resumed", "d", "e", "f"]);
        let _ = stop.send(());
        runner.await.unwrap();
    }

    #[tokio::test]
    async fn waiting_outside_a_worker_just_waits() {
        assert_eq!(waiting(async { 7 }).await, 7);
        let workers = Arc::new(Semaphore::new(1));
        let w = workers.clone();
        let out = working(workers.clone(), async move {
            assert_eq!(w.available_permits(), 0, "working holds the permit");
            let inside = waiting(async { w.available_permits() }).await;
            (inside, w.available_permits())
        })
        .await;
        assert_eq!(out, (1, 0), "released while waiting, taken again after");
        assert_eq!(workers.available_permits(), 1);
    }

    /// A service whose answers take `delay`, counting requests in flight at once.
    #[derive(Clone)]
    struct SlowApi {
        delay: Duration,
        in_flight: Arc<Mutex<(usize, usize)>>,
    }

    impl tower::Service<u32> for SlowApi {
        type Response = u32;
        type Error = std::convert::Infallible;
        type Future = futures::future::BoxFuture<'static, Result<u32, Self::Error>>;

        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: u32) -> Self::Future {
            let (delay, in_flight) = (self.delay, self.in_flight.clone());
            Box::pin(async move {
                {
                    let mut n = in_flight.lock().unwrap();
                    n.0 += 1;
                    n.1 = n.1.max(n.0);
                }
                tokio::time::sleep(delay).await;
                in_flight.lock().unwrap().0 -= 1;
                Ok(request)
            })
        }
    }

    /// One worker, ten reconciles of ten 50 ms API requests each: with requests that held the
    /// worker they would take 5 s one after another; waiting without it they overlap, up to
    /// the layer's limit of requests in flight.
    #[tokio::test(start_paused = true)]
    async fn api_requests_wait_without_a_worker_and_within_the_limit() {
        use tower::{Layer, ServiceExt};
        let in_flight = Arc::new(Mutex::new((0, 0)));
        let api = ApiRequestLayer::new(4).layer(SlowApi {
            delay: Duration::from_millis(50),
            in_flight: in_flight.clone(),
        });
        let workers = Arc::new(Semaphore::new(1));
        let started = Instant::now();
        let mut reconciles = JoinSet::new();
        for _ in 0..10 {
            let (api, workers) = (api.clone(), workers.clone());
            reconciles.spawn(working(workers, async move {
                for i in 0..10 {
                    api.clone().oneshot(i).await.unwrap();
                }
            }));
        }
        while reconciles.join_next().await.is_some() {}
        let took = started.elapsed();
        // 100 requests, 4 at a time, 50 ms each.
        assert!(took < Duration::from_millis(1500), "took {took:?}");
        assert_eq!(in_flight.lock().unwrap().1, 4);
    }
}

//! The controller's work queue: which Canary is reconciled next. Pure bookkeeping, no I/O and
//! no clock of its own (the caller passes `now`).
//!
//! Fairness is the point. kube-runtime's queue keeps every due key that found no free worker in
//! a hash set and takes the first one in hash order, so under load the same few keys (those
//! whose own writes or short requeues bring them back at once) are served again and again
//! while the others wait forever. Here due keys are served first come, first served: a key
//! that comes back (a watch event, an immediate requeue) goes behind every key already due,
//! so each due key gets its turn after at most the keys queued before it.
//!
//! A key is in at most one place: waiting for its time (`delayed`), due (`ready`, in order),
//! or being reconciled (`running`; a request arriving meanwhile is kept in `again` and queued
//! when the reconcile ends, so one key is never reconciled twice at the same time).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use tokio::time::Instant;

/// A fair delay queue of keys.
#[derive(Debug)]
pub struct WorkQueue<K> {
    seq: u64,
    delayed: BTreeMap<(Instant, u64), K>,
    due_at: HashMap<K, (Instant, u64)>,
    ready: VecDeque<K>,
    queued: HashSet<K>,
    running: HashSet<K>,
    again: HashMap<K, Instant>,
}

impl<K> Default for WorkQueue<K> {
    fn default() -> Self {
        Self {
            seq: 0,
            delayed: BTreeMap::new(),
            due_at: HashMap::new(),
            ready: VecDeque::new(),
            queued: HashSet::new(),
            running: HashSet::new(),
            again: HashMap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash> WorkQueue<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks for a reconcile of `key` at `at` (now or earlier: as soon as possible). An earlier
    /// request wins over a later one; a key already due keeps its place.
    pub fn add(&mut self, key: K, at: Instant) {
        if self.running.contains(&key) {
            let again = self.again.entry(key).or_insert(at);
            *again = (*again).min(at);
            return;
        }
        if self.queued.contains(&key) {
            return;
        }
        if let Some(&(old, seq)) = self.due_at.get(&key) {
            if old <= at {
                return;
            }
            self.delayed.remove(&(old, seq));
        }
        self.seq += 1;
        self.delayed.insert((at, self.seq), key.clone());
        self.due_at.insert(key, (at, self.seq));
    }

    /// Moves every key due at `now` to the back of the ready line, earliest due first.
    fn promote_due(&mut self, now: Instant) {
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.due_at.remove(&key);
            self.queued.insert(key.clone());
            self.ready.push_back(key);
        }
    }

    /// The next key to reconcile at `now`, marked running until [`Self::done`].
    pub fn pop(&mut self, now: Instant) -> Option<K> {
        self.promote_due(now);
        let key = self.ready.pop_front()?;
        self.queued.remove(&key);
        self.running.insert(key.clone());
        Some(key)
    }

    /// The reconcile of `key` ended; `requeue` is when it wants the next one. A request that
    /// arrived meanwhile is queued too (the earlier of the two wins).
    pub fn done(&mut self, key: &K, requeue: Option<Instant>) {
        self.running.remove(key);
        let again = self.again.remove(key);
        let at = match (requeue, again) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(at) = at {
            self.add(key.clone(), at);
        }
    }

    /// Drops `key` unless it is running (a Canary that left the cache).
    pub fn forget(&mut self, key: &K) {
        if let Some(entry) = self.due_at.remove(key) {
            self.delayed.remove(&entry);
        }
        if self.queued.remove(key) {
            self.ready.retain(|k| k != key);
        }
        self.again.remove(key);
    }

    /// When the earliest waiting key is due (`None`: nothing waits for a time).
    pub fn next_due(&self) -> Option<Instant> {
        self.delayed.first_key_value().map(|((at, _), _)| *at)
    }

    /// Whether a key is due now (a free worker would get one from [`Self::pop`]).
    pub fn has_ready(&self, now: Instant) -> bool {
        !self.ready.is_empty() || self.next_due().is_some_and(|at| at <= now)
    }

    /// Keys being reconciled.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Keys known to the queue in any state.
    pub fn len(&self) -> usize {
        self.delayed.len() + self.ready.len() + self.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;

    #[test]
    fn due_keys_are_served_first_come_first_served() {
        let t0 = Instant::now();
        let mut q = WorkQueue::new();
        q.add("b", t0 + Duration::from_secs(2));
        q.add("a", t0 + Duration::from_secs(1));
        q.add("c", t0);
        assert_eq!(q.pop(t0), Some("c"));
        assert_eq!(q.pop(t0), None, "a and b are not due yet");
        assert_eq!(q.next_due(), Some(t0 + Duration::from_secs(1)));
        let later = t0 + Duration::from_secs(5);
        assert_eq!(q.pop(later), Some("a"));
        assert_eq!(q.pop(later), Some("b"));
        assert_eq!(q.pop(later), None);
    }

    #[test]
    fn an_earlier_request_wins_and_a_due_key_keeps_its_place() {
        let t0 = Instant::now();
        let mut q = WorkQueue::new();
        q.add("a", t0 + Duration::from_secs(10));
        q.add("a", t0 + Duration::from_secs(1));
        q.add("a", t0 + Duration::from_secs(20));
        assert_eq!(q.next_due(), Some(t0 + Duration::from_secs(1)));
        q.add("x", t0);
        q.add("y", t0);
        assert!(q.has_ready(t0));
        let now = t0 + Duration::from_secs(2);
        assert_eq!(q.pop(now), Some("x"));
        // `a` became due after x and y: a new request for y does not move it behind a.
        q.add("y", now);
        assert_eq!(q.pop(now), Some("y"));
        assert_eq!(q.pop(now), Some("a"));
        assert_eq!(q.len(), 3, "three running");
    }

    #[test]
    fn a_key_is_never_handed_out_twice_at_once() {
        let t0 = Instant::now();
        let mut q = WorkQueue::new();
        q.add("a", t0);
        assert_eq!(q.pop(t0), Some("a"));
        q.add("a", t0);
        assert_eq!(q.pop(t0), None, "a is running");
        q.done(&"a", Some(t0 + Duration::from_secs(60)));
        assert_eq!(q.pop(t0), Some("a"), "the request made while running wins");
        q.done(&"a", None);
        assert!(q.is_empty());
    }

    #[test]
    fn forgotten_keys_leave_every_line() {
        let t0 = Instant::now();
        let mut q = WorkQueue::new();
        q.add("a", t0);
        q.add("b", t0 + Duration::from_secs(1));
        q.add("c", t0);
        assert_eq!(q.pop(t0), Some("a"));
        q.forget(&"b");
        q.forget(&"c");
        assert_eq!(q.pop(t0 + Duration::from_secs(2)), None);
        assert_eq!(q.len(), 1);
    }

    /// The starvation seen with 50 Canaries, 2 workers and a slow API server: some keys come
    /// back at once after every reconcile (their own writes trigger watch events, or their
    /// requeue is due immediately) while the rest wait. Every waiting key must get its turn
    /// before any key is served twice in a row of turns.
    #[test]
    fn keys_that_come_back_at_once_do_not_starve_the_others() {
        let t0 = Instant::now();
        let mut q = WorkQueue::new();
        let keys: Vec<String> = (0..50).map(|i| format!("canary-{i:02}")).collect();
        for k in &keys {
            q.add(k.clone(), t0);
        }
        let mut served: BTreeMap<String, usize> = BTreeMap::new();
        let workers = 2;
        let mut turns = 0;
        let mut now = t0;
        while served.len() < keys.len() {
            turns += 1;
            assert!(turns <= 100, "not every key was served: {served:?}");
            let batch: Vec<String> = (0..workers).filter_map(|_| q.pop(now)).collect();
            for k in batch {
                *served.entry(k.clone()).or_default() += 1;
                // Every reconcile brings the first five keys back at once (a watch event
                // caused by their own writes), the others an interval later.
                if keys[..5].contains(&k) {
                    q.add(k.clone(), now);
                }
                q.done(&k, Some(now + Duration::from_secs(10)));
            }
            now += Duration::from_millis(50);
        }
        let most = served.values().max().copied().unwrap_or(0);
        assert!(
            most <= 2,
            "a key was served {most} times before all were served once: {served:?}"
        );
    }
}

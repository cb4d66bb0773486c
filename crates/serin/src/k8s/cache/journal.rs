//! What a stretch of a reconcile read from the caches, so that the stretch can be skipped the
//! next time when none of it has changed since (the tick's set-up steps, which verify every
//! routing object, Service and the primary workload on every tick: at 10,000 Canaries about a
//! tenth of the controller's CPU, decoding objects that had not changed).
//!
//! [`recorded`] runs a future with a journal in its task. Every read a synced cache answers
//! ([`super::Cache::get`] and friends) notes the object's kind, key and `resourceVersion`. Any
//! read the cache could not answer, any write made through the cache, and any API request at
//! all (the controller's client layer calls [`spoil`]) spoils the journal: then the stretch
//! depended on something the journal cannot check later, or changed something, and it has to
//! run again. An unspoiled journal becomes [`Reads`], which say cheaply (no decoding) whether
//! every object read is still kept at the version read.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;

use super::super::packed::{Key, key};

/// A kind's store, asked for the version of one object it keeps.
pub(super) trait Versions: Send + Sync {
    /// `Some(version)` while `key` (`namespace/name`) is kept at `version`; `None` when it is
    /// not kept, or kept without a numbered version.
    fn version(&self, key: &str) -> Option<u64>;
}

/// One object as a stretch saw it: read at, or written as, `version`.
struct Seen {
    kind: Arc<dyn Versions>,
    key: Key,
    version: u64,
}

impl Seen {
    fn is(&self, other: &Seen) -> bool {
        // The same store (compared by address, without the vtable) and the same object.
        std::ptr::addr_eq(Arc::as_ptr(&self.kind), Arc::as_ptr(&other.kind))
            && self.key == other.key
    }
}

/// What a stretch run by [`recorded`] read and wrote through the caches.
#[derive(Default)]
pub struct Journal {
    reads: Vec<Seen>,
    writes: Vec<Seen>,
    spoiled: bool,
}

impl Journal {
    /// The reads, when they alone answered the stretch: nothing spoiled the journal and the
    /// stretch wrote nothing.
    pub fn into_reads(self) -> Option<Reads> {
        (!self.spoiled && self.writes.is_empty()).then_some(Reads(self.reads))
    }
}

/// The reads of a stretch that only read from synced caches, and wrote nothing.
pub struct Reads(Vec<Seen>);

impl Reads {
    /// Whether every object read is still kept at the version read.
    pub fn unchanged(&self) -> bool {
        self.0
            .iter()
            .all(|r| r.kind.version(&r.key) == Some(r.version))
    }

    /// Takes in the writes of a later stretch that the stretch these reads answered does not
    /// look at (the routes a step sets, which the routing objects' set-up ignores): an object
    /// `later` read at the version read here and then wrote is taken at the version written.
    /// An object someone else changed in between is left as it is, so it no longer matches.
    pub fn advance(&mut self, later: &Journal) {
        for write in &later.writes {
            let Some(read) = self.0.iter_mut().find(|r| r.is(write)) else {
                continue;
            };
            let seen_here = later
                .reads
                .iter()
                .any(|r| r.is(write) && r.version == read.version);
            if seen_here {
                read.version = write.version;
            }
        }
    }

    /// How many objects were read.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing was read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Reads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|r| (&r.key, r.version)))
            .finish()
    }
}

tokio::task_local! {
    static JOURNAL: RefCell<Journal>;
}

/// Runs `work` with a journal of what it reads and writes through the caches (see the
/// module's docs).
pub async fn recorded<F: Future>(work: F) -> (F::Output, Journal) {
    JOURNAL
        .scope(RefCell::new(Journal::default()), async move {
            let out = work.await;
            let journal = JOURNAL.with(|j| std::mem::take(&mut *j.borrow_mut()));
            (out, journal)
        })
        .await
}

/// Notes a read answered by a cache (outside [`recorded`], nothing: the key is only built
/// inside a journal, so reads outside one cost no allocation). A version that is not a number
/// cannot be compared later: it spoils the journal.
pub(super) fn read<V: Versions + 'static>(
    kind: &Arc<V>,
    namespace: &str,
    name: &str,
    version: Option<u64>,
) {
    note(kind, namespace, name, version, |j| &mut j.reads);
}

/// Notes a write whose result a cache keeps (outside [`recorded`], nothing).
pub(super) fn wrote<V: Versions + 'static>(
    kind: &Arc<V>,
    namespace: &str,
    name: &str,
    version: Option<u64>,
) {
    note(kind, namespace, name, version, |j| &mut j.writes);
}

fn note<V: Versions + 'static>(
    kind: &Arc<V>,
    namespace: &str,
    name: &str,
    version: Option<u64>,
    list: fn(&mut Journal) -> &mut Vec<Seen>,
) {
    let _ = JOURNAL.try_with(|j| {
        let mut j = j.borrow_mut();
        match version {
            Some(version) => list(&mut j).push(Seen {
                kind: kind.clone(),
                key: key(namespace, name),
                version,
            }),
            None => j.spoiled = true,
        }
    });
}

/// Notes something the journal cannot check later: an API request, a read the cache could
/// not answer, a write it does not keep (outside [`recorded`], nothing).
pub fn spoil() {
    let _ = JOURNAL.try_with(|j| j.borrow_mut().spoiled = true);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::sync::Mutex;

    struct Fake(Mutex<Option<u64>>);

    impl Versions for Fake {
        fn version(&self, _key: &str) -> Option<u64> {
            *self.0.lock().unwrap()
        }
    }

    fn fake(version: u64) -> Arc<Fake> {
        Arc::new(Fake(Mutex::new(Some(version))))
    }

    #[tokio::test]
    async fn reads_answer_until_the_store_moves_on() {
        let kind = fake(7);
        let k = kind.clone();
        let ((), journal) = recorded(async move { read(&k, "ns", "a", Some(7)) }).await;
        let reads = journal.into_reads().expect("only cache reads");
        assert_eq!(reads.len(), 1);
        assert!(reads.unchanged());
        *kind.0.lock().unwrap() = Some(8);
        assert!(!reads.unchanged(), "a new version");
        *kind.0.lock().unwrap() = None;
        assert!(!reads.unchanged(), "no longer kept");
    }

    #[tokio::test]
    async fn requests_writes_and_unnumbered_versions_spoil_the_reads() {
        let kind = fake(7);
        let k = kind.clone();
        let ((), journal) = recorded(async move {
            read(&k, "ns", "a", Some(7));
            spoil();
        })
        .await;
        assert!(journal.into_reads().is_none(), "an API request");
        let k = kind.clone();
        let ((), journal) = recorded(async move { wrote(&k, "ns", "a", Some(8)) }).await;
        assert!(journal.into_reads().is_none(), "a write");
        let ((), journal) = recorded(async move { read(&kind, "ns", "a", None) }).await;
        assert!(
            journal.into_reads().is_none(),
            "a version that is not a number"
        );
    }

    #[tokio::test]
    async fn reads_advance_past_later_writes_of_what_they_read_only() {
        let vs = fake(7);
        let other = fake(3);
        let (v, o) = (vs.clone(), other.clone());
        let ((), journal) = recorded(async move {
            read(&v, "ns", "vs", Some(7));
            read(&o, "ns", "svc", Some(3));
        })
        .await;
        let mut reads = journal.into_reads().unwrap();

        // A later stretch reads the routing object at the same version and writes it.
        let v = vs.clone();
        let ((), later) = recorded(async move {
            read(&v, "ns", "vs", Some(7));
            wrote(&v, "ns", "vs", Some(9));
        })
        .await;
        *vs.0.lock().unwrap() = Some(9);
        reads.advance(&later);
        assert!(reads.unchanged(), "the write is taken in");

        // One that read a version someone else wrote in between is not.
        let v = vs.clone();
        let ((), later) = recorded(async move {
            read(&v, "ns", "vs", Some(10));
            wrote(&v, "ns", "vs", Some(11));
        })
        .await;
        *vs.0.lock().unwrap() = Some(11);
        reads.advance(&later);
        assert!(!reads.unchanged(), "version 10 was never vouched for");

        // A write of an object the reads do not name changes nothing.
        let o = other.clone();
        let ((), later) = recorded(async move { wrote(&o, "ns", "other", Some(4)) }).await;
        let before = format!("{reads:?}");
        reads.advance(&later);
        assert_eq!(format!("{reads:?}"), before);
    }

    #[test]
    fn outside_a_journal_notes_are_ignored() {
        spoil();
        read(&fake(1), "ns", "a", Some(1));
        wrote(&fake(1), "ns", "a", Some(2));
    }
}

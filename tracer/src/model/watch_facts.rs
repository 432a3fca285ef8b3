//! What `hang --watch` learns from outside its event stream: the target's memory (goroutine
//! snapshots, lock words), the clock, the kernel's lost-event counter. The live run turns
//! each into a [`WatchFact`] and applies the fact, never the raw reading; a recording keeps
//! the facts between the ring records, where they were applied, so that a replay applies
//! the same facts at the same points and prints the same reports in the same order.
use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{
    goroutines::{Deadlock, Frame, Snapshot},
    watch::Due,
};
use crate::gobin::MutexSite;

/// A probed fast-path Lock/Unlock site: how to decode its hits, and the source place that
/// takes a lock there (for a certain deadlock's holders).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SiteFact {
    pub site: MutexSite,
    pub taken_at: Option<Frame>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "fact", rename_all = "snake_case")]
pub enum WatchFact {
    /// The first snapshot, read before the probes went in: the goroutines already blocked
    /// (id, the runtime's wait time) and the possible deadlocks it showed.
    Seed {
        now_ns: u64,
        goroutines: usize,
        blocked: Vec<(u64, Option<u64>)>,
        deadlocks: Vec<Deadlock>,
    },
    /// The kernel's count of lost events grew to `total`.
    Lost { total: u64 },
    /// A snapshot arrived and what was due at `now_ns` was checked against it: the
    /// goroutines the check looks at (with the lock holders they may have), every possible
    /// deadlock it showed, and the lock words the check reads (locked bit, None when
    /// unreadable).
    Confirm {
        now_ns: u64,
        took_ns: u64,
        snapshot: Snapshot,
        lock_words: Vec<(u64, Option<bool>)>,
    },
}

impl WatchFact {
    /// A recorded fact; what is wrong with it, in words.
    pub fn from_json(json: &[u8]) -> Result<WatchFact, String> {
        serde_json::from_slice(json).map_err(|e| format!("a live fact: {e}"))
    }

    pub fn seed(first: &Snapshot, now_ns: u64) -> WatchFact {
        WatchFact::Seed {
            now_ns,
            goroutines: first.goroutines.len(),
            blocked: first
                .goroutines
                .iter()
                .filter(|g| g.blocked() && !g.system)
                .map(|g| (g.goid, g.waiting_ns))
                .collect(),
            deadlocks: first.deadlocks.clone(),
        }
    }

    /// The part of `snap` that confirming `due` reads, and the words of the locks its
    /// cycles wait on, read by `locked`.
    pub fn confirm(
        snap: &Snapshot,
        due: &Due,
        now_ns: u64,
        took_ns: u64,
        locked: impl Fn(u64) -> Option<bool>,
    ) -> WatchFact {
        let mut goids: HashSet<u64> = due.blocked.iter().copied().collect();
        let mut locks = Vec::new();
        for c in &due.cycles {
            goids.extend(&c.goids);
            locks.extend(&c.locks);
        }
        locks.sort_unstable();
        locks.dedup();
        let goroutines: Vec<_> = snap
            .goroutines
            .iter()
            .filter(|g| goids.contains(&g.goid))
            .cloned()
            .collect();
        let waited: HashSet<u64> = goroutines
            .iter()
            .filter_map(|g| g.wait.as_ref()?.object)
            .collect();
        WatchFact::Confirm {
            now_ns,
            took_ns,
            snapshot: Snapshot {
                go_version: snap.go_version.clone(),
                goroutines,
                unreadable: snap.unreadable,
                holders: snap
                    .holders
                    .iter()
                    .filter(|h| waited.contains(&h.lock))
                    .cloned()
                    .collect(),
                deadlocks: snap.deadlocks.clone(),
                elapsed_ns: snap.elapsed_ns,
            },
            lock_words: locks.into_iter().map(|l| (l, locked(l))).collect(),
        }
    }
}

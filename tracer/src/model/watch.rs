//! `hang --watch`: goroutines followed live from the scheduler and sync probes.
//!
//! `gopark` says when a goroutine blocked and why; `ready` (or any later hit on the same
//! goroutine) that it woke. A goroutine parked for longer than the threshold is confirmed
//! from the target's memory before it is reported (a wake-up the probes cannot see, e.g.
//! from the network poller, must not be reported as a hang), with its stack read there:
//! a parked goroutine's stack is the stack at the moment it blocked.
//!
//! Deadlocks are reported as certain only from recorded ownership. A Mutex is held by the
//! goroutine seen taking it (a probed fast-path site whose CAS succeeded, or `lockSlow`
//! returning) until a release is seen (a probed Unlock site, or `unlockSlow`, through which
//! every Unlock goes while someone waits). Ownership is trusted only for locks that probed
//! fast-path sites have seen (used by the `--own` packages): elsewhere an unprobed fast-path
//! Unlock and Lock can hand a lock over unseen. Two acquisitions without a release in between
//! mean a release was missed somewhere unprobed: that lock's ownership is then never used.
//! Lost events reset all ownership. A cycle of waits on trusted locks, still standing after
//! [`SETTLE_NS`] and confirmed by the snapshot (every goroutine in it parked, on that lock)
//! and by the lock words in memory (locked), is certain.
use std::collections::{HashMap, HashSet};

use super::{
    bounded::LruMap,
    goroutines::{Goroutine, Snapshot, Symbolizer},
};
use crate::probes::sync::{Prim, SyncEvent};

/// A wait cycle must stand this long before it is checked (and then reported): events of
/// one instant arrive from several CPUs.
pub const SETTLE_NS: u64 = 200_000_000;
const RW_READER_SEM: u64 = 12;
/// Bounds on state kept while attached, each evicting its least recently used entry
/// (counted in [`WatchEvictions`]): per goroutine (parked, waiting for a lock, reported)
/// 16 to 48 bytes each, per lock by last use, and the cycles already reported.
pub const MAX_GOROUTINES: usize = 1 << 20;
pub const MAX_LOCKS: usize = 1 << 16;
pub const MAX_CYCLES: usize = 4096;
const MAX_CYCLE: usize = 16;

/// What the bounds made the watch forget, for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WatchEvictions {
    /// Parked goroutines no longer followed, longest parked first (not reported if blocked).
    pub parked: u64,
    /// Lock waits dropped, oldest first (such a goroutine is in no certain cycle).
    pub lock_waits: u64,
    /// Lock states dropped, least recently used first; one that had an owner or a taint is
    /// remembered as untrusted.
    pub locks: u64,
    /// Untrusted locks forgotten: from the first, no deadlock is claimed certain.
    pub untrusted_locks: u64,
    /// Reported goroutines forgotten, oldest first (their wake-up is not reported).
    pub reported: u64,
    /// Reported cycles, certain or possible, forgotten oldest first (one could be reported
    /// again).
    pub cycles: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStart {
    /// From `gopark`.
    Probe,
    /// Already blocked when the watch began; from the runtime's `g.waitsince`.
    Runtime,
    /// Already blocked when the watch began, with no recorded start: counted from then.
    Attach,
}

impl WaitStart {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitStart::Probe => "probe",
            WaitStart::Runtime => "runtime",
            WaitStart::Attach => "attach",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Parked {
    since: u64,
    start: WaitStart,
}

/// How a lock's holder was seen taking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// At this probed fast-path site (index into the planned sites).
    Site(usize),
    /// `lockSlow` returned.
    SlowPath,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub goid: u64,
    pub since: u64,
    pub taken: Taken,
}

/// What is known about one mutex.
#[derive(Debug, Clone, Copy, Default)]
struct LockState {
    owner: Option<Owner>,
    /// A probed fast-path site has seen this lock.
    site_seen: bool,
    /// Its ownership record proved incomplete (taken twice with no release seen).
    tainted: bool,
}

#[derive(Debug, Clone, Copy)]
struct LockWait {
    lock: u64,
    since: u64,
    /// `Mutex` for a lockSlow wait, `Sema` for an RWMutex reader's.
    via: Prim,
}

/// A deadlock whose every edge is recorded: goroutine `goids[i]` waits for `locks[i]`,
/// held by `goids[i + 1]` (wrapping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertainCycle {
    pub goids: Vec<u64>,
    pub locks: Vec<u64>,
    pub owners: Vec<Owner>,
}

#[derive(Debug, Clone)]
pub enum Report {
    /// Blocked past the threshold, confirmed in memory.
    Blocked {
        goroutine: Box<Goroutine>,
        waited_ns: u64,
        start: WaitStart,
    },
    /// A goroutine reported as blocked ran again.
    Unblocked {
        goid: u64,
        waited_ns: u64,
    },
    Deadlock(CertainCycle),
}

/// What a tick must confirm against a snapshot.
#[derive(Debug, Default)]
pub struct Due {
    pub blocked: Vec<u64>,
    pub cycles: Vec<CertainCycle>,
}

impl Due {
    pub fn is_empty(&self) -> bool {
        self.blocked.is_empty() && self.cycles.is_empty()
    }
}

pub struct Watch<'b> {
    /// Tells RWMutex reader waits from other semaphore waits (none in unit tests).
    symbols: Option<Symbolizer<'b>>,
    threshold_ns: u64,
    parked: LruMap<u64, Parked>,
    /// Goroutines waiting for a lock, from the slow paths.
    lock_waits: LruMap<u64, LockWait>,
    /// By last use.
    locks: LruMap<u64, LockState>,
    /// Evicted locks whose ownership record mattered (an owner or a taint): trusted never
    /// again, as their record is gone.
    untrusted: LruMap<u64, ()>,
    /// Set when an untrusted lock was forgotten: a forgotten taint could make a cycle look
    /// certain, so none is claimed from then on.
    certainty_lost: bool,
    reported: LruMap<u64, u64>,
    /// Certain cycles reported, as sorted goroutine ids.
    reported_cycles: LruMap<Vec<u64>, ()>,
    /// Possible (snapshot-inferred) cycles reported, likewise.
    possible_cycles: LruMap<Vec<u64>, ()>,
    unblocked: Vec<Report>,
    /// Goroutines dropped because the target's memory showed them running (a wake-up no
    /// probe saw).
    pub unseen_wakeups: u64,
    pub evicted: WatchEvictions,
}

impl<'b> Watch<'b> {
    pub fn new(symbols: Option<Symbolizer<'b>>, threshold_ns: u64) -> Watch<'b> {
        Watch {
            symbols,
            threshold_ns,
            parked: LruMap::new(MAX_GOROUTINES),
            lock_waits: LruMap::new(MAX_GOROUTINES),
            locks: LruMap::new(MAX_LOCKS),
            untrusted: LruMap::new(MAX_LOCKS),
            certainty_lost: false,
            reported: LruMap::new(MAX_GOROUTINES),
            reported_cycles: LruMap::new(MAX_CYCLES),
            possible_cycles: LruMap::new(MAX_CYCLES),
            unblocked: Vec::new(),
            unseen_wakeups: 0,
            evicted: WatchEvictions::default(),
        }
    }

    /// Goroutines already blocked when the watch began (from a first snapshot): each
    /// goroutine id with the runtime's wait time, if it has one.
    pub fn seed(&mut self, blocked: &[(u64, Option<u64>)], now: u64) {
        for &(goid, waiting_ns) in blocked {
            let (since, start) = match waiting_ns {
                Some(w) => (now.saturating_sub(w), WaitStart::Runtime),
                None => (now, WaitStart::Attach),
            };
            let evicted = self.parked.insert(goid, Parked { since, start });
            self.evicted.parked += u64::from(evicted.is_some());
        }
    }

    /// The symbolizer's answers so far (what a recording keeps).
    pub fn symbols(&self) -> Option<&Symbolizer<'b>> {
        self.symbols.as_ref()
    }

    pub fn on_event(&mut self, ev: SyncEvent) {
        match ev {
            SyncEvent::Parked { goid, ts, .. } => {
                self.woke(goid, ts);
                let evicted = self.parked.insert(
                    goid,
                    Parked {
                        since: ts,
                        start: WaitStart::Probe,
                    },
                );
                self.evicted.parked += u64::from(evicted.is_some());
            }
            SyncEvent::Readied { goid, ts } => self.woke(goid, ts),
            SyncEvent::Exited { goid, ts } => {
                self.woke(goid, ts);
                self.lock_waits.remove(&goid);
            }
            // Lock naming's business (the pipeline keeps the cache's address).
            SyncEvent::CacheReceiver { .. } => {}
            SyncEvent::WaitStart {
                goid,
                ts,
                prim,
                addr,
                stack,
            } => {
                let lock = match prim {
                    Prim::Mutex => Some(addr),
                    // A reader waits for the writer holding the RWMutex's own mutex.
                    Prim::Sema => {
                        let frames = match self.symbols.as_mut() {
                            Some(s) => s.stack(&stack),
                            None => Vec::new(),
                        };
                        let reader = frames
                            .iter()
                            .take_while(|f| !f.func.ends_with("(*Mutex).lockSlow"))
                            .any(|f| f.func == "sync.(*RWMutex).RLock");
                        // The address comes from the target: no wrap-around below 0.
                        addr.checked_sub(RW_READER_SEM).filter(|_| reader)
                    }
                };
                if let Some(lock) = lock {
                    let evicted = self.lock_waits.insert(
                        goid,
                        LockWait {
                            lock,
                            since: ts,
                            via: prim,
                        },
                    );
                    self.evicted.lock_waits += u64::from(evicted.is_some());
                }
            }
            SyncEvent::WaitEnd { goid, ts, prim } => match prim {
                Prim::Mutex => {
                    if let Some(w) = self.lock_waits.remove(&goid) {
                        self.acquired(w.lock, goid, ts, Taken::SlowPath);
                    }
                }
                Prim::Sema => {
                    // A reader got in; a lockSlow wait (whose semaphore this was) goes on.
                    if self
                        .lock_waits
                        .get(&goid)
                        .is_some_and(|w| w.via == Prim::Sema)
                    {
                        self.lock_waits.remove(&goid);
                    }
                }
            },
            SyncEvent::Released {
                prim: Prim::Mutex,
                addr,
                ..
            } => self.released(addr, false),
            SyncEvent::Released { .. } => {}
            SyncEvent::Site {
                goid,
                ts,
                addr,
                acquired,
                site,
            } => {
                if acquired {
                    self.acquired(addr, goid, ts, Taken::Site(site));
                } else {
                    self.released(addr, true);
                }
            }
        }
    }

    fn lock_state(&mut self, lock: u64) -> &mut LockState {
        let untrusted = &mut self.untrusted;
        let (state, evicted) = self.locks.touch_or_insert_with(lock, || LockState {
            // Its record was evicted while it mattered: not complete any more.
            tainted: untrusted.remove(&lock).is_some(),
            ..LockState::default()
        });
        if let Some((cold, old)) = evicted {
            self.evicted.locks += 1;
            if (old.owner.is_some() || old.tainted) && self.untrusted.insert(cold, ()).is_some() {
                self.evicted.untrusted_locks += 1;
                self.certainty_lost = true;
            }
        }
        state
    }

    fn acquired(&mut self, lock: u64, goid: u64, ts: u64, taken: Taken) {
        let state = self.lock_state(lock);
        if state.owner.is_some() {
            // Taken again with no release seen: some release goes unprobed.
            state.tainted = true;
        }
        state.site_seen |= matches!(taken, Taken::Site(_));
        state.owner = Some(Owner {
            goid,
            since: ts,
            taken,
        });
    }

    fn released(&mut self, lock: u64, at_site: bool) {
        if !at_site && !self.locks.contains_key(&lock) {
            return;
        }
        let state = self.lock_state(lock);
        state.owner = None;
        state.site_seen |= at_site;
    }

    /// Events were lost: an acquisition or release may be missing, so every recorded owner
    /// is dropped (waits and taints stay).
    pub fn events_lost(&mut self) {
        for state in self.locks.values_mut() {
            state.owner = None;
        }
    }

    fn woke(&mut self, goid: u64, ts: u64) {
        self.parked.remove(&goid);
        if let Some(since) = self.reported.remove(&goid) {
            self.unblocked.push(Report::Unblocked {
                goid,
                waited_ns: ts.saturating_sub(since),
            });
        }
    }

    /// Whether these goroutines were reported as a certain deadlock.
    pub fn reported_cycle(&self, goids: &[u64]) -> bool {
        self.reported_cycles.contains_key(&sorted(goids))
    }

    /// Whether a possible cycle over these goroutines is new (then it is remembered):
    /// neither reported as possible nor as certain.
    pub fn new_possible_cycle(&mut self, goids: &[u64]) -> bool {
        let key = sorted(goids);
        if self.possible_cycles.contains_key(&key) || self.reported_cycles.contains_key(&key) {
            return false;
        }
        let evicted = self.possible_cycles.insert(key, ());
        self.evicted.cycles += u64::from(evicted.is_some());
        true
    }

    /// Reports that need no confirmation (wake-ups of reported goroutines).
    pub fn take_unblocked(&mut self) -> Vec<Report> {
        std::mem::take(&mut self.unblocked)
    }

    /// What to confirm at time `now`: goroutines parked past the threshold and not yet
    /// reported, and standing wait cycles over recorded owners not yet reported.
    pub fn due(&self, now: u64) -> Due {
        let mut due = Due::default();
        for (&goid, p) in self.parked.iter() {
            if now.saturating_sub(p.since) >= self.threshold_ns
                && !self.reported.contains_key(&goid)
            {
                due.blocked.push(goid);
            }
        }
        due.blocked.sort_unstable();
        due.cycles = self
            .cycles(now)
            .into_iter()
            .filter(|c| !self.reported_cycles.contains_key(&sorted(&c.goids)))
            .collect();
        due
    }

    /// Cycles goroutine → lock it waits for → recorded owner → ..., over settled waits and
    /// untainted locks.
    fn cycles(&self, now: u64) -> Vec<CertainCycle> {
        if self.certainty_lost {
            return Vec::new();
        }
        let next = |g: u64| -> Option<(u64, Owner)> {
            let w = self.lock_waits.get(&g)?;
            let state = self.locks.get(&w.lock)?;
            if now.saturating_sub(w.since) < SETTLE_NS || state.tainted || !state.site_seen {
                return None;
            }
            let o = state.owner?;
            (o.goid != g).then_some((w.lock, o))
        };
        let mut out = Vec::new();
        let mut seen: HashSet<Vec<u64>> = HashSet::new();
        for &start in self.lock_waits.keys() {
            let (mut goids, mut locks, mut owners) = (vec![start], Vec::new(), Vec::new());
            let mut g = start;
            while let Some((lock, owner)) = next(g) {
                locks.push(lock);
                owners.push(owner);
                if owner.goid == start {
                    if seen.insert(sorted(&goids)) {
                        // Starting at its lowest goroutine id: the same cycle is told the
                        // same way whatever the map's order (a replay must match).
                        let first = (0..goids.len()).min_by_key(|&i| goids[i]).unwrap_or(0);
                        let (mut goids, mut locks, mut owners) =
                            (goids.clone(), locks.clone(), owners.clone());
                        goids.rotate_left(first);
                        locks.rotate_left(first);
                        owners.rotate_left(first);
                        out.push(CertainCycle {
                            goids,
                            locks,
                            owners,
                        });
                    }
                    break;
                }
                if goids.contains(&owner.goid) || goids.len() >= MAX_CYCLE {
                    break;
                }
                goids.push(owner.goid);
                g = owner.goid;
            }
        }
        out.sort_by(|a, b| a.goids.cmp(&b.goids));
        out
    }

    /// Confirms what was due against a snapshot taken after `due` was computed; `locked`
    /// reads whether a mutex's state word has its locked bit set.
    pub fn confirm(
        &mut self,
        snap: &Snapshot,
        due: Due,
        now: u64,
        locked: impl Fn(u64) -> Option<bool>,
    ) -> Vec<Report> {
        let by_goid: HashMap<u64, &Goroutine> =
            snap.goroutines.iter().map(|g| (g.goid, g)).collect();
        let mut out = Vec::new();
        for goid in due.blocked {
            let Some(p) = self.parked.get(&goid).copied() else {
                continue;
            };
            match by_goid.get(&goid) {
                // The runtime's own goroutines, hidden like Go's dump hides them.
                Some(g) if g.system => {
                    self.parked.remove(&goid);
                }
                Some(g) if g.blocked() => {
                    let evicted = self.reported.insert(goid, p.since);
                    self.evicted.reported += u64::from(evicted.is_some());
                    out.push(Report::Blocked {
                        goroutine: Box::new((*g).clone()),
                        waited_ns: now.saturating_sub(p.since),
                        start: p.start,
                    });
                }
                // Running, runnable or gone: it woke where no probe saw it.
                _ => {
                    self.parked.remove(&goid);
                    self.unseen_wakeups += 1;
                }
            }
        }
        for cycle in due.cycles {
            let standing = cycle.goids.iter().zip(&cycle.locks).all(|(goid, lock)| {
                locked(*lock) == Some(true)
                    && by_goid.get(goid).is_some_and(|g| {
                        g.blocked() && g.wait.as_ref().and_then(|w| w.object) == Some(*lock)
                    })
            });
            let key = sorted(&cycle.goids);
            if standing && !self.reported_cycles.contains_key(&key) {
                let evicted = self.reported_cycles.insert(key, ());
                self.evicted.cycles += u64::from(evicted.is_some());
                out.push(Report::Deadlock(cycle));
            }
        }
        out
    }
}

fn sorted(goids: &[u64]) -> Vec<u64> {
    let mut v = goids.to_vec();
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch() -> Watch<'static> {
        Watch::new(None, 1_000_000_000)
    }

    fn acquire(w: &mut Watch, goid: u64, lock: u64, ts: u64) {
        w.on_event(SyncEvent::Site {
            goid,
            ts,
            addr: lock,
            acquired: true,
            site: 0,
        });
    }

    fn wait(w: &mut Watch, goid: u64, lock: u64, ts: u64) {
        w.on_event(SyncEvent::WaitStart {
            goid,
            ts,
            prim: Prim::Mutex,
            addr: lock,
            stack: Vec::new(),
        });
    }

    #[test]
    fn abba_is_certain_once_settled() {
        let mut w = watch();
        let (a, b) = (0x1000, 0x2000);
        acquire(&mut w, 7, a, 10);
        acquire(&mut w, 8, b, 11);
        wait(&mut w, 7, b, 20);
        wait(&mut w, 8, a, 21);
        assert!(
            w.due(21 + SETTLE_NS - 10).cycles.is_empty(),
            "not settled yet"
        );
        let due = w.due(21 + SETTLE_NS);
        assert_eq!(due.cycles.len(), 1);
        let c = &due.cycles[0];
        assert_eq!(sorted(&c.goids), vec![7, 8]);
        // Each waits for the lock the other was seen taking.
        for (i, g) in c.goids.iter().enumerate() {
            let holder = c.owners[i].goid;
            assert_ne!(holder, *g);
            assert_eq!(c.locks[i], if *g == 7 { b } else { a });
        }
    }

    #[test]
    fn a_seen_release_breaks_the_cycle_and_a_missed_one_taints() {
        let mut w = watch();
        let (a, b) = (0x1000, 0x2000);
        acquire(&mut w, 7, a, 10);
        acquire(&mut w, 8, b, 11);
        w.on_event(SyncEvent::Released {
            goid: 8,
            ts: 12,
            prim: Prim::Mutex,
            addr: b,
        });
        wait(&mut w, 7, b, 20);
        wait(&mut w, 8, a, 21);
        assert!(w.due(u64::MAX / 2).cycles.is_empty());
        // b taken twice with no release between: its ownership is no longer trusted.
        acquire(&mut w, 9, b, 30);
        acquire(&mut w, 8, b, 31);
        assert!(w.due(u64::MAX / 2).cycles.is_empty());
    }

    #[test]
    fn slow_path_ownership_alone_is_not_trusted() {
        let mut w = watch();
        let (a, b) = (0x1000, 0x2000);
        // Both taken through lockSlow only: their fast-path Unlock/Lock could go unseen.
        for (g, lock, ts) in [(7, a, 10), (8, b, 11)] {
            wait(&mut w, g, lock, ts);
            w.on_event(SyncEvent::WaitEnd {
                goid: g,
                ts: ts + 1,
                prim: Prim::Mutex,
            });
        }
        wait(&mut w, 7, b, 20);
        wait(&mut w, 8, a, 21);
        assert!(w.due(u64::MAX / 2).cycles.is_empty());
    }

    #[test]
    fn lost_events_reset_owners() {
        let mut w = watch();
        let (a, b) = (0x1000, 0x2000);
        acquire(&mut w, 7, a, 10);
        acquire(&mut w, 8, b, 11);
        wait(&mut w, 7, b, 20);
        wait(&mut w, 8, a, 21);
        w.events_lost();
        assert!(w.due(u64::MAX / 2).cycles.is_empty());
    }

    #[test]
    fn parked_goroutines_and_lock_waits_are_bounded() {
        let mut w = watch();
        for goid in 0..=MAX_GOROUTINES as u64 {
            w.on_event(SyncEvent::Parked {
                goid,
                ts: goid,
                reason: 1,
            });
            wait(&mut w, goid, 0x1000, goid);
        }
        assert_eq!((w.evicted.parked, w.evicted.lock_waits), (1, 1));
        // The longest parked was forgotten; the rest are followed.
        let due = w.due(u64::MAX / 2).blocked;
        assert_eq!(due.len(), MAX_GOROUTINES);
        assert_eq!(due[0], 1);
    }

    #[test]
    fn a_cold_lock_is_evicted_and_an_owned_one_stays_untrusted() {
        let mut w = watch();
        let (a, b) = (0x1000, 0x2000);
        acquire(&mut w, 7, a, 10);
        acquire(&mut w, 8, b, 11);
        // Enough other locks, taken and released, to evict a and b.
        for i in 0..MAX_LOCKS as u64 {
            acquire(&mut w, 9, 0x10_0000 + i * 8, 20 + i);
            w.on_event(SyncEvent::Site {
                goid: 9,
                ts: 20 + i,
                addr: 0x10_0000 + i * 8,
                acquired: false,
                site: 0,
            });
        }
        assert_eq!(w.evicted.locks, 2);
        assert_eq!(w.evicted.untrusted_locks, 0);
        // Their owners were forgotten: taken again, they are never trusted.
        acquire(&mut w, 7, a, 1 << 40);
        acquire(&mut w, 8, b, 1 << 40);
        wait(&mut w, 7, b, 1 << 40);
        wait(&mut w, 8, a, 1 << 40);
        assert!(w.due(u64::MAX / 2).cycles.is_empty());
    }

    #[test]
    fn forgetting_an_untrusted_lock_ends_certainty() {
        let mut w = watch();
        for i in 0..2 * MAX_LOCKS as u64 + 1 {
            // Held, never released: each evicted lock is remembered as untrusted.
            acquire(&mut w, 7, 0x10_0000 + i * 8, i);
        }
        assert_eq!(w.evicted.untrusted_locks, 1);
        let (a, b) = (0x1000, 0x2000);
        acquire(&mut w, 7, a, 1 << 40);
        acquire(&mut w, 8, b, 1 << 40);
        wait(&mut w, 7, b, 1 << 40);
        wait(&mut w, 8, a, 1 << 40);
        assert!(w.due(u64::MAX / 2).cycles.is_empty());
    }

    #[test]
    fn reported_cycles_are_bounded() {
        let mut w = watch();
        for g in 0..=MAX_CYCLES as u64 {
            assert!(w.new_possible_cycle(&[2 * g + 1, 2 * g]));
            assert!(!w.new_possible_cycle(&[2 * g, 2 * g + 1]));
        }
        assert_eq!(w.evicted.cycles, 1);
        // The oldest was forgotten, so it is new again.
        assert!(w.new_possible_cycle(&[0, 1]));
    }

    #[test]
    fn parked_past_threshold_is_due_and_woken_is_not() {
        let mut w = watch();
        w.on_event(SyncEvent::Parked {
            goid: 5,
            ts: 100,
            reason: 1,
        });
        w.on_event(SyncEvent::Parked {
            goid: 6,
            ts: 100,
            reason: 1,
        });
        w.on_event(SyncEvent::Readied { goid: 6, ts: 200 });
        assert_eq!(w.due(100 + 999_999_999).blocked, Vec::<u64>::new());
        assert_eq!(w.due(100 + 1_000_000_000).blocked, vec![5]);
    }
}

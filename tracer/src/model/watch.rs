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

use super::goroutines::{Goroutine, Snapshot, Symbolizer};
use crate::probes::sync::{Prim, SyncEvent};

/// A wait cycle must stand this long before it is checked (and then reported): events of
/// one instant arrive from several CPUs.
pub const SETTLE_NS: u64 = 200_000_000;
const RW_READER_SEM: u64 = 12;
/// Bounds on tracked state (counted when hit).
const MAX_TRACKED: usize = 1 << 20;
const MAX_CYCLE: usize = 16;

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
    parked: HashMap<u64, Parked>,
    /// Goroutines waiting for a lock, from the slow paths.
    lock_waits: HashMap<u64, LockWait>,
    locks: HashMap<u64, LockState>,
    /// Set when per-lock state outgrew its bound and was dropped: a dropped taint could make
    /// a cycle look certain, so none is claimed from then on.
    certainty_lost: bool,
    reported: HashMap<u64, u64>,
    reported_cycles: HashSet<Vec<u64>>,
    unblocked: Vec<Report>,
    /// Goroutines dropped because the target's memory showed them running (a wake-up no
    /// probe saw).
    pub unseen_wakeups: u64,
    pub dropped: u64,
}

impl<'b> Watch<'b> {
    pub fn new(symbols: Option<Symbolizer<'b>>, threshold_ns: u64) -> Watch<'b> {
        Watch {
            symbols,
            threshold_ns,
            parked: HashMap::new(),
            lock_waits: HashMap::new(),
            locks: HashMap::new(),
            certainty_lost: false,
            reported: HashMap::new(),
            reported_cycles: HashSet::new(),
            unblocked: Vec::new(),
            unseen_wakeups: 0,
            dropped: 0,
        }
    }

    /// Goroutines already blocked when the watch began (from a first snapshot).
    pub fn seed(&mut self, snap: &Snapshot, now: u64) {
        for g in snap.goroutines.iter().filter(|g| g.blocked() && !g.system) {
            let (since, start) = match g.waiting_ns {
                Some(w) => (now.saturating_sub(w), WaitStart::Runtime),
                None => (now, WaitStart::Attach),
            };
            self.parked.insert(g.goid, Parked { since, start });
        }
    }

    pub fn on_event(&mut self, ev: SyncEvent) {
        match ev {
            SyncEvent::Parked { goid, ts, .. } => {
                self.woke(goid, ts);
                if self.parked.len() >= MAX_TRACKED {
                    self.parked.clear();
                    self.dropped += 1;
                }
                self.parked.insert(
                    goid,
                    Parked {
                        since: ts,
                        start: WaitStart::Probe,
                    },
                );
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
                    if self.lock_waits.len() >= MAX_TRACKED {
                        self.lock_waits.clear();
                        self.dropped += 1;
                    }
                    self.lock_waits.insert(
                        goid,
                        LockWait {
                            lock,
                            since: ts,
                            via: prim,
                        },
                    );
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
        if self.locks.len() >= MAX_TRACKED && !self.locks.contains_key(&lock) {
            self.locks.clear();
            self.certainty_lost = true;
            self.dropped += 1;
        }
        self.locks.entry(lock).or_default()
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
        self.reported_cycles.contains(&sorted(goids))
    }

    /// Reports that need no confirmation (wake-ups of reported goroutines).
    pub fn take_unblocked(&mut self) -> Vec<Report> {
        std::mem::take(&mut self.unblocked)
    }

    /// What to confirm at time `now`: goroutines parked past the threshold and not yet
    /// reported, and standing wait cycles over recorded owners not yet reported.
    pub fn due(&self, now: u64) -> Due {
        let mut due = Due::default();
        for (&goid, p) in &self.parked {
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
            .filter(|c| !self.reported_cycles.contains(&sorted(&c.goids)))
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
                        out.push(CertainCycle {
                            goids: goids.clone(),
                            locks: locks.clone(),
                            owners: owners.clone(),
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
                    self.reported.insert(goid, p.since);
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
            if standing && self.reported_cycles.insert(sorted(&cycle.goids)) {
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

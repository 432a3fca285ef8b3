//! Lock contention from the sync slow paths: one record per contended acquisition (which
//! lock, who waited, how long, who released it, the waiter's stack), and per-lock totals.
//!
//! A Mutex acquisition is contended when `Lock` falls into `lockSlow`; it ends when
//! `lockSlow` returns (the goroutine then holds the lock). RWMutex readers and writers that
//! wait for each other sleep in `runtime.semacquire1` on the RWMutex's reader or writer
//! semaphore; which one is told by the waiting stack. The releaser is the last goroutine
//! seen releasing the same object through a slow path during the wait: every Unlock made
//! while someone waits goes through `unlockSlow`, and every wake-up of a semaphore sleeper
//! through `semrelease1`.
use std::collections::HashMap;

use super::{
    bounded::LruMap,
    goroutines::{Frame, Symbolizer},
    latency::Histogram,
};
use crate::{
    probes::sync::{Prim, SyncEvent},
    profiles::{NamedBy, Profile},
};

/// Offsets of the semaphores inside `sync.RWMutex` (w Mutex 0, writerSem 8, readerSem 12),
/// the same from Go 1.19 through 1.27.
const RW_WRITER_SEM: u64 = 8;
const RW_READER_SEM: u64 = 12;
/// Bounds on per-goroutine and per-object state, so a long trace cannot grow without limit;
/// each evicts its least recently used entry and counts it ([`LockEvictions`]). Worst case
/// about 4,096 x (8 KiB histogram + 32 stacks of 32 PCs) = 66 MiB of locks, 65,536 waits
/// in progress (each with its symbolized stack) and 65,536 last releases.
pub const MAX_PENDING: usize = 1 << 16;
pub const MAX_RELEASES: usize = 1 << 16;
pub const MAX_LOCKS: usize = 4096;
/// Distinct waiting stacks kept per lock (waits with another stack are counted, not kept).
pub const MAX_STACKS_PER_LOCK: usize = 32;

/// What the bounds made the model forget, for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LockEvictions {
    /// Locks dropped, least recently contended first.
    pub locks: u64,
    /// The contended acquisitions and wait of those locks (still in the run's totals).
    pub locks_contended: u64,
    pub locks_wait_ns: u64,
    /// Waits in progress dropped, oldest first: their end is not reported.
    pub pending: u64,
    /// Last releases dropped, oldest first: a wait on that object shows no releaser.
    pub releases: u64,
    /// Contended acquisitions whose stack was not kept (the lock had its distinct stacks).
    pub stacks: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockType {
    Mutex,
    /// A writer waiting for the RWMutex (for another writer, or for readers to leave).
    RwMutex,
    /// A reader waiting for a writer to leave.
    RwMutexRead,
}

impl LockType {
    pub fn as_str(self) -> &'static str {
        match self {
            LockType::Mutex => "mutex",
            LockType::RwMutex => "rwmutex",
            LockType::RwMutexRead => "rwmutex_read",
        }
    }
}

/// One contended acquisition.
#[derive(Debug, Clone)]
pub struct Contention {
    /// The Mutex or RWMutex address.
    pub lock: u64,
    pub lock_type: LockType,
    pub name: Option<&'static str>,
    pub named_by: Option<NamedBy>,
    pub waiter: u64,
    pub start_ns: u64,
    pub wait_ns: u64,
    /// The goroutine whose release ended the wait, if one was seen.
    pub released_by: Option<u64>,
    pub stack: Vec<Frame>,
}

struct Pending {
    /// The object released to end this wait (the mutex, or the semaphore).
    prim: Prim,
    wait_addr: u64,
    lock: u64,
    lock_type: LockType,
    name: Option<(&'static str, NamedBy)>,
    start: u64,
    pcs: Vec<u64>,
    frames: Vec<Frame>,
}

#[derive(Clone)]
pub struct LockSummary {
    pub lock: u64,
    pub lock_type: LockType,
    pub name: Option<&'static str>,
    pub named_by: Option<NamedBy>,
    pub contended: u64,
    /// Of `contended`, RWMutex readers that waited for a writer.
    pub reader_waits: u64,
    pub total_wait_ns: u64,
    pub wait: Histogram,
    /// Waiting stacks by how often they waited, most first.
    pub top_stacks: Vec<(u64, Vec<Frame>)>,
}

/// Waiting stacks as raw PCs with how often each was seen.
type RawStacks = Vec<(u64, Vec<u64>)>;

struct LockStats {
    lock_type: LockType,
    reader_waits: u64,
    name: Option<(&'static str, NamedBy)>,
    contended: u64,
    total_wait_ns: u64,
    wait: Histogram,
    stacks: HashMap<Vec<u64>, u64>,
}

pub struct LockModel<'b> {
    /// Stacks to frames (none in unit tests: semaphore waits then go unclassified).
    symbols: Option<Symbolizer<'b>>,
    profile: Option<&'static Profile>,
    /// The engine's cache, once a probe on one of its methods has seen it (`set_cache`):
    /// its locks are then named by offset.
    cache: Option<u64>,
    pending: LruMap<u64, Pending>,
    /// Last slow-path release per object: (goid, time).
    releases: LruMap<(Prim, u64), (u64, u64)>,
    /// Per lock, by last contention.
    stats: LruMap<u64, LockStats>,
    /// Semaphore waits that are not lock waits (WaitGroup, runtime semaphores, the
    /// semaphore inside a Mutex's own slow path).
    pub other_waits: u64,
    /// State dropped at the bounds above (counted, not hidden).
    pub evicted: LockEvictions,
}

impl<'b> LockModel<'b> {
    pub fn new(
        symbols: Option<Symbolizer<'b>>,
        profile: Option<&'static Profile>,
    ) -> LockModel<'b> {
        LockModel {
            symbols,
            profile,
            cache: None,
            pending: LruMap::new(MAX_PENDING),
            releases: LruMap::new(MAX_RELEASES),
            stats: LruMap::new(MAX_LOCKS),
            other_waits: 0,
            evicted: LockEvictions::default(),
        }
    }

    pub fn set_bias(&mut self, bias: u64) {
        if let Some(s) = self.symbols.as_mut() {
            s.set_bias(bias);
        }
    }

    /// The symbolizer's answers so far (for a recording), and the PCs a replay lacked.
    pub fn symbols(&self) -> Option<&Symbolizer<'b>> {
        self.symbols.as_ref()
    }

    /// The engine cache's address, once known.
    pub fn cache(&self) -> Option<u64> {
        self.cache
    }

    /// The engine cache's address: its locks are named by offset from now on.
    pub fn set_cache(&mut self, addr: u64) {
        self.cache = Some(addr);
    }

    fn frames(&mut self, pcs: &[u64]) -> Vec<Frame> {
        match self.symbols.as_mut() {
            Some(s) => s.stack(pcs),
            None => Vec::new(),
        }
    }

    /// Feeds one event; returns a contended acquisition when one completes.
    pub fn on_event(&mut self, ev: SyncEvent) -> Option<Contention> {
        match ev {
            SyncEvent::WaitStart {
                goid,
                ts,
                prim,
                addr,
                stack,
            } => {
                let frames = self.frames(&stack);
                let Some((lock, lock_type)) = classify(prim, addr, &frames) else {
                    // Not a lock wait. A Mutex wait this goroutine is in (lockSlow sleeps
                    // on the mutex's semaphore) stays pending and is not counted again.
                    if !matches!(self.pending.get(&goid), Some(p) if p.prim == Prim::Mutex) {
                        self.other_waits += 1;
                    }
                    return None;
                };
                let name = self.profile.and_then(|p| {
                    p.name_lock(self.cache, lock, frames.iter().map(|f| f.func.as_str()))
                });
                let evicted = self.pending.insert(
                    goid,
                    Pending {
                        prim,
                        wait_addr: addr,
                        lock,
                        lock_type,
                        name,
                        start: ts,
                        pcs: stack,
                        frames,
                    },
                );
                self.evicted.pending += u64::from(evicted.is_some());
                None
            }
            SyncEvent::WaitEnd { goid, ts, prim } => {
                if self.pending.get(&goid)?.prim != prim {
                    // A semaphore return inside lockSlow: the Mutex wait goes on.
                    return None;
                }
                let p = self.pending.remove(&goid)?;
                let released_by = self
                    .releases
                    .get(&(p.prim, p.wait_addr))
                    .filter(|(_, at)| *at >= p.start && *at <= ts)
                    .map(|(g, _)| *g);
                let wait_ns = ts.saturating_sub(p.start);
                self.count(&p, wait_ns);
                Some(Contention {
                    lock: p.lock,
                    lock_type: p.lock_type,
                    name: p.name.map(|n| n.0),
                    named_by: p.name.map(|n| n.1),
                    waiter: goid,
                    start_ns: p.start,
                    wait_ns,
                    released_by,
                    stack: p.frames,
                })
            }
            SyncEvent::Released {
                goid,
                ts,
                prim,
                addr,
            } => {
                let evicted = self.releases.insert((prim, addr), (goid, ts));
                self.evicted.releases += u64::from(evicted.is_some());
                None
            }
            _ => None,
        }
    }

    fn count(&mut self, p: &Pending, wait_ns: u64) {
        let (s, evicted) = self.stats.touch_or_insert_with(p.lock, || LockStats {
            // Per lock: a Mutex, or a RWMutex whichever side waited.
            lock_type: match p.lock_type {
                LockType::Mutex => LockType::Mutex,
                _ => LockType::RwMutex,
            },
            reader_waits: 0,
            name: p.name,
            contended: 0,
            total_wait_ns: 0,
            wait: Histogram::default(),
            stacks: HashMap::new(),
        });
        // A RWMutex shows writer and reader waits; the summary names it by the first, or
        // by its offset once that is known.
        if s.name.is_none_or(|n| n.1 != NamedBy::Offset) && p.name.is_some() {
            s.name = p.name;
        }
        s.contended += 1;
        if p.lock_type == LockType::RwMutexRead {
            s.reader_waits += 1;
        }
        s.total_wait_ns += wait_ns;
        s.wait.record(wait_ns);
        if let Some(n) = s.stacks.get_mut(&p.pcs) {
            *n += 1;
        } else if s.stacks.len() < MAX_STACKS_PER_LOCK {
            s.stacks.insert(p.pcs.clone(), 1);
        } else {
            self.evicted.stacks += 1;
        }
        if let Some((_, cold)) = evicted {
            self.evicted.locks += 1;
            self.evicted.locks_contended += cold.contended;
            self.evicted.locks_wait_ns += cold.total_wait_ns;
        }
    }

    /// Per-lock totals, most total wait first, each with its `top` most frequent stacks.
    pub fn summary(&mut self, top: usize) -> Vec<LockSummary> {
        let mut raw: Vec<(LockSummary, RawStacks)> = Vec::new();
        for (&lock, s) in self.stats.iter() {
            let mut stacks: RawStacks = s.stacks.iter().map(|(pcs, &n)| (n, pcs.clone())).collect();
            // A fixed order, so that a group's representative does not depend on hashing.
            stacks.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            let summary = LockSummary {
                lock,
                lock_type: s.lock_type,
                name: s.name.map(|n| n.0),
                named_by: s.name.map(|n| n.1),
                contended: s.contended,
                reader_waits: s.reader_waits,
                total_wait_ns: s.total_wait_ns,
                wait: s.wait.clone(),
                top_stacks: Vec::new(),
            };
            raw.push((summary, stacks));
        }
        let mut out: Vec<LockSummary> = raw
            .into_iter()
            .map(|(mut summary, stacks)| {
                let symbolized = stacks
                    .into_iter()
                    .map(|(n, pcs)| (n, self.frames(&pcs)))
                    .collect();
                summary.top_stacks = group_stacks(symbolized, top);
                summary
            })
            .collect();
        out.sort_by(|a, b| {
            b.total_wait_ns
                .cmp(&a.total_wait_ns)
                .then(a.lock.cmp(&b.lock))
        });
        out
    }
}

/// The waiter's frames from the code that asked for the lock: without the runtime's and
/// the lock's own (a `sync.(*Once).doSlow` that locks stays: it says why).
pub fn user_frames(stack: &[Frame]) -> impl Iterator<Item = &Frame> {
    stack.iter().skip_while(|f| {
        f.func.starts_with("runtime.")
            || f.func.starts_with("internal/sync.")
            || f.func.starts_with("sync.(*Mutex).")
            || f.func.starts_with("sync.(*RWMutex).")
            || f.func.starts_with("sync.runtime_")
    })
}

/// Waiting stacks grouped as a reader sees them, the `top` largest groups first.
///
/// The model counts stacks by their raw return addresses, which tell apart stacks that
/// print the same: two calls on one line, the runtime and sync frames that are never
/// shown, and (in the human summary) everything below the first frames. Listed per raw
/// stack, one lock's summary showed lines that looked identical, each with part of the
/// count, and a call site split that way could fall out of the top entirely. So stacks
/// are grouped on what is printed of them, the function and line of every user frame
/// (all of them, as the JSON summary prints them), counts summed; each group keeps the
/// frames of its most frequent member. The human summary starts at three frames and goes
/// deeper where two listed groups share those (`output::locks::summary_human`).
pub fn group_stacks(stacks: Vec<(u64, Vec<Frame>)>, top: usize) -> Vec<(u64, Vec<Frame>)> {
    type Key = Vec<(String, Option<u32>)>;
    // Per group: the summed count, and the largest member's count and frames.
    let mut groups: HashMap<Key, (u64, u64, Vec<Frame>)> = HashMap::new();
    for (n, frames) in stacks {
        let key: Key = user_frames(&frames)
            .map(|f| (f.func.clone(), f.line))
            .collect();
        let g = groups.entry(key).or_insert((0, 0, Vec::new()));
        g.0 += n;
        if n > g.1 {
            (g.1, g.2) = (n, frames);
        }
    }
    let mut out: Vec<(Key, u64, Vec<Frame>)> = groups
        .into_iter()
        .map(|(key, (n, _, frames))| (key, n, frames))
        .collect();
    // Most first; equal counts in a fixed order (by the printed frames).
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out.truncate(top);
    out.into_iter().map(|(_, n, frames)| (n, frames)).collect()
}

/// Which lock a slow-path wait is for, from the waiting stack (innermost first). `None`
/// for semaphore waits that are not lock waits, including the semaphore inside `lockSlow`
/// (that Mutex wait is already counted from `lockSlow` itself).
fn classify(prim: Prim, addr: u64, frames: &[Frame]) -> Option<(u64, LockType)> {
    let is = |f: &Frame, name: &str| f.func == name || f.func == format!("internal/{name}");
    match prim {
        Prim::Mutex => {
            // rw.w.Lock() inside RWMutex.Lock: writer against writer, at the RWMutex's address.
            let rw = frames
                .iter()
                .skip_while(|f| !f.func.ends_with("(*Mutex).lockSlow"))
                .skip(1)
                .find(|f| !f.func.contains("(*Mutex)."))
                .is_some_and(|f| f.func == "sync.(*RWMutex).Lock");
            Some((
                addr,
                if rw {
                    LockType::RwMutex
                } else {
                    LockType::Mutex
                },
            ))
        }
        Prim::Sema => {
            for f in frames {
                if is(f, "sync.(*Mutex).lockSlow") {
                    return None;
                }
                match f.func.as_str() {
                    "sync.(*RWMutex).RLock" => {
                        return Some((addr.checked_sub(RW_READER_SEM)?, LockType::RwMutexRead));
                    }
                    "sync.(*RWMutex).Lock" => {
                        return Some((addr.checked_sub(RW_WRITER_SEM)?, LockType::RwMutex));
                    }
                    _ => {}
                }
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(m: &mut LockModel, goid: u64, ts: u64, prim: Prim, addr: u64) {
        assert!(
            m.on_event(SyncEvent::WaitStart {
                goid,
                ts,
                prim,
                addr,
                stack: vec![0x1000 + goid],
            })
            .is_none()
        );
    }

    fn release(m: &mut LockModel, goid: u64, ts: u64, prim: Prim, addr: u64) {
        assert!(
            m.on_event(SyncEvent::Released {
                goid,
                ts,
                prim,
                addr
            })
            .is_none()
        );
    }

    fn end(m: &mut LockModel, goid: u64, ts: u64, prim: Prim) -> Option<Contention> {
        m.on_event(SyncEvent::WaitEnd { goid, ts, prim })
    }

    #[test]
    fn releaser_is_the_last_release_during_the_wait() {
        let mut m = LockModel::new(None, None);
        let mu = 0xc000_0010;
        // A release before the wait began is not this wait's releaser.
        release(&mut m, 3, 5, Prim::Mutex, mu);
        start(&mut m, 7, 10, Prim::Mutex, mu);
        start(&mut m, 8, 11, Prim::Mutex, mu);
        // lockSlow sleeps on the mutex's semaphore: not a wait of its own, and its return
        // does not end the Mutex wait.
        start(&mut m, 7, 12, Prim::Sema, mu + 4);
        assert!(end(&mut m, 7, 19, Prim::Sema).is_none());
        release(&mut m, 5, 20, Prim::Mutex, mu);
        let c = end(&mut m, 7, 25, Prim::Mutex).unwrap();
        assert_eq!((c.lock, c.waiter, c.wait_ns), (mu, 7, 15));
        assert_eq!(c.released_by, Some(5));
        assert_eq!(c.lock_type, LockType::Mutex);
        release(&mut m, 7, 30, Prim::Mutex, mu);
        let c = end(&mut m, 8, 31, Prim::Mutex).unwrap();
        assert_eq!(c.released_by, Some(7));
        // Without any release during the wait (e.g. a spin that won), the releaser is unknown.
        start(&mut m, 9, 40, Prim::Mutex, mu);
        let c = end(&mut m, 9, 41, Prim::Mutex).unwrap();
        assert_eq!(c.released_by, None);

        let summary = m.summary(3);
        assert_eq!(summary.len(), 1);
        assert_eq!(summary[0].contended, 3);
        assert_eq!(summary[0].total_wait_ns, 15 + 20 + 1);
        // Without symbols no stack has a user frame: the three are one group, "?".
        assert_eq!(summary[0].top_stacks.len(), 1);
        assert_eq!(summary[0].top_stacks[0].0, 3);
    }

    fn frame(func: &str, line: u32, pc: u64) -> Frame {
        Frame {
            func: func.into(),
            file: Some("main.go".into()),
            line: Some(line),
            pc,
            offset: None,
            inlined: false,
            wrapper: false,
        }
    }

    #[test]
    fn stacks_that_print_the_same_are_one_group() {
        let lock_slow = |pc| frame("sync.(*Mutex).lockSlow", 10, pc);
        let stacks = vec![
            // Two return addresses on one line, below different sync internals.
            (
                4,
                vec![
                    lock_slow(0x100),
                    frame("main.work", 20, 0x200),
                    frame("main.main", 30, 0x300),
                ],
            ),
            (
                3,
                vec![
                    frame("sync.(*Mutex).Lock", 5, 0x110),
                    lock_slow(0x101),
                    frame("main.work", 20, 0x201),
                    frame("main.main", 30, 0x300),
                ],
            ),
            // Another caller of the same site: a group of its own.
            (
                5,
                vec![
                    lock_slow(0x100),
                    frame("main.work", 20, 0x200),
                    frame("main.other", 40, 0x400),
                ],
            ),
            (1, vec![lock_slow(0x100), frame("main.rare", 50, 0x500)]),
        ];
        let groups = group_stacks(stacks, 2);
        let summed: Vec<(u64, Vec<&str>)> = groups
            .iter()
            .map(|(n, frames)| (*n, user_frames(frames).map(|f| f.func.as_str()).collect()))
            .collect();
        assert_eq!(
            summed,
            vec![
                (7, vec!["main.work", "main.main"]),
                (5, vec!["main.work", "main.other"]),
            ]
        );
        // The group keeps the frames of its most frequent member.
        assert_eq!(groups[0].1[1].pc, 0x200);
    }

    /// One contended acquisition of `lock` by `goid`, waiting `wait` ns from `ts`.
    fn contend(m: &mut LockModel, goid: u64, lock: u64, ts: u64, wait: u64) {
        start(m, goid, ts, Prim::Mutex, lock);
        assert!(end(m, goid, ts + wait, Prim::Mutex).is_some());
    }

    #[test]
    fn the_least_recently_contended_lock_is_evicted_and_counted() {
        let mut m = LockModel::new(None, None);
        for i in 0..MAX_LOCKS as u64 {
            contend(&mut m, 1, 0x1000 + i * 8, i * 10, 3);
        }
        // The first lock is contended again: the second is now the coldest.
        contend(&mut m, 1, 0x1000, 1 << 40, 5);
        contend(&mut m, 1, 0x9_0000_0000, (1 << 40) + 10, 7);
        assert_eq!(
            m.evicted,
            LockEvictions {
                locks: 1,
                locks_contended: 1,
                locks_wait_ns: 3,
                ..LockEvictions::default()
            }
        );
        let summary = m.summary(1);
        assert_eq!(summary.len(), MAX_LOCKS);
        assert!(summary.iter().any(|s| s.lock == 0x1000 && s.contended == 2));
        assert!(!summary.iter().any(|s| s.lock == 0x1008));
    }

    #[test]
    fn waits_in_progress_are_evicted_oldest_first() {
        let mut m = LockModel::new(None, None);
        for goid in 0..=MAX_PENDING as u64 {
            start(&mut m, goid, goid, Prim::Mutex, 0x1000);
        }
        assert_eq!(m.evicted.pending, 1);
        // The oldest wait was forgotten, the next one is whole.
        assert!(end(&mut m, 0, 1 << 40, Prim::Mutex).is_none());
        assert!(end(&mut m, 1, 1 << 40, Prim::Mutex).is_some());
    }

    #[test]
    fn stacks_per_lock_and_releases_are_bounded_and_counted() {
        let mut m = LockModel::new(None, None);
        // Each goroutine waits with a stack of its own.
        for goid in 0..MAX_STACKS_PER_LOCK as u64 + 3 {
            contend(&mut m, goid, 0x1000, goid * 10, 1);
        }
        assert_eq!(m.evicted.stacks, 3);
        assert_eq!(
            m.summary(usize::MAX)[0].contended,
            MAX_STACKS_PER_LOCK as u64 + 3
        );
        for i in 0..=MAX_RELEASES as u64 {
            release(&mut m, 1, i, Prim::Mutex, 0x10_0000 + i * 8);
        }
        assert_eq!(m.evicted.releases, 1);
    }

    #[test]
    fn a_return_without_a_start_is_ignored() {
        let mut m = LockModel::new(None, None);
        assert!(end(&mut m, 7, 25, Prim::Mutex).is_none());
        assert!(m.summary(3).is_empty());
    }
}

//! Pairs function entries with their returns, per goroutine.
//!
//! Each goroutine keeps a stack of open frames. A frame is identified by its
//! distance from the goroutine's stack top (`stack_depth`), which both the entry
//! and every RET of the same call observe, and which survives stack copying. That
//! makes the pairing exact through deep recursion and lets us see frames a panic
//! skipped: a return (or a new entry) at a shallower depth proves that every deeper
//! open frame is gone without having returned.
use rustc_hash::FxHashMap as HashMap;

use tracer_common::{DEPTH_UNKNOWN, GO_INT_REGS, GOID_UNKNOWN, ProbeKind};

use super::bounded::LruMap;
use crate::probes::Event;

/// Captured values of one hit, if its probe had a spec.
pub type Captures = Option<crate::probes::CaptureBox>;

/// How a call ended, as far as the probes can prove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallStatus {
    /// Entry and RET seen: results and duration are known.
    Returned,
    /// Its frame disappeared without a RET (a panic unwound it, or the goroutine exited).
    Unwound,
    /// Still open when tracing stopped.
    Unfinished,
    /// Entry-only tracing: no return probes were attached.
    EntryOnly,
    /// A RET whose entry was not seen: the call began before tracing started.
    NoEntry,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Returned => "returned",
            CallStatus::Unwound => "unwound",
            CallStatus::Unfinished => "unfinished",
            CallStatus::EntryOnly => "entry_only",
            CallStatus::NoEntry => "no_entry",
        }
    }
}

/// One call of a traced function: exactly one record per call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    /// Unique per call (in entry order); `NoEntry` records get one too.
    pub frame: u64,
    /// The innermost traced call open on the same goroutine when this one began.
    pub parent: Option<u64>,
    pub probe_id: u32,
    pub tgid: u32,
    /// None when the kernel could not read `g.goid`.
    pub goid: Option<u64>,
    /// Thread the entry (or, for `NoEntry`, the return) ran on.
    pub tid: u32,
    pub start_ns: Option<u64>,
    pub end_ns: Option<u64>,
    pub args: Option<[u64; GO_INT_REGS]>,
    pub ret: Option<[u64; GO_INT_REGS]>,
    pub status: CallStatus,
    pub entry_captures: Captures,
    pub ret_captures: Captures,
}

impl CallRecord {
    pub fn duration_ns(&self) -> Option<u64> {
        match (self.status, self.start_ns, self.end_ns) {
            (CallStatus::Returned, Some(s), Some(e)) => Some(e.saturating_sub(s)),
            _ => None,
        }
    }
}

/// A call that has begun and not ended.
pub struct OpenFrame {
    pub frame: u64,
    pub parent: Option<u64>,
    pub probe_id: u32,
    pub tgid: u32,
    pub goid: u64,
    pub depth: u64,
    pub tid: u32,
    pub start_ns: u64,
    pub args: [u64; GO_INT_REGS],
    pub captures: Captures,
}

/// What the tracker reports, as it learns it.
// `Completed` is large, but it is built once per call and moved straight to its
// consumer; boxing it would add an allocation to every call on the hot path.
#[allow(clippy::large_enum_variant)]
pub enum Tracked<'a> {
    /// A call began (its record comes when it ends).
    Entered(&'a OpenFrame),
    /// A call ended, or is proven gone: exactly once per call.
    Completed(CallRecord),
    /// A `Point` probe fired; `within` is the innermost open call on its goroutine.
    Point {
        event: &'a Event,
        within: Option<u64>,
    },
}

/// Counters for the exit summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PairingStats {
    pub events: u64,
    /// Events whose goroutine or stack depth was unreadable: reported unpaired.
    pub unreadable: u64,
    pub unknown_kind: u64,
    /// Goroutines whose open frames were dropped (as unfinished) at the bound.
    pub evicted_goroutines: u64,
    /// Goroutines whose open frames were closed (as unfinished) after an idle spell that
    /// a loss of events followed: their exit was likely lost.
    pub idle_goroutines: u64,
    /// Of those, goroutines heard of again (the call was still running: a false eviction).
    pub idle_revived: u64,
}

impl PairingStats {
    /// What the call tracker's bounds closed, for a summary.
    pub fn evictions(&self) -> CallEvictions {
        CallEvictions {
            goroutines: self.evicted_goroutines,
            idle_goroutines: self.idle_goroutines,
            idle_goroutines_revived: self.idle_revived,
        }
    }
}

/// The call tracker's evictions, named as in `tracer cache`'s `evicted_state`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CallEvictions {
    /// Goroutines whose open calls were closed as unfinished at the bound on goroutines
    /// with open calls (their exit was likely lost).
    pub goroutines: u64,
    /// Goroutines whose open calls were closed as unfinished after two minutes without
    /// an event, with events lost since.
    pub idle_goroutines: u64,
    /// Of those, goroutines heard of again (their calls were still running).
    pub idle_goroutines_revived: u64,
}

impl CallEvictions {
    /// Each count with what it counts, for a human line.
    pub fn parts(&self) -> [(u64, &'static str); 3] {
        [
            (
                self.goroutines,
                "least recently heard-of goroutines' open calls",
            ),
            (
                self.idle_goroutines,
                "open calls of goroutines silent since a loss",
            ),
            (
                self.idle_goroutines_revived,
                "of which goroutines heard of again",
            ),
        ]
    }

    /// One human line, naming only what was evicted.
    pub fn describe(&self) -> Option<String> {
        describe_counts(self.parts())
    }
}

/// `N what, M what` for the non-zero counts, or None when all are zero.
pub fn describe_counts(counts: impl IntoIterator<Item = (u64, &'static str)>) -> Option<String> {
    let parts: Vec<String> = counts
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// Goroutines with open frames kept at most. One whose exit event was lost would keep
/// its frames for ever; past the bound, those least recently entered are closed.
const MAX_OPEN_GOROUTINES: usize = 1 << 16;

/// A goroutine silent this long (event time), with events lost since it was last heard
/// of, is taken for one whose exit was lost. Without a loss, no stack is closed for
/// being idle: its exit would have been seen.
pub const IDLE_AFTER_LOSS_NS: u64 = 120 * 1_000_000_000;
/// How often (event time) idle state is looked for.
pub const IDLE_SWEEP_EVERY_NS: u64 = 10 * 1_000_000_000;
/// Goroutines closed as idle that are remembered, to count those heard of again.
const IDLE_EVICTED_REMEMBERED: usize = 4096;

/// One goroutine's open frames, innermost last.
#[derive(Default)]
struct Stack {
    frames: Vec<OpenFrame>,
    /// Event time of the goroutine's latest event.
    last_ns: u64,
}

#[derive(Default)]
pub struct CallTracker {
    /// Open frames per (process, goroutine).
    stacks: HashMap<(u32, u64), Stack>,
    entry_only: bool,
    next_frame: u64,
    /// Latest event time seen (events of different CPUs arrive slightly out of order).
    now_ns: u64,
    /// The kernel side's lost-event count, and the time it last grew.
    lost_events: u64,
    lost_at_ns: u64,
    next_idle_sweep_ns: u64,
    /// Goroutines last closed as idle (value unused).
    idle_evicted: Option<LruMap<(u32, u64), ()>>,
    pub stats: PairingStats,
    /// Emptied frame lists kept for reuse: a goroutine's list goes when its last open call
    /// ends and would be allocated again at its next call.
    spare: Vec<Vec<OpenFrame>>,
}

/// Frame lists kept in [`CallTracker::spare`], and the largest capacity kept.
const MAX_SPARE: usize = 64;
const MAX_SPARE_CAPACITY: usize = 16;

impl CallTracker {
    pub fn new(entry_only: bool) -> CallTracker {
        CallTracker {
            entry_only,
            ..CallTracker::default()
        }
    }

    /// Feeds one event; completed calls are passed to `out` in the order they are proven.
    #[inline]
    pub fn on_event(&mut self, ev: Event, out: &mut impl FnMut(Tracked)) {
        self.stats.events += 1;
        let call = &ev.call;
        let Some(kind) = ProbeKind::from_u32(call.kind) else {
            self.stats.unknown_kind += 1;
            return;
        };
        let readable = call.goid != GOID_UNKNOWN && call.stack_depth != DEPTH_UNKNOWN;
        let key = (call.tgid, call.goid);
        self.now_ns = self.now_ns.max(call.ts_ns);
        if self.now_ns >= self.next_idle_sweep_ns {
            self.close_idle(out);
        }
        if readable && self.idle_evicted.is_some() {
            self.heard_of(key);
        }
        match kind {
            ProbeKind::GoroutineExit => self.exited(&ev, out),
            ProbeKind::Point => {
                let within = self.stacks.get_mut(&key).and_then(|s| {
                    s.last_ns = s.last_ns.max(call.ts_ns);
                    s.frames.last().map(|f| f.frame)
                });
                out(Tracked::Point { event: &ev, within });
            }
            ProbeKind::FuncEntry if self.entry_only || !readable => {
                if !readable {
                    self.stats.unreadable += 1;
                }
                let frame = self.new_frame();
                out(Tracked::Completed(entry_only_record(ev, frame)));
            }
            ProbeKind::FuncEntry => {
                let frame = self.new_frame();
                if self.stacks.len() >= MAX_OPEN_GOROUTINES && !self.stacks.contains_key(&key) {
                    self.evict_idle(out);
                }
                let spare = &mut self.spare;
                let Stack {
                    frames: stack,
                    last_ns,
                } = self.stacks.entry(key).or_insert_with(|| Stack {
                    frames: spare.pop().unwrap_or_default(),
                    last_ns: 0,
                });
                *last_ns = (*last_ns).max(call.ts_ns);
                // A live ancestor is strictly shallower; anything at this depth or
                // deeper ended without a RET we saw.
                unwind_below(stack, call.stack_depth, true, out);
                stack.push(OpenFrame {
                    frame,
                    parent: stack.last().map(|f| f.frame),
                    probe_id: call.probe_id,
                    tgid: call.tgid,
                    goid: call.goid,
                    depth: call.stack_depth,
                    tid: call.tid,
                    start_ns: call.ts_ns,
                    args: call.regs,
                    captures: ev.captures,
                });
                out(Tracked::Entered(stack.last().expect("just pushed")));
            }
            ProbeKind::FuncReturn => {
                if !readable {
                    self.stats.unreadable += 1;
                    let frame = self.new_frame();
                    out(Tracked::Completed(no_entry_record(ev, frame, None)));
                    return;
                }
                let next_frame = &mut self.next_frame;
                let spare = &mut self.spare;
                let Stack {
                    frames: stack,
                    last_ns,
                } = self.stacks.entry(key).or_insert_with(|| Stack {
                    frames: spare.pop().unwrap_or_default(),
                    last_ns: 0,
                });
                *last_ns = (*last_ns).max(call.ts_ns);
                unwind_below(stack, call.stack_depth, false, out);
                let matches = stack
                    .last()
                    .is_some_and(|f| f.depth == call.stack_depth && f.probe_id == call.probe_id);
                if matches {
                    let frame = stack.pop().expect("checked non-empty");
                    out(Tracked::Completed(CallRecord {
                        frame: frame.frame,
                        parent: frame.parent,
                        probe_id: frame.probe_id,
                        tgid: call.tgid,
                        goid: Some(call.goid),
                        tid: frame.tid,
                        start_ns: Some(frame.start_ns),
                        end_ns: Some(call.ts_ns),
                        args: Some(frame.args),
                        ret: Some(call.regs),
                        status: CallStatus::Returned,
                        entry_captures: frame.captures,
                        ret_captures: ev.captures,
                    }));
                } else {
                    *next_frame += 1;
                    let parent = stack.last().map(|f| f.frame);
                    out(Tracked::Completed(no_entry_record(ev, *next_frame, parent)));
                }
                if stack.is_empty()
                    && let Some(emptied) = self.stacks.remove(&key)
                    && emptied.frames.capacity() <= MAX_SPARE_CAPACITY
                    && self.spare.len() < MAX_SPARE
                {
                    self.spare.push(emptied.frames);
                }
            }
        }
    }

    /// Closes the stacks of the eighth of goroutines least recently heard of, as
    /// unfinished (consumers free what they keep for those calls); a batch at a time so
    /// the scan is paid once per many entries.
    fn evict_idle(&mut self, out: &mut impl FnMut(Tracked)) {
        let mut by_age: Vec<(u64, (u32, u64))> = self
            .stacks
            .iter()
            .map(|(&key, s)| (s.last_ns, key))
            .collect();
        by_age.sort_unstable();
        for (_, key) in by_age.into_iter().take(MAX_OPEN_GOROUTINES / 8) {
            if let Some(stack) = self.stacks.remove(&key) {
                self.stats.evicted_goroutines += 1;
                close_unfinished(stack.frames, out);
            }
        }
    }

    /// The kernel side's lost-event count so far (`total`), read at `at_ns` (CLOCK_MONOTONIC,
    /// the events' clock). Once events were lost, a goroutine's exit may have been one.
    /// True if events were lost since the last call.
    pub fn note_lost_events(&mut self, total: u64, at_ns: u64) -> bool {
        if total <= self.lost_events {
            return false;
        }
        self.lost_events = total;
        self.lost_at_ns = self.lost_at_ns.max(at_ns);
        true
    }

    /// Closes, as unfinished, the stacks of goroutines not heard of for
    /// [`IDLE_AFTER_LOSS_NS`] with events lost since: their exit was likely lost, and
    /// nothing else would ever close them (goroutine ids are not reused).
    fn close_idle(&mut self, out: &mut impl FnMut(Tracked)) {
        self.next_idle_sweep_ns = self.now_ns.saturating_add(IDLE_SWEEP_EVERY_NS);
        let lost_at = self.lost_at_ns;
        let Some(cutoff) = self.now_ns.checked_sub(IDLE_AFTER_LOSS_NS) else {
            return;
        };
        if lost_at == 0 {
            return;
        }
        let idle: Vec<(u32, u64)> = self
            .stacks
            .iter()
            .filter(|(_, s)| s.last_ns < cutoff && s.last_ns < lost_at)
            .map(|(&key, _)| key)
            .collect();
        if idle.is_empty() {
            return;
        }
        let remembered = self
            .idle_evicted
            .get_or_insert_with(|| LruMap::new(IDLE_EVICTED_REMEMBERED));
        for key in idle {
            if let Some(stack) = self.stacks.remove(&key) {
                self.stats.idle_goroutines += 1;
                remembered.insert(key, ());
                close_unfinished(stack.frames, out);
            }
        }
    }

    /// An event of `key`: if it was closed as idle, it was alive after all.
    fn heard_of(&mut self, key: (u32, u64)) {
        if let Some(remembered) = self.idle_evicted.as_mut()
            && remembered.remove(&key).is_some()
        {
            self.stats.idle_revived += 1;
        }
    }

    /// A goroutine found gone while its exit was not probed (`--light` reads exits from
    /// the engine's goroutine table): handled as its exit event would be, at `at_ns`.
    pub fn goroutine_gone(
        &mut self,
        tgid: u32,
        goid: u64,
        at_ns: u64,
        out: &mut impl FnMut(Tracked),
    ) {
        self.now_ns = self.now_ns.max(at_ns);
        let exit = Event::plain(tracer_common::GoCallEvent {
            header: tracer_common::EventHeader::new(
                tracer_common::record::CALL,
                std::mem::size_of::<tracer_common::GoCallEvent>(),
            ),
            kind: ProbeKind::GoroutineExit as u32,
            probe_id: crate::probes::plan::GOEXIT_PROBE_ID,
            tgid,
            tid: 0,
            ts_ns: at_ns,
            goid,
            stack_depth: DEPTH_UNKNOWN,
            regs: [0; GO_INT_REGS],
        });
        self.exited(&exit, out);
    }

    /// A goroutine's exit (`ev`): its open frames are unwound, then the exit is passed on.
    fn exited(&mut self, ev: &Event, out: &mut impl FnMut(Tracked)) {
        if let Some(stack) = self.stacks.remove(&(ev.call.tgid, ev.call.goid)) {
            close_all(stack.frames, out);
        }
        // Consumers keep per-goroutine state too (the cache model's goroutines running an
        // execution): they hear of the exit after its calls ended.
        out(Tracked::Point {
            event: ev,
            within: None,
        });
    }

    /// Goroutines with open frames and no event since `before_ns`, at most `max`: those
    /// whose end the goroutine table may prove.
    pub fn quiet_goroutines(&self, before_ns: u64, max: usize) -> Vec<(u32, u64)> {
        self.stacks
            .iter()
            .filter(|(_, s)| s.last_ns < before_ns)
            .map(|(&key, _)| key)
            .take(max)
            .collect()
    }

    /// Goroutines with open frames now.
    pub fn open_goroutines(&self) -> usize {
        self.stacks.len()
    }

    fn new_frame(&mut self) -> u64 {
        self.next_frame += 1;
        self.next_frame
    }

    /// The open calls of a goroutine, outermost first.
    pub fn open_frames(&self, tgid: u32, goid: u64) -> &[OpenFrame] {
        self.stacks
            .get(&(tgid, goid))
            .map_or(&[], |s| s.frames.as_slice())
    }

    /// Calls still open; used for live views.
    pub fn open_calls(&self) -> usize {
        self.stacks.values().map(|s| s.frames.len()).sum()
    }

    /// Ends tracing: every still-open call is reported as unfinished.
    pub fn finish(&mut self, out: &mut impl FnMut(Tracked)) {
        let mut keys: Vec<_> = self.stacks.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            let stack = self.stacks.remove(&key).unwrap_or_default();
            close_unfinished(stack.frames, out);
        }
    }
}

/// Pops frames deeper than `depth` (and at `depth` too when `inclusive`) as unwound.
fn unwind_below(
    stack: &mut Vec<OpenFrame>,
    depth: u64,
    inclusive: bool,
    out: &mut impl FnMut(Tracked),
) {
    while let Some(top) = stack.last() {
        let gone = if inclusive {
            top.depth >= depth
        } else {
            top.depth > depth
        };
        if !gone {
            break;
        }
        let frame = stack.pop().expect("checked non-empty");
        out(Tracked::Completed(open_record(frame, CallStatus::Unwound)));
    }
}

fn close_all(frames: Vec<OpenFrame>, out: &mut impl FnMut(Tracked)) {
    for f in frames.into_iter().rev() {
        out(Tracked::Completed(open_record(f, CallStatus::Unwound)));
    }
}

fn close_unfinished(frames: Vec<OpenFrame>, out: &mut impl FnMut(Tracked)) {
    for f in frames.into_iter().rev() {
        out(Tracked::Completed(open_record(f, CallStatus::Unfinished)));
    }
}

fn open_record(f: OpenFrame, status: CallStatus) -> CallRecord {
    CallRecord {
        frame: f.frame,
        parent: f.parent,
        probe_id: f.probe_id,
        tgid: f.tgid,
        goid: Some(f.goid),
        tid: f.tid,
        start_ns: Some(f.start_ns),
        end_ns: None,
        args: Some(f.args),
        ret: None,
        status,
        entry_captures: f.captures,
        ret_captures: None,
    }
}

fn known_goid(goid: u64) -> Option<u64> {
    (goid != GOID_UNKNOWN).then_some(goid)
}

fn entry_only_record(event: Event, frame: u64) -> CallRecord {
    let ev = &event.call;
    CallRecord {
        frame,
        parent: None,
        probe_id: ev.probe_id,
        tgid: ev.tgid,
        goid: known_goid(ev.goid),
        tid: ev.tid,
        start_ns: Some(ev.ts_ns),
        end_ns: None,
        args: Some(ev.regs),
        ret: None,
        status: CallStatus::EntryOnly,
        entry_captures: event.captures,
        ret_captures: None,
    }
}

fn no_entry_record(event: Event, frame: u64, parent: Option<u64>) -> CallRecord {
    let ev = &event.call;
    CallRecord {
        frame,
        parent,
        probe_id: ev.probe_id,
        tgid: ev.tgid,
        goid: known_goid(ev.goid),
        tid: ev.tid,
        start_ns: None,
        end_ns: Some(ev.ts_ns),
        args: None,
        ret: Some(ev.regs),
        status: CallStatus::NoEntry,
        entry_captures: None,
        ret_captures: event.captures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tracer_common::{EventHeader, GoCallEvent, record};

    fn ev(kind: ProbeKind, probe: u32, goid: u64, depth: u64, ts: u64, r0: u64) -> Event {
        let mut regs = [0; GO_INT_REGS];
        regs[0] = r0;
        Event::plain(GoCallEvent {
            header: EventHeader::new(record::CALL, std::mem::size_of::<GoCallEvent>()),
            kind: kind as u32,
            probe_id: probe,
            tgid: 10,
            tid: 11,
            ts_ns: ts,
            goid,
            stack_depth: depth,
            regs,
        })
    }

    fn completed(out: &mut Vec<CallRecord>) -> impl FnMut(Tracked) + '_ {
        |t| {
            if let Tracked::Completed(r) = t {
                out.push(r)
            }
        }
    }

    fn run(entry_only: bool, events: &[Event]) -> Vec<CallRecord> {
        let mut t = CallTracker::new(entry_only);
        let mut out = Vec::new();
        for e in events {
            t.on_event(e.clone(), &mut completed(&mut out));
        }
        t.finish(&mut completed(&mut out));
        out
    }

    use ProbeKind::*;

    #[test]
    fn pairs_recursion_innermost_first() {
        let out = run(
            false,
            &[
                ev(FuncEntry, 1, 5, 100, 1, 3),
                ev(FuncEntry, 1, 5, 200, 2, 2),
                ev(FuncEntry, 1, 5, 300, 3, 1),
                ev(FuncReturn, 1, 5, 300, 4, 10),
                ev(FuncReturn, 1, 5, 200, 6, 20),
                ev(FuncReturn, 1, 5, 100, 9, 30),
            ],
        );
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|r| r.status == CallStatus::Returned));
        assert_eq!(out[0].args.unwrap()[0], 1);
        assert_eq!(out[0].ret.unwrap()[0], 10);
        assert_eq!(out[2].duration_ns(), Some(8));
        // Parents: the innermost call's parent is the middle one, and so on.
        assert_eq!(out[0].parent, Some(out[1].frame));
        assert_eq!(out[1].parent, Some(out[2].frame));
        assert_eq!(out[2].parent, None);
    }

    #[test]
    fn goroutines_are_independent() {
        let out = run(
            false,
            &[
                ev(FuncEntry, 1, 5, 100, 1, 0),
                ev(FuncEntry, 1, 6, 100, 2, 0),
                ev(FuncReturn, 1, 5, 100, 3, 0),
                ev(FuncReturn, 1, 6, 100, 4, 0),
            ],
        );
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].goid, out[0].duration_ns()), (Some(5), Some(2)));
        assert_eq!((out[1].goid, out[1].duration_ns()), (Some(6), Some(2)));
    }

    #[test]
    fn panic_skipped_frames_are_unwound_once() {
        // catcher(100) -> mayPanic(200) -> mayPanic(300) panics; catcher recovers and returns.
        let out = run(
            false,
            &[
                ev(FuncEntry, 2, 5, 100, 1, 0),
                ev(FuncEntry, 3, 5, 200, 2, 0),
                ev(FuncEntry, 3, 5, 300, 3, 0),
                ev(FuncReturn, 2, 5, 100, 9, 0),
            ],
        );
        let statuses: Vec<_> = out.iter().map(|r| (r.probe_id, r.status)).collect();
        assert_eq!(
            statuses,
            vec![
                (3, CallStatus::Unwound),
                (3, CallStatus::Unwound),
                (2, CallStatus::Returned)
            ]
        );
        assert!(out[0].ret.is_none() && out[0].duration_ns().is_none());
    }

    #[test]
    fn new_entry_at_same_depth_closes_a_frame_left_by_recovery_elsewhere() {
        let out = run(
            false,
            &[
                ev(FuncEntry, 3, 5, 300, 1, 0),
                // recovered in an untraced caller; the goroutine calls again at the same depth
                ev(FuncEntry, 3, 5, 300, 5, 0),
                ev(FuncReturn, 3, 5, 300, 6, 0),
            ],
        );
        assert_eq!(out[0].status, CallStatus::Unwound);
        assert_eq!(out[1].status, CallStatus::Returned);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn goroutines_whose_exit_was_lost_are_evicted_oldest_first() {
        let mut t = CallTracker::new(false);
        let mut out = Vec::new();
        let total = MAX_OPEN_GOROUTINES as u64 + 1;
        for g in 0..total {
            t.on_event(ev(FuncEntry, 1, g, 100, g, 0), &mut completed(&mut out));
        }
        assert!(t.stacks.len() <= MAX_OPEN_GOROUTINES);
        let evicted = (MAX_OPEN_GOROUTINES / 8) as u64;
        assert_eq!(t.stats.evicted_goroutines, evicted);
        assert_eq!(out.len() as u64, evicted);
        // The oldest went, as unfinished; the newest stayed.
        assert!(out.iter().all(|r| r.status == CallStatus::Unfinished));
        assert!(out.iter().all(|r| r.goid.is_some_and(|g| g < evicted)));
        assert_eq!(t.open_frames(10, total - 1).len(), 1);
    }

    const SEC: u64 = 1_000_000_000;

    /// Goroutine `g` enters a call at `t` and exits without its RET or exit being seen.
    fn lost_exit(t: &mut CallTracker, g: u64, at: u64, out: &mut Vec<CallRecord>) {
        t.on_event(ev(FuncEntry, 1, g, 100, at, 0), &mut completed(out));
    }

    #[test]
    fn stacks_left_by_lost_exits_are_closed_after_an_idle_spell() {
        let mut t = CallTracker::new(false);
        let mut out = Vec::new();
        // Ten thousand goroutines a second for ten minutes, each with one call whose RET
        // and exit were lost, and events lost every second: far more than the idle
        // window can hold, far fewer than MAX_OPEN_GOROUTINES.
        let per_sec = 100;
        let mut g = 0;
        let mut most = 0;
        for sec in 1..=600 {
            for k in 0..per_sec {
                g += 1;
                lost_exit(&mut t, g, sec * SEC + k, &mut out);
            }
            t.note_lost_events(sec, sec * SEC + SEC / 2);
            most = most.max(t.open_goroutines());
        }
        let window = (IDLE_AFTER_LOSS_NS + IDLE_SWEEP_EVERY_NS) / SEC + 1;
        assert!(
            most as u64 <= window * per_sec,
            "{most} goroutines kept, more than {window} s of them"
        );
        assert_eq!(t.stats.evicted_goroutines, 0, "the bound was not needed");
        assert_eq!(t.stats.idle_goroutines, out.len() as u64);
        assert!(t.stats.idle_goroutines >= g - window * per_sec);
        assert!(out.iter().all(|r| r.status == CallStatus::Unfinished));
        assert_eq!(t.stats.idle_revived, 0);
    }

    #[test]
    fn without_lost_events_idle_calls_stay_open() {
        let mut t = CallTracker::new(false);
        let mut out = Vec::new();
        lost_exit(&mut t, 1, SEC, &mut out);
        // An hour of other goroutines' short calls; g1 sits in a long call.
        for sec in 2..3600 {
            t.on_event(
                ev(FuncEntry, 1, 2, 100, sec * SEC, 0),
                &mut completed(&mut out),
            );
            t.on_event(
                ev(FuncReturn, 1, 2, 100, sec * SEC + 1, 0),
                &mut completed(&mut out),
            );
        }
        assert_eq!(t.open_frames(10, 1).len(), 1);
        assert_eq!(t.stats.idle_goroutines, 0);
        t.on_event(
            ev(FuncReturn, 1, 1, 100, 3600 * SEC, 0),
            &mut completed(&mut out),
        );
        assert_eq!(out.last().unwrap().status, CallStatus::Returned);
        assert_eq!(out.last().unwrap().goid, Some(1));
    }

    #[test]
    fn recent_or_active_goroutines_are_not_closed_as_idle() {
        let mut t = CallTracker::new(false);
        let mut out = Vec::new();
        // g1: an outer call at 1 s, short inner calls every 30 s (RETs keep it active).
        lost_exit(&mut t, 1, SEC, &mut out);
        // g2: a call at 1 s, then silent (its exit lost).
        lost_exit(&mut t, 2, SEC, &mut out);
        // g3: silent since 1 s, but no loss since its last event... until 200 s.
        for sec in (30..400).step_by(30) {
            t.on_event(
                ev(FuncEntry, 2, 1, 200, sec * SEC, 0),
                &mut completed(&mut out),
            );
            t.on_event(
                ev(FuncReturn, 2, 1, 200, sec * SEC + 1, 0),
                &mut completed(&mut out),
            );
            if sec == 60 {
                t.note_lost_events(5, sec * SEC);
            }
        }
        assert_eq!(t.open_frames(10, 1).len(), 1, "active goroutine kept");
        assert!(t.open_frames(10, 2).is_empty(), "silent goroutine closed");
        assert_eq!(t.stats.idle_goroutines, 1);
        let closed: Vec<_> = out
            .iter()
            .filter(|r| r.status == CallStatus::Unfinished)
            .collect();
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].goid, Some(2));
        // A goroutine that went quiet after the last loss stays open however long.
        lost_exit(&mut t, 3, 400 * SEC, &mut out);
        for sec in 401..1000 {
            t.on_event(
                ev(FuncEntry, 2, 1, 200, sec * SEC, 0),
                &mut completed(&mut out),
            );
        }
        assert_eq!(t.open_frames(10, 3).len(), 1);
    }

    #[test]
    fn a_goroutine_closed_as_idle_and_heard_of_again_is_counted() {
        let mut t = CallTracker::new(false);
        let mut out = Vec::new();
        lost_exit(&mut t, 7, SEC, &mut out);
        t.note_lost_events(1, 2 * SEC);
        let later = SEC + IDLE_AFTER_LOSS_NS + 2 * IDLE_SWEEP_EVERY_NS;
        t.on_event(ev(FuncEntry, 1, 8, 100, later, 0), &mut completed(&mut out));
        assert_eq!(t.stats.idle_goroutines, 1);
        // Its RET after all: the call was alive; reported as no_entry, counted as revived.
        t.on_event(
            ev(FuncReturn, 1, 7, 100, later + 1, 0),
            &mut completed(&mut out),
        );
        assert_eq!(t.stats.idle_revived, 1);
        let statuses: Vec<_> = out.iter().map(|r| (r.goid, r.status)).collect();
        assert_eq!(
            statuses,
            [
                (Some(7), CallStatus::Unfinished),
                (Some(7), CallStatus::NoEntry)
            ]
        );
    }

    #[test]
    fn goroutine_exit_is_passed_on_after_its_frames() {
        let mut t = CallTracker::new(false);
        let mut seen = Vec::new();
        for e in [
            ev(FuncEntry, 1, 5, 100, 1, 0),
            ev(GoroutineExit, 0, 5, 50, 2, 0),
        ] {
            t.on_event(e, &mut |t| {
                seen.push(match t {
                    Tracked::Entered(_) => "entered",
                    Tracked::Completed(_) => "completed",
                    Tracked::Point { within, .. } => {
                        assert_eq!(within, None);
                        "exit"
                    }
                })
            });
        }
        assert_eq!(seen, ["entered", "completed", "exit"]);
    }

    /// `--light`: a goroutine found gone in the goroutine table ends like an exit event:
    /// its frames unwound, then the exit passed on; only quiet goroutines are asked about.
    #[test]
    fn a_goroutine_found_gone_ends_as_its_exit_would() {
        let mut t = CallTracker::new(false);
        let mut seen = Vec::new();
        let mut note = |t: Tracked| {
            seen.push(match t {
                Tracked::Entered(_) => ("entered".to_string(), 0),
                Tracked::Completed(r) => (format!("{:?}", r.status), r.goid.unwrap()),
                Tracked::Point { event, within } => {
                    assert_eq!(within, None);
                    assert_eq!(event.call.kind, GoroutineExit as u32);
                    ("exit".to_string(), event.call.goid)
                }
            })
        };
        t.on_event(ev(FuncEntry, 1, 5, 100, 10, 0), &mut note);
        t.on_event(ev(FuncEntry, 1, 6, 100, 30, 0), &mut note);
        assert_eq!(t.quiet_goroutines(20, 10), [(10, 5)]);
        let mut both = t.quiet_goroutines(31, 10);
        both.sort_unstable();
        assert_eq!(both, [(10, 5), (10, 6)]);
        t.goroutine_gone(10, 5, 40, &mut note);
        t.goroutine_gone(10, 9, 40, &mut note);
        assert_eq!(t.quiet_goroutines(u64::MAX, 10), [(10, 6)]);
        assert_eq!(
            seen,
            [
                ("entered".to_string(), 0),
                ("entered".to_string(), 0),
                ("Unwound".to_string(), 5),
                ("exit".to_string(), 5),
                ("exit".to_string(), 9),
            ]
        );
    }

    #[test]
    fn goroutine_exit_unwinds_and_leftovers_are_unfinished() {
        let out = run(
            false,
            &[
                ev(FuncEntry, 1, 5, 100, 1, 0),
                ev(FuncEntry, 1, 7, 100, 1, 0),
                ev(GoroutineExit, 0, 5, 50, 2, 0),
            ],
        );
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].goid, out[0].status), (Some(5), CallStatus::Unwound));
        assert_eq!(
            (out[1].goid, out[1].status),
            (Some(7), CallStatus::Unfinished)
        );
    }

    #[test]
    fn return_without_entry_and_entry_only_mode() {
        let out = run(false, &[ev(FuncReturn, 1, 5, 100, 1, 42)]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].status, CallStatus::NoEntry);
        assert_eq!(out[0].ret.unwrap()[0], 42);
        assert!(out[0].args.is_none());

        let out = run(
            true,
            &[
                ev(FuncEntry, 1, 5, 100, 1, 7),
                ev(FuncEntry, 1, 5, 200, 2, 8),
            ],
        );
        assert_eq!(out.len(), 2);
        assert!(
            out.iter()
                .all(|r| r.status == CallStatus::EntryOnly && r.ret.is_none())
        );
    }

    #[test]
    fn unreadable_goroutine_is_null_not_guessed() {
        let mut t = CallTracker::new(false);
        let mut out = Vec::new();
        t.on_event(
            ev(FuncEntry, 1, GOID_UNKNOWN, 100, 1, 0),
            &mut completed(&mut out),
        );
        assert_eq!(out[0].goid, None);
        assert_eq!(t.stats.unreadable, 1);
    }
}

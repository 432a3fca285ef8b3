//! Pairs function entries with their returns, per goroutine.
//!
//! Each goroutine keeps a stack of open frames. A frame is identified by its
//! distance from the goroutine's stack top (`stack_depth`), which both the entry
//! and every RET of the same call observe, and which survives stack copying. That
//! makes the pairing exact through deep recursion and lets us see frames a panic
//! skipped: a return (or a new entry) at a shallower depth proves that every deeper
//! open frame is gone without having returned.
use rustc_hash::FxHashMap as HashMap;

use tracer_common::{Capture, DEPTH_UNKNOWN, GO_INT_REGS, GOID_UNKNOWN, MAX_CAPTURES, ProbeKind};

use crate::probes::Event;

/// Captured values of one hit, if its probe had a spec.
pub type Captures = Option<Box<[Capture; MAX_CAPTURES]>>;

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
}

/// Goroutines with open frames kept at most. One whose exit event was lost would keep
/// its frames for ever; past the bound, those least recently entered are closed.
const MAX_OPEN_GOROUTINES: usize = 1 << 16;

#[derive(Default)]
pub struct CallTracker {
    /// Open frames per (process, goroutine), innermost last.
    stacks: HashMap<(u32, u64), Vec<OpenFrame>>,
    entry_only: bool,
    next_frame: u64,
    pub stats: PairingStats,
}

impl CallTracker {
    pub fn new(entry_only: bool) -> CallTracker {
        CallTracker {
            entry_only,
            ..CallTracker::default()
        }
    }

    /// Feeds one event; completed calls are passed to `out` in the order they are proven.
    pub fn on_event(&mut self, ev: Event, out: &mut impl FnMut(Tracked)) {
        self.stats.events += 1;
        let call = ev.call;
        let Some(kind) = ProbeKind::from_u32(call.kind) else {
            self.stats.unknown_kind += 1;
            return;
        };
        let readable = call.goid != GOID_UNKNOWN && call.stack_depth != DEPTH_UNKNOWN;
        let key = (call.tgid, call.goid);
        match kind {
            ProbeKind::GoroutineExit => {
                if let Some(frames) = self.stacks.remove(&key) {
                    close_all(frames, out);
                }
                // Consumers keep per-goroutine state too (the cache model's goroutines
                // running an execution): they hear of the exit after its calls ended.
                out(Tracked::Point {
                    event: &ev,
                    within: None,
                });
            }
            ProbeKind::Point => {
                let within = self
                    .stacks
                    .get(&key)
                    .and_then(|s| s.last())
                    .map(|f| f.frame);
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
                let stack = self.stacks.entry(key).or_default();
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
                let stack = self.stacks.entry(key).or_default();
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
                if stack.is_empty() {
                    self.stacks.remove(&key);
                }
            }
        }
    }

    /// Closes the stacks of the eighth of goroutines least recently entered, as
    /// unfinished (consumers free what they keep for those calls); a batch at a time so
    /// the scan is paid once per many entries.
    fn evict_idle(&mut self, out: &mut impl FnMut(Tracked)) {
        let mut by_age: Vec<(u64, (u32, u64))> = self
            .stacks
            .iter()
            .map(|(&key, s)| (s.last().map_or(0, |f| f.start_ns), key))
            .collect();
        by_age.sort_unstable();
        for (_, key) in by_age.into_iter().take(MAX_OPEN_GOROUTINES / 8) {
            if let Some(frames) = self.stacks.remove(&key) {
                self.stats.evicted_goroutines += 1;
                for f in frames.into_iter().rev() {
                    out(Tracked::Completed(open_record(f, CallStatus::Unfinished)));
                }
            }
        }
    }

    fn new_frame(&mut self) -> u64 {
        self.next_frame += 1;
        self.next_frame
    }

    /// The open calls of a goroutine, outermost first.
    pub fn open_frames(&self, tgid: u32, goid: u64) -> &[OpenFrame] {
        self.stacks.get(&(tgid, goid)).map_or(&[], Vec::as_slice)
    }

    /// Calls still open; used for live views.
    pub fn open_calls(&self) -> usize {
        self.stacks.values().map(Vec::len).sum()
    }

    /// Ends tracing: every still-open call is reported as unfinished.
    pub fn finish(&mut self, out: &mut impl FnMut(Tracked)) {
        let mut keys: Vec<_> = self.stacks.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            let frames = self.stacks.remove(&key).unwrap_or_default();
            for f in frames.into_iter().rev() {
                out(Tracked::Completed(open_record(f, CallStatus::Unfinished)));
            }
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

//! Pairs function entries with their returns, per goroutine.
//!
//! Each goroutine keeps a stack of open frames. A frame is identified by its
//! distance from the goroutine's stack top (`stack_depth`), which both the entry
//! and every RET of the same call observe, and which survives stack copying. That
//! makes the pairing exact through deep recursion and lets us see frames a panic
//! skipped: a return (or a new entry) at a shallower depth proves that every deeper
//! open frame is gone without having returned.
use std::collections::HashMap;

use tracer_common::{DEPTH_UNKNOWN, GO_INT_REGS, GOID_UNKNOWN, GoCallEvent, ProbeKind};

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
}

impl CallRecord {
    pub fn duration_ns(&self) -> Option<u64> {
        match (self.status, self.start_ns, self.end_ns) {
            (CallStatus::Returned, Some(s), Some(e)) => Some(e.saturating_sub(s)),
            _ => None,
        }
    }
}

struct OpenFrame {
    probe_id: u32,
    depth: u64,
    tid: u32,
    start_ns: u64,
    args: [u64; GO_INT_REGS],
}

/// Counters for the exit summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PairingStats {
    pub events: u64,
    /// Events whose goroutine or stack depth was unreadable: reported unpaired.
    pub unreadable: u64,
    pub unknown_kind: u64,
}

#[derive(Default)]
pub struct CallTracker {
    /// Open frames per (process, goroutine), innermost last.
    stacks: HashMap<(u32, u64), Vec<OpenFrame>>,
    entry_only: bool,
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
    pub fn on_event(&mut self, ev: &GoCallEvent, out: &mut impl FnMut(CallRecord)) {
        self.stats.events += 1;
        let Some(kind) = ProbeKind::from_u32(ev.kind) else {
            self.stats.unknown_kind += 1;
            return;
        };
        let readable = ev.goid != GOID_UNKNOWN && ev.stack_depth != DEPTH_UNKNOWN;
        match kind {
            ProbeKind::GoroutineExit => {
                if let Some(frames) = self.stacks.remove(&(ev.tgid, ev.goid)) {
                    close_all(frames, ev.tgid, ev.goid, out);
                }
            }
            ProbeKind::FuncEntry if self.entry_only || !readable => {
                if !readable {
                    self.stats.unreadable += 1;
                }
                out(entry_only_record(ev));
            }
            ProbeKind::FuncEntry => {
                let stack = self.stacks.entry((ev.tgid, ev.goid)).or_default();
                // A live ancestor is strictly shallower; anything at this depth or
                // deeper ended without a RET we saw.
                unwind_below(stack, ev.stack_depth, true, ev.tgid, ev.goid, out);
                stack.push(OpenFrame {
                    probe_id: ev.probe_id,
                    depth: ev.stack_depth,
                    tid: ev.tid,
                    start_ns: ev.ts_ns,
                    args: ev.regs,
                });
            }
            ProbeKind::FuncReturn => {
                if !readable {
                    self.stats.unreadable += 1;
                    out(no_entry_record(ev));
                    return;
                }
                let key = (ev.tgid, ev.goid);
                let stack = self.stacks.entry(key).or_default();
                unwind_below(stack, ev.stack_depth, false, ev.tgid, ev.goid, out);
                let matches = stack
                    .last()
                    .is_some_and(|f| f.depth == ev.stack_depth && f.probe_id == ev.probe_id);
                if matches {
                    let frame = stack.pop().expect("checked non-empty");
                    out(CallRecord {
                        probe_id: frame.probe_id,
                        tgid: ev.tgid,
                        goid: Some(ev.goid),
                        tid: frame.tid,
                        start_ns: Some(frame.start_ns),
                        end_ns: Some(ev.ts_ns),
                        args: Some(frame.args),
                        ret: Some(ev.regs),
                        status: CallStatus::Returned,
                    });
                } else {
                    out(no_entry_record(ev));
                }
                if stack.is_empty() {
                    self.stacks.remove(&key);
                }
            }
        }
    }

    /// Calls still open; used for live views.
    pub fn open_calls(&self) -> usize {
        self.stacks.values().map(Vec::len).sum()
    }

    /// Ends tracing: every still-open call is reported as unfinished.
    pub fn finish(&mut self, out: &mut impl FnMut(CallRecord)) {
        let mut keys: Vec<_> = self.stacks.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            let frames = self.stacks.remove(&key).unwrap_or_default();
            for f in frames.into_iter().rev() {
                out(open_record(f, key.0, key.1, CallStatus::Unfinished));
            }
        }
    }
}

/// Pops frames deeper than `depth` (and at `depth` too when `inclusive`) as unwound.
fn unwind_below(
    stack: &mut Vec<OpenFrame>,
    depth: u64,
    inclusive: bool,
    tgid: u32,
    goid: u64,
    out: &mut impl FnMut(CallRecord),
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
        out(open_record(frame, tgid, goid, CallStatus::Unwound));
    }
}

fn close_all(frames: Vec<OpenFrame>, tgid: u32, goid: u64, out: &mut impl FnMut(CallRecord)) {
    for f in frames.into_iter().rev() {
        out(open_record(f, tgid, goid, CallStatus::Unwound));
    }
}

fn open_record(f: OpenFrame, tgid: u32, goid: u64, status: CallStatus) -> CallRecord {
    CallRecord {
        probe_id: f.probe_id,
        tgid,
        goid: Some(goid),
        tid: f.tid,
        start_ns: Some(f.start_ns),
        end_ns: None,
        args: Some(f.args),
        ret: None,
        status,
    }
}

fn known_goid(goid: u64) -> Option<u64> {
    (goid != GOID_UNKNOWN).then_some(goid)
}

fn entry_only_record(ev: &GoCallEvent) -> CallRecord {
    CallRecord {
        probe_id: ev.probe_id,
        tgid: ev.tgid,
        goid: known_goid(ev.goid),
        tid: ev.tid,
        start_ns: Some(ev.ts_ns),
        end_ns: None,
        args: Some(ev.regs),
        ret: None,
        status: CallStatus::EntryOnly,
    }
}

fn no_entry_record(ev: &GoCallEvent) -> CallRecord {
    CallRecord {
        probe_id: ev.probe_id,
        tgid: ev.tgid,
        goid: known_goid(ev.goid),
        tid: ev.tid,
        start_ns: None,
        end_ns: Some(ev.ts_ns),
        args: None,
        ret: Some(ev.regs),
        status: CallStatus::NoEntry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: ProbeKind, probe: u32, goid: u64, depth: u64, ts: u64, r0: u64) -> GoCallEvent {
        let mut regs = [0; GO_INT_REGS];
        regs[0] = r0;
        GoCallEvent {
            kind: kind as u32,
            probe_id: probe,
            tgid: 10,
            tid: 11,
            ts_ns: ts,
            goid,
            stack_depth: depth,
            regs,
        }
    }

    fn run(entry_only: bool, events: &[GoCallEvent]) -> Vec<CallRecord> {
        let mut t = CallTracker::new(entry_only);
        let mut out = Vec::new();
        for e in events {
            t.on_event(e, &mut |r| out.push(r));
        }
        t.finish(&mut |r| out.push(r));
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
        t.on_event(&ev(FuncEntry, 1, GOID_UNKNOWN, 100, 1, 0), &mut |r| {
            out.push(r)
        });
        assert_eq!(out[0].goid, None);
        assert_eq!(t.stats.unreadable, 1);
    }
}

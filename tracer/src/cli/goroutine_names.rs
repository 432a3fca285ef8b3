//! The first user function of each goroutine a `tracer cache` run sees, for its timeline's
//! track names. Cache probes carry no stack, so the goroutines are read from the engine's
//! memory (`runtime.allgs`: each one's start function and, when it is parked, its stack) on
//! a thread of their own: the event loop only hands over the new goroutine ids it saw and
//! picks up the answers, never waiting for a read. A goroutine gone before it was read, or
//! running (its stack is in the CPU) with only a `go` wrapper as start function, keeps its
//! bare `goroutine N`.
use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use rustc_hash::FxHashSet;

use super::reader_thread::ReaderThread;
use crate::{
    gobin::GoBinary, model::goroutines::Goroutine, output::perfetto::first_user_function,
    target::memory::monotonic_ns,
};

/// Goroutine ids kept as already asked for; past this the set starts afresh (a goroutine
/// may then be read again, which costs a read, never a wrong name).
const MAX_ASKED: usize = 1 << 20;
/// Ids waiting for a read, at most; more are not read (their tracks stay unnamed).
const MAX_PENDING: usize = 1 << 16;
/// Ids handed over in one read.
const MAX_BATCH: usize = 4096;
/// Reads start at most this often: each reads one word per goroutine of the engine.
const READ_EVERY: Duration = Duration::from_millis(20);

/// Goroutine id -> its first user function, as read.
pub type Names = Vec<(u64, String)>;

pub struct GoroutineNamer {
    reads: ReaderThread<Vec<u64>, Names>,
    last_sent: Option<Instant>,
    asked: FxHashSet<u64>,
    pending: Vec<u64>,
    /// The goroutine of the previous probe hit (hits come in runs on one goroutine).
    last_seen: u64,
}

impl GoroutineNamer {
    /// Starts the reading thread (it ends when the namer is dropped).
    pub fn start<'scope, 'env: 'scope>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        binary: &'env GoBinary,
        pid: u32,
    ) -> GoroutineNamer {
        let reads = ReaderThread::start(scope, binary, pid, |reader, mem, goids: Vec<u64>| {
            let Some(r) = reader else {
                return Vec::new();
            };
            let goids: HashSet<u64> = goids.into_iter().collect();
            r.goroutines_by_id(mem, &goids, monotonic_ns())
                .map(|gs| gs.iter().filter_map(named).collect())
                .unwrap_or_default()
        });
        GoroutineNamer {
            reads,
            last_sent: None,
            asked: FxHashSet::default(),
            pending: Vec::new(),
            last_seen: u64::MAX,
        }
    }

    /// A probe hit on goroutine `goid` (cheap: once per new goroutine it is queued).
    pub fn seen(&mut self, goid: u64) {
        if goid == self.last_seen || goid == tracer_common::GOID_UNKNOWN {
            return;
        }
        self.last_seen = goid;
        if self.asked.len() >= MAX_ASKED {
            self.asked.clear();
        }
        if self.asked.insert(goid) && self.pending.len() < MAX_PENDING {
            self.pending.push(goid);
        }
    }

    /// Between drains: the names read since the last call, if a read finished; then the
    /// next read is started when one is due. `bias`: the target's load bias, once known.
    pub fn turn(&mut self, bias: Option<u64>) -> Option<Names> {
        let names = self.take(false);
        let due = self.last_sent.is_none_or(|t| t.elapsed() >= READ_EVERY);
        if let Some(bias) = bias
            && !self.reads.busy()
            && due
            && !self.pending.is_empty()
        {
            let n = self.pending.len().min(MAX_BATCH);
            let batch: Vec<u64> = self.pending.drain(..n).collect();
            if self.reads.ask(bias, batch) {
                self.last_sent = Some(Instant::now());
            }
        }
        names
    }

    /// The names of the read under way (at the stop: waits for it, one bounded read).
    pub fn take(&mut self, wait: bool) -> Option<Names> {
        self.reads.answer(wait).filter(|names| !names.is_empty())
    }
}

/// A goroutine's first user function; the main goroutine (started at `runtime.main`) runs
/// `main.main` even when its stack cannot be read.
fn named(g: &Goroutine) -> Option<(u64, String)> {
    // Only a whole stack tells where the goroutine started: a noted one (running, torn by
    // the goroutine moving while it was read, cut) may lack its outer frames, and its
    // outermost user frame would be a wrong name.
    let whole = if g.stack_note.is_none() {
        &g.stack[..]
    } else {
        &[]
    };
    let stack = whole.iter().map(|f| f.func.as_str());
    let f = first_user_function(g.start_func.as_deref(), stack)
        .or((g.start_func.as_deref() == Some("runtime.main")).then_some("main.main"))?;
    Some((g.goid, f.to_owned()))
}

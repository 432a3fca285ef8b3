//! `--light` attaches no goroutine-exit probe: on lines that run each cache miss on a
//! goroutine of its own it trapped once more per miss. A goroutine's last call is still
//! proven over once the goroutine is gone, and that is now read from the engine's
//! goroutine table (`runtime.allgs`) on a thread of its own: every [`READ_EVERY`] (or
//! twenty times as long as a read took, on an engine with very many goroutines), for the
//! goroutines whose open calls have been quiet that long. The event loop hands over the
//! ids and picks up the answers, never waiting for a read. A goroutine that ends while the
//! engine exits cannot be read any more: its last call stays unfinished.
use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use super::reader_thread::ReaderThread;
use crate::{gobin::GoBinary, target::memory::monotonic_ns};

/// Reads start at most this often; each reads two words per goroutine of the engine.
pub const READ_EVERY: Duration = Duration::from_millis(50);
/// A read that took longer (an engine with very many goroutines) spaces the next one out
/// to this many times its length, so reading stays a small share of the tracer's time.
const SPACING: u32 = 20;
/// Goroutines asked about in one read, at most (the rest at the next).
pub const MAX_BATCH: usize = 4096;

/// Goroutines found gone, as (process, goroutine id), and when the table was read
/// (CLOCK_MONOTONIC, the events' clock).
pub struct Gone {
    pub at_ns: u64,
    pub goroutines: Vec<(u32, u64)>,
}

/// A read's goroutines found gone (None: the table could not be read), and how long the
/// read took.
type Answer = (Option<Gone>, Duration);

pub struct ExitReader {
    reads: ReaderThread<Vec<(u32, u64)>, Answer>,
    last_sent: Option<Instant>,
    /// The wait between reads: [`READ_EVERY`], or longer after a long read.
    every: Duration,
    /// Reads that failed (the engine gone, its table unreadable), and that succeeded.
    pub failed_reads: u64,
    pub reads_done: u64,
}

impl ExitReader {
    /// Starts the reading thread (it ends when the reader is dropped).
    pub fn start<'scope, 'env: 'scope>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        binary: &'env GoBinary,
        pid: u32,
    ) -> ExitReader {
        let reads =
            ReaderThread::start(scope, binary, pid, |reader, mem, asked: Vec<(u32, u64)>| {
                let started = Instant::now();
                let goids: HashSet<u64> = asked.iter().map(|&(_, g)| g).collect();
                let gone = reader.and_then(|r| {
                    let gone: HashSet<u64> =
                        r.gone_goroutines(mem, &goids).ok()?.into_iter().collect();
                    Some(Gone {
                        at_ns: monotonic_ns(),
                        goroutines: asked
                            .into_iter()
                            .filter(|(_, g)| gone.contains(g))
                            .collect(),
                    })
                });
                (gone, started.elapsed())
            });
        ExitReader {
            reads,
            last_sent: None,
            every: READ_EVERY,
            failed_reads: 0,
            reads_done: 0,
        }
    }

    /// Between drains: the goroutines found gone since the last call, if a read finished;
    /// then, when one is due, the next read of those `quiet` names (given the time before
    /// which a goroutine's last event makes it quiet). `bias`: the target's load bias.
    pub fn turn(
        &mut self,
        bias: Option<u64>,
        quiet: impl FnOnce(u64) -> Vec<(u32, u64)>,
    ) -> Option<Gone> {
        let gone = self.take(false);
        let due = self.last_sent.is_none_or(|t| t.elapsed() >= self.every);
        if let Some(bias) = bias
            && !self.reads.busy()
            && due
        {
            let before = monotonic_ns().saturating_sub(READ_EVERY.as_nanos() as u64);
            let asked = quiet(before);
            if !asked.is_empty() {
                self.reads.ask(bias, asked);
            }
            self.last_sent = Some(Instant::now());
        }
        gone
    }

    /// At the stop: waits for the read under way, then reads once more for `open` (every
    /// goroutine with an open call), each answer as it comes.
    pub fn last_reads(&mut self, bias: Option<u64>, open: Vec<(u32, u64)>) -> Vec<Gone> {
        let mut found: Vec<Gone> = self.take(true).into_iter().collect();
        if let Some(bias) = bias
            && !open.is_empty()
            && self.reads.ask(bias, open)
        {
            found.extend(self.take(true));
        }
        found
    }

    fn take(&mut self, wait: bool) -> Option<Gone> {
        if !self.reads.busy() {
            return None;
        }
        let Some((gone, took)) = self.reads.answer(wait) else {
            // Waited for, and the thread is gone.
            self.failed_reads += u64::from(wait);
            return None;
        };
        self.every = READ_EVERY.max(took * SPACING);
        match gone {
            Some(gone) => {
                self.reads_done += 1;
                Some(gone).filter(|g| !g.goroutines.is_empty())
            }
            None => {
                self.failed_reads += 1;
                None
            }
        }
    }
}

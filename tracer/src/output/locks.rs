//! Rendering lock contention: one line (or JSON object) per contended acquisition, and the
//! per-lock summary at the end.
use std::io::{self, Write};

use super::{
    format::duration,
    records::{FrameRecord, Record},
};
use crate::{
    model::locks::{Contention, LockEvictions, LockSummary, MAX_LOCKS},
    profiles::NamedBy,
};

/// Frames shown under each human-readable contention line.
const HUMAN_FRAMES: usize = 6;

pub use crate::model::locks::user_frames;

/// Frames shown per waiting stack in the human summary, at least.
const SUMMARY_FRAMES: usize = 3;

fn lock_label(lock: u64, lock_type: &str, name: Option<&str>, by: Option<NamedBy>) -> String {
    match (name, by) {
        (Some(n), Some(NamedBy::Waiter)) => format!("{lock_type} {lock:#x} ({n}, by its waiter)"),
        (Some(n), _) => format!("{lock_type} {lock:#x} ({n})"),
        (None, _) => format!("{lock_type} {lock:#x}"),
    }
}

pub fn contention_json(c: &Contention) -> Record<'_> {
    Record::Contention {
        lock: c.lock,
        lock_type: c.lock_type.as_str(),
        lock_name: c.name,
        lock_named_by: c.named_by.map(NamedBy::as_str),
        waiter: c.waiter,
        start_ns: c.start_ns,
        wait_ns: c.wait_ns,
        released_by: c.released_by,
        stack: c.stack.iter().map(FrameRecord::without_pc).collect(),
    }
}

pub fn contention_human(out: &mut dyn Write, c: &Contention, since_ns: u64) -> io::Result<()> {
    let at = c.start_ns.saturating_sub(since_ns) as f64 / 1e9;
    let by = c
        .released_by
        .map_or("unseen".to_owned(), |g| format!("goroutine {g}"));
    writeln!(
        out,
        "{at:>9.3}s  {}  goroutine {} waited {}, released by {by}",
        lock_label(c.lock, c.lock_type.as_str(), c.name, c.named_by),
        c.waiter,
        duration(c.wait_ns),
    )?;
    for f in user_frames(&c.stack).take(HUMAN_FRAMES) {
        writeln!(
            out,
            "              {} {}:{}",
            f.func,
            f.file.as_deref().unwrap_or("?"),
            f.line.map_or("?".into(), |l| l.to_string())
        )?;
    }
    Ok(())
}

pub fn summary_json(s: &LockSummary) -> Record<'_> {
    Record::lock_summary(s, |frames| {
        user_frames(frames).map(FrameRecord::without_pc).collect()
    })
}

/// One line on what the model's bounds evicted, when anything was.
pub fn evictions_human(e: &LockEvictions) -> Option<String> {
    if *e == LockEvictions::default() {
        return None;
    }
    Some(format!(
        "bounded state evicted: {} cold locks (least recently contended past {MAX_LOCKS}; their {} contended, {} wait are in the totals only), {} waits in progress, {} last releases, {} stacks not kept",
        e.locks,
        e.locks_contended,
        duration(e.locks_wait_ns),
        e.pending,
        e.releases,
        e.stacks
    ))
}

pub fn summary_human(out: &mut dyn Write, locks: &[LockSummary]) -> io::Result<()> {
    if locks.is_empty() {
        return writeln!(out, "no contended lock acquisitions seen");
    }
    writeln!(out, "contended locks, most total wait first:")?;
    for s in locks {
        let q = |v: Option<u64>| v.map_or("?".to_owned(), duration);
        writeln!(
            out,
            "  {}: {} contended, total wait {}, p99 {}, max {}",
            lock_label(s.lock, s.lock_type.as_str(), s.name, s.named_by),
            s.contended,
            duration(s.total_wait_ns),
            q(s.wait.quantile(0.99)),
            q(s.wait.quantile(1.0)),
        )?;
        let chains: Vec<Vec<String>> = s
            .top_stacks
            .iter()
            .map(|(_, frames)| {
                user_frames(frames)
                    .map(|f| format!("{}:{}", f.func, f.line.unwrap_or(0)))
                    .collect()
            })
            .collect();
        let depths = distinct_depths(&chains);
        for (((n, _), chain), depth) in s.top_stacks.iter().zip(&chains).zip(depths) {
            let mut chain = chain[..depth].join(" <- ");
            if chain.is_empty() {
                chain = "?".into();
            }
            writeln!(out, "      {n:>6}x  {chain}")?;
        }
    }
    Ok(())
}

/// How many frames of each stack to print: `SUMMARY_FRAMES`, or more where another listed
/// stack has the same first frames, down to the first frame that differs. The stacks are
/// grouped on all their user frames (`model::locks::group_stacks`), so two listed stacks
/// always differ somewhere; printed three deep only, they could look the same.
fn distinct_depths(chains: &[Vec<String>]) -> Vec<usize> {
    chains
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let shared = chains
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, b)| a.iter().zip(b).take_while(|(x, y)| x == y).count())
                .max()
                .unwrap_or(0);
            (shared + 1).max(SUMMARY_FRAMES).min(a.len())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(funcs: &[&str]) -> Vec<String> {
        funcs.iter().map(|f| f.to_string()).collect()
    }

    #[test]
    fn stacks_are_printed_deep_enough_to_differ() {
        let chains = vec![
            chain(&["a:1", "b:2", "c:3", "d:4", "e:5"]),
            chain(&["a:1", "b:2", "c:3", "x:9"]),
            chain(&["f:1", "g:2", "h:3", "i:4"]),
            chain(&["f:1"]),
        ];
        assert_eq!(distinct_depths(&chains), vec![4, 4, 3, 1]);
    }
}

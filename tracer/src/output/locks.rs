//! Rendering lock contention: one line (or JSON object) per contended acquisition, and the
//! per-lock summary at the end.
use std::io::{self, Write};

use serde_json::{Value, json};

use super::format::duration;
use crate::model::{
    goroutines::Frame,
    locks::{Contention, LockSummary},
};

/// Frames shown under each human-readable contention line.
const HUMAN_FRAMES: usize = 6;

fn frame_json(f: &Frame) -> Value {
    json!({"func": f.func, "file": f.file, "line": f.line, "inlined": f.inlined})
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

fn lock_label(lock: u64, lock_type: &str, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{lock_type} {lock:#x} ({n})"),
        None => format!("{lock_type} {lock:#x}"),
    }
}

pub fn contention_json(c: &Contention) -> Value {
    json!({
        "kind": "contention",
        "lock": c.lock,
        "lock_type": c.lock_type.as_str(),
        "lock_name": c.name,
        "waiter": c.waiter,
        "start_ns": c.start_ns,
        "wait_ns": c.wait_ns,
        "released_by": c.released_by,
        "stack": c.stack.iter().map(frame_json).collect::<Vec<_>>(),
    })
}

pub fn contention_human(out: &mut dyn Write, c: &Contention, since_ns: u64) -> io::Result<()> {
    let at = c.start_ns.saturating_sub(since_ns) as f64 / 1e9;
    let by = c
        .released_by
        .map_or("unseen".to_owned(), |g| format!("goroutine {g}"));
    writeln!(
        out,
        "{at:>9.3}s  {}  goroutine {} waited {}, released by {by}",
        lock_label(c.lock, c.lock_type.as_str(), c.name),
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

pub fn summary_json(s: &LockSummary) -> Value {
    json!({
        "kind": "lock_summary",
        "lock": s.lock,
        "lock_type": s.lock_type.as_str(),
        "lock_name": s.name,
        "contended": s.contended,
        "reader_waits": s.reader_waits,
        "total_wait_ns": s.total_wait_ns,
        "p50_wait_ns": s.wait.quantile(0.5),
        "p99_wait_ns": s.wait.quantile(0.99),
        "max_wait_ns": s.wait.quantile(1.0),
        "top_stacks": s.top_stacks.iter().map(|(n, frames)| json!({
            "count": n,
            "stack": user_frames(frames).map(frame_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
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
            lock_label(s.lock, s.lock_type.as_str(), s.name),
            s.contended,
            duration(s.total_wait_ns),
            q(s.wait.quantile(0.99)),
            q(s.wait.quantile(1.0)),
        )?;
        for (n, frames) in &s.top_stacks {
            let mut chain = user_frames(frames)
                .take(3)
                .map(|f| format!("{}:{}", f.func, f.line.unwrap_or(0)))
                .collect::<Vec<_>>()
                .join(" <- ");
            if chain.is_empty() {
                chain = "?".into();
            }
            writeln!(out, "      {n:>6}x  {chain}")?;
        }
    }
    Ok(())
}

//! Rendering a goroutine snapshot: Go's own dump format (grouped when stacks are identical),
//! counts per wait reason, what blocked goroutines wait on, possible deadlocks; or JSON lines.

use std::collections::BTreeMap;
use std::io::{self, Write};

use super::records::{FrameRecord, GoroutineRecord, Record};
use crate::model::goroutines::{Deadlock, Frame, Goroutine, Snapshot, group};

/// `", 3 minutes"` like Go's dump for a minute or more; seconds below that (Go prints nothing).
fn waited(ns: Option<u64>) -> String {
    match ns {
        Some(ns) if ns >= 60_000_000_000 => format!(", {} minutes", ns / 60_000_000_000),
        Some(ns) => format!(", {}s", ns / 1_000_000_000),
        None => String::new(),
    }
}

pub fn frame_lines(out: &mut dyn Write, f: &Frame) -> io::Result<()> {
    let args = if f.inlined { "(...)" } else { "()" };
    writeln!(out, "{}{args}", f.func)?;
    let file = f.file.as_deref().unwrap_or("?");
    let line = f.line.map_or("?".to_owned(), |l| l.to_string());
    match f.offset {
        Some(off) => writeln!(out, "\t{file}:{line} +{off:#x}"),
        None => writeln!(out, "\t{file}:{line}"),
    }
}

pub fn wait_text(g: &Goroutine) -> Option<String> {
    let w = g.wait.as_ref()?;
    let what = match &*w.kind {
        "mutex" => "sync.Mutex",
        "rwmutex" => "sync.RWMutex (write)",
        "rwmutex_read" => "sync.RWMutex (read)",
        "waitgroup" => "sync.WaitGroup",
        "semaphore" => "semaphore",
        "chan" => "channel",
        _ => "select on channels",
    };
    let addr = match (w.object, w.chans.len()) {
        (Some(a), _) => format!("{a:#x}"),
        (None, 0) => "?".to_owned(),
        (None, _) => w
            .chans
            .iter()
            .map(|c| format!("{c:#x}"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let name = match (w.name.as_deref(), w.named_by) {
        (Some(n), Some(crate::profiles::NamedBy::Waiter)) => format!(" ({n}, by its waiter)"),
        (Some(n), _) => format!(" ({n})"),
        (None, _) => String::new(),
    };
    Some(format!("{what} {addr}{name}"))
}

/// Goroutines shown under `--threshold` (0 = all): those whose wait time is known and
/// at least the threshold; an unknown wait time (no GC since it blocked) is not shown.
pub fn selected(snap: &Snapshot, threshold_ns: u64) -> Vec<&Goroutine> {
    snap.goroutines
        .iter()
        .filter(|g| threshold_ns == 0 || g.waiting_ns.is_some_and(|w| w >= threshold_ns))
        .collect()
}

pub fn write_human(out: &mut dyn Write, snap: &Snapshot, threshold_ns: u64) -> io::Result<()> {
    let shown = selected(snap, threshold_ns);
    let (user, system): (Vec<&Goroutine>, Vec<&Goroutine>) = shown.iter().partition(|g| !g.system);
    for grp in group(&user) {
        let g = grp[0];
        let head = format!("{}{}", g.state(), waited(g.waiting_ns));
        if grp.len() == 1 {
            writeln!(out, "goroutine {} [{head}]:", g.goid)?;
        } else {
            let ids: Vec<String> = grp.iter().map(|g| g.goid.to_string()).collect();
            writeln!(out, "{} goroutines [{head}]: {}", grp.len(), ids.join(" "))?;
        }
        for f in &g.stack {
            frame_lines(out, f)?;
        }
        if let Some(note) = &g.stack_note {
            writeln!(out, "\t({note})")?;
        }
        if let Some(c) = &g.created_by {
            let parent = g
                .parent_goid
                .map(|p| format!(" in goroutine {p}"))
                .unwrap_or_default();
            writeln!(out, "created by {}{parent}", c.func)?;
            writeln!(
                out,
                "\t{}:{}",
                c.file.as_deref().unwrap_or("?"),
                c.line.unwrap_or(0)
            )?;
        }
        writeln!(out)?;
    }
    if !system.is_empty() {
        writeln!(out, "({} runtime goroutines not shown)\n", system.len())?;
    }
    if threshold_ns > 0 {
        let unknown = snap
            .goroutines
            .iter()
            .filter(|g| g.waiting_ns.is_none())
            .count();
        writeln!(
            out,
            "({unknown} goroutines with an unknown wait time not shown: the runtime records it at the first GC after they block)\n"
        )?;
    }

    writeln!(
        out,
        "goroutines: {} ({} runtime)",
        snap.goroutines.len(),
        snap.goroutines.iter().filter(|g| g.system).count()
    )?;
    for (reason, n) in by_state(snap, false) {
        writeln!(out, "  {n:>6}  {reason}")?;
    }
    // One line per (state, object, possible holders); many goroutines on one channel stay one line.
    let mut lines: Vec<(String, Vec<u64>)> = Vec::new();
    for g in user.iter().filter(|g| g.wait.is_some()) {
        let holders: Vec<String> = holders_of(snap, g).iter().map(|h| h.to_string()).collect();
        let held = if holders.is_empty() {
            String::new()
        } else {
            format!(" (possibly held by goroutine {})", holders.join(", "))
        };
        let text = format!(
            "[{}]: {}{held}",
            g.state(),
            wait_text(g).unwrap_or_default()
        );
        match lines.iter_mut().find(|(t, _)| *t == text) {
            Some((_, ids)) => ids.push(g.goid),
            None => lines.push((text, vec![g.goid])),
        }
    }
    if !lines.is_empty() {
        writeln!(out, "\nwaiting on:")?;
        for (text, ids) in lines {
            match ids.as_slice() {
                [one] => writeln!(out, "  goroutine {one} {text}")?,
                many if many.len() <= 8 => {
                    let list: Vec<String> = many.iter().map(|i| i.to_string()).collect();
                    writeln!(out, "  goroutines {} {text}", list.join(", "))?
                }
                many => writeln!(
                    out,
                    "  {} goroutines ({} … {}) {text}",
                    many.len(),
                    many[0],
                    many[many.len() - 1]
                )?,
            }
        }
    }
    for d in &snap.deadlocks {
        writeln!(out, "\n{}", deadlock_text(d))?;
    }
    writeln!(
        out,
        "\nsnapshot took {:.1} ms",
        snap.elapsed_ns as f64 / 1e6
    )?;
    Ok(())
}

fn holders_of(snap: &Snapshot, g: &Goroutine) -> Vec<u64> {
    let Some(lock) = g.wait.as_ref().and_then(|w| w.object) else {
        return Vec::new();
    };
    snap.holders
        .iter()
        .filter(|h| h.lock == lock && h.goid != g.goid)
        .map(|h| h.goid)
        .collect()
}

/// Goroutine counts per state (wait reason or status), largest first.
fn by_state(snap: &Snapshot, include_system: bool) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for g in snap
        .goroutines
        .iter()
        .filter(|g| include_system || !g.system)
    {
        *counts.entry(g.state()).or_default() += 1;
    }
    let mut v: Vec<(String, usize)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// A goroutine of `snap` as a JSON record.
pub fn goroutine_json<'a>(snap: &Snapshot, g: &'a Goroutine) -> GoroutineRecord<'a> {
    let w = g.wait.as_ref();
    GoroutineRecord {
        event: None,
        goid: g.goid,
        state: g.status_name(),
        wait_reason: &g.wait_reason,
        waiting_ns: g.waiting_ns,
        wait_start: None,
        waiting_on: w.and_then(|w| w.object),
        wait_kind: w.map(|w| &*w.kind),
        lock_name: w.and_then(|w| w.name.as_deref()),
        lock_named_by: w
            .and_then(|w| w.named_by)
            .map(crate::profiles::NamedBy::as_str),
        sema: w.and_then(|w| w.sema),
        channels: w.map_or(&[], |w| &w.chans),
        possible_holders: holders_of(snap, g),
        system: g.system,
        parent_goid: g.parent_goid,
        start_func: &g.start_func,
        created_by: g.created_by.as_ref().map(FrameRecord::of),
        stack: g.stack.iter().map(FrameRecord::of).collect(),
        stack_note: g.stack_note.as_deref(),
    }
}

/// A snapshot's deadlock as a JSON record.
pub fn deadlock_json(d: &Deadlock) -> Record<'_> {
    Record::Deadlock {
        goids: &d.goids,
        locks: &d.locks,
        lock_names: None,
        certain: d.certain,
        holders: None,
        evidence: &d.evidence,
    }
}

/// A snapshot's deadlock as two lines: the wait chain, then the evidence.
pub fn deadlock_text(d: &Deadlock) -> String {
    let label = if d.certain {
        "DEADLOCK"
    } else {
        "possible deadlock"
    };
    let chain: Vec<String> = d
        .goids
        .iter()
        .zip(&d.locks)
        .map(|(g, l)| format!("goroutine {g} waits for {l:#x}"))
        .collect();
    format!("{label}: {}\n  ({})", chain.join(" → "), d.evidence)
}

pub fn write_json(out: &mut dyn Write, snap: &Snapshot, threshold_ns: u64) -> io::Result<()> {
    Record::header("hang").write_line(out)?;
    for g in selected(snap, threshold_ns) {
        Record::Goroutine(goroutine_json(snap, g)).write_line(out)?;
    }
    for d in &snap.deadlocks {
        deadlock_json(d).write_line(out)?;
    }
    Record::HangSummary {
        go_version: &snap.go_version,
        goroutines: snap.goroutines.len(),
        system_goroutines: snap.goroutines.iter().filter(|g| g.system).count(),
        unreadable: snap.unreadable,
        by_state: by_state(snap, true).into_iter().collect(),
        snapshot_ns: snap.elapsed_ns,
    }
    .write_line(out)
}

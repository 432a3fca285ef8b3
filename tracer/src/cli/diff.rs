//! `tracer diff A B`: two runs of the same repro (recordings, or `cache --json` outputs),
//! compared by identity flow; the first divergence with both sides, then what differs.
//! Exit 0 when they agree, 1 when they diverge, 2 on bad input.
use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
};

use clap::Args;

use crate::{
    model::diff::{Comparison, Run, RunCall, Side, compare},
    output::records::Record,
    recording::{Job, MAGIC, RecordingReader},
};

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The reference run: a recording (`tracer record`, `--record`) or `tracer cache --json`
    /// output.
    a: PathBuf,
    /// The run to compare with it.
    b: PathBuf,
    /// One JSON object instead of the human report.
    #[arg(long)]
    json: bool,
}

pub fn run(args: DiffArgs) -> anyhow::Result<i32> {
    let load_both = || -> anyhow::Result<(Run, Run)> { Ok((load(&args.a)?, load(&args.b)?)) };
    let (a, b) = match load_both() {
        Ok(runs) => runs,
        Err(e) => {
            eprintln!("tracer: {e:#}");
            return Ok(2);
        }
    };
    let cmp = compare(&a, &b);
    let mut out = std::io::stdout().lock();
    if args.json {
        Record::CacheDiff {
            a: args.a.display().to_string(),
            b: args.b.display().to_string(),
            diverged: cmp.first.is_some(),
            first_divergence: &cmp.first,
            summary: &cmp.summary,
        }
        .write_line(&mut out)?;
    } else {
        report(&mut out, &args, &cmp)?;
    }
    Ok(if cmp.first.is_some() { 1 } else { 0 })
}

/// A run's cache calls, from a recording (replayed) or JSON lines.
fn load(path: &Path) -> anyhow::Result<Run> {
    let mut start = [0u8; 8];
    let is_recording = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut start))
        .is_ok()
        && start == MAGIC;
    let text = if is_recording {
        let mut rec = RecordingReader::open(path)?;
        let Job::Cache(job) = rec.header.job.clone() else {
            anyhow::bail!(
                "{} is a recording of `tracer {}`; diff compares cache runs (hint: record `tracer cache`)",
                path.display(),
                rec.header.job.subcommand()
            );
        };
        super::cache::replay_records(&mut rec, &job)?
    } else {
        std::fs::read(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read {}: {}",
                path.display(),
                crate::output::os_error_text(&e)
            )
        })?
    };
    let mut calls = Vec::new();
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(line).map_err(|_| {
            anyhow::anyhow!(
                "{} line {} is not a JSON record (hint: give a recording or the output of `tracer cache --json`)",
                path.display(),
                n + 1
            )
        })?;
        if v["kind"] == "cache_call" {
            calls.push(
                serde_json::from_value::<RunCall>(v)
                    .map_err(|e| anyhow::anyhow!("{} line {}: {e}", path.display(), n + 1))?,
            );
        }
    }
    if calls.is_empty() {
        anyhow::bail!(
            "{} has no cache_call record (hint: `tracer cache --json -o FILE` or a recording of `tracer cache`)",
            path.display()
        );
    }
    Ok(Run::new(calls))
}

/// One row of the divergence table: a call's field as text.
type Getter = fn(&RunCall) -> Option<String>;

fn report(w: &mut dyn Write, args: &DiffArgs, cmp: &Comparison) -> std::io::Result<()> {
    let s = &cmp.summary;
    writeln!(
        w,
        "A: {} ({} calls)\nB: {} ({} calls)",
        args.a.display(),
        s.calls.0,
        args.b.display(),
        s.calls.1
    )?;
    let Some(first) = &cmp.first else {
        writeln!(
            w,
            "no divergence: every digest was asked for in both runs and came to the same (executed, reused, uncached, errors, routes)"
        )?;
        return outcome_table(w, cmp);
    };
    let at = |side: &Option<Side>| {
        side.as_ref().map_or("-".to_string(), |s| {
            format!(
                "call {} (+{:.3} ms)",
                s.index + 1,
                s.since_start_ns as f64 / 1e6
            )
        })
    };
    writeln!(
        w,
        "FIRST DIVERGENCE: {} of A, {} of B; differs: {}",
        at(&first.a),
        at(&first.b),
        first.differs.join(", ")
    )?;
    let (a, b) = (first.a.as_ref(), first.b.as_ref());
    let field = |s: Option<&Side>, f: Getter| {
        s.map_or("(no such call)".to_string(), |s| {
            f(&s.call).unwrap_or_else(|| "-".into())
        })
    };
    let rows: [(&str, Getter); 6] = [
        ("digest", |c| c.digest.clone()),
        ("outcome", |c| c.outcome.clone()),
        ("hit_route", |c| c.hit_route.clone()),
        ("session", |c| c.session.clone()),
        ("parent", |c| c.parent_digest.clone()),
        ("error", |c| c.error.clone()),
    ];
    writeln!(w, "  {:<12} {:<40} B", "", "A")?;
    for (name, f) in rows {
        writeln!(w, "  {name:<12} {:<40} {}", field(a, f), field(b, f))?;
    }
    let sig = |s: Option<&Side>| {
        s.and_then(|s| s.signature.as_ref())
            .map_or("-".into(), |g| {
                format!(
                    "{} calls: {} executed, {} reused, {} uncached, {} errors",
                    g.calls, g.executed, g.reused, g.uncached, g.errors
                )
            })
    };
    writeln!(w, "  {:<12} {:<40} {}", "its digest", sig(a), sig(b))?;
    for (name, side) in [("A", a), ("B", b)] {
        if let Some(s) = side {
            let chain = if s.parent_chain.is_empty() {
                "(a root call)".to_string()
            } else {
                s.parent_chain.join(" <- ")
            };
            writeln!(w, "  parent chain {name}: {chain}")?;
        }
    }
    writeln!(
        w,
        "digests only in A: {}, only in B: {}, in both but came to different counts: {}{}",
        s.digests_only_in_a,
        s.digests_only_in_b,
        s.digests_differing,
        if s.differing_counts.is_empty() {
            String::new()
        } else {
            let parts: Vec<String> = s
                .differing_counts
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            format!(" ({})", parts.join(", "))
        }
    )?;
    outcome_table(w, cmp)
}

fn outcome_table(w: &mut dyn Write, cmp: &Comparison) -> std::io::Result<()> {
    writeln!(w, "{:<12} {:>8} {:>8}", "outcome", "A", "B")?;
    for (outcome, (a, b)) in &cmp.summary.outcomes {
        let mark = if a != b { "  *" } else { "" };
        writeln!(w, "{outcome:<12} {a:>8} {b:>8}{mark}")?;
    }
    let fields = &cmp.summary.by_field;
    if fields.is_empty() {
        writeln!(
            w,
            "(per call name: record the runs with --explain, which reads each call's field)"
        )?;
        return Ok(());
    }
    writeln!(
        w,
        "{:<24} {:>8} {:>8} {:>10} {:>10} {:>10}",
        "call", "A", "B", "only in A", "only in B", "differing"
    )?;
    for (field, f) in fields {
        let mark = if f.only_in_a + f.only_in_b + f.differing > 0 {
            "  *"
        } else {
            ""
        };
        writeln!(
            w,
            "{field:<24} {:>8} {:>8} {:>10} {:>10} {:>10}{mark}",
            f.calls.0, f.calls.1, f.only_in_a, f.only_in_b, f.differing
        )?;
    }
    Ok(())
}

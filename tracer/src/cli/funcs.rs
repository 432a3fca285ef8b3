//! `tracer funcs`: every call of the matching Go functions, paired per goroutine.
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

use super::{
    target::TargetArgs,
    tracing::{EventSink, Started, start, trace_until_stop},
};
use crate::{
    gobin::GoBinary,
    model::{
        calls::{CallTracker, Tracked},
        summary::CallSummary,
    },
    output::{self, calls::CallWriter},
    probes::{Event, plan::PlanSet},
};

#[derive(Args, Debug)]
pub struct FuncsArgs {
    /// Regex over full Go function names, e.g. 'main\.handle.*' (anchored at both ends).
    #[arg(long = "match", value_name = "REGEX")]
    pattern: String,
    #[command(flatten)]
    target: TargetArgs,
    /// One JSON object per line instead of human-readable lines.
    #[arg(long)]
    json: bool,
    /// Entry probes only: no results or durations, far cheaper (no RET probes).
    #[arg(long)]
    entry_only: bool,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS", allow_negative_numbers = true,
          value_parser = super::tracing::parse_duration)]
    duration: Option<f64>,
    /// Write records to this file instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Ring buffer size in MiB (a power of two).
    #[arg(long, default_value_t = 16, value_parser = super::tracing::parse_ring_mb)]
    ring_mb: u32,
    /// Refuse to attach more probes than this (each costs a trap per hit).
    #[arg(long, default_value_t = 5000)]
    max_probes: usize,
}

pub fn run(args: FuncsArgs) -> anyhow::Result<i32> {
    let regex = super::anchored_regex(&args.pattern)?;
    let target = args.target.resolve()?;
    let binary_path = target.binary();
    let binary = GoBinary::open(&binary_path)?;
    let matched = binary.find_functions(&regex);
    if matched.is_empty() {
        bail!(
            "no function in {} matches `{}` (hint: `tracer inspect {} --match '<regex>'` lists the names)",
            binary_path.display(),
            args.pattern,
            binary_path.display()
        );
    }

    // Plan every probe before touching the kernel, so a bad binary fails cleanly.
    let mut plan = PlanSet::default();
    let mut traced = Vec::new();
    for f in &matched {
        plan.add_call(&binary, f, traced.len() as u32, args.entry_only)?;
        traced.push(f.name.clone());
    }
    if !args.entry_only {
        // Goroutine exits close frames that never returned (e.g. recovered elsewhere).
        plan.add_goexit(&binary)?;
    }
    let points = &plan.points;
    if points.len() > args.max_probes {
        bail!(
            "`{}` needs {} probes on {} functions, more than --max-probes {} (hint: narrow the regex, or raise --max-probes)",
            args.pattern,
            points.len(),
            traced.len(),
            args.max_probes
        );
    }

    // The records' file is opened before any eBPF is loaded: a bad path fails fast, alone.
    let sink = output::open_record_sink(args.output.as_deref())?;
    let Started {
        pid,
        probes,
        mut reader,
        child,
        runtime,
    } = start(&target, &binary, &plan, args.ring_mb)?;
    eprintln!(
        "tracer: tracing {} function(s) with {} probes in pid {} ({}){}",
        traced.len(),
        probes.attached(),
        pid,
        binary.go_version(),
        if args.entry_only { ", entry only" } else { "" }
    );

    let mut pipeline = Pipeline {
        tracker: CallTracker::new(args.entry_only),
        summary: CallSummary::new(traced.len()),
        writer: CallWriter::new(sink, args.json, traced),
    };
    let stop = runtime.block_on(trace_until_stop(
        &mut reader,
        &mut pipeline,
        pid,
        child,
        args.duration,
    ))?;
    let lost = probes.lost_events()?;
    drop(probes); // detach before the target is waited on
    pipeline.finish(lost, reader.malformed)?;

    Ok(stop.exit_status())
}

/// Events in, records out: the pairing model, the summary and the writer.
struct Pipeline {
    tracker: CallTracker,
    summary: CallSummary,
    writer: CallWriter,
}

impl EventSink for Pipeline {
    fn on_event(&mut self, ev: Event) {
        let Pipeline {
            tracker,
            summary,
            writer,
        } = self;
        tracker.on_event(ev, &mut |t| {
            if let Tracked::Completed(rec) = t {
                summary.add(&rec);
                writer.write(&rec);
            }
        });
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.writer.flush().context("cannot write records")
    }
}

impl Pipeline {
    fn finish(mut self, lost_events: u64, malformed: u64) -> anyhow::Result<()> {
        let Pipeline {
            tracker,
            summary,
            writer,
        } = &mut self;
        tracker.finish(&mut |t| {
            if let Tracked::Completed(rec) = t {
                summary.add(&rec);
                writer.write(&rec);
            }
        });
        let unreadable = tracker.stats.unreadable + malformed;
        writer
            .summary(summary, lost_events, unreadable)
            .context("cannot write records")
    }
}

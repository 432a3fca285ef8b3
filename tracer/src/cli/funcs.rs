//! `tracer funcs`: every call of the matching Go functions, paired per goroutine.
use std::{num::NonZeroU32, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use clap::Args;
use tracer_common::{GoCallEvent, ProbeKind};

use super::target::{Resolved, TargetArgs};
use crate::{
    gobin::{EntryKind, GoBinary},
    model::{calls::CallTracker, summary::CallSummary},
    output::{self, calls::CallWriter},
    probes::{AttachedProbes, EventReader, LoadOptions},
    target::{ChildExit, GatedChild},
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
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Write records to this file instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Ring buffer size in MiB (a power of two).
    #[arg(long, default_value_t = 16, value_parser = parse_ring_mb)]
    ring_mb: u32,
    /// Refuse to attach more probes than this (each costs a trap per hit).
    #[arg(long, default_value_t = 5000)]
    max_probes: usize,
}

fn parse_ring_mb(s: &str) -> Result<u32, String> {
    let mb: u32 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if !mb.is_power_of_two() || mb > 1024 {
        return Err("must be a power of two between 1 and 1024".into());
    }
    Ok(mb)
}

const GOEXIT_PROBE_ID: u32 = u32::MAX;
const GOEXIT_FUNC: &str = "runtime.goexit1";

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
    let mut traced = Vec::new();
    let mut points: Vec<(u64, ProbeKind, u32)> = Vec::new();
    for f in &matched {
        let plan = binary.probe_plan(f)?;
        let id = traced.len() as u32;
        points.push((file_offset(&binary, plan.entry)?, ProbeKind::FuncEntry, id));
        if !args.entry_only {
            for ret in &plan.rets {
                points.push((file_offset(&binary, *ret)?, ProbeKind::FuncReturn, id));
            }
        }
        if plan.entry_kind == EntryKind::NoStackCheck && plan.rets.is_empty() && !args.entry_only {
            eprintln!(
                "tracer: note: {} has no RET instruction; its calls end as unwound",
                f.name
            );
        }
        traced.push(f.name.clone());
    }
    if !args.entry_only {
        // Goroutine exits close frames that never returned (e.g. recovered elsewhere).
        let goexit = binary
            .functions()
            .iter()
            .find(|f| f.name == GOEXIT_FUNC)
            .with_context(|| format!("{GOEXIT_FUNC} not found in {}", binary_path.display()))?;
        let plan = binary.probe_plan(goexit)?;
        points.push((
            file_offset(&binary, plan.entry)?,
            ProbeKind::GoroutineExit,
            GOEXIT_PROBE_ID,
        ));
    }
    if points.len() > args.max_probes {
        bail!(
            "`{}` needs {} probes on {} functions, more than --max-probes {} (hint: narrow the regex, or raise --max-probes)",
            args.pattern,
            points.len(),
            traced.len(),
            args.max_probes
        );
    }

    let mut child = target.spawn()?;
    let pid = match (&target, &child) {
        (Resolved::Running(p), _) => p.pid,
        (_, Some(c)) => c.pid,
        _ => unreachable!("a spawn target always has a child"),
    };
    let mut probes = AttachedProbes::load(&LoadOptions {
        goid_offset: binary.goid_offset().offset,
        target_tgid: pid,
        ring_bytes: args.ring_mb * 1024 * 1024,
    })?;
    let scope = NonZeroU32::new(pid);
    for &(offset, kind, id) in &points {
        probes.attach(&binary_path, offset, kind, id, scope)?;
    }
    eprintln!(
        "tracer: tracing {} function(s) with {} probes in pid {} ({}){}",
        traced.len(),
        probes.attached(),
        pid,
        binary.go_version(),
        if args.entry_only { ", entry only" } else { "" }
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let _in_runtime = runtime.enter();
    let mut reader = EventReader::new(probes.take_events()?)?;
    if let Some(c) = child.as_mut() {
        c.release()?;
    }

    let sink = output::record_sink(args.output.as_deref())
        .with_context(|| format!("cannot write records to {:?}", args.output))?;
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

    Ok(match stop {
        Stop::ChildExited(exit) => exit.shell_status(),
        Stop::Interrupted => 130,
        Stop::Done => 0,
    })
}

fn file_offset(binary: &GoBinary, vaddr: u64) -> anyhow::Result<u64> {
    binary
        .file_offset(vaddr)
        .with_context(|| format!("address {vaddr:#x} is not in a loaded segment of the binary"))
}

enum Stop {
    /// Duration elapsed or the attached process exited.
    Done,
    Interrupted,
    ChildExited(ChildExit),
}

async fn trace_until_stop(
    reader: &mut EventReader,
    pipeline: &mut Pipeline,
    pid: u32,
    child: Option<GatedChild>,
    duration: Option<f64>,
) -> anyhow::Result<Stop> {
    let deadline = duration.map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s));
    let sleep = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep);
    let spawned = child.is_some();
    // The child is waited on in a blocking thread; it comes back when it exits.
    let (exit_tx, mut exit_rx) = tokio::sync::oneshot::channel();
    let child_waiter = child.map(|c| {
        std::thread::spawn(move || {
            let status = c.wait();
            let _ = exit_tx.send(status);
        })
    });
    let process_gone = async {
        if spawned {
            std::future::pending::<()>().await
        } else {
            let _ = crate::target::process_exit(pid).await;
        }
    };
    tokio::pin!(process_gone);

    let mut batch = Vec::new();
    // The kernel side wakes us only when the ring fills up; between wakeups the
    // reader drains on this timer, which bounds how late a live line can be.
    let mut poll = tokio::time::interval(crate::probes::POLL_INTERVAL);
    let stop = loop {
        tokio::select! {
            _ = poll.tick() => {
                reader.drain_now(&mut |ev| pipeline.on_event(&ev));
                pipeline.flush()?;
            }
            read = reader.next_batch(&mut batch) => {
                read?;
                for ev in batch.drain(..) {
                    pipeline.on_event(&ev);
                }
                pipeline.flush()?;
            }
            status = &mut exit_rx, if spawned => {
                break Stop::ChildExited(status??);
            }
            _ = &mut process_gone => break Stop::Done,
            _ = &mut sleep => break Stop::Done,
            _ = tokio::signal::ctrl_c() => break Stop::Interrupted,
        }
    };
    // Everything the kernel queued before the stop is still delivered.
    reader.drain_now(&mut |ev| pipeline.on_event(&ev));
    pipeline.flush()?;
    if spawned && !matches!(stop, Stop::ChildExited(_)) {
        // Keep the child running untraced; its exit status is still ours to return.
        if matches!(stop, Stop::Interrupted) {
            // The terminal's Ctrl-C went to the child too; give it a moment.
            if let Ok(Ok(status)) = tokio::time::timeout(Duration::from_secs(2), &mut exit_rx).await
            {
                return Ok(Stop::ChildExited(status?));
            }
            return Ok(Stop::Interrupted);
        }
        let status = exit_rx.await?;
        drop(child_waiter);
        return Ok(Stop::ChildExited(status?));
    }
    Ok(stop)
}

/// Events in, records out: the pairing model, the summary and the writer.
struct Pipeline {
    tracker: CallTracker,
    summary: CallSummary,
    writer: CallWriter,
}

impl Pipeline {
    fn on_event(&mut self, ev: &GoCallEvent) {
        let Pipeline {
            tracker,
            summary,
            writer,
        } = self;
        tracker.on_event(ev, &mut |rec| {
            summary.add(&rec);
            writer.write(&rec);
        });
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.writer.flush().context("cannot write records")
    }

    fn finish(mut self, lost_events: u64, malformed: u64) -> anyhow::Result<()> {
        let Pipeline {
            tracker,
            summary,
            writer,
        } = &mut self;
        tracker.finish(&mut |rec| {
            summary.add(&rec);
            writer.write(&rec);
        });
        let unreadable = tracker.stats.unreadable + malformed;
        writer
            .summary(summary, lost_events, unreadable)
            .context("cannot write records")
    }
}

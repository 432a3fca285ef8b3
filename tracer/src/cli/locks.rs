//! `tracer locks`: lock contention of a running (or spawned) Go program, from probes on the
//! sync slow paths; one record per contended acquisition, per-lock totals at the end.
use std::{io::Write, path::PathBuf};

use clap::Args;

use super::{
    follow::{self, FollowArgs},
    target::{Resolved, TargetArgs},
    tracing::{CacheDiscovery, EventSink, Started, Stop, start, trace_until_stop},
};
use crate::{
    gobin::GoBinary,
    model::{
        goroutines::Symbolizer,
        locks::{Contention, LockModel},
    },
    output,
    probes::{
        Event,
        sync::{SyncEvent, SyncOptions, SyncProbes},
    },
    profiles,
    target::memory::{load_bias, monotonic_ns},
};

#[derive(Args, Debug)]
pub struct LocksArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    follow: FollowArgs,
    /// One JSON object per line instead of human-readable lines.
    #[arg(long)]
    json: bool,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS", allow_negative_numbers = true,
          value_parser = super::tracing::parse_duration)]
    duration: Option<f64>,
    /// Write records to this file instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Waiting stacks listed per lock in the summary.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// Ring buffer size in MiB (a power of two).
    #[arg(long, default_value_t = 16, value_parser = super::tracing::parse_ring_mb)]
    ring_mb: u32,
}

pub fn run(args: LocksArgs) -> anyhow::Result<i32> {
    follow::drive(
        &args.target,
        &args.follow,
        args.duration,
        args.output.as_deref(),
        args.json,
        |target, duration, sink| trace_once(&args, target, Box::new(sink), duration),
    )
}

/// Traces one process (or spawned command) until it ends, the duration passes or a signal.
fn trace_once(
    args: &LocksArgs,
    target: &Resolved,
    sink: Box<dyn Write + Send>,
    duration: Option<f64>,
) -> anyhow::Result<Stop> {
    let binary = GoBinary::open(&target.binary())?;
    let profile = profiles::detect(&binary).ok();
    let probes_plan = SyncProbes::plan(
        &binary,
        &SyncOptions {
            contention: true,
            cache_receivers: profile.map(|p| p.cache_receivers()).unwrap_or_default(),
            ..SyncOptions::default()
        },
    )?;
    if !probes_plan.missing.is_empty() {
        anyhow::bail!(
            "{} has no {} (hint: it may not use sync.Mutex at all, or its Go version names them differently; `tracer inspect {} --match '.*lockSlow.*'` shows what is there)",
            binary.path().display(),
            probes_plan.missing.join(", "),
            binary.path().display()
        );
    }

    let Started {
        mut signals,
        pid,
        mut probes,
        mut reader,
        child,
        runtime,
    } = start(target, &binary, &probes_plan.plan, args.ring_mb)?;
    eprintln!(
        "tracer: lock contention in pid {pid} ({}{}), {} probes on the sync slow paths",
        binary.go_version(),
        profile.map_or(String::new(), |p| format!(", engine {}", p.id)),
        probes.attached()
    );
    let mut pipeline = LocksPipeline {
        decoder: &probes_plan,
        model: LockModel::new(Some(Symbolizer::new(&binary, 0)), profile),
        bias: None,
        pid,
        lowest: binary.lowest_load_vaddr(),
        sink,
        json: args.json,
        since_ns: monotonic_ns(),
        contended: 0,
        buf: Vec::new(),
        discovery: CacheDiscovery::new(&mut probes),
    };
    let stop = runtime.block_on(trace_until_stop(
        &mut signals,
        &mut reader,
        &mut pipeline,
        pid,
        child,
        duration,
    ))?;
    let lost_events = probes.lost_events()?;
    let kernel = probes.kernel_failures()?;
    super::tracing::warn_if_silent(&reader, &probes, "no lock was contended while attached");
    super::tracing::detach(probes);
    let summary = pipeline.model.summary(args.top);
    if args.json {
        for s in &summary {
            writeln!(pipeline.sink, "{}", output::locks::summary_json(s))?;
        }
        let rec = serde_json::json!({
            "kind": "summary",
            "contended": pipeline.contended,
            "locks": summary.len(),
            "other_semaphore_waits": pipeline.model.other_waits,
            "lost_events": lost_events,
            "kernel_failures": kernel,
            "malformed_events": reader.malformed,
            "evicted": pipeline.model.evicted,
        });
        writeln!(pipeline.sink, "{rec}")?;
    }
    pipeline.sink.flush()?;
    let mut err = std::io::stderr();
    output::locks::summary_human(&mut err, &summary)?;
    writeln!(
        err,
        "{} contended acquisitions; lost events: {lost_events}",
        pipeline.contended
    )?;
    if let Some(e) = output::locks::evictions_human(&pipeline.model.evicted) {
        writeln!(err, "{e}")?;
    }
    if let Some(k) = kernel.describe() {
        writeln!(err, "{k}")?;
    }
    Ok(stop)
}

struct LocksPipeline<'a> {
    decoder: &'a SyncProbes,
    model: LockModel<'a>,
    /// The target's load bias, read at the first event (a spawned target only has one
    /// once it runs).
    bias: Option<u64>,
    pid: u32,
    lowest: u64,
    sink: Box<dyn Write + Send>,
    json: bool,
    since_ns: u64,
    contended: u64,
    buf: Vec<u8>,
    /// The engine cache's address, from the probes that learn it.
    discovery: CacheDiscovery,
}

impl LocksPipeline<'_> {
    fn write(&mut self, c: &Contention) -> std::io::Result<()> {
        self.buf.clear();
        if self.json {
            serde_json::to_writer(&mut self.buf, &output::locks::contention_json(c))?;
            self.buf.push(b'\n');
        } else {
            output::locks::contention_human(&mut self.buf, c, self.since_ns)?;
        }
        self.sink.write_all(&self.buf)
    }
}

impl EventSink for LocksPipeline<'_> {
    fn on_event(&mut self, ev: Event) {
        // Until /proc/PID/maps can be read (a spawned target not yet exec'd), no bias.
        if self.bias.is_none() {
            self.bias = load_bias(self.pid, self.lowest).ok();
            if let Some(bias) = self.bias {
                self.model.set_bias(bias);
            }
        }
        let Some(sync) = self.decoder.decode(ev, self.bias.unwrap_or(0)) else {
            return;
        };
        if let SyncEvent::CacheReceiver { addr } = sync {
            if self.discovery.seen(addr) {
                self.model.set_cache(addr);
            }
            return;
        }
        if let Some(c) = self.model.on_event(sync) {
            self.contended += 1;
            // A write error (closed pipe) surfaces at the next flush.
            let _ = self.write(&c);
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.sink.flush()?;
        Ok(())
    }
}

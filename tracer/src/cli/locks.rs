//! `tracer locks`: lock contention of a running (or spawned) Go program, from probes on the
//! sync slow paths; one record per contended acquisition, per-lock totals at the end.
use std::{io::Write, path::PathBuf};

use anyhow::Context;
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
    output::{self, Format, metrics::LockMetrics, perfetto::PerfettoWriter, records::Record},
    probes::{
        Event,
        sync::{SyncEvent, SyncOptions, SyncProbes},
    },
    profiles,
    recording::{self, End, Job, LocksJob, PendingRecording, RecordingReader},
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
    /// How records are written: human, json (`--json`) or perfetto (a timeline of the
    /// waits, needs `-o FILE`).
    #[arg(long, value_enum, conflicts_with = "json")]
    format: Option<crate::output::Format>,
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
    /// Also keep every raw event in this file, for `tracer replay`.
    #[arg(long, value_name = "FILE")]
    pub(super) record: Option<PathBuf>,
    /// Serve Prometheus metrics (OpenMetrics) at http://ADDR/metrics while tracing:
    /// contended acquisitions and wait times per lock; loopback 127.0.0.1:9464 when no
    /// address is given.
    #[arg(long, value_name = "ADDR", num_args = 0..=1,
          default_missing_value = "127.0.0.1:9464")]
    metrics: Option<std::net::SocketAddr>,
    /// Export each contended acquisition's wait as an OpenTelemetry span to this OTLP/HTTP
    /// endpoint, e.g. http://127.0.0.1:4318 (spans it cannot take are dropped and counted).
    #[arg(long, value_name = "URL", value_parser = output::otel::parse_endpoint)]
    otlp: Option<output::otel::Endpoint>,
}

pub fn run(mut args: LocksArgs) -> anyhow::Result<i32> {
    let format = Format::chosen(args.json, args.format, args.output.as_deref())?;
    args.json = format == Format::Json;
    args.format = Some(format);
    if format == Format::Perfetto && args.follow.follow {
        anyhow::bail!(
            "a Perfetto trace holds one process's run; leave out --follow (hint: trace each incarnation with its own -o FILE)"
        );
    }
    if args.record.is_some() && args.follow.follow {
        anyhow::bail!(
            "--record keeps one process's run; leave out --follow (hint: record each incarnation with its own --record FILE)"
        );
    }
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
    mut sink: Box<dyn Write + Send>,
    duration: Option<f64>,
) -> anyhow::Result<Stop> {
    let recording = args
        .record
        .as_deref()
        .map(PendingRecording::create)
        .transpose()?;
    let listener = args.metrics.map(output::metrics::bind).transpose()?;
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
    let job = LocksJob {
        line: profile.map(|p| (p.id.to_string(), p.variant.to_string())),
        top: args.top,
        since_ns: monotonic_ns(),
    };
    if let Some(r) = recording {
        let header = recording::header_for(&binary, pid, Job::Locks(job.clone()));
        reader.record_to(r.start(&header)?);
    }
    if args.json {
        Record::header("locks").write_line(&mut sink)?;
    }
    let (sink, mut perfetto) = perfetto_or(sink, args.format == Some(Format::Perfetto));
    if let Some(p) = perfetto.as_mut() {
        let exe = binary.path().file_name().unwrap_or_default();
        p.begin(pid, &exe.to_string_lossy())
            .context("cannot write the trace")?;
    }
    let metrics = listener
        .map(|l| output::metrics::start(LockMetrics::new(), l, &runtime))
        .transpose()?;
    // --otlp: the events' monotonic times are placed on the wall clock read now.
    let exe = binary.path().display().to_string();
    let engine = profile.map(|p| format!("code line {}", p.name()));
    let otlp = start_otlp(
        args.otlp.as_ref(),
        pid,
        &exe,
        engine.as_deref(),
        output::otel::clock_now(),
        false,
    )?;
    let mut pipeline = LocksPipeline {
        decoder: &probes_plan,
        perfetto,
        otlp,
        metrics,
        model: LockModel::new(Some(Symbolizer::new(&binary, 0)), profile),
        bias: None,
        pid,
        lowest: Some(binary.lowest_load_vaddr()),
        sink,
        json: args.json,
        since_ns: job.since_ns,
        contended: 0,
        buf: Vec::new(),
        discovery: Some(CacheDiscovery::new(&mut probes)),
    };
    let stop = runtime.block_on(trace_until_stop(
        &mut signals,
        &mut reader,
        &mut pipeline,
        &probes,
        pid,
        child,
        duration,
    ))?;
    let lost_events = probes.lost_events()?;
    let kernel = probes.kernel_failures()?;
    super::tracing::warn_if_silent(&reader, &probes, "no lock was contended while attached");
    super::tracing::detach(probes);
    let end = End {
        lost_events,
        kernel_failures: kernel,
        load_bias: pipeline.bias,
        symbols: pipeline
            .model
            .symbols()
            .map(Symbolizer::facts)
            .unwrap_or_default(),
        ..End::default()
    };
    if let Some(r) = reader.take_recorder() {
        let path = r.path().display().to_string();
        let events = r.finish(&end)?;
        eprintln!("tracer: recorded {events} events to {path}");
    }
    pipeline.summarize(&end, reader.malformed, job.top)?;
    Ok(stop)
}

/// `tracer replay` of a locks recording: the same pipeline, symbols from the recording.
pub fn replay(
    rec: &mut RecordingReader,
    job: &LocksJob,
    format: Format,
    mut sink: Box<dyn Write + Send>,
    otlp: Option<&output::otel::Endpoint>,
) -> anyhow::Result<i32> {
    let json = format == Format::Json;
    // What the live run learned as it went (load bias, symbols) is in the end record.
    let end = RecordingReader::open(&rec.path)
        .ok()
        .and_then(|mut r| r.end().ok());
    let profile = job
        .line
        .as_ref()
        .and_then(|(line, variant)| profiles::dagger::by_name(line, variant));
    let symbols =
        Symbolizer::from_facts(end.as_ref().map(|e| e.symbols.clone()).unwrap_or_default());
    let decoder = SyncProbes::for_replay();
    if json {
        Record::header("locks").write_line(&mut sink)?;
    }
    let (sink, mut perfetto) = perfetto_or(sink, format == Format::Perfetto);
    if let Some(p) = perfetto.as_mut() {
        p.begin(rec.header.target.pid, &rec.header.target.exe)
            .context("cannot write the trace")?;
    }
    // --otlp: spans at the recorded run's wall-clock times.
    let target = &rec.header.target;
    let engine = profile.map(|p| format!("code line {}", p.name()));
    let otlp = start_otlp(
        otlp,
        target.pid,
        &target.exe,
        engine.as_deref(),
        rec.header.clock,
        true,
    )?;
    let mut pipeline = LocksPipeline {
        decoder: &decoder,
        perfetto,
        otlp,
        metrics: None,
        model: LockModel::new(Some(symbols), profile),
        bias: end.as_ref().and_then(|e| e.load_bias),
        pid: rec.header.target.pid,
        lowest: None,
        sink,
        json,
        since_ns: job.since_ns,
        contended: 0,
        buf: Vec::new(),
        discovery: None,
    };
    let (end, malformed) = super::replay::feed_all(rec, &mut pipeline)?;
    pipeline.summarize(&end, malformed, job.top)?;
    Ok(0)
}

/// `--otlp`: the exporter, with `clock` placing event times on the wall clock; a replay
/// (`lossless`) waits for the exporter rather than drop spans.
fn start_otlp(
    endpoint: Option<&output::otel::Endpoint>,
    pid: u32,
    exe: &str,
    engine: Option<&str>,
    clock: recording::ClockBase,
    lossless: bool,
) -> anyhow::Result<Option<output::otel::Otlp>> {
    let Some(endpoint) = endpoint else {
        return Ok(None);
    };
    let target = output::otel::TargetProcess { pid, exe, engine };
    let otlp = output::otel::Otlp::start(endpoint, &target, clock, lossless)?;
    eprintln!("tracer: exporting spans to {}", endpoint.as_str());
    Ok(Some(otlp))
}

/// The records' sink, or a Perfetto writer on it (and a sink that drops the records).
fn perfetto_or(
    sink: Box<dyn Write + Send>,
    perfetto: bool,
) -> (Box<dyn Write + Send>, Option<PerfettoWriter>) {
    if perfetto {
        (Box::new(std::io::sink()), Some(PerfettoWriter::new(sink)))
    } else {
        (sink, None)
    }
}

struct LocksPipeline<'a> {
    decoder: &'a SyncProbes,
    model: LockModel<'a>,
    /// The target's load bias, read at the first event (a spawned target only has one
    /// once it runs); in replay, the one the live run read.
    bias: Option<u64>,
    pid: u32,
    /// Live: the binary's lowest load address, to read the bias. Replay: None.
    lowest: Option<u64>,
    sink: Box<dyn Write + Send>,
    json: bool,
    /// `--format perfetto`: the waits as a timeline (then `sink` is unused).
    perfetto: Option<PerfettoWriter>,
    /// `--metrics`: what is served (live only).
    metrics: Option<LockMetrics>,
    /// `--otlp`: waits as spans to a collector.
    otlp: Option<output::otel::Otlp>,
    since_ns: u64,
    contended: u64,
    buf: Vec<u8>,
    /// The engine cache's address, from the probes that learn it (live).
    discovery: Option<CacheDiscovery>,
}

impl LocksPipeline<'_> {
    /// Per-lock totals (JSON into the records when `--json`) and the human summary.
    fn summarize(&mut self, end: &End, malformed: u64, top: usize) -> anyhow::Result<()> {
        let summary = self.model.summary(top);
        // --otlp: what is queued is sent (bounded wait) before the counts are told.
        let otlp = self.otlp.take().map(output::otel::Otlp::finish);
        if self.json {
            for s in &summary {
                output::locks::summary_json(s).write_line(&mut self.sink)?;
            }
            Record::LocksSummary {
                contended: self.contended,
                locks: summary.len(),
                other_semaphore_waits: self.model.other_waits,
                lost_events: end.lost_events,
                kernel_failures: end.kernel_failures,
                malformed_events: malformed,
                evicted: self.model.evicted,
                otlp: otlp.as_ref().map(output::otel::OtlpCounts::record),
            }
            .write_line(&mut self.sink)?;
        }
        if let Some(p) = self.perfetto.as_mut() {
            p.flush().context("cannot write the trace")?;
        }
        self.sink.flush()?;
        let mut err = std::io::stderr();
        output::locks::summary_human(&mut err, &summary)?;
        writeln!(
            err,
            "{} contended acquisitions; lost events: {}",
            self.contended, end.lost_events
        )?;
        if let Some(e) = output::locks::evictions_human(&self.model.evicted) {
            writeln!(err, "{e}")?;
        }
        if let Some(k) = end.kernel_failures.describe() {
            writeln!(err, "{k}")?;
        }
        if let Some(o) = &otlp {
            writeln!(err, "{}", o.human())?;
        }
        if let Some(n) = self.model.symbols().map(|s| s.unknown).filter(|n| *n > 0) {
            writeln!(
                err,
                "note: {n} stack addresses had no symbol in the recording"
            )?;
        }
        Ok(())
    }

    fn write(&mut self, c: &Contention) -> std::io::Result<()> {
        if let Some(m) = &self.metrics {
            m.contention(c);
        }
        if let Some(o) = self.otlp.as_mut() {
            o.lock_wait(c);
        }
        if let Some(p) = self.perfetto.as_mut() {
            return p.lock_wait(c);
        }
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
        if self.bias.is_none()
            && let Some(lowest) = self.lowest
        {
            self.bias = load_bias(self.pid, lowest).ok();
            if let Some(bias) = self.bias {
                self.model.set_bias(bias);
            }
        }
        let Some(sync) = self.decoder.decode(ev, self.bias.unwrap_or(0)) else {
            return;
        };
        if let SyncEvent::CacheReceiver { addr } = sync {
            // Replay: the first hit, as the live run's discovery took it.
            let news = match self.discovery.as_mut() {
                Some(d) => d.seen(addr),
                None => self.model.cache().is_none() && addr != 0,
            };
            if news {
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
        if let Some(m) = &self.metrics {
            m.set(super::cache::own_cpu_ns(), None);
        }
        self.sink.flush()?;
        Ok(())
    }

    fn lost_events_now(&mut self, lost: u64) {
        if let Some(m) = &self.metrics {
            m.set(super::cache::own_cpu_ns(), Some(lost));
        }
    }
}

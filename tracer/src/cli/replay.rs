//! `tracer record` and `tracer replay`: keep a run's raw events, and read them again
//! offline (no root, no binary) through the same decoders and models.
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::tracing::EventSink;
use super::{cache, demo, funcs, hang, locks, watch};
use crate::recording::{End, Job, Recorded, RecordingReader};

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// The recording to write.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
    #[command(subcommand)]
    what: Recordable,
}

/// The subcommands that can be recorded.
#[derive(Subcommand, Debug)]
enum Recordable {
    /// `tracer funcs ...`, recorded.
    Funcs(funcs::FuncsArgs),
    /// `tracer cache ...`, recorded.
    Cache(cache::CacheArgs),
    /// `tracer demo ...`, recorded.
    Demo(demo::DemoArgs),
    /// `tracer locks ...`, recorded.
    Locks(locks::LocksArgs),
    /// `tracer hang --watch ...`, recorded with what its memory snapshots found.
    Hang(hang::HangArgs),
}

pub fn record(args: RecordArgs) -> anyhow::Result<i32> {
    let already = |given: &Option<PathBuf>| {
        if given.is_some() {
            anyhow::bail!("give the recording once: `tracer record -o FILE` or `--record FILE`");
        }
        Ok(Some(args.output.clone()))
    };
    match args.what {
        Recordable::Funcs(mut a) => {
            a.record = already(&a.record)?;
            funcs::run(a)
        }
        Recordable::Cache(mut a) => {
            a.record = already(&a.record)?;
            cache::run(a)
        }
        Recordable::Demo(mut a) => {
            a.record = already(&a.record)?;
            demo::run(a)
        }
        Recordable::Locks(mut a) => {
            a.record = already(&a.record)?;
            locks::run(a)
        }
        Recordable::Hang(mut a) => {
            a.record = already(&a.record)?;
            hang::run(a)
        }
    }
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// A recording made by `tracer record -o FILE ...` or `--record FILE`.
    file: PathBuf,
    /// The subcommand it was recorded with (`cache`, `funcs`, `locks`, `hang`); checked
    /// when given.
    subcommand: Option<String>,
    /// With `hang`: as `tracer hang --watch` printed it (the only `hang` that is recorded).
    #[arg(long)]
    watch: bool,
    /// One JSON object per line instead of human-readable lines (`--format json`).
    #[arg(long)]
    json: bool,
    /// How records are written: human, json, or perfetto (cache recordings; needs -o).
    #[arg(long, value_enum, conflicts_with = "json")]
    format: Option<crate::output::Format>,
    /// Write records to this file instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Cache and locks recordings: export each call (or lock wait) as an OpenTelemetry span
    /// to this OTLP/HTTP endpoint, at the recorded run's times (see `tracer cache --otlp`).
    #[arg(long, value_name = "URL", value_parser = crate::output::otel::parse_endpoint)]
    otlp: Option<crate::output::otel::Endpoint>,
}

/// Feeds a whole recording to `pipeline`: the end record, and the records that were no
/// event. A damaged file still shows what was read before the damage, then the error.
pub fn feed_all(
    rec: &mut RecordingReader,
    pipeline: &mut dyn EventSink,
) -> anyhow::Result<(End, u64)> {
    let fed = rec.feed(|item| {
        match item {
            Recorded::Event(ev) => pipeline.on_event(ev),
            Recorded::Lost(lost) => {
                pipeline.lost_events_at(lost.total, lost.at_ns);
            }
        }
        true
    });
    match fed {
        Ok(fed) => match fed.end {
            Some(end) => Ok((end, fed.malformed)),
            None => anyhow::bail!("the recording ended without its end record"),
        },
        Err(e) => {
            pipeline.flush()?;
            Err(e.into())
        }
    }
}

pub fn replay(args: ReplayArgs) -> anyhow::Result<i32> {
    let format = crate::output::Format::chosen(args.json, args.format, args.output.as_deref())?;
    let sink = crate::output::open_record_sink(args.output.as_deref())?;
    let mut rec = RecordingReader::open(&args.file)?;
    let header = &rec.header;
    let recorded = header.job.subcommand();
    if let Some(asked) = args.subcommand.as_deref()
        && asked != recorded
    {
        anyhow::bail!(
            "{} is a recording of `tracer {recorded}`, not of `{asked}` (hint: `tracer replay {} {recorded}`)",
            args.file.display(),
            args.file.display()
        );
    }
    if args.watch && !matches!(header.job, Job::Hang(_)) {
        anyhow::bail!(
            "--watch goes with `hang` recordings; {} is a recording of `tracer {recorded}` (hint: `tracer replay {} {recorded}`)",
            args.file.display(),
            args.file.display()
        );
    }
    eprintln!(
        "tracer: replaying {}: `tracer {recorded}` of pid {} ({}, {}), recorded by tracer {} on Linux {}",
        args.file.display(),
        header.target.pid,
        header.target.exe,
        header.target.go_version,
        header.tracer_version,
        header.kernel
    );
    if args.otlp.is_some() && matches!(header.job, Job::Funcs(_) | Job::Hang(_)) {
        anyhow::bail!(
            "--otlp exports cache calls and lock waits: give it a cache or locks recording"
        );
    }
    let started = std::time::Instant::now();
    let code = match header.job.clone() {
        Job::Funcs(_) if format == crate::output::Format::Perfetto => anyhow::bail!(
            "a Perfetto timeline is made from cache and locks recordings (hint: --json or the human format for funcs)"
        ),
        Job::Funcs(job) => {
            funcs::replay(&mut rec, &job, format == crate::output::Format::Json, sink)
        }
        Job::Cache(job) => cache::replay(&mut rec, &job, format, sink, args.otlp.as_ref()),
        Job::Locks(job) => locks::replay(&mut rec, &job, format, sink, args.otlp.as_ref()),
        Job::Hang(job) => watch::replay(&mut rec, &job, format, sink),
    }?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "tracer: replayed {} events in {secs:.3} s ({:.0} events/s)",
        rec.events,
        rec.events as f64 / secs.max(1e-9)
    );
    Ok(code)
}

//! `tracer funcs`: every call of the matching Go functions, paired per goroutine.
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

use super::{
    follow::{self, FollowArgs},
    target::{Resolved, TargetArgs},
    tracing::{EventSink, Started, Stop, start_with, trace_until_stop},
};
use crate::{
    gobin::GoBinary,
    model::{
        calls::{CallTracker, Tracked},
        summary::CallSummary,
    },
    output::{SharedSink, calls::CallWriter},
    probes::{
        Event,
        plan::{PlanSet, Unprobeable},
    },
    recording::{self, End, FuncsJob, Job, PendingRecording, RecordingReader},
};

#[derive(Args, Debug)]
pub struct FuncsArgs {
    /// Regex over full Go function names, e.g. 'main\.handle.*' (anchored at both ends).
    #[arg(long = "match", value_name = "REGEX")]
    pattern: String,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    follow: FollowArgs,
    /// One JSON object per line instead of human-readable lines.
    #[arg(long)]
    json: bool,
    /// How records are written: human or json (`--json`); a Perfetto timeline is made by
    /// `cache` so far.
    #[arg(long, value_enum, conflicts_with = "json")]
    format: Option<crate::output::Format>,
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
    /// Also keep every raw event in this file, for `tracer replay`.
    #[arg(long, value_name = "FILE")]
    pub(super) record: Option<PathBuf>,
}

pub fn run(mut args: FuncsArgs) -> anyhow::Result<i32> {
    args.json = args.json || args.format == Some(crate::output::Format::Json);
    if args.format == Some(crate::output::Format::Perfetto) {
        anyhow::bail!(
            "`tracer funcs` writes human or json records; a Perfetto timeline is made by `tracer cache` so far (hint: --format json)"
        );
    }
    let regex = super::anchored_regex(&args.pattern)?;
    if args.record.is_some() && args.follow.follow {
        bail!(
            "--record keeps one process's run; leave out --follow (hint: record each incarnation with its own --record FILE)"
        );
    }
    follow::drive(
        &args.target,
        &args.follow,
        args.duration,
        args.output.as_deref(),
        args.json,
        |target, duration, sink| trace_once(&args, &regex, target, sink, duration),
    )
}

/// Traces one process (or spawned command) until it ends, the duration passes or a signal.
fn trace_once(
    args: &FuncsArgs,
    regex: &regex::Regex,
    target: &Resolved,
    sink: SharedSink,
    duration: Option<f64>,
) -> anyhow::Result<Stop> {
    let recording = args
        .record
        .as_deref()
        .map(PendingRecording::create)
        .transpose()?;
    let binary_path = target.binary();
    let binary = GoBinary::open(&binary_path)?;
    let matched = binary.find_functions(regex);
    if matched.is_empty() {
        let hint = super::no_match_hint(&binary, &args.pattern);
        bail!(
            "no function in {} matches `{}` (hint: {hint})",
            binary_path.display(),
            args.pattern,
        );
    }

    // Plan every probe before touching the kernel, so a bad binary fails cleanly.
    // Functions that cannot be probed (linker markers, instructions the kernel refuses)
    // are left out and listed, unless the pattern names only them.
    let mut plan = PlanSet::default();
    let mut traced = Vec::new();
    let mut skipped: Vec<(String, String)> = Vec::new();
    for f in &matched {
        if f.name.starts_with("go:") {
            skipped.push((f.name.clone(), "a linker marker, not a function".into()));
            continue;
        }
        match plan.add_call(&binary, f, traced.len() as u32, args.entry_only) {
            Ok(()) => traced.push(f.name.clone()),
            Err(e) => match e.downcast_ref::<Unprobeable>() {
                Some(u) => skipped.push((f.name.clone(), u.reason.clone())),
                None => return Err(e),
            },
        }
    }
    if traced.is_empty() {
        let (name, why) = &skipped[0];
        bail!(
            "cannot probe {name}: {why}{}",
            if skipped.len() > 1 {
                format!(
                    " (and {} more matched functions cannot be probed either)",
                    skipped.len() - 1
                )
            } else {
                String::new()
            }
        );
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

    let Started {
        mut signals,
        pid,
        probes,
        mut reader,
        child,
        runtime,
    } = start_with(target, &binary, &plan, args.ring_mb, true)?;
    for (probe_id, _, why) in &probes.refused {
        if let Some(name) = traced.get(*probe_id as usize) {
            skipped.push((name.clone(), why.clone()));
        }
    }
    if !skipped.is_empty() {
        let list: Vec<String> = skipped
            .iter()
            .map(|(name, why)| format!("{name} ({why})"))
            .collect();
        eprintln!(
            "tracer: skipped {} function(s) that cannot be probed: {}",
            skipped.len(),
            list.join(", ")
        );
    }
    let refused_ids: std::collections::HashSet<u32> = probes.refused.iter().map(|r| r.0).collect();
    eprintln!(
        "tracer: tracing {} function(s) with {} probes in pid {} ({}){}",
        traced.len() - refused_ids.len(),
        probes.attached(),
        pid,
        binary.go_version(),
        if args.entry_only { ", entry only" } else { "" }
    );

    let job = FuncsJob {
        pattern: args.pattern.clone(),
        entry_only: args.entry_only,
        functions: traced,
    };
    let mut pipeline = Pipeline::new(&job, Box::new(sink), args.json, pid);
    if let Some(r) = recording {
        let header = recording::header_for(&binary, pid, Job::Funcs(job));
        reader.record_to(r.start(&header)?);
    }
    let stop = runtime.block_on(trace_until_stop(
        &mut signals,
        &mut reader,
        &mut pipeline,
        &probes,
        pid,
        child,
        duration,
    ))?;
    let lost = probes.lost_events()?;
    let kernel = probes.kernel_failures()?;
    super::tracing::warn_if_silent(
        &reader,
        &probes,
        "the traced functions did not run while attached",
    );
    super::tracing::detach(probes);
    if let Some(r) = reader.take_recorder() {
        let path = r.path().display().to_string();
        let end = End {
            lost_events: lost,
            kernel_failures: kernel,
            ..End::default()
        };
        let events = r.finish(&end)?;
        eprintln!("tracer: recorded {events} events to {path}");
    }
    pipeline.finish(lost, reader.malformed, kernel)?;
    Ok(stop)
}

/// `tracer replay` of a funcs recording: the same pipeline, fed from the file.
pub fn replay(
    rec: &mut RecordingReader,
    job: &FuncsJob,
    json: bool,
    sink: Box<dyn std::io::Write + Send>,
) -> anyhow::Result<i32> {
    let mut pipeline = Pipeline::new(job, sink, json, rec.header.target.pid);
    let (end, malformed) = super::replay::feed_all(rec, &mut pipeline)?;
    pipeline.finish(end.lost_events, malformed, end.kernel_failures)?;
    Ok(0)
}

/// Events in, records out: the pairing model, the summary and the writer.
struct Pipeline {
    tracker: CallTracker,
    summary: CallSummary,
    writer: CallWriter,
    /// Lost-event facts since the last flush, for a recording (JSON).
    facts: Vec<Vec<u8>>,
}

impl EventSink for Pipeline {
    fn on_event(&mut self, ev: Event) {
        let Pipeline {
            tracker,
            summary,
            writer,
            ..
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

    /// Once events were lost, a goroutine's exit may have been one: the tracker then
    /// closes the calls of goroutines silent since (as `tracer cache` does).
    fn lost_events_now(&mut self, lost: u64) {
        if let Some(fact) = super::tracing::lost_now_as_fact(self, lost) {
            self.facts.push(fact);
        }
    }

    fn lost_events_at(&mut self, lost: u64, at_ns: u64) -> bool {
        self.tracker.note_lost_events(lost, at_ns)
    }

    fn take_live_facts(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.facts)
    }
}

impl Pipeline {
    fn new(job: &FuncsJob, mut sink: Box<dyn std::io::Write + Send>, json: bool, pid: u32) -> Self {
        if json {
            // A closed pipe shows at the first record written, as it does without one.
            let _ = crate::output::records::Record::header("funcs").write_line(&mut sink);
        }
        Pipeline {
            tracker: CallTracker::new(job.entry_only),
            summary: CallSummary::new(job.functions.len()),
            writer: CallWriter::new(sink, json, job.functions.clone()).with_pid(pid),
            facts: Vec::new(),
        }
    }

    fn finish(
        mut self,
        lost_events: u64,
        malformed: u64,
        kernel: crate::probes::KernelFailures,
    ) -> anyhow::Result<()> {
        let Pipeline {
            tracker,
            summary,
            writer,
            ..
        } = &mut self;
        tracker.finish(&mut |t| {
            if let Tracked::Completed(rec) = t {
                summary.add(&rec);
                writer.write(&rec);
            }
        });
        let unreadable = tracker.stats.unreadable + malformed;
        let evicted = tracker.stats.evictions();
        writer
            .summary(summary, lost_events, unreadable, kernel, evicted)
            .context("cannot write records")
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::{EventHeader, GO_INT_REGS, GoCallEvent, ProbeKind, record};

    use super::*;
    use crate::model::calls::{IDLE_AFTER_LOSS_NS, IDLE_SWEEP_EVERY_NS};
    use crate::output::MemorySink;

    fn call(kind: ProbeKind, goid: u64, ts_ns: u64) -> Event {
        Event::plain(raw_call(kind, goid, ts_ns))
    }

    fn raw_call(kind: ProbeKind, goid: u64, ts_ns: u64) -> GoCallEvent {
        GoCallEvent {
            header: EventHeader::new(record::CALL, std::mem::size_of::<GoCallEvent>()),
            kind: kind as u32,
            probe_id: 0,
            tgid: 10,
            tid: 11,
            ts_ns,
            goid,
            stack_depth: 100,
            regs: [0; GO_INT_REGS],
        }
    }

    fn job() -> FuncsJob {
        FuncsJob {
            pattern: "main.f".into(),
            entry_only: false,
            functions: vec!["main.f".into()],
        }
    }

    fn summary_of(out: &[u8]) -> serde_json::Value {
        String::from_utf8_lossy(out)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .find(|v: &serde_json::Value| v["kind"] == "summary")
            .expect("a summary record")
    }

    /// A recording keeps the lost-event fact where the live run applied it, so a replay
    /// closes the same silent call as idle and reports the same evictions.
    #[test]
    fn a_replay_applies_the_recorded_loss_where_it_was_recorded() {
        let job = job();
        let lost_at = 5 * IDLE_AFTER_LOSS_NS;
        let later = lost_at + IDLE_AFTER_LOSS_NS + 2 * IDLE_SWEEP_EVERY_NS;
        let before = [raw_call(ProbeKind::FuncEntry, 7, 1)];
        let after = [
            raw_call(ProbeKind::FuncEntry, 8, later),
            raw_call(ProbeKind::FuncReturn, 8, later + 1),
        ];
        let path = std::env::temp_dir().join(format!("funcs-lost-{}.trace", std::process::id()));
        let header = recording::Header {
            tracer_version: "test".into(),
            kernel: "test".into(),
            event_layout_version: tracer_common::EVENT_LAYOUT_VERSION,
            clock: recording::ClockBase {
                monotonic_ns: 0,
                unix_ns: 0,
            },
            target: recording::TargetFacts {
                pid: 10,
                exe: "/x".into(),
                build_id: None,
                go_version: "go1.26.6".into(),
            },
            job: Job::Funcs(job.clone()),
        };
        let mut r = recording::PendingRecording::create(&path)
            .unwrap()
            .start(&header)
            .unwrap();
        for e in &before {
            r.ring_record(e.as_bytes());
        }
        let fact = recording::LostFact {
            total: 5,
            at_ns: lost_at,
        };
        r.live_fact(&fact.to_json());
        for e in &after {
            r.ring_record(e.as_bytes());
        }
        r.finish(&End {
            lost_events: 5,
            ..End::default()
        })
        .unwrap();

        let sink = MemorySink::default();
        let mut rec = RecordingReader::open(&path).unwrap();
        replay(&mut rec, &job, true, Box::new(sink.clone())).unwrap();
        std::fs::remove_file(&path).unwrap();
        let replayed = summary_of(&sink.take());
        assert_eq!(replayed["lost_events"], 5);
        assert_eq!(replayed["evicted_state"]["idle_goroutines"], 1);
        assert_eq!(replayed["functions"][0]["unfinished"], 1);

        // The live pipeline told the same loss at the same time says the same.
        let live_sink = MemorySink::default();
        let mut live = Pipeline::new(&job, Box::new(live_sink.clone()), true, 10);
        for e in &before {
            live.on_event(Event::plain(*e));
        }
        live.lost_events_at(5, lost_at);
        for e in &after {
            live.on_event(Event::plain(*e));
        }
        live.finish(5, 0, Default::default()).unwrap();
        assert_eq!(summary_of(&live_sink.take()), replayed);
    }

    /// A call whose RET and goroutine exit were lost: once the loss is told to the
    /// pipeline, the call is closed as idle, and the summary says so next to the loss.
    #[test]
    fn lost_events_reach_the_tracker_and_its_evictions_the_summary() {
        let job = job();
        let sink = MemorySink::default();
        let mut p = Pipeline::new(&job, Box::new(sink.clone()), true, 10);
        p.on_event(call(ProbeKind::FuncEntry, 7, 1));
        // The kernel's counter, read as the live loop reads it.
        p.lost_events_now(5);
        let lost_at = crate::target::memory::monotonic_ns();
        // Another goroutine's call, past the idle window after the loss.
        let later = lost_at + IDLE_AFTER_LOSS_NS + 2 * IDLE_SWEEP_EVERY_NS;
        p.on_event(call(ProbeKind::FuncEntry, 8, later));
        p.on_event(call(ProbeKind::FuncReturn, 8, later + 1));
        p.finish(5, 0, Default::default()).unwrap();

        let out = String::from_utf8(sink.take()).unwrap();
        let summary: serde_json::Value = out
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .find(|v: &serde_json::Value| v["kind"] == "summary")
            .expect("a summary record");
        assert_eq!(summary["lost_events"], 5);
        assert_eq!(summary["evicted_state"]["idle_goroutines"], 1);
        assert_eq!(summary["evicted_state"]["goroutines"], 0);
        assert_eq!(summary["evicted_state"]["idle_goroutines_revived"], 0);
        assert_eq!(summary["functions"][0]["unfinished"], 1);
        assert_eq!(summary["functions"][0]["returned"], 1);
        let records: Vec<serde_json::Value> = out
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|v: &serde_json::Value| v["kind"] == "func_call")
            .collect();
        assert_eq!(records[0]["goid"], 7, "closed at the idle sweep, first");
        assert_eq!(records[0]["status"], "unfinished");
    }

    /// Without a loss told, the same silent call stays open until the end.
    #[test]
    fn without_a_loss_a_silent_call_is_not_evicted() {
        let job = job();
        let sink = MemorySink::default();
        let mut p = Pipeline::new(&job, Box::new(sink.clone()), true, 10);
        p.on_event(call(ProbeKind::FuncEntry, 7, 1));
        p.lost_events_now(0);
        let later = crate::target::memory::monotonic_ns() + IDLE_AFTER_LOSS_NS * 2;
        p.on_event(call(ProbeKind::FuncEntry, 8, later));
        p.finish(0, 0, Default::default()).unwrap();
        let out = String::from_utf8(sink.take()).unwrap();
        let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        assert_eq!(summary["kind"], "summary");
        assert_eq!(summary["evicted_state"]["idle_goroutines"], 0);
        assert_eq!(summary["functions"][0]["unfinished"], 2);
    }
}

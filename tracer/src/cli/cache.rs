//! `tracer cache`: dagql cache call timelines of a running (or spawned) engine.
use std::{io::Write, path::PathBuf};

use anyhow::Context;
use clap::Args;

use super::{
    follow::{self, FollowArgs},
    goroutine_exits::{self, ExitReader},
    goroutine_names::GoroutineNamer,
    target::{Resolved, TargetArgs},
    tracing::{EventSink, Started, Stop, start, trace_until_stop},
};
use crate::{
    gobin::GoBinary,
    model::{
        cache::{CacheModel, CacheOutput, Evictions, StateSizes},
        cache_events::CacheEvent,
        cache_facts::CacheFact,
        calls::{CallTracker, Tracked},
    },
    output::{
        self,
        cache::{CacheTotals, Metrics, SummaryInput},
        records::Record,
    },
    probes::Event,
    profiles::{self, Decoder, DecoderSetup, LayoutError, NotedSites, Profile, Role},
    recording::{self, CacheJob, End, Job, PendingRecording, RecordingReader, Replayed},
    target::memory::{Memory, load_bias, monotonic_ns},
};

#[derive(Args, Debug)]
pub struct CacheArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub follow: FollowArgs,
    /// One JSON object per line instead of human-readable lines (`--format json`).
    #[arg(long)]
    pub json: bool,
    /// How records are written: human, json, or perfetto (a timeline for
    /// ui.perfetto.dev; needs -o FILE).
    #[arg(long, value_enum, conflicts_with = "json")]
    pub format: Option<output::Format>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS", allow_negative_numbers = true,
          value_parser = super::tracing::parse_duration)]
    pub duration: Option<f64>,
    /// Write records to this file instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Cheaper: no RET probes on the lookup and the base cache call (outcomes,
    /// sessions and durations stay; returned-ID checks and base error texts go).
    #[arg(long)]
    pub light: bool,
    /// Read `GetOrInitCall`'s returns at its RET instructions (single-stepped by the
    /// kernel, several microseconds more per call) rather than at its callers' first jump
    /// after the call: to compare, or to read calls made through an interface too.
    #[arg(long, conflicts_with = "light")]
    pub returns_at_ret: bool,
    /// Ring buffer size in MiB (a power of two).
    #[arg(long, default_value_t = 16, value_parser = super::tracing::parse_ring_mb)]
    pub ring_mb: u32,
    /// Also keep every raw event in this file, for `tracer replay` and `tracer diff`.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Serve Prometheus metrics (OpenMetrics) at http://ADDR/metrics while tracing;
    /// loopback 127.0.0.1:9464 when no address is given.
    #[arg(long, value_name = "ADDR", num_args = 0..=1,
          default_missing_value = "127.0.0.1:9464")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Say why each miss missed: read every call's identity parts (field, self digest,
    /// structural inputs, arguments; never a sensitive argument's value) and compare a
    /// miss with the most similar earlier call of its field. Costs three more probe hits
    /// per lookup.
    #[arg(long)]
    pub explain: bool,
    /// Export each cache call as an OpenTelemetry span to this OTLP/HTTP endpoint, e.g.
    /// http://127.0.0.1:4318 (a collector; spans it cannot take are dropped and counted).
    #[arg(long, value_name = "URL", value_parser = output::otel::parse_endpoint)]
    pub otlp: Option<output::otel::Endpoint>,
}

pub fn run(args: CacheArgs) -> anyhow::Result<i32> {
    output::Format::chosen(args.json, args.format, args.output.as_deref())?;
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

/// Traces one engine process (or spawned command) until it ends, the duration passes or a
/// signal.
fn trace_once(
    args: &CacheArgs,
    target: &Resolved,
    sink: Box<dyn Write + Send>,
    duration: Option<f64>,
) -> anyhow::Result<Stop> {
    let recording = args
        .record
        .as_deref()
        .map(PendingRecording::create)
        .transpose()?;
    let listener = args.metrics.map(output::metrics::bind).transpose()?;
    let binary = GoBinary::open(&target.binary())?;
    let profile = profiles::detect(&binary)?;
    let engine = describe_engine(&binary, profile);
    let mode = profiles::Mode {
        light: args.light,
        explain: args.explain,
        returns_at_ret: args.returns_at_ret,
    };
    let (plan, roles) = profiles::plan(&binary, profile, mode)?;
    for (def, role) in profile.probes.iter().zip(&roles) {
        if role.is_none()
            && def.optional
            && def.wanted(mode)
            && let Some(loss) = optional_loss(def.role)
        {
            eprintln!(
                "tracer: warning: {} is not in this build (inlined?): {loss}",
                def.full_name(),
            );
        }
    }
    for note in &plan.notes {
        eprintln!("tracer: note: {note}");
    }
    // The cache call's returns, when read in its callers: at which sites, for which calls.
    let cache_call_sites = plan
        .caller_returns
        .iter()
        .find(|(id, _)| is_cache_call(&roles, *id))
        .map(|(_, sites)| sites);
    let call_return_sites: Option<Vec<u64>> =
        cache_call_sites.map(|sites| sites.iter().map(|s| s.return_address).collect());
    // The decoder is built once against the binary to learn which of its facts it needs;
    // the pipeline is then built from those facts alone, as a replay builds it.
    let sites = {
        let noted = NotedSites::new(&binary);
        (profile.decoder)(&DecoderSetup {
            sites: &noted,
            profile,
            roles: roles.clone(),
            light: args.light,
            call_return_sites: call_return_sites.as_deref(),
        })?;
        noted.into_facts()
    };
    let job = CacheJob {
        line: profile.id.to_string(),
        variant: profile.variant.to_string(),
        engine,
        light: args.light,
        explain: args.explain,
        roles,
        sites,
        call_return_sites,
    };
    let format = output::Format::chosen(args.json, args.format, args.output.as_deref())?;
    let mut pipeline = CachePipeline::new(&job, sink, format)?;

    let Started {
        mut signals,
        pid,
        probes,
        mut reader,
        child,
        runtime,
    } = start(target, &binary, &plan, args.ring_mb)?;
    pipeline.pid = pid;
    pipeline.lowest = Some(binary.lowest_load_vaddr());
    pipeline.entry_maps = profile.entry_maps(profiles::engine_version(&binary).as_deref());
    let exe = binary.path().display().to_string();
    pipeline.begin(pid, &exe)?;
    // --otlp: the events' monotonic times are placed on the wall clock read now.
    pipeline.start_otlp(args.otlp.as_ref(), pid, &exe, &job.engine, None)?;
    if let Some(l) = listener {
        let maps = profile.entry_maps(profiles::engine_version(&binary).as_deref());
        let m = output::metrics::CacheMetrics::new(maps.map_or(4, <[u64]>::len));
        pipeline.metrics = Some((output::metrics::start(m, l, &runtime)?, maps));
    }
    let mode = match (args.light, follows_refs(&job.roles)) {
        (false, _) => "",
        (true, true) => ", light mode (goroutine exits read from its goroutine table)",
        (true, false) => {
            ", light mode (session references and ownership not followed: run without --light for them; goroutine exits read from its goroutine table)"
        }
    };
    eprintln!(
        "tracer: {}; {} probes in pid {pid}{mode}",
        job.engine,
        probes.attached()
    );
    if let Some(sites) = cache_call_sites {
        let jumps = sites.iter().filter(|s| s.emulated).count();
        eprintln!(
            "tracer: cache call returns read at their {} call site{} ({jumps} on the first jump after the call, {} on the caller's own RET): calls from anywhere else are counted, their results unknown",
            sites.len(),
            if sites.len() == 1 { "" } else { "s" },
            sites.len() - jumps
        );
    }
    if let Some(r) = recording {
        let header = recording::header_for(&binary, pid, Job::Cache(job.clone()));
        reader.record_to(r.start(&header)?);
        pipeline.recording = true;
    }
    // What a timeline shows from the engine's memory (its goroutines' functions, its
    // cache size) is read when there is a timeline, or a recording to replay one from.
    let reads_memory = pipeline.perfetto.is_some() || pipeline.recording;
    let traced = std::thread::scope(|scope| {
        if reads_memory {
            pipeline.names = Some(GoroutineNamer::start(scope, &binary, pid));
        }
        if args.light {
            pipeline.exits = Some(ExitReader::start(scope, &binary, pid));
        }
        let traced = runtime.block_on(trace_until_stop(
            &mut signals,
            &mut reader,
            &mut pipeline,
            &probes,
            pid,
            child,
            duration,
        ));
        // The read under way is waited for (one bounded read); the thread then ends.
        if let Some(mut names) = pipeline.names.take()
            && traced.is_ok()
            && let Some(functions) = names.take(true)
        {
            pipeline.live_fact(CacheFact::GoroutineFunctions { functions });
        }
        // --light: the goroutines of the calls still open are read once more, all of them.
        if let Some(mut exits) = pipeline.exits.take()
            && traced.is_ok()
        {
            let open = pipeline.tracker.quiet_goroutines(u64::MAX, usize::MAX);
            let asked = open.len();
            let mut gone = 0;
            let failed_before = exits.failed_reads;
            for g in exits.last_reads(pipeline.bias, open) {
                gone += g.goroutines.len();
                pipeline.live_fact(CacheFact::GoroutinesGone {
                    at_ns: g.at_ns,
                    goroutines: g.goroutines,
                });
            }
            // Reads that failed because the engine is gone are the note's case, not a
            // table the tracer cannot read (reads are only made while calls are open, so
            // a short run may make none before the engine exits).
            let engine_gone = !crate::target::is_alive(pid);
            if exits.reads_done == 0 && exits.failed_reads > 0 && !engine_gone {
                eprintln!(
                    "tracer: warning: --light could not read the engine's goroutine table (its memory is not readable to the tracer?): calls whose goroutine ended stay unfinished, with a null outcome (hint: run without --light, which probes goroutine exits)"
                );
            } else if exits.failed_reads > failed_before && asked > gone {
                eprintln!(
                    "tracer: note: the goroutines of {} open calls could not be read (the engine exited?): in --light, which reads goroutine exits from the engine's goroutine table, a call whose goroutine ended as the engine exited stays unfinished",
                    asked - gone
                );
            }
        }
        traced
    });
    let lost_events = probes.lost_events()?;
    let kernel_failures = probes.kernel_failures()?;
    if traced.is_ok() {
        super::tracing::warn_if_silent(
            &reader,
            &probes,
            "the engine made no cache call while attached",
        );
    }
    super::tracing::detach(probes);
    let mut end = End {
        lost_events,
        kernel_failures,
        load_bias: pipeline.bias,
        ..End::default()
    };
    let stop = match traced {
        Ok(stop) => stop,
        Err(e) => {
            finish_recording(&mut reader, &end)?;
            return Err(pipeline
                .stage
                .layout_error
                .take()
                .map_or(e, anyhow::Error::from));
        }
    };
    // The cache size at the stop, the last fact: applied before the calls still open are
    // closed, where a replay applies it.
    end.cache_entries = pipeline
        .stage
        .decoder
        .cache_pointer()
        .zip(profile.entry_maps(profiles::engine_version(&binary).as_deref()))
        .and_then(|(c, maps)| cache_entries(pid, c, maps));
    if let Some(entries) = end.cache_entries {
        pipeline.live_fact(CacheFact::CacheEntries {
            at_ns: monotonic_ns(),
            entries,
        });
    }
    for fact in pipeline.take_live_facts() {
        reader.record_live_fact(&fact);
    }
    pipeline.finish();
    let (mismatches, checked) = pipeline.stage.decoder.digest_mismatches();
    if mismatches > 0 {
        eprintln!(
            "tracer: note: {mismatches} of {checked} calls returned a recipe digest other than the one their lookup used: those calls' attribution may have slipped (lost events: {})",
            end.lost_events
        );
    }
    end.tracer_cpu_ns = own_cpu_ns();
    finish_recording(&mut reader, &end)?;
    pipeline.summarize(&end, reader.malformed, job.engine, &mut std::io::stderr())?;
    Ok(stop)
}

/// Ends the recording, if any, with what only the live run knew.
fn finish_recording(reader: &mut crate::probes::EventReader, end: &End) -> anyhow::Result<()> {
    if let Some(r) = reader.take_recorder() {
        let path = r.path().display().to_string();
        let events = r.finish(end)?;
        eprintln!("tracer: recorded {events} events to {path}");
    }
    Ok(())
}

/// The JSON records a cache recording replays to, its human summary left out (for
/// `tracer diff`).
pub fn replay_records(rec: &mut RecordingReader, job: &CacheJob) -> anyhow::Result<Vec<u8>> {
    let records = output::MemorySink::default();
    replay_to(
        rec,
        job,
        output::Format::Json,
        Box::new(records.clone()),
        &mut std::io::sink(),
        None,
    )?;
    Ok(records.take())
}

/// `tracer replay` of a cache recording: the same pipeline, fed from the file.
pub fn replay(
    rec: &mut RecordingReader,
    job: &CacheJob,
    format: output::Format,
    sink: Box<dyn Write + Send>,
    otlp: Option<&output::otel::Endpoint>,
) -> anyhow::Result<i32> {
    replay_to(rec, job, format, sink, &mut std::io::stderr(), otlp)
}

fn replay_to(
    rec: &mut RecordingReader,
    job: &CacheJob,
    format: output::Format,
    sink: Box<dyn Write + Send>,
    human_summary: &mut dyn Write,
    otlp: Option<&output::otel::Endpoint>,
) -> anyhow::Result<i32> {
    let mut pipeline = CachePipeline::new(job, sink, format)?;
    pipeline.pid = rec.header.target.pid;
    pipeline.begin(rec.header.target.pid, &rec.header.target.exe)?;
    // --otlp: spans at the recorded run's wall-clock times.
    let target = &rec.header.target;
    pipeline.start_otlp(
        otlp,
        target.pid,
        &target.exe,
        &job.engine,
        Some(rec.header.clock),
    )?;
    // Return addresses are compared with the binary's call sites less the load bias the
    // live run read; it is in the end record.
    let bias = RecordingReader::open(&rec.path)
        .ok()
        .and_then(|mut r| r.end().ok())
        .and_then(|end| end.load_bias);
    if let Some(bias) = bias {
        pipeline.stage.decoder.set_load_bias(bias);
        pipeline.bias = Some(bias);
    }
    // The live run's facts (its memory reads) are applied where it applied them.
    let fed = rec.feed_items(|item| match item {
        Replayed::Event(ev) => {
            pipeline.on_event(ev);
            Ok(pipeline.stage.layout_error.is_none())
        }
        Replayed::LiveFact(json) => {
            pipeline.apply(&CacheFact::from_json(json)?);
            Ok(true)
        }
    });
    let fed = match fed {
        Ok(fed) => fed,
        Err(e) => {
            // What was read before the damage is shown; the summary is not.
            pipeline.finish();
            pipeline.flush()?;
            return Err(e.into());
        }
    };
    if let Some(e) = pipeline.stage.layout_error.take() {
        pipeline.flush()?;
        return Err(e.into());
    }
    let (Some(end), malformed) = (fed.end, fed.malformed) else {
        unreachable!("feeding stops early only on a layout error");
    };
    pipeline.finish();
    if let Some(e) = pipeline.stage.layout_error.take() {
        return Err(e.into());
    }
    pipeline.summarize(&end, malformed, job.engine.clone(), human_summary)?;
    Ok(0)
}

/// Whether probe `id` is `GetOrInitCall` (L3, L4): the call whose returns may be read in
/// its callers.
/// Whether the plan counts session references: L1/L2 by their releases, L3/L4 by the
/// ownership counts (not probed in `--light`).
fn follows_refs(roles: &[Option<Role>]) -> bool {
    roles
        .iter()
        .any(|r| matches!(r, Some(Role::Release | Role::OwnershipUp)))
}

fn is_cache_call(roles: &[Option<Role>], id: u32) -> bool {
    matches!(
        roles.get(id as usize),
        Some(Some(Role::Call | Role::SessionCall))
    )
}

/// What the records lose when an optional probe's function is not in the build (None:
/// nothing a user would see, e.g. a context for ownership changes the build never makes).
fn optional_loss(role: Role) -> Option<&'static str> {
    match role {
        Role::DigestIndex | Role::TermIndex => Some("hit_route is null"),
        Role::ExplainLookup | Role::ExplainLocked | Role::ExplainMatch => {
            Some("--explain reads less of each call's identity")
        }
        _ => None,
    }
}

/// CPU time this process has used, user plus system.
pub(super) fn own_cpu_ns() -> u64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0;
    }
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    ns(usage.ru_utime) + ns(usage.ru_stime)
}

/// "dagger engine v0.21.8, code line L3 (v0.21.x: ...), confirmed by its version, built
/// with go1.26.6". A version that names another line is said, and the symbols win.
fn describe_engine(binary: &GoBinary, profile: &Profile) -> String {
    let version = profiles::engine_version(binary);
    let confirmation = match version
        .as_deref()
        .and_then(profiles::dagger::line_of_version)
    {
        Some((id, variant)) if id == profile.id && variant.is_none_or(|v| v == profile.variant) => {
            ", confirmed by its version".to_string()
        }
        Some((id, variant)) => format!(
            "; its version names {id}{}, but its functions are {}'s: reading it as {}",
            variant.map_or(String::new(), |v| format!(" ({v})")),
            profile.name(),
            profile.name()
        ),
        None => String::new(),
    };
    format!(
        "dagger engine{}, code line {} ({}){confirmation}, built with {}",
        version.map_or(String::new(), |v| format!(" {v}")),
        profile.name(),
        profile.description,
        binary.go_version()
    )
}

/// What the engine's `cache.Size()` (and so `dagger_dagql_cache_entries`) would
/// say now: the element counts of its maps, read from its memory without locks.
fn cache_entries(pid: u32, cache: u64, maps: &[u64]) -> Option<u64> {
    map_counts(pid, cache, maps).map(|counts| counts.iter().sum())
}

/// The element count of each map `Size()` sums, in the profile's order.
fn map_counts(pid: u32, cache: u64, maps: &[u64]) -> Option<Vec<u64>> {
    let mem = Memory::new(pid);
    maps.iter()
        .map(|off| {
            let map = mem.u64(cache.checked_add(*off)?).ok()?;
            // A nil map has no header; its length is 0.
            if map == 0 { Some(0) } else { mem.u64(map).ok() }
        })
        .collect()
}

struct CachePipeline {
    /// `GetOrInitCall`'s returns are read in its callers (for the summary).
    returns_at_callers: bool,
    tracker: CallTracker,
    stage: DecodeStage,
    totals: CacheTotals,
    sink: Box<dyn Write + Send>,
    json: bool,
    /// `--format perfetto`: the timeline (the records' sink is then its file).
    perfetto: Option<output::perfetto::PerfettoWriter>,
    /// A failed write of the timeline, said at the next flush.
    write_error: Option<std::io::Error>,
    /// `--metrics`: what is served, and the maps `Size()` sums (None: unknown variant).
    metrics: Option<(output::metrics::CacheMetrics, Option<&'static [u64]>)>,
    pid: u32,
    /// Live: the binary's lowest load address, to read the load bias at the first hit (a
    /// spawned target has its mappings only once it runs). Replay: None, the bias comes
    /// from the recording.
    lowest: Option<u64>,
    /// The load bias the decoder has, once known.
    bias: Option<u64>,
    /// Formatted records of one batch.
    line: Vec<u8>,
    /// The long-lived tables' sizes when tracing stopped, for the summary.
    state_sizes: StateSizes,
    /// `--otlp`: calls as spans to a collector.
    otlp: Option<output::otel::Otlp>,
    /// `--format perfetto`: the counter tracks' last values.
    counters: output::counters::CacheCounters,
    /// The time of the latest probe hit fed (CLOCK_MONOTONIC).
    last_hit_ns: u64,
    /// The maps the engine's `Size()` sums, when this build's are known (live only).
    entry_maps: Option<&'static [u64]>,
    /// Probe hits whose events arrived, by probe id (what the engine paid for).
    hits: output::cache::ProbeHitCounts,
    /// Live: reads the engine's goroutines' first user functions (timeline or recording).
    names: Option<GoroutineNamer>,
    /// Live, `--light`: reads which goroutines with open calls are gone (no exit probe).
    exits: Option<ExitReader>,
    /// Live, `--record`: facts applied and not yet handed to the recording, and the cache
    /// size last handed (an unchanged size is not recorded again).
    recording: bool,
    facts: Vec<Vec<u8>>,
    entries_recorded: Option<u64>,
    /// A cache size fact was applied (a recording without them has only its end value).
    entries_applied: bool,
}

/// From tracked probe hits to records: the line's decoder, then the cache model.
struct DecodeStage {
    decoder: Box<dyn Decoder>,
    events: Vec<CacheEvent>,
    model: CacheModel,
    /// What was read does not fit the profile: tracing stops.
    layout_error: Option<LayoutError>,
    outputs: Vec<CacheOutput>,
    /// `--format perfetto`: which probe hits moved a session's refs.
    refs_changed: bool,
}

impl DecodeStage {
    /// Decodes one tracked hit and feeds the model; stops at the first layout error.
    fn feed(&mut self, t: Tracked) {
        if self.layout_error.is_some() {
            return;
        }
        if let Err(e) = self.decoder.decode(&t, &mut self.events) {
            self.layout_error = Some(e);
            self.events.clear();
            return;
        }
        // Most hits decode to one event or none: a single one is popped, without a drain.
        if self.events.len() == 1 {
            let ev = self.events.pop().expect("one event");
            self.apply(ev);
        } else {
            let mut events = std::mem::take(&mut self.events);
            for ev in events.drain(..) {
                self.apply(ev);
            }
            self.events = events;
        }
    }

    fn apply(&mut self, ev: CacheEvent) {
        self.refs_changed |= output::counters::changes_refs(&ev);
        let outputs = &mut self.outputs;
        self.model.on_event(ev, &mut |o| outputs.push(o));
    }
}

impl CachePipeline {
    /// The pipeline of `job`, live or in replay.
    fn new(
        job: &CacheJob,
        sink: Box<dyn Write + Send>,
        format: output::Format,
    ) -> anyhow::Result<Self> {
        let (mut sink, perfetto): (Box<dyn Write + Send>, _) = match format {
            output::Format::Perfetto => (
                Box::new(std::io::sink()),
                Some(output::perfetto::PerfettoWriter::new(sink)),
            ),
            _ => (sink, None),
        };
        let json = format == output::Format::Json;
        if json {
            Record::header("cache").write_line(&mut sink)?;
        }
        let profile = profiles::dagger::by_name(&job.line, &job.variant).ok_or_else(|| {
            anyhow::anyhow!(
                "this tracer does not know code line {} ({}) (hint: use the tracer version that recorded it)",
                job.line,
                job.variant
            )
        })?;
        let decoder = (profile.decoder)(&DecoderSetup {
            sites: &job.sites,
            profile,
            roles: job.roles.clone(),
            light: job.light,
            call_return_sites: job.call_return_sites.as_deref(),
        })?;
        Ok(CachePipeline {
            returns_at_callers: job.call_return_sites.is_some(),
            tracker: CallTracker::new(false),
            stage: DecodeStage {
                decoder,
                events: Vec::new(),
                model: {
                    let mut model = CacheModel::new((profile.sees_lookups)(job.light));
                    model.refs_followed = follows_refs(&job.roles);
                    if job.explain {
                        model.with_explain()
                    } else {
                        model
                    }
                },
                layout_error: None,
                outputs: Vec::new(),
                refs_changed: false,
            },
            totals: CacheTotals::default(),
            sink,
            json,
            perfetto,
            write_error: None,
            metrics: None,
            pid: 0,
            lowest: None,
            bias: None,
            line: Vec::new(),
            state_sizes: StateSizes::default(),
            otlp: None,
            counters: output::counters::CacheCounters::default(),
            last_hit_ns: 0,
            entry_maps: None,
            hits: output::cache::ProbeHitCounts::new(&job.roles),
            names: None,
            exits: None,
            recording: false,
            facts: Vec::new(),
            entries_recorded: None,
            entries_applied: false,
        })
    }

    /// The summary: JSON into the records when `--json`, human on stderr.
    fn summarize(
        mut self,
        end: &End,
        malformed_events: u64,
        engine: String,
        human: &mut dyn Write,
    ) -> anyhow::Result<()> {
        let metrics = Metrics {
            connected_clients: Some(self.connected_clients()),
            cache_entries: end.cache_entries,
        };
        // A recording made before cache sizes were facts has only the value the live run
        // read at its end: it is placed at the last event.
        if let Some(p) = self.perfetto.as_mut() {
            if let (Some(n), false) = (end.cache_entries, self.entries_applied) {
                self.counters
                    .entries(p, self.last_hit_ns, n)
                    .context("cannot write the trace")?;
            }
            p.flush().context("cannot write the trace")?;
        }
        // --otlp: what is queued is sent (bounded wait) before the counts are told.
        let otlp = self.otlp.take().map(output::otel::Otlp::finish);
        let model = &self.stage.model;
        let mut sessions: Vec<_> = model
            .all_sessions()
            .filter(|s| s.id.is_some() || s.calls > 0)
            .collect();
        sessions.sort_by(|a, b| a.id.cmp(&b.id));
        let summary = SummaryInput {
            otlp: otlp.as_ref(),
            totals: &self.totals,
            sessions,
            metrics,
            lost_events: end.lost_events,
            kernel_failures: end.kernel_failures,
            malformed_events,
            evictions: Evictions {
                calls: self.tracker.stats.evictions(),
                ..model.evictions
            },
            state_sizes: self.state_sizes,
            folded: model.folded,
            engine,
            tracer_cpu_ns: end.tracer_cpu_ns,
            probe_hits: &self.hits,
            returns_at_callers: self.returns_at_callers,
            unread_returns: self.stage.decoder.unread_returns(),
            refs_followed: model.refs_followed,
        };
        if self.json {
            output::cache::summary_json(&summary).write_line(&mut self.sink)?;
        }
        self.sink.flush()?;
        output::cache::summary_human(human, &summary)?;
        Ok(())
    }

    /// Sessions open in the engine as far as the events show (`dagger_connected_clients`).
    fn connected_clients(&self) -> u64 {
        self.stage
            .model
            .sessions
            .values()
            .filter(|s| s.id.is_some() && !s.removed && !s.closed)
            .count() as u64
    }

    /// `--metrics`: the gauges, each turn of the event loop (live only: the engine's map
    /// counts are read from its memory).
    fn update_metrics(&self) {
        let Some((m, maps)) = self.metrics.as_ref() else {
            return;
        };
        let counts = self
            .stage
            .decoder
            .cache_pointer()
            .zip(*maps)
            .and_then(|(c, maps)| map_counts(self.pid, c, maps));
        m.set(self.connected_clients(), counts.as_deref(), own_cpu_ns());
    }

    /// Live, for a timeline or a recording: the cache entries counter, read from the
    /// engine's memory at most every 50 ms, each read a fact.
    fn sample_entries(&mut self) {
        if !(self.perfetto.is_some() || self.recording) || self.lowest.is_none() {
            return;
        }
        let (Some(maps), Some(cache)) = (self.entry_maps, self.stage.decoder.cache_pointer())
        else {
            return;
        };
        let now = monotonic_ns();
        if !self.counters.entries_due(now) {
            return;
        }
        if let Some(entries) = cache_entries(self.pid, cache, maps) {
            self.live_fact(CacheFact::CacheEntries {
                at_ns: now,
                entries,
            });
        }
    }

    /// Live: applies a fact read from the engine's memory, and keeps it for the recording.
    fn live_fact(&mut self, fact: CacheFact) {
        self.apply(&fact);
        if !self.recording {
            return;
        }
        if let CacheFact::CacheEntries { entries, .. } = fact {
            if self.entries_recorded == Some(entries) {
                return;
            }
            self.entries_recorded = Some(entries);
        }
        self.facts.push(fact.to_json());
    }

    /// A fact of the live run, live or in replay.
    fn apply(&mut self, fact: &CacheFact) {
        let written = match (fact, self.perfetto.as_mut()) {
            (CacheFact::CacheEntries { at_ns, entries }, p) => {
                self.entries_applied = true;
                p.map_or(Ok(()), |p| self.counters.entries(p, *at_ns, *entries))
            }
            (CacheFact::GoroutineFunctions { functions }, Some(p)) => functions
                .iter()
                .try_for_each(|(goid, f)| p.goroutine_function(*goid, f)),
            (CacheFact::GoroutineFunctions { .. }, None) => Ok(()),
            (CacheFact::Lost { total, at_ns }, _) => {
                self.lost_events_at(*total, *at_ns);
                Ok(())
            }
            (CacheFact::GoroutinesGone { at_ns, goroutines }, _) => {
                self.hits.exits_read += goroutines.len() as u64;
                let stage = &mut self.stage;
                for &(tgid, goid) in goroutines {
                    self.tracker
                        .goroutine_gone(tgid, goid, *at_ns, &mut |t| stage.feed(t));
                }
                self.emit();
                Ok(())
            }
        };
        if let Err(e) = written {
            self.write_error.get_or_insert(e);
        }
    }

    /// The process, first in a timeline.
    fn begin(&mut self, pid: u32, exe: &str) -> anyhow::Result<()> {
        if let Some(p) = self.perfetto.as_mut() {
            let name = exe.rsplit('/').next().unwrap_or(exe);
            p.begin(pid, name).context("cannot write the trace")?;
        }
        Ok(())
    }

    /// `--otlp`: starts the exporter. `clock`: the recording's (replay), or None for now
    /// (live). A replay waits for the exporter rather than drop spans.
    fn start_otlp(
        &mut self,
        endpoint: Option<&output::otel::Endpoint>,
        pid: u32,
        exe: &str,
        engine: &str,
        clock: Option<recording::ClockBase>,
    ) -> anyhow::Result<()> {
        let Some(endpoint) = endpoint else {
            return Ok(());
        };
        let target = output::otel::TargetProcess {
            pid,
            exe,
            engine: Some(engine),
        };
        let replay = clock.is_some();
        let clock = clock.unwrap_or_else(output::otel::clock_now);
        self.otlp = Some(output::otel::Otlp::start(endpoint, &target, clock, replay)?);
        eprintln!("tracer: exporting spans to {}", endpoint.as_str());
        Ok(())
    }

    fn emit(&mut self) {
        if let Some(p) = self.perfetto.as_mut()
            && std::mem::take(&mut self.stage.refs_changed)
            && let Err(e) = self
                .counters
                .sessions(p, &self.stage.model, self.last_hit_ns)
        {
            self.write_error.get_or_insert(e);
        }
        if self.stage.outputs.is_empty() {
            return;
        }
        // Records are formatted into one buffer and written at once: the sink may be
        // shared (a mutex per write) and serde writes in many small pieces.
        self.line.clear();
        for out in self.stage.outputs.drain(..) {
            self.totals.add(&out);
            if let (Some((m, _)), CacheOutput::Call(c)) = (self.metrics.as_ref(), &out) {
                m.call(c);
            }
            if let (Some(o), CacheOutput::Call(c)) = (self.otlp.as_mut(), &out) {
                o.call(c);
            }
            if let Some(p) = self.perfetto.as_mut() {
                let mut written = p.record(&out);
                if let CacheOutput::SessionClosed {
                    session: Some(session),
                    refs_taken: Some(refs_taken),
                    refs_released: Some(refs_released),
                    ..
                } = &out
                {
                    let held = *refs_taken as i64 - *refs_released as i64;
                    written = written.and_then(|()| {
                        self.counters
                            .session_closed(p, session, held, self.last_hit_ns)
                    });
                }
                if let Err(e) = written {
                    self.write_error.get_or_insert(e);
                }
            } else if self.json {
                let _ = output::cache::write_json_record(&mut self.line, &out, self.pid);
            } else if let Some(text) = output::cache::human_line(&out) {
                self.line.extend_from_slice(text.as_bytes());
                self.line.push(b'\n');
            }
        }
        // A closed pipe ends the output, not the tracing.
        let _ = self.sink.write_all(&self.line);
    }

    /// The long-lived tables' sizes now.
    fn current_state_sizes(&self) -> StateSizes {
        StateSizes {
            open_goroutines: self.tracker.open_goroutines(),
            open_frames: self.tracker.open_calls(),
            decoder_frames: self.stage.decoder.open_frames(),
            ..self.stage.model.state_sizes()
        }
    }

    fn finish(&mut self) {
        // Sizes as tracing left them, before the end closes every open call.
        self.state_sizes = self.current_state_sizes();
        let stage = &mut self.stage;
        self.tracker.finish(&mut |t| stage.feed(t));
        self.emit();
    }
}

impl EventSink for CachePipeline {
    fn lost_events_now(&mut self, lost: u64) {
        if let Some(fact) = super::tracing::lost_now_as_fact(self, lost) {
            self.facts.push(fact);
        }
        if let Some((m, _)) = self.metrics.as_ref() {
            m.lost_events(lost);
        }
    }

    fn lost_events_at(&mut self, lost: u64, at_ns: u64) -> bool {
        let grew = self.tracker.note_lost_events(lost, at_ns);
        if grew {
            self.stage.model.note_lost_events(at_ns);
        }
        grew
    }

    fn take_live_facts(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.facts)
    }

    #[inline]
    fn on_event(&mut self, ev: Event) {
        self.last_hit_ns = self.last_hit_ns.max(ev.call.ts_ns);
        self.hits.count(ev.call.probe_id, ev.call.kind);
        if self.bias.is_none()
            && let Some(lowest) = self.lowest
            && let Ok(bias) = load_bias(self.pid, lowest)
        {
            self.stage.decoder.set_load_bias(bias);
            self.bias = Some(bias);
        }
        if let Some(names) = self.names.as_mut() {
            names.seen(ev.call.goid);
        }
        let stage = &mut self.stage;
        self.tracker.on_event(ev, &mut |t| stage.feed(t));
        self.emit();
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if let Some(e) = &self.stage.layout_error {
            anyhow::bail!("{e}");
        }
        if let Some(e) = self.write_error.take() {
            return Err(e).context("cannot write the trace");
        }
        self.update_metrics();
        self.sample_entries();
        if let Some(functions) = self.names.as_mut().and_then(|n| n.turn(self.bias)) {
            self.live_fact(CacheFact::GoroutineFunctions { functions });
        }
        let tracker = &self.tracker;
        if let Some(gone) = self.exits.as_mut().and_then(|x| {
            x.turn(self.bias, |before| {
                tracker.quiet_goroutines(before, goroutine_exits::MAX_BATCH)
            })
        }) {
            self.live_fact(CacheFact::GoroutinesGone {
                at_ns: gone.at_ns,
                goroutines: gone.goroutines,
            });
        }
        if let Some(p) = self.perfetto.as_mut() {
            p.flush().context("cannot write the trace")?;
        }
        match self.sink.flush() {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(e).context("cannot write records")
            }
            _ => Ok(()),
        }
    }
}

//! `tracer hang --watch`: stays attached and reports goroutines as they block past the
//! threshold and deadlocks as they form, confirmed against the target's memory.
use std::{collections::HashMap, io::Write, sync::mpsc};

use super::{
    target::Resolved,
    tracing::{CacheDiscovery, EventSink, Started, start, trace_until_stop},
};
use crate::{
    gobin::{GoBinary, MutexSite},
    model::{
        goroutines::{Deadlock, Frame, Reader, Snapshot, Symbolizer, name_locks},
        watch::{CertainCycle, Report, Taken, Watch, WatchEvictions},
        watch_facts::{SiteFact, WatchFact},
    },
    output::{
        goroutines::{deadlock_json, deadlock_text, frame_lines, goroutine_json, wait_text},
        metrics::WatchMetrics,
        perfetto::PerfettoWriter,
        records::{GoroutineRecord, Holder, Record, SourcePlace},
    },
    probes::{
        AttachedProbes, Event, EventReader,
        sync::{SyncEvent, SyncOptions, SyncProbes},
    },
    profiles::{self, Profile},
    recording::{self, End, HangJob, Job, PendingRecording, RecordingReader, Replayed},
    target::{
        Process,
        memory::{Memory, load_bias, monotonic_ns},
    },
};

/// How often due goroutines and cycles are looked for (each look may read a snapshot).
const CHECK_EVERY_NS: u64 = 200_000_000;

pub struct WatchArgs {
    pub threshold_ns: u64,
    pub json: bool,
    /// `--format perfetto`: parked periods and deadlocks as a timeline.
    pub perfetto: bool,
    pub own: Option<String>,
    pub duration: Option<f64>,
    pub metrics: Option<std::net::SocketAddr>,
    /// `--record FILE`: the events and the facts read from memory, for `tracer replay`.
    pub record: Option<std::path::PathBuf>,
    /// Ring buffer size in MiB.
    pub ring_mb: u32,
}

/// Where the watch's records, metrics and recording go.
struct Outputs {
    out: Box<dyn Write + Send>,
    /// `--metrics`: bound before anything was attached.
    listener: Option<std::net::TcpListener>,
    /// `--record`: the file, opened before anything was attached.
    recording: Option<PendingRecording>,
}

/// Goroutines whose wait reason is kept for the blocked-goroutines gauge, at most.
const MAX_BLOCKED_TRACKED: usize = 1 << 20;

/// Watches `process` until a stop, its records going to `out`.
pub fn run(
    args: &WatchArgs,
    process: Process,
    binary: &GoBinary,
    out: Box<dyn Write + Send>,
) -> anyhow::Result<i32> {
    let own = own_packages(args)?;
    let recording = args
        .record
        .as_deref()
        .map(PendingRecording::create)
        .transpose()?;
    let listener = args.metrics.map(crate::output::metrics::bind).transpose()?;
    let profile = profiles::detect(binary).ok();
    let sync = SyncProbes::plan(
        binary,
        &SyncOptions {
            contention: true,
            scheduler: true,
            own: own.clone(),
            cache_receivers: profile.map(|p| p.cache_receivers()).unwrap_or_default(),
        },
    )?;
    let pid = process.pid;
    let bias = load_bias(pid, binary.lowest_load_vaddr())
        .map_err(|e| anyhow::anyhow!("reading /proc/{pid}/maps: {e}"))?;
    let mem = Memory::new(pid);
    mem.check_access(binary.lowest_load_vaddr().wrapping_add(bias))?;
    let mut reader = Reader::new(binary, bias)?;
    let first = take_snapshot(&mut reader, &mem, profile, None)?;

    // Snapshots are taken on a thread of their own from here on: one reads the memory
    // of every goroutine, and the ring must go on being drained meanwhile.
    std::thread::scope(|scope| {
        let snapshots = SnapshotWorker::start(scope, reader, mem, profile);
        let outputs = Outputs {
            out,
            listener,
            recording,
        };
        watch_attached(
            args, process, binary, &sync, bias, first, snapshots, outputs,
        )
    })
}

#[allow(clippy::too_many_arguments)]
fn watch_attached<'a>(
    args: &WatchArgs,
    process: Process,
    binary: &'a GoBinary,
    sync: &'a SyncProbes,
    bias: u64,
    first: Snapshot,
    snapshots: SnapshotWorker,
    outputs: Outputs,
) -> anyhow::Result<i32> {
    let Outputs {
        out,
        listener,
        recording,
    } = outputs;
    let pid = process.pid;
    let exe = process.exe.display().to_string();
    let target = Resolved::Running(process);
    let Started {
        mut signals,
        mut probes,
        reader: mut events,
        child,
        runtime,
        ..
    } = start(&target, binary, &sync.plan, args.ring_mb)?;
    let own_text = match &own_packages(args)? {
        Some(re) => format!(
            "{} fast-path Lock/Unlock sites ({} on emulated jumps) in packages `{}`",
            sync.sites.len(),
            sync.sites.iter().filter(|s| s.on_jump).count(),
            re.as_str()
        ),
        None => "no fast-path sites (no --own)".into(),
    };
    eprintln!(
        "tracer: watching pid {pid} ({}): {} probes, {own_text}; {} goroutines at start",
        binary.go_version(),
        probes.attached(),
        first.goroutines.len()
    );
    if !sync.missing.is_empty() {
        eprintln!(
            "tracer: not found in this binary, not probed: {}",
            sync.missing.join(", ")
        );
    }
    let job = HangJob {
        threshold_ns: args.threshold_ns,
        own: args.own.clone(),
        bias,
        sites: sync
            .sites
            .iter()
            .map(|site| SiteFact {
                site: site.clone(),
                taken_at: taken_at(binary, site, bias),
            })
            .collect(),
    };
    if let Some(r) = recording {
        let header = recording::header_for(binary, pid, Job::Hang(job.clone()));
        events.record_to(r.start(&header)?);
    }
    let metrics = listener
        .map(|l| crate::output::metrics::start(WatchMetrics::new(), l, &runtime))
        .transpose()?;
    let watch = Watch::new(Some(Symbolizer::new(binary, bias)), args.threshold_ns);
    let style = Style {
        json: args.json,
        perfetto: args.perfetto,
    };
    let mut pipeline = WatchPipeline::new(sync, &job, watch, style, out, pid, &exe)?;
    pipeline.live = Some(Live {
        discovery: CacheDiscovery::new(&mut probes),
        probes: &probes,
        lost_seen: 0,
        snapshots,
        mem: Memory::new(pid),
        last_check: 0,
        metrics,
        blocked_reasons: HashMap::new(),
        recording: events.is_recording(),
        facts: Vec::new(),
    });
    pipeline.apply(WatchFact::seed(&first, monotonic_ns()))?;
    pipeline.record_facts(&mut events);
    let traced = runtime.block_on(trace_until_stop(
        &mut signals,
        &mut events,
        &mut pipeline,
        &probes,
        pid,
        child,
        args.duration,
    ));
    // A snapshot asked for before the stop still gives its reports.
    let traced = traced.and_then(|stop| {
        pipeline.take_requested_snapshot()?;
        pipeline.record_facts(&mut events);
        Ok(stop)
    });
    let stopped_ns = monotonic_ns();
    let lost = probes.lost_events()?;
    let kernel = probes.kernel_failures()?;
    let end = End {
        lost_events: lost,
        kernel_failures: kernel,
        symbols: pipeline
            .watch
            .symbols()
            .map(Symbolizer::facts)
            .unwrap_or_default(),
        stopped_ns: Some(stopped_ns),
        ..End::default()
    };
    if let Some(r) = events.take_recorder() {
        let path = r.path().display().to_string();
        let recorded = r.finish(&end)?;
        eprintln!("tracer: recorded {recorded} events to {path}");
    }
    let stop = traced?;
    pipeline.finish(&end, events.malformed)?;
    Ok(stop.exit_status())
}

/// `tracer replay` of a `hang --watch` recording: the same pipeline, fed the recorded
/// events and, where the live run applied them, the facts it read from memory.
pub fn replay(
    rec: &mut RecordingReader,
    job: &HangJob,
    format: crate::output::Format,
    out: Box<dyn Write + Send>,
) -> anyhow::Result<i32> {
    // The symbols the live run looked up are in the end record, read first; a file without
    // one says so in the main pass below.
    let symbols = RecordingReader::open(&rec.path)
        .ok()
        .and_then(|mut r| r.end().ok())
        .map(|end| end.symbols)
        .unwrap_or_default();
    let sync = SyncProbes {
        sites: job.sites.iter().map(|s| s.site.clone()).collect(),
        ..SyncProbes::for_replay()
    };
    let style = Style {
        json: format == crate::output::Format::Json,
        perfetto: format == crate::output::Format::Perfetto,
    };
    let watch = Watch::new(Some(Symbolizer::from_facts(symbols)), job.threshold_ns);
    let target = &rec.header.target;
    let (pid, exe) = (target.pid, target.exe.clone());
    let mut pipeline = WatchPipeline::new(&sync, job, watch, style, out, pid, &exe)?;
    let mut failed = None;
    let fed = rec.feed_items(|item| match item {
        Replayed::Event(ev) => {
            pipeline.on_event(ev);
            Ok(true)
        }
        Replayed::LiveFact(json) => {
            let fact = WatchFact::from_json(json)?;
            match pipeline.apply(fact) {
                Ok(()) => Ok(true),
                Err(e) => {
                    failed = Some(e);
                    Ok(false)
                }
            }
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let fed = match fed {
        Ok(fed) => fed,
        Err(e) => {
            // What was read before the damage is shown; the summary is not.
            pipeline.write_unblocked()?;
            pipeline.out.flush()?;
            return Err(e.into());
        }
    };
    let Some(end) = fed.end else {
        anyhow::bail!("the recording ended without its end record");
    };
    pipeline.finish(&end, fed.malformed)?;
    Ok(0)
}

/// One line on what the watch's bounds evicted, when anything was.
fn evictions_human(e: &WatchEvictions) -> Option<String> {
    if *e == WatchEvictions::default() {
        return None;
    }
    let lost = if e.untrusted_locks > 0 {
        "; no deadlock is claimed certain any more"
    } else {
        ""
    };
    Some(format!(
        "bounded state evicted: {} parked goroutines, {} lock waits, {} lock states ({} untrusted forgotten{lost}), {} reported goroutines, {} reported cycles",
        e.parked, e.lock_waits, e.locks, e.untrusted_locks, e.reported, e.cycles
    ))
}

/// `--own`: the packages whose fast paths are probed, if any.
fn own_packages(args: &WatchArgs) -> anyhow::Result<Option<regex::Regex>> {
    args.own.as_deref().map(super::anchored_regex).transpose()
}

fn take_snapshot(
    reader: &mut Reader,
    mem: &Memory,
    profile: Option<&'static Profile>,
    cache: Option<u64>,
) -> anyhow::Result<Snapshot> {
    let mut snap = reader.snapshot(mem, monotonic_ns()).map_err(|e| {
        anyhow::anyhow!("{e} (hint: reading another user's process memory needs CAP_SYS_PTRACE)")
    })?;
    if let Some(p) = profile {
        name_locks(&mut snap, p, cache);
    }
    Ok(snap)
}

/// Takes goroutine snapshots on its own thread, one at a time, when asked.
struct SnapshotWorker {
    /// A request carries the engine cache's address, for naming its locks.
    requests: mpsc::Sender<Option<u64>>,
    snapshots: mpsc::Receiver<(anyhow::Result<Snapshot>, u64)>,
    requested: bool,
}

impl SnapshotWorker {
    fn start<'scope, 'env: 'scope>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        mut reader: Reader<'env>,
        mem: Memory,
        profile: Option<&'static Profile>,
    ) -> SnapshotWorker {
        let (requests, asked) = mpsc::channel::<Option<u64>>();
        let (done, snapshots) = mpsc::channel();
        // Ends when the pipeline (the sender) is gone.
        scope.spawn(move || {
            for cache in asked {
                let began = monotonic_ns();
                let snap = take_snapshot(&mut reader, &mem, profile, cache);
                if done.send((snap, monotonic_ns() - began)).is_err() {
                    break;
                }
            }
        });
        SnapshotWorker {
            requests,
            snapshots,
            requested: false,
        }
    }

    /// Asks for a snapshot unless one is being taken.
    fn request(&mut self, cache: Option<u64>) {
        if !self.requested && self.requests.send(cache).is_ok() {
            self.requested = true;
        }
    }

    /// The snapshot asked for and how long it took to read, once taken; `wait` blocks
    /// until it is.
    fn take(&mut self, wait: bool) -> anyhow::Result<Option<(Snapshot, u64)>> {
        if !self.requested {
            return Ok(None);
        }
        let got = if wait {
            self.snapshots.recv().ok()
        } else {
            self.snapshots.try_recv().ok()
        };
        match got {
            Some((snap, took_ns)) => {
                self.requested = false;
                snap.map(|s| Some((s, took_ns)))
            }
            None if wait => anyhow::bail!("the snapshot thread ended"),
            None => Ok(None),
        }
    }
}

/// How reports are written.
#[derive(Clone, Copy)]
struct Style {
    json: bool,
    /// A Perfetto timeline (the records' sink is then its file).
    perfetto: bool,
}

/// The watch's model and outputs, fed live or from a recording.
struct WatchPipeline<'a> {
    sync: &'a SyncProbes,
    bias: u64,
    /// The source place that takes a lock at each probed site.
    taken_at: Vec<Option<Frame>>,
    watch: Watch<'a>,
    json: bool,
    out: Box<dyn Write + Send>,
    reports: u64,
    /// Snapshots applied, and the longest in ns (the time the ring would have waited).
    snapshots: u64,
    longest_snapshot_ns: u64,
    /// `--format perfetto`: the timeline, and the parked slices it has open (goroutine ->
    /// start of the wait).
    perfetto: Option<PerfettoWriter>,
    parked_open: HashMap<u64, u64>,
    /// What only a live run has; None in a replay.
    live: Option<Live<'a>>,
}

/// The live side of the watch: probes, memory, metrics.
struct Live<'a> {
    /// The engine cache's address (its locks are then named by offset), from the probes
    /// that learn it.
    discovery: CacheDiscovery,
    probes: &'a AttachedProbes,
    lost_seen: u64,
    snapshots: SnapshotWorker,
    /// For reading lock words when a deadlock is confirmed.
    mem: Memory,
    last_check: u64,
    /// `--metrics`: what is served, and the wait reason of each goroutine reported
    /// blocked and not yet running again.
    metrics: Option<WatchMetrics>,
    blocked_reasons: HashMap<u64, String>,
    /// `--record`: facts applied and not yet handed to the recording.
    recording: bool,
    facts: Vec<Vec<u8>>,
}

impl EventSink for WatchPipeline<'_> {
    fn on_event(&mut self, ev: Event) {
        match self.sync.decode(ev, self.bias) {
            Some(SyncEvent::CacheReceiver { addr }) => {
                if let Some(live) = self.live.as_mut() {
                    live.discovery.seen(addr);
                }
            }
            Some(sync) => self.watch.on_event(sync),
            None => {}
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        let Some(live) = self.live.as_mut() else {
            return Ok(());
        };
        let lost = live.probes.lost_events()?;
        if let Some(m) = &live.metrics {
            m.set(super::cache::own_cpu_ns(), lost);
        }
        if lost > live.lost_seen {
            self.apply(WatchFact::Lost { total: lost })?;
        }
        self.write_unblocked()?;
        let live = self.live.as_mut().expect("live");
        if let Some((snap, took_ns)) = live.snapshots.take(false)? {
            self.confirm_live(&snap, took_ns)?;
        }
        let live = self.live.as_mut().expect("live");
        let now = monotonic_ns();
        if now.saturating_sub(live.last_check) >= CHECK_EVERY_NS {
            live.last_check = now;
            if !self.watch.due(now).is_empty() {
                live.snapshots.request(live.discovery.addr);
            }
        }
        self.out.flush()?;
        Ok(())
    }

    fn take_live_facts(&mut self) -> Vec<Vec<u8>> {
        self.live
            .as_mut()
            .map(|l| std::mem::take(&mut l.facts))
            .unwrap_or_default()
    }
}

impl<'a> WatchPipeline<'a> {
    /// The pipeline of a watch, live or in replay; writes the records' header (JSON) or
    /// the timeline's process (Perfetto).
    fn new(
        sync: &'a SyncProbes,
        job: &HangJob,
        watch: Watch<'a>,
        style: Style,
        out: Box<dyn Write + Send>,
        pid: u32,
        exe: &str,
    ) -> anyhow::Result<WatchPipeline<'a>> {
        let (mut out, perfetto): (Box<dyn Write + Send>, _) = if style.perfetto {
            let mut p = PerfettoWriter::new(out);
            p.begin(pid, exe.rsplit('/').next().unwrap_or(exe))?;
            (Box::new(std::io::sink()), Some(p))
        } else {
            (out, None)
        };
        if style.json {
            Record::header("hang").write_line(&mut out)?;
        }
        Ok(WatchPipeline {
            sync,
            bias: job.bias,
            taken_at: job.sites.iter().map(|s| s.taken_at.clone()).collect(),
            watch,
            json: style.json,
            out,
            reports: 0,
            snapshots: 0,
            longest_snapshot_ns: 0,
            perfetto,
            parked_open: HashMap::new(),
            live: None,
        })
    }

    /// Applies a fact read from outside the event stream (live: and keeps it for the
    /// recording, in the order applied).
    fn apply(&mut self, fact: WatchFact) -> anyhow::Result<()> {
        if let Some(live) = self.live.as_mut()
            && live.recording
        {
            live.facts.push(serde_json::to_vec(&fact)?);
        }
        match fact {
            WatchFact::Seed {
                now_ns,
                blocked,
                deadlocks,
                ..
            } => {
                self.watch.seed(&blocked, now_ns);
                self.report_possible(&deadlocks, now_ns)
            }
            WatchFact::Lost { total } => {
                if let Some(live) = self.live.as_mut() {
                    live.lost_seen = total;
                }
                // A lost acquisition or release could leave a wrong owner: forget them all.
                self.watch.events_lost();
                eprintln!(
                    "tracer: {total} events lost so far (ring buffer full); recorded lock owners reset"
                );
                Ok(())
            }
            WatchFact::Confirm {
                now_ns,
                took_ns,
                snapshot,
                lock_words,
            } => {
                // Wake-ups seen before the snapshot came are told first, as live.
                self.write_unblocked()?;
                self.snapshots += 1;
                self.longest_snapshot_ns = self.longest_snapshot_ns.max(took_ns);
                let due = self.watch.due(now_ns);
                let locked = |lock: u64| {
                    lock_words
                        .iter()
                        .find(|(l, _)| *l == lock)
                        .and_then(|(_, w)| *w)
                };
                for r in self.watch.confirm(&snapshot, due, now_ns, locked) {
                    self.write(&r, Some(&snapshot), now_ns)?;
                }
                self.report_possible(&snapshot.deadlocks, now_ns)
            }
        }
    }

    /// What is due now, checked against a snapshot taken since it was asked for. The
    /// events that came meanwhile are already applied: a goroutine that ran again is no
    /// longer due, and one still parked was parked when the snapshot was read.
    fn confirm_live(&mut self, snap: &Snapshot, took_ns: u64) -> anyhow::Result<()> {
        let now = monotonic_ns();
        let due = self.watch.due(now);
        let live = self.live.as_ref().expect("live");
        let mem = &live.mem;
        let fact = WatchFact::confirm(snap, &due, now, took_ns, |lock| {
            mem.u64(lock).ok().map(|state| state & 1 == 1)
        });
        self.apply(fact)
    }

    /// Hands the facts applied so far to the recording (outside the event loop, which
    /// does it after each flush).
    fn record_facts(&mut self, events: &mut EventReader) {
        for fact in self.take_live_facts() {
            events.record_live_fact(&fact);
        }
    }

    fn take_requested_snapshot(&mut self) -> anyhow::Result<()> {
        let Some(live) = self.live.as_mut() else {
            return Ok(());
        };
        match live.snapshots.take(true)? {
            Some((snap, took_ns)) => self.confirm_live(&snap, took_ns),
            None => Ok(()),
        }
    }

    /// Wake-ups of goroutines reported blocked.
    fn write_unblocked(&mut self) -> anyhow::Result<()> {
        for r in self.watch.take_unblocked() {
            self.write(&r, None, 0)?;
        }
        Ok(())
    }

    /// The end: the last wake-ups, open timeline slices closed where tracing stopped, the
    /// summary (a record with --json, a line on stderr).
    fn finish(&mut self, end: &End, malformed_events: u64) -> anyhow::Result<()> {
        self.write_unblocked()?;
        if let Some(p) = self.perfetto.as_mut() {
            let stopped = end.stopped_ns.unwrap_or(0);
            let mut open: Vec<u64> = self.parked_open.drain().map(|(g, _)| g).collect();
            open.sort_unstable();
            for goid in open {
                p.parked_end(goid, stopped)?;
            }
            p.flush()?;
        }
        self.out.flush()?;
        if let Some(k) = end.kernel_failures.describe() {
            eprintln!("tracer: {k}");
        }
        if self.json {
            Record::WatchSummary {
                reports: self.reports,
                unseen_wakeups: self.watch.unseen_wakeups,
                lost_events: end.lost_events,
                kernel_failures: end.kernel_failures,
                malformed_events,
                evicted: self.watch.evicted,
                snapshots: self.snapshots,
                longest_snapshot_ns: self.longest_snapshot_ns,
            }
            .write_line(&mut self.out)?;
        }
        self.out.flush()?;
        eprintln!(
            "tracer: {} reports; lost events: {}; wake-ups seen only in memory: {}; {} snapshots (longest {:.1} ms, taken beside the event loop)",
            self.reports,
            end.lost_events,
            self.watch.unseen_wakeups,
            self.snapshots,
            self.longest_snapshot_ns as f64 / 1e6
        );
        if let Some(e) = evictions_human(&self.watch.evicted) {
            eprintln!("tracer: {e}");
        }
        Ok(())
    }

    /// One report; `now` is when it was made (for a timeline).
    fn write(&mut self, r: &Report, snap: Option<&Snapshot>, now: u64) -> anyhow::Result<()> {
        self.reports += 1;
        if let Some(live) = self.live.as_mut()
            && let Some(m) = &live.metrics
        {
            match r {
                Report::Blocked { goroutine: g, .. } => {
                    let reason = g.wait_reason.clone().unwrap_or_default();
                    m.report("blocked", Some((&reason, 1)));
                    if live.blocked_reasons.len() < MAX_BLOCKED_TRACKED {
                        live.blocked_reasons.insert(g.goid, reason);
                    }
                }
                Report::Unblocked { goid, .. } => {
                    let reason = live.blocked_reasons.remove(goid);
                    m.report("unblocked", reason.as_deref().map(|r| (r, -1)));
                }
                Report::Deadlock(_) => m.report("deadlock", None),
            }
        }
        if let Some(p) = self.perfetto.as_mut() {
            match r {
                Report::Blocked {
                    goroutine: g,
                    waited_ns,
                    ..
                } => {
                    let since = now.saturating_sub(*waited_ns);
                    if self.parked_open.len() < MAX_BLOCKED_TRACKED {
                        p.parked_begin(
                            g,
                            since,
                            g.wait_reason.as_deref(),
                            g.wait.as_ref().and_then(|w| w.object),
                        )?;
                        self.parked_open.insert(g.goid, since);
                    }
                }
                Report::Unblocked { goid, waited_ns } => {
                    if let Some(since) = self.parked_open.remove(goid) {
                        p.parked_end(*goid, since + waited_ns)?;
                    }
                }
                Report::Deadlock(c) => p.deadlock(&c.goids, true, now)?,
            }
            return Ok(());
        }
        match r {
            Report::Blocked {
                goroutine: g,
                waited_ns,
                start,
            } => {
                if self.json {
                    Record::Goroutine(GoroutineRecord {
                        event: Some("blocked"),
                        waiting_ns: Some(*waited_ns),
                        wait_start: Some(start.as_str()),
                        ..goroutine_json(snap.unwrap_or(&Snapshot::default()), g)
                    })
                    .write_line(&mut self.out)?;
                } else {
                    writeln!(
                        self.out,
                        "goroutine {} [{}, {:.1}s] blocked past the threshold{}:",
                        g.goid,
                        g.state(),
                        *waited_ns as f64 / 1e9,
                        wait_text(g)
                            .map(|t| format!(", waiting on {t}"))
                            .unwrap_or_default()
                    )?;
                    for f in &g.stack {
                        frame_lines(&mut self.out, f)?;
                    }
                    writeln!(self.out)?;
                }
            }
            Report::Unblocked { goid, waited_ns } => {
                if self.json {
                    Record::Unblocked {
                        goid: *goid,
                        waited_ns: *waited_ns,
                    }
                    .write_line(&mut self.out)?;
                } else {
                    writeln!(
                        self.out,
                        "goroutine {goid} runs again after {:.1}s\n",
                        *waited_ns as f64 / 1e9
                    )?;
                }
            }
            Report::Deadlock(c) => self.write_deadlock(c, snap)?,
        }
        Ok(())
    }

    /// The function, file and line of the code that took a lock at a probed site.
    fn taken_at(&self, taken: Taken) -> Option<&Frame> {
        let Taken::Site(i) = taken else { return None };
        self.taken_at.get(i)?.as_ref()
    }

    fn write_deadlock(&mut self, c: &CertainCycle, snap: Option<&Snapshot>) -> anyhow::Result<()> {
        let names: Vec<Option<&str>> = c
            .goids
            .iter()
            .map(|goid| {
                snap.and_then(|s| s.goroutines.iter().find(|g| g.goid == *goid))
                    .and_then(|g| g.wait.as_ref()?.name.as_deref())
            })
            .collect();
        let evidence = "each goroutine is parked in lockSlow on a mutex that the next one was \
                        seen taking (a probed Lock site or lockSlow returning) with no release \
                        seen since; every release while someone waits passes unlockSlow";
        if self.json {
            let holders = c
                .locks
                .iter()
                .zip(&c.owners)
                .map(|(lock, o)| Holder {
                    lock: *lock,
                    goid: o.goid,
                    since_ns: o.since,
                    taken_by: match o.taken {
                        Taken::Site(_) => "lock site",
                        Taken::SlowPath => "lockSlow",
                    },
                    taken_at: self.taken_at(o.taken).map(|f| SourcePlace {
                        func: f.func.clone(),
                        file: f.file.clone(),
                        line: f.line,
                    }),
                })
                .collect();
            Record::Deadlock {
                goids: &c.goids,
                locks: &c.locks,
                lock_names: Some(names),
                certain: true,
                holders: Some(holders),
                evidence,
            }
            .write_line(&mut self.out)?;
            return Ok(());
        }
        writeln!(self.out, "DEADLOCK (certain):")?;
        for (i, goid) in c.goids.iter().enumerate() {
            let o = c.owners[i];
            let at = self
                .taken_at(o.taken)
                .map(|f| {
                    format!(
                        " (taken at {} {}:{})",
                        f.func,
                        f.file.as_deref().unwrap_or_default(),
                        f.line.unwrap_or(0)
                    )
                })
                .unwrap_or_default();
            let name = names[i].map(|n| format!(" ({n})")).unwrap_or_default();
            writeln!(
                self.out,
                "  goroutine {goid} waits for mutex {:#x}{name}, held by goroutine {}{at}",
                c.locks[i], o.goid
            )?;
        }
        writeln!(self.out, "  ({evidence})\n")?;
        Ok(())
    }

    /// Cycles the snapshot can only infer (no recorded owner), printed once each, unless
    /// the same goroutines were already reported as a certain deadlock.
    fn report_possible(&mut self, deadlocks: &[Deadlock], now: u64) -> anyhow::Result<()> {
        for d in deadlocks {
            if !self.watch.new_possible_cycle(&d.goids) {
                continue;
            }
            self.reports += 1;
            if let Some(m) = self.live.as_ref().and_then(|l| l.metrics.as_ref()) {
                m.report("possible_deadlock", None);
            }
            if let Some(p) = self.perfetto.as_mut() {
                p.deadlock(&d.goids, false, now)?;
                continue;
            }
            if self.json {
                deadlock_json(d).write_line(&mut self.out)?;
            } else {
                writeln!(self.out, "{}\n", deadlock_text(d))?;
            }
        }
        Ok(())
    }
}

/// The function, file and line of the code that takes a lock at a probed site (the first
/// frame outside the sync package).
fn taken_at(binary: &GoBinary, site: &MutexSite, bias: u64) -> Option<Frame> {
    let f = binary.function_at(site.probe_pc)?;
    let fr = binary
        .frames_at(f, site.probe_pc)
        .into_iter()
        .find(|fr| !fr.func.starts_with("sync.") && !fr.func.starts_with("internal/sync."))?;
    Some(Frame {
        func: fr.func,
        file: fr.file,
        line: fr.line,
        pc: site.probe_pc + bias,
        offset: None,
        inlined: fr.inlined,
        wrapper: fr.wrapper,
    })
}

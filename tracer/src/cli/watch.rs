//! `tracer hang --watch`: stays attached and reports goroutines as they block past the
//! threshold and deadlocks as they form, confirmed against the target's memory.
use std::{collections::HashMap, io::Write, sync::mpsc};

use super::{
    target::Resolved,
    tracing::{CacheDiscovery, EventSink, Started, start, trace_until_stop},
};
use crate::{
    gobin::GoBinary,
    model::{
        goroutines::{Frame, Reader, Snapshot, Symbolizer, name_locks},
        watch::{CertainCycle, Report, Taken, Watch, WatchEvictions},
    },
    output::{
        goroutines::{deadlock_json, deadlock_text, frame_lines, goroutine_json, wait_text},
        metrics::WatchMetrics,
        perfetto::PerfettoWriter,
        records::{GoroutineRecord, Holder, Record, SourcePlace},
    },
    probes::{
        AttachedProbes, Event,
        sync::{SyncEvent, SyncOptions, SyncProbes},
    },
    profiles::{self, Profile},
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
}

/// Where the watch's records and metrics go.
struct Outputs {
    out: Box<dyn Write + Send>,
    /// `--metrics`: bound before anything was attached.
    listener: Option<std::net::TcpListener>,
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
        let outputs = Outputs { out, listener };
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
    let Outputs { out, listener } = outputs;
    let pid = process.pid;
    let exe = process.exe.display().to_string();
    let (out, perfetto): (Box<dyn Write + Send>, _) = if args.perfetto {
        let mut p = PerfettoWriter::new(out);
        p.begin(pid, exe.rsplit('/').next().unwrap_or(&exe))?;
        (Box::new(std::io::sink()), Some(p))
    } else {
        (out, None)
    };
    let target = Resolved::Running(process);
    let Started {
        mut signals,
        mut probes,
        reader: mut events,
        child,
        runtime,
        ..
    } = start(&target, binary, &sync.plan, 16)?;
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
    let metrics = listener
        .map(|l| crate::output::metrics::start(WatchMetrics::new(), l, &runtime))
        .transpose()?;
    let now = monotonic_ns();
    let mut watch = Watch::new(Some(Symbolizer::new(binary, bias)), args.threshold_ns);
    watch.seed(&first, now);
    let mut pipeline = WatchPipeline {
        sync,
        discovery: CacheDiscovery::new(&mut probes),
        probes: &probes,
        lost_seen: 0,
        binary,
        watch,
        snapshots,
        mem: Memory::new(pid),
        bias,
        json: args.json,
        out,
        last_check: 0,
        reports: 0,
        metrics,
        blocked_reasons: HashMap::new(),
        perfetto,
        parked_open: HashMap::new(),
    };
    if args.json {
        Record::header("hang").write_line(&mut pipeline.out)?;
    }
    pipeline.report_possible(&first)?;
    let stop = runtime.block_on(trace_until_stop(
        &mut signals,
        &mut events,
        &mut pipeline,
        &probes,
        pid,
        child,
        args.duration,
    ))?;
    // A snapshot asked for before the stop still gives its reports.
    pipeline.take_requested_snapshot()?;
    pipeline.close_timeline()?;
    pipeline.out.flush()?;
    let lost = probes.lost_events()?;
    let kernel = probes.kernel_failures()?;
    if let Some(k) = kernel.describe() {
        eprintln!("tracer: {k}");
    }
    if args.json {
        Record::WatchSummary {
            reports: pipeline.reports,
            unseen_wakeups: pipeline.watch.unseen_wakeups,
            lost_events: lost,
            kernel_failures: kernel,
            malformed_events: events.malformed,
            evicted: pipeline.watch.evicted,
            snapshots: pipeline.snapshots.taken,
            longest_snapshot_ns: pipeline.snapshots.longest_ns,
        }
        .write_line(&mut pipeline.out)?;
    }
    pipeline.out.flush()?;
    eprintln!(
        "tracer: {} reports; lost events: {lost}; wake-ups seen only in memory: {}; {} snapshots (longest {:.1} ms, taken beside the event loop)",
        pipeline.reports,
        pipeline.watch.unseen_wakeups,
        pipeline.snapshots.taken,
        pipeline.snapshots.longest_ns as f64 / 1e6
    );
    if let Some(e) = evictions_human(&pipeline.watch.evicted) {
        eprintln!("tracer: {e}");
    }
    Ok(stop.exit_status())
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
    /// Snapshots taken, and the longest in ns (the time the ring would have waited).
    taken: u64,
    longest_ns: u64,
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
            taken: 0,
            longest_ns: 0,
        }
    }

    /// Asks for a snapshot unless one is being taken.
    fn request(&mut self, cache: Option<u64>) {
        if !self.requested && self.requests.send(cache).is_ok() {
            self.requested = true;
        }
    }

    /// The snapshot asked for, once taken; `wait` blocks until it is.
    fn take(&mut self, wait: bool) -> anyhow::Result<Option<Snapshot>> {
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
                self.taken += 1;
                self.longest_ns = self.longest_ns.max(took_ns);
                snap.map(Some)
            }
            None if wait => anyhow::bail!("the snapshot thread ended"),
            None => Ok(None),
        }
    }
}

struct WatchPipeline<'a> {
    sync: &'a SyncProbes,
    /// The engine cache's address (its locks are then named by offset), from the probes
    /// that learn it.
    discovery: CacheDiscovery,
    probes: &'a AttachedProbes,
    lost_seen: u64,
    binary: &'a GoBinary,
    watch: Watch<'a>,
    snapshots: SnapshotWorker,
    /// For reading lock words when a deadlock is confirmed.
    mem: Memory,
    bias: u64,
    json: bool,
    out: Box<dyn Write + Send>,
    last_check: u64,
    reports: u64,
    /// `--metrics`: what is served, and the wait reason of each goroutine reported
    /// blocked and not yet running again.
    metrics: Option<WatchMetrics>,
    blocked_reasons: HashMap<u64, String>,
    /// `--format perfetto`: the timeline, and the parked slices it has open (goroutine ->
    /// start of the wait).
    perfetto: Option<PerfettoWriter>,
    parked_open: HashMap<u64, u64>,
}

impl EventSink for WatchPipeline<'_> {
    fn on_event(&mut self, ev: Event) {
        match self.sync.decode(ev, self.bias) {
            Some(SyncEvent::CacheReceiver { addr }) => {
                self.discovery.seen(addr);
            }
            Some(sync) => self.watch.on_event(sync),
            None => {}
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        // A lost acquisition or release could leave a wrong owner: forget them all.
        let lost = self.probes.lost_events()?;
        if lost > self.lost_seen {
            self.lost_seen = lost;
            self.watch.events_lost();
            eprintln!(
                "tracer: {lost} events lost so far (ring buffer full); recorded lock owners reset"
            );
        }
        if let Some(m) = &self.metrics {
            m.set(super::cache::own_cpu_ns(), lost);
        }
        for r in self.watch.take_unblocked() {
            self.write(&r, None)?;
        }
        if let Some(snap) = self.snapshots.take(false)? {
            self.confirm(&snap)?;
        }
        let now = monotonic_ns();
        if now.saturating_sub(self.last_check) >= CHECK_EVERY_NS {
            self.last_check = now;
            if !self.watch.due(now).is_empty() {
                self.snapshots.request(self.discovery.addr);
            }
        }
        self.out.flush()?;
        Ok(())
    }
}

impl WatchPipeline<'_> {
    /// What is due now, checked against a snapshot taken since it was asked for. The
    /// events that came meanwhile are already applied: a goroutine that ran again is no
    /// longer due, and one still parked was parked when the snapshot was read.
    fn confirm(&mut self, snap: &Snapshot) -> anyhow::Result<()> {
        let now = monotonic_ns();
        let due = self.watch.due(now);
        let mem = &self.mem;
        let locked = |lock: u64| mem.u64(lock).ok().map(|state| state & 1 == 1);
        for r in self.watch.confirm(snap, due, now, locked) {
            self.write(&r, Some(snap))?;
        }
        self.report_possible(snap)
    }

    /// `--format perfetto`: goroutines still parked at the stop end their slice there.
    fn close_timeline(&mut self) -> anyhow::Result<()> {
        if let Some(p) = self.perfetto.as_mut() {
            let now = monotonic_ns();
            let mut open: Vec<u64> = self.parked_open.drain().map(|(g, _)| g).collect();
            open.sort_unstable();
            for goid in open {
                p.parked_end(goid, now)?;
            }
            p.flush()?;
        }
        Ok(())
    }

    fn take_requested_snapshot(&mut self) -> anyhow::Result<()> {
        match self.snapshots.take(true)? {
            Some(snap) => self.confirm(&snap),
            None => Ok(()),
        }
    }

    fn write(&mut self, r: &Report, snap: Option<&Snapshot>) -> anyhow::Result<()> {
        self.reports += 1;
        if let Some(m) = &self.metrics {
            match r {
                Report::Blocked { goroutine: g, .. } => {
                    let reason = g.wait_reason.clone().unwrap_or_default();
                    m.report("blocked", Some((&reason, 1)));
                    if self.blocked_reasons.len() < MAX_BLOCKED_TRACKED {
                        self.blocked_reasons.insert(g.goid, reason);
                    }
                }
                Report::Unblocked { goid, .. } => {
                    let reason = self.blocked_reasons.remove(goid);
                    m.report("unblocked", reason.as_deref().map(|r| (r, -1)));
                }
                Report::Deadlock(_) => m.report("deadlock", None),
            }
        }
        if let Some(p) = self.perfetto.as_mut() {
            let now = monotonic_ns();
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
    fn taken_at(&self, taken: Taken) -> Option<Frame> {
        let Taken::Site(i) = taken else { return None };
        let site = self.sync.sites.get(i)?;
        let f = self.binary.function_at(site.probe_pc)?;
        let fr = self
            .binary
            .frames_at(f, site.probe_pc)
            .into_iter()
            .find(|fr| !fr.func.starts_with("sync.") && !fr.func.starts_with("internal/sync."))?;
        Some(Frame {
            func: fr.func,
            file: fr.file,
            line: fr.line,
            pc: site.probe_pc + self.bias,
            offset: None,
            inlined: fr.inlined,
        })
    }

    fn write_deadlock(&mut self, c: &CertainCycle, snap: Option<&Snapshot>) -> anyhow::Result<()> {
        let names: Vec<Option<&str>> = c
            .goids
            .iter()
            .map(|goid| {
                snap.and_then(|s| s.goroutines.iter().find(|g| g.goid == *goid))
                    .and_then(|g| g.wait.as_ref()?.name)
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
                        func: f.func,
                        file: f.file,
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
                        f.file.unwrap_or_default(),
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
    fn report_possible(&mut self, snap: &Snapshot) -> anyhow::Result<()> {
        for d in &snap.deadlocks {
            if !self.watch.new_possible_cycle(&d.goids) {
                continue;
            }
            self.reports += 1;
            if let Some(m) = &self.metrics {
                m.report("possible_deadlock", None);
            }
            if let Some(p) = self.perfetto.as_mut() {
                p.deadlock(&d.goids, false, monotonic_ns())?;
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

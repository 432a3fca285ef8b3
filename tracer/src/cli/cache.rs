//! `tracer cache`: dagql cache call timelines of a running (or spawned) engine.
use std::{collections::HashMap, io::Write, path::PathBuf};

use anyhow::Context;
use clap::Args;
use tracer_common::ProbeKind;

use super::{
    follow::{self, FollowArgs},
    target::{Resolved, TargetArgs},
    tracing::{EventSink, Started, Stop, start, trace_until_stop},
};
use crate::{
    gobin::GoBinary,
    model::{
        cache::{CacheModel, CacheOutput, SiteKind},
        calls::CallTracker,
    },
    output::{
        self,
        cache::{CacheTotals, Metrics, SummaryInput},
    },
    probes::{
        Event,
        plan::{PlanSet, line_ranges},
    },
    profiles::{self, At, DAGGER, Profile, ProfileError, Role},
    target::memory::Memory,
};

#[derive(Args, Debug)]
pub struct CacheArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub follow: FollowArgs,
    /// One JSON object per line instead of human-readable lines.
    #[arg(long)]
    pub json: bool,
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
    /// Ring buffer size in MiB (a power of two).
    #[arg(long, default_value_t = 16, value_parser = super::tracing::parse_ring_mb)]
    pub ring_mb: u32,
}

pub fn run(args: CacheArgs) -> anyhow::Result<i32> {
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
    let binary = GoBinary::open(&target.binary())?;
    let profile = profiles::detect(&binary)?;
    let engine = describe_engine(&binary, profile);
    let (plan, roles) = plan_profile(&binary, profile, args.light)?;
    let sites = call_sites(&binary, profile)?;

    let Started {
        mut signals,
        pid,
        probes,
        mut reader,
        child,
        runtime,
    } = start(target, &binary, &plan, args.ring_mb)?;
    let mode = if args.light { ", light mode" } else { "" };
    eprintln!(
        "tracer: {engine}; {} probes in pid {pid}{mode}",
        probes.attached()
    );
    let mut pipeline = CachePipeline {
        tracker: CallTracker::new(false),
        model: CacheModel::new(profile, roles, sites, args.light),
        parents: HashMap::new(),
        totals: CacheTotals::default(),
        sink,
        json: args.json,
        pid,
        outputs: Vec::new(),
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
    super::tracing::warn_if_silent(
        &reader,
        &probes,
        "the engine made no cache call while attached",
    );
    super::tracing::detach(probes);
    pipeline.finish();
    let metrics = Metrics {
        connected_clients: Some(
            pipeline
                .model
                .sessions
                .values()
                .filter(|s| s.id.is_some() && !s.removed && !s.closed)
                .count() as u64,
        ),
        cache_entries: pipeline
            .model
            .cache_pointer
            .and_then(|c| cache_entries(pid, c, profile)),
    };
    let mut sessions: Vec<_> = pipeline
        .model
        .all_sessions()
        .filter(|s| s.id.is_some() || s.calls > 0)
        .collect();
    sessions.sort_by(|a, b| a.id.cmp(&b.id));
    let summary = SummaryInput {
        totals: &pipeline.totals,
        sessions,
        metrics,
        lost_events,
        engine,
        tracer_cpu_ns: own_cpu_ns(),
    };
    if args.json {
        let line = output::cache::summary_json(&summary);
        writeln!(pipeline.sink, "{line}")?;
    }
    pipeline.sink.flush()?;
    output::cache::summary_human(&mut std::io::stderr(), &summary)?;
    Ok(stop)
}

/// CPU time this process has used, user plus system.
fn own_cpu_ns() -> u64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0;
    }
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    ns(usage.ru_utime) + ns(usage.ru_stime)
}

fn describe_engine(binary: &GoBinary, profile: &Profile) -> String {
    let version = profiles::engine_version(binary).map_or(String::new(), |v| format!(" {v}"));
    format!(
        "dagger engine{version}, code line {} ({}), built with {}",
        profile.id,
        profile.description,
        binary.go_version()
    )
}

/// Every probe of the profile, with its probe id = its index in the profile.
fn plan_profile(
    binary: &GoBinary,
    profile: &Profile,
    light: bool,
) -> anyhow::Result<(PlanSet, Vec<Role>)> {
    let mut plan = PlanSet::default();
    let mut roles = Vec::new();
    let parent_goid = binary.g_offsets().0.parent_goid;
    for (id, def) in profile.probes.iter().enumerate() {
        let id = id as u32;
        let name = def.full_name();
        let f = binary
            .functions()
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| ProfileError::MissingFunctions {
                path: binary.path().display().to_string(),
                id: profile.id,
                missing: def.func.to_string(),
            })?;
        match def.at {
            At::Call => {
                plan.add_call(binary, f, id, light && def.light_entry_only)?;
                plan.spec(id, ProbeKind::FuncEntry, def.entry_spec(parent_goid));
                plan.spec(id, ProbeKind::FuncReturn, def.ret_spec());
            }
            At::EntryPoint => {
                plan.add_entry_point(binary, f, id)?;
                plan.spec(id, ProbeKind::Point, def.entry_spec(parent_goid));
            }
            At::Line { file_suffix, line } => {
                if plan.add_line_points(binary, f, file_suffix, line, id)? == 0 {
                    return Err(ProfileError::MissingLine {
                        path: binary.path().display().to_string(),
                        func: name,
                        file: file_suffix,
                        line,
                    }
                    .into());
                }
                plan.spec(id, ProbeKind::Point, def.entry_spec(parent_goid));
            }
        }
        roles.push(def.role);
    }
    plan.add_goexit(binary)?;
    Ok((plan, roles))
}

/// PC ranges of the call sites that tell a join from a fresh execution.
fn call_sites(
    binary: &GoBinary,
    profile: &Profile,
) -> anyhow::Result<Vec<(std::ops::Range<u64>, SiteKind)>> {
    let mut sites = Vec::new();
    let groups = [
        (
            "dagql.(*cache).GetOrInitCall",
            [
                (profile.join_site, SiteKind::Join),
                (profile.fresh_site, SiteKind::Fresh),
            ],
        ),
        (
            "engine/filesync.(*changeCache).getOrInit",
            [
                (profile.change_join_site, SiteKind::ChangeJoin),
                (profile.change_new_site, SiteKind::ChangeNew),
            ],
        ),
    ];
    for (func, pairs) in groups {
        let name = format!("{DAGGER}{func}");
        let f = binary
            .functions()
            .iter()
            .find(|f| f.name == name)
            .with_context(|| format!("{name} missing"))?;
        for (site, kind) in pairs {
            let ranges = line_ranges(binary, f, site.file_suffix, site.line);
            if ranges.is_empty() {
                return Err(ProfileError::MissingLine {
                    path: binary.path().display().to_string(),
                    func: name.clone(),
                    file: site.file_suffix,
                    line: site.line,
                }
                .into());
            }
            sites.extend(ranges.into_iter().map(|r| (r, kind)));
        }
    }
    Ok(sites)
}

/// What the engine's `cache.Size()` (and so `dagger_dagql_cache_entries`) would
/// say now: the element counts of its maps, read from its memory without locks.
fn cache_entries(pid: u32, cache: u64, profile: &Profile) -> Option<u64> {
    let mem = Memory::new(pid);
    let mut total = 0;
    for off in profile.cache_entry_maps {
        let map = mem.u64(cache.checked_add(*off)?).ok()?;
        // A nil map has no header; its length is 0.
        total += if map == 0 { 0 } else { mem.u64(map).ok()? };
    }
    Some(total)
}

struct CachePipeline {
    tracker: CallTracker,
    model: CacheModel,
    parents: HashMap<u64, Option<u64>>,
    totals: CacheTotals,
    sink: Box<dyn Write + Send>,
    json: bool,
    pid: u32,
    outputs: Vec<CacheOutput>,
}

impl CachePipeline {
    fn emit(&mut self) {
        for out in self.outputs.drain(..) {
            self.totals.add(&out);
            let line = if self.json {
                Some(output::cache::json_record(&out, self.pid).to_string())
            } else {
                output::cache::human_line(&out)
            };
            if let Some(line) = line {
                // A closed pipe ends the output, not the tracing.
                let _ = writeln!(self.sink, "{line}");
            }
        }
    }

    fn finish(&mut self) {
        let CachePipeline {
            tracker,
            model,
            parents,
            outputs,
            ..
        } = self;
        tracker.finish(&mut |t| model.on_tracked(t, parents, &mut |o| outputs.push(o)));
        self.emit();
    }
}

impl EventSink for CachePipeline {
    fn on_event(&mut self, ev: Event) {
        let CachePipeline {
            tracker,
            model,
            parents,
            outputs,
            ..
        } = self;
        tracker.on_event(ev, &mut |t| {
            model.on_tracked(t, parents, &mut |o| outputs.push(o))
        });
        self.emit();
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        match self.sink.flush() {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(e).context("cannot write records")
            }
            _ => Ok(()),
        }
    }
}

//! `tracer hang`: a live goroutine dump, blocked goroutines and deadlocks, read from the
//! target's memory while it keeps running (no SIGQUIT, no ptrace stop, no writes).
use std::io::Write;

use anyhow::{Context, bail};
use clap::Args;

use super::target::{Resolved, TargetArgs};
use crate::{
    gobin::GoBinary,
    model::goroutines::Reader,
    output,
    target::memory::{Memory, load_bias, monotonic_ns},
};

#[derive(Args, Debug)]
pub struct HangArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Only show goroutines blocked for at least this many seconds (0 = all). The runtime
    /// records a wait's start at the first GC after a goroutine blocks; goroutines whose
    /// wait time is still unknown are not shown when this is above 0.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    threshold: f64,
    /// One JSON object per line instead of Go's dump format.
    #[arg(long)]
    json: bool,
    /// How records are written: human, json (`--json`), or with --watch perfetto (parked
    /// periods and deadlocks as a timeline, needs `-o FILE`).
    #[arg(long, value_enum, conflicts_with = "json")]
    format: Option<crate::output::Format>,
    /// Stay attached: report goroutines as they block past --threshold, and deadlocks as
    /// they form (probes on gopark, ready and the sync slow paths).
    #[arg(long)]
    watch: bool,
    /// With --watch: packages (regex over Go package paths, e.g. 'main' or
    /// 'github.com/dagger/dagger/dagql') whose inlined Mutex Lock/Unlock get probes, so lock
    /// ownership is recorded and deadlocks can be certain. Every probed Lock and Unlock then
    /// traps (about 1 us, inside the critical section for Lock). Without it, no deadlock is
    /// reported as certain, only as possible.
    #[arg(long, value_name = "REGEX", requires = "watch")]
    own: Option<String>,
    /// With --watch: stop after this many seconds (default: until Ctrl-C or the process exits).
    #[arg(long, value_name = "SECS", requires = "watch", allow_negative_numbers = true,
          value_parser = super::tracing::parse_duration)]
    duration: Option<f64>,
    /// With --watch: serve Prometheus metrics (OpenMetrics) at http://ADDR/metrics:
    /// goroutines reported blocked, by wait reason; loopback 127.0.0.1:9464 when no address
    /// is given.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, requires = "watch",
          default_missing_value = "127.0.0.1:9464")]
    metrics: Option<std::net::SocketAddr>,
    /// Write records to this file instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<std::path::PathBuf>,
    /// With --watch: ring buffer size in MiB (a power of two), as for the other tracing
    /// subcommands.
    #[arg(long, default_value_t = 16, requires = "watch",
          value_parser = super::tracing::parse_ring_mb)]
    ring_mb: u32,
    /// With --watch: also keep every raw event, and what the memory snapshots found, in
    /// this file for `tracer replay`.
    #[arg(long, value_name = "FILE", requires = "watch")]
    pub(super) record: Option<std::path::PathBuf>,
}

impl HangArgs {
    /// `--watch`: probes are attached.
    pub fn watches(&self) -> bool {
        self.watch
    }

    fn into_watch(self) -> super::watch::WatchArgs {
        super::watch::WatchArgs {
            threshold_ns: (self.threshold * 1e9) as u64,
            json: self.json,
            perfetto: self.format == Some(crate::output::Format::Perfetto),
            own: self.own,
            duration: self.duration,
            metrics: self.metrics,
            record: self.record,
            ring_mb: self.ring_mb,
        }
    }
}

pub fn run(mut args: HangArgs) -> anyhow::Result<i32> {
    let format = output::Format::chosen(args.json, args.format, args.output.as_deref())?;
    args.json = format == output::Format::Json;
    if format == output::Format::Perfetto && !args.watch {
        anyhow::bail!(
            "a Perfetto timeline of hangs is made by `tracer hang --watch` (hint: add --watch, or use --format json for one snapshot)"
        );
    }
    if args.record.is_some() && !args.watch {
        bail!(
            "only `tracer hang --watch` can be recorded: one snapshot is its own record (hint: add --watch, or keep the --json output)"
        );
    }
    if !args.threshold.is_finite() || args.threshold < 0.0 {
        bail!("--threshold must be a number of seconds, 0 or more");
    }
    // The records' file is opened first: a bad path fails before anything is read.
    let mut out = output::open_record_sink(args.output.as_deref())?;
    let process = match args.target.resolve()? {
        Resolved::Running(p) => p,
        Resolved::Spawn { .. } => bail!(
            "`tracer hang` inspects a process that is already running; give --pid PID or --exe NAME (a command it would start could not be hung yet)"
        ),
    };
    let binary = GoBinary::open(&process.exe)?;
    if args.watch {
        return super::watch::run(&args.into_watch(), process, &binary, out);
    }
    let lowest = binary.lowest_load_vaddr();
    let bias = load_bias(process.pid, lowest)
        .with_context(|| format!("reading /proc/{}/maps", process.pid))?;
    let mut reader = Reader::new(&binary, bias)?;
    let mem = Memory::new(process.pid);
    // A refusal (no CAP_SYS_PTRACE for another user's process, Yama) is said as such
    // before the snapshot would report it as unreadable memory.
    mem.check_access(lowest.wrapping_add(bias))?;
    let mut snap = reader.snapshot(&mem, monotonic_ns())?;

    if let Ok(profile) = crate::profiles::detect(&binary) {
        crate::model::goroutines::name_locks(&mut snap, profile, None);
    }
    let threshold_ns = (args.threshold * 1e9) as u64;
    if args.json {
        output::goroutines::write_json(&mut out, &snap, threshold_ns)?;
    } else {
        output::goroutines::write_human(&mut out, &snap, threshold_ns)?;
    }
    out.flush()?;
    Ok(0)
}

//! The event loop every tracing subcommand shares: read the ring buffer, feed a
//! pipeline, stop on duration, Ctrl-C or target exit, and say how the target ended.
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use super::target::Resolved;
use crate::{
    gobin::GoBinary,
    probes::{AttachedProbes, Event, EventReader, LoadOptions, plan::PlanSet},
    target::{ChildExit, GatedChild},
};

/// Everything a running trace holds. Dropping `probes` detaches every uprobe.
/// SIGINT and SIGTERM, listened to from before the first probe is attached until the end.
pub struct Signals {
    sigint: tokio::signal::unix::Signal,
    sigterm: tokio::signal::unix::Signal,
}

pub struct Started {
    pub signals: Signals,
    pub pid: u32,
    pub probes: AttachedProbes,
    pub reader: EventReader,
    pub child: Option<GatedChild>,
    pub runtime: tokio::runtime::Runtime,
}

/// Spawns the target if it is a command (held before exec), loads the programs,
/// attaches the plan, and only then lets the command run. A probe the kernel refuses
/// is an error.
pub fn start(
    target: &Resolved,
    binary: &GoBinary,
    plan: &PlanSet,
    ring_mb: u32,
) -> anyhow::Result<Started> {
    start_with(target, binary, plan, ring_mb, false)
}

/// [`start`], leaving out (and listing in `probes.refused`) probes the kernel refuses
/// when `skip_refused`.
pub fn start_with(
    target: &Resolved,
    binary: &GoBinary,
    plan: &PlanSet,
    ring_mb: u32,
    skip_refused: bool,
) -> anyhow::Result<Started> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // From here on SIGINT and SIGTERM are kept for the trace loop: one arriving while the
    // probes go in stops the trace at its first turn, with the summary.
    let signals = {
        let _in_runtime = runtime.enter();
        Signals {
            sigint: signal(SignalKind::interrupt())?,
            sigterm: signal(SignalKind::terminate())?,
        }
    };
    let mut probes = AttachedProbes::load(&LoadOptions {
        goid_offset: binary.goid_offset().offset,
        ring_bytes: ring_mb * 1024 * 1024,
    })?;
    let mut child = target.spawn()?;
    let pid = match (target, &child) {
        (Resolved::Running(p), _) => p.pid,
        (_, Some(c)) => c.pid,
        _ => unreachable!("a spawn target always has a child"),
    };
    // The pid as this tracer's PID namespace numbers it: the kernel resolves it there.
    let report = plan.attach(&mut probes, &target.binary(), pid, skip_refused)?;
    eprintln!(
        "tracer: attached {} probes in {:.1} ms",
        report.attached,
        report.elapsed.as_secs_f64() * 1e3
    );
    probes.refused = report.refused;
    let reader = {
        let _in_runtime = runtime.enter();
        EventReader::new(probes.take_events()?)?
    };
    if let Some(c) = child.as_mut() {
        c.release()?;
    }
    Ok(Started {
        signals,
        pid,
        probes,
        reader,
        child,
        runtime,
    })
}

/// Says so when probes were attached but not one fired: a silent zero is never a result.
pub fn warn_if_silent(reader: &EventReader, probes: &AttachedProbes, likely: &str) {
    if reader.received == 0 && probes.attached() > 0 {
        eprintln!(
            "tracer: note: {} probes were attached and none fired ({likely})",
            probes.attached()
        );
    }
}

/// Detaches every probe and says how long it took.
pub fn detach(mut probes: AttachedProbes) {
    let (count, took) = probes.detach_all();
    eprintln!(
        "tracer: detached {count} probes in {:.1} ms",
        took.as_secs_f64() * 1e3
    );
}

/// The engine cache's address, learnt from the discovery probes on its methods (the first
/// non-null receiver seen), which are then detached.
pub struct CacheDiscovery {
    links: Vec<crate::probes::MultiLink>,
    pub addr: Option<u64>,
}

impl CacheDiscovery {
    /// Takes over the discovery probes `probes` attached.
    pub fn new(probes: &mut AttachedProbes) -> CacheDiscovery {
        CacheDiscovery {
            links: probes.take_discovery(),
            addr: None,
        }
    }

    /// A discovery hit on the cache at `addr`: true if that is news. The probes are
    /// detached off the event loop (closing a link waits for an RCU grace period, ~0.1 s).
    pub fn seen(&mut self, addr: u64) -> bool {
        if self.addr.is_some() || addr == 0 {
            return false;
        }
        self.addr = Some(addr);
        let links = std::mem::take(&mut self.links);
        std::thread::spawn(move || drop(links));
        true
    }
}

/// Parses `--ring-mb`: a power of two up to 1 GiB.
pub fn parse_ring_mb(s: &str) -> Result<u32, String> {
    let mb: u32 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if !mb.is_power_of_two() || mb > 1024 {
        return Err("must be a power of two between 1 and 1024".into());
    }
    Ok(mb)
}

/// What a subcommand does with events.
pub trait EventSink {
    fn on_event(&mut self, ev: Event);
    fn flush(&mut self) -> anyhow::Result<()>;
    /// The kernel side's lost-event count so far, about once a second (for live metrics).
    fn lost_events_now(&mut self, _lost: u64) {}
    /// The lost-event count read at `at_ns` (live, or a recorded fact in replay): true if
    /// it grew.
    fn lost_events_at(&mut self, _lost: u64, _at_ns: u64) -> bool {
        false
    }
    /// Facts from outside the event stream applied since the last call (JSON), which a
    /// recording keeps after the events they followed (`hang --watch`).
    fn take_live_facts(&mut self) -> Vec<Vec<u8>> {
        Vec::new()
    }
}

/// The lost-event count read now, applied to `pipeline` as a replay applies it; the fact a
/// recording keeps (after the events read so far) when the count grew.
pub fn lost_now_as_fact(pipeline: &mut dyn EventSink, lost: u64) -> Option<Vec<u8>> {
    let at_ns = crate::target::memory::monotonic_ns();
    pipeline
        .lost_events_at(lost, at_ns)
        .then(|| crate::recording::LostFact { total: lost, at_ns }.to_json())
}

/// Flushes `pipeline`, then records the facts it applied, after the events they followed.
pub fn flush_recorded(
    pipeline: &mut dyn EventSink,
    reader: &mut EventReader,
) -> anyhow::Result<()> {
    pipeline.flush()?;
    for fact in pipeline.take_live_facts() {
        reader.record_live_fact(&fact);
    }
    Ok(())
}

/// How often the kernel-side counters are read while tracing.
const COUNTERS_EVERY: Duration = Duration::from_secs(1);

impl Stop {
    /// The tracer's exit status for this stop: a spawned command's own status when it
    /// ended, a shell's 128 + signal when a signal stopped tracing.
    pub fn exit_status(&self) -> i32 {
        match self {
            Stop::ChildExited(exit) => exit.shell_status(),
            Stop::Interrupted => 128 + libc::SIGINT,
            Stop::Terminated => 128 + libc::SIGTERM,
            Stop::Done => 0,
        }
    }
}

/// Why tracing stopped.
pub enum Stop {
    /// `--duration` elapsed (a spawned command keeps running, untraced), or the process
    /// traced by pid or name exited.
    Done,
    /// SIGINT (Ctrl-C).
    Interrupted,
    /// SIGTERM, handled like Ctrl-C: stop, drain, summary.
    Terminated,
    /// The spawned command ended.
    ChildExited(ChildExit),
}

/// After a signal, how long a spawned command is given to end, to return its status: the
/// terminal sends Ctrl-C's SIGINT to the whole foreground process group (and `kill` to a
/// process group does the same), so it usually got the signal too.
/// Short, because the tracer promises to be gone within a second of the signal.
const CHILD_GRACE: Duration = Duration::from_millis(250);

/// Feeds events to `pipeline` until the duration ends, SIGINT or SIGTERM, or the target
/// exits; then drains what the kernel queued before the stop.
///
/// A spawned command is waited for only as long as tracing lasts: when `--duration` ends
/// (or a signal stops the tracer) while it still runs, it is left running, untraced, and
/// the tracer exits without it (the command is reparented like any orphan). Without
/// `--duration` tracing lasts until it exits, and its status is the tracer's.
pub async fn trace_until_stop(
    signals: &mut Signals,
    reader: &mut EventReader,
    pipeline: &mut dyn EventSink,
    probes: &AttachedProbes,
    pid: u32,
    child: Option<GatedChild>,
    duration: Option<f64>,
) -> anyhow::Result<Stop> {
    // One stream per signal for the whole trace, made before anything was attached: a
    // signal that arrives while probes are attached or while the loop body runs (a drain,
    // a snapshot) is kept by its stream and seen at the next turn. A fresh `ctrl_c()`
    // future per turn would miss it.
    let Signals { sigint, sigterm } = signals;
    // A duration too long for the clock is no deadline at all.
    let deadline = duration
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .and_then(|d| tokio::time::Instant::now().checked_add(d));
    let sleep = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep);
    // The spawned command (then `pid` is its pid) or the attached process, watched from
    // now on; a spawned command's status is read once it has ended.
    let exited = crate::target::process_exit(pid);
    tokio::pin!(exited);

    // The kernel side wakes us only when the ring fills up; between wakeups the
    // reader drains on this timer, which bounds how late a live line can be.
    let mut poll = tokio::time::interval(crate::probes::POLL_INTERVAL);
    let mut counters_read = std::time::Instant::now();
    let stop = loop {
        tokio::select! {
            _ = poll.tick() => {
                reader.drain_now(&mut |ev| pipeline.on_event(ev));
                if counters_read.elapsed() >= COUNTERS_EVERY {
                    counters_read = std::time::Instant::now();
                    if let Ok(lost) = probes.lost_events() {
                        pipeline.lost_events_now(lost);
                    }
                }
                flush_recorded(pipeline, reader)?;
            }
            ready = reader.readable() => {
                ready?;
                // Each event goes to the pipeline as it is read: a batch collected first
                // would hold a full ring's worth of decoded events after a stall, and
                // its buffer would keep that size (tens of MiB) for the rest of the run.
                reader.drain_now(&mut |ev| pipeline.on_event(ev));
                flush_recorded(pipeline, reader)?;
            }
            gone = &mut exited => {
                gone?;
                break match &child {
                    Some(c) => Stop::ChildExited(c.wait()?),
                    None => Stop::Done,
                };
            }
            _ = &mut sleep => break Stop::Done,
            _ = sigint.recv() => break Stop::Interrupted,
            _ = sigterm.recv() => break Stop::Terminated,
        }
    };
    // Everything the kernel queued before the stop is still delivered: a full ring holds
    // a few drains' worth; the bound keeps a target that never stops producing from
    // holding the exit.
    for _ in 0..16 {
        if reader.drain_now(&mut |ev| pipeline.on_event(ev)) < crate::probes::MAX_PER_DRAIN {
            break;
        }
    }
    flush_recorded(pipeline, reader)?;
    let Some(c) = child else { return Ok(stop) };
    if matches!(stop, Stop::ChildExited(_)) {
        return Ok(stop);
    }
    if matches!(stop, Stop::Interrupted | Stop::Terminated)
        && let Ok(gone) = tokio::time::timeout(CHILD_GRACE, &mut exited).await
    {
        gone?;
        return Ok(Stop::ChildExited(c.wait()?));
    }
    // It may have ended at the same moment; otherwise it runs on without us.
    if let Some(status) = c.try_wait()? {
        return Ok(Stop::ChildExited(status));
    }
    eprintln!(
        "tracer: tracing stopped; pid {} keeps running, untraced",
        c.pid
    );
    Ok(stop)
}

/// Parses `--duration`: a finite number of seconds above 0.
pub fn parse_duration(s: &str) -> Result<f64, String> {
    let secs: f64 = s.trim().parse().map_err(|_| {
        format!("`{s}` is not a number of seconds (hint: e.g. --duration 10 or 0.5)")
    })?;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(
            "must be a finite number of seconds above 0 (hint: leave --duration out to \
                    trace until Ctrl-C or the target's exit)"
                .into(),
        );
    }
    if Duration::try_from_secs_f64(secs).is_err() {
        return Err("too long (hint: leave --duration out to trace until Ctrl-C)".into());
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_must_be_positive_and_finite() {
        assert_eq!(parse_duration("2.5"), Ok(2.5));
        assert_eq!(parse_duration("0.001"), Ok(0.001));
        for bad in [
            "0", "-1", "-0", "0.0", "nan", "inf", "-inf", "", "abc", "1e400",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("(hint: "), "{bad}: {err}");
            assert!(!err.contains('\n'), "{bad}: {err}");
        }
        assert!(parse_duration("1e30").unwrap_err().contains("too long"));
    }
}

//! `--follow`: wait for the target to appear, and trace it again each time it restarts
//! (a dev engine is rebuilt and restarted often). Each attach is a record saying when and
//! which pid, so counts can be told apart per incarnation.
use std::{
    path::Path,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use clap::Args;

use super::{
    target::{Resolved, TargetArgs},
    tracing::Stop,
};
use crate::output::{SharedSink, records::Record};
use crate::target::{Process, TargetError};

#[derive(Args, Debug, Clone, Default)]
pub struct FollowArgs {
    /// With --exe or --inner: wait for the process to appear, and attach again each time
    /// it restarts, until --duration or Ctrl-C.
    #[arg(long)]
    pub follow: bool,
}

/// How often a followed target is looked for while it is not running.
const POLL: Duration = Duration::from_millis(50);

impl FollowArgs {
    /// Refuses --follow with a target that cannot restart under the same name.
    pub fn check(&self, target: &TargetArgs) -> anyhow::Result<()> {
        if self.follow && target.exe.is_none() && !target.inner {
            anyhow::bail!(
                "--follow needs --exe NAME or --inner (a pid or a spawned command does not come back after a restart)"
            );
        }
        Ok(())
    }
}

/// Waits until the target exists (a process other than `previous`); `None` when
/// `deadline` passes or SIGINT/SIGTERM arrives first. Errors other than "not running
/// yet" (e.g. several candidates) end the wait.
pub fn wait_for(
    target: &TargetArgs,
    previous: Option<u32>,
    deadline: Option<Instant>,
) -> anyhow::Result<Option<Process>> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut said = false;
        loop {
            match target.resolve() {
                Ok(Resolved::Running(p)) if Some(p.pid) != previous && p.is_alive() => {
                    return Ok(Some(p));
                }
                Ok(_) => {}
                Err(e) => match e.downcast_ref::<TargetError>() {
                    Some(TargetError::NoSuchExe(_)) | Some(TargetError::NoInnerEngine { .. }) => {}
                    _ => return Err(e),
                },
            }
            if !said {
                eprintln!("tracer: waiting for the target to start (--follow)");
                said = true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = sigint.recv() => return Ok(None),
                _ = sigterm.recv() => return Ok(None),
            }
        }
    })
}

/// Opens the records' sink (`-o`, or stdout), then runs `once` on the target, or with
/// `--follow` on each incarnation of it until the duration ends or a signal; in JSON mode
/// an `attach` record goes before each incarnation's records.
pub fn drive(
    target: &TargetArgs,
    follow: &FollowArgs,
    duration: Option<f64>,
    output: Option<&Path>,
    json: bool,
    mut once: impl FnMut(&Resolved, Option<f64>, SharedSink) -> anyhow::Result<Stop>,
) -> anyhow::Result<i32> {
    follow.check(target)?;
    // The records' file is opened before any eBPF is loaded: a bad path fails fast, alone.
    // With --follow it stays open across incarnations.
    let sink = SharedSink::new(crate::output::open_record_sink(output)?);
    if !follow.follow {
        return Ok(once(&target.resolve()?, duration, sink)?.exit_status());
    }
    let deadline = duration.map(|d| Instant::now() + Duration::from_secs_f64(d));
    let mut previous = None;
    for incarnation in 1.. {
        let Some(process) = wait_for(target, previous, deadline)? else {
            return Ok(0);
        };
        previous = Some(process.pid);
        eprintln!(
            "tracer: following: incarnation {incarnation}, pid {}",
            process.pid
        );
        if json {
            sink.write_line(&attach_record(incarnation, &process))?;
        }
        let remaining = deadline.map(|d| {
            d.saturating_duration_since(Instant::now())
                .as_secs_f64()
                .max(0.001)
        });
        let pid = process.pid;
        let stop = once(&Resolved::Running(process), remaining, sink.clone())?;
        // Only the target's own end leads to waiting for the next one.
        if !matches!(stop, Stop::Done) || crate::target::is_alive(pid) {
            return Ok(stop.exit_status());
        }
    }
    unreachable!("incarnations are counted without end")
}

/// The `attach` record of one incarnation, as a JSON line.
pub fn attach_record(incarnation: u32, process: &Process) -> String {
    let unix_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let record = Record::Attach {
        incarnation,
        pid: process.pid,
        host_pid: process.host_pid,
        exe: process.exe_link.display().to_string(),
        unix_ns,
    };
    serde_json::to_string(&record).unwrap_or_default()
}

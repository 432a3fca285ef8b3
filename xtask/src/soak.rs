//! `cargo xtask soak`: the tracer left attached for minutes to programs at their highest
//! event rates, its RSS sampled every few seconds, to show its memory stays flat once
//! warm. `tracer cache` runs the L4 stand-in engine's highrate scenario (spawned, four
//! sessions); `tracer locks` and `tracer hang --watch` attach together by pid to
//! tests/go/sched (goroutines parking, waking, exiting and fighting over a Mutex).
//! Each tracer's JSON summary gives its lost events and what its bounds evicted; the
//! target must exit 0.
use std::{
    collections::VecDeque,
    io::{BufRead, BufReader, Read},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::{build_go_program, tracer_binary, workspace_root};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// `tracer cache` on the L4 stand-in engine, highrate.
    Engine,
    /// `tracer locks` and `tracer hang --watch` on tests/go/sched.
    Sched,
}

/// RSS sampling period.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// How long a tracer may take to attach, and to end after its target did.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(120);
const END_TIMEOUT: Duration = Duration::from_secs(60);
/// Growth is measured from this minute on (or from half the run, if shorter).
const WARM_UP_MINUTES: u64 = 5;

pub fn run(minutes: u64, only: &[Target], ring_mb: Option<u32>) -> anyhow::Result<()> {
    if minutes == 0 {
        bail!("--minutes must be at least 1");
    }
    let all = only.is_empty();
    // One target failing does not stop the other's run; the error comes at the end.
    let mut failed = Vec::new();
    for (target, part) in [
        (
            Target::Engine,
            engine as fn(u64, Option<u32>) -> anyhow::Result<String>,
        ),
        (Target::Sched, |m, _| sched(m)),
    ] {
        if all || only.contains(&target) {
            match part(minutes, ring_mb) {
                Ok(report) => println!("{report}"),
                Err(e) => {
                    println!("{e:#}");
                    failed.push(format!("{e:#}"));
                }
            }
        }
    }
    if !failed.is_empty() {
        bail!("{} soak target(s) failed (see above)", failed.len());
    }
    Ok(())
}

/// A tracer (or target) child, its output kept small: the last JSON summary line of its
/// stdout, its last lines that are not JSON, and the last lines of its stderr.
struct Watched {
    label: &'static str,
    child: Child,
    summary: Arc<Mutex<Option<String>>>,
    text: Arc<Mutex<VecDeque<String>>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// (seconds since start, RSS KiB)
    samples: Vec<(f64, u64)>,
    status: Option<ExitStatus>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Watched {
    fn spawn(label: &'static str, mut cmd: Command) -> anyhow::Result<Watched> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {label}"))?;
        let summary = Arc::new(Mutex::new(None));
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let out = child.stdout.take().expect("piped");
        let text = Arc::new(Mutex::new(VecDeque::new()));
        let (keep, keep_text) = (summary.clone(), text.clone());
        // Per-call records stream through here at tens of thousands a second: only the
        // summary (a tracer's, or sched's result) and the lines that are not JSON stay.
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.contains("summary\"") || line.contains("\"ns_per_op\"") {
                    *keep.lock().expect("not poisoned") = Some(line);
                } else if !line.starts_with('{') {
                    push_bounded(&keep_text, line);
                }
            }
        });
        let err = child.stderr.take().expect("piped");
        let tail = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                push_bounded(&tail, line);
            }
        });
        Ok(Watched {
            label,
            child,
            summary,
            text,
            stderr,
            samples: Vec::new(),
            status: None,
        })
    }

    fn stdout_text(&self) -> String {
        let t = self.text.lock().expect("not poisoned");
        t.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    fn stderr_text(&self) -> String {
        let t = self.stderr.lock().expect("not poisoned");
        t.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Waits until a line of `stream` starts with `ready` (the tracer attached, the
    /// program waits at its gate).
    fn wait_ready(&mut self, ready: &str, stdout: bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + ATTACH_TIMEOUT;
        loop {
            if if stdout { &self.text } else { &self.stderr }
                .lock()
                .expect("not poisoned")
                .iter()
                .any(|l| l.starts_with(ready))
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited before attaching ({status}): {}",
                    self.label,
                    self.stderr_text()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not attach within {ATTACH_TIMEOUT:?}: {}",
                    self.label,
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Records its RSS now, if it still runs.
    fn sample(&mut self, at: f64) -> anyhow::Result<()> {
        if self.status.is_none() {
            self.status = self.child.try_wait()?;
        }
        if self.status.is_none()
            && let Some(kib) = rss_kib(self.child.id())
        {
            self.samples.push((at, kib));
        }
        Ok(())
    }

    /// Waits for it to end on its own, or SIGINTs it after `END_TIMEOUT`.
    fn finish(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        let deadline = Instant::now() + END_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait()? {
                self.status = Some(s);
                return Ok(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: kill has no memory preconditions; the pid is our unreaped child.
        unsafe { libc_kill(self.child.id() as i32, SIGINT) };
        let s = self.child.wait()?;
        self.status = Some(s);
        Ok(s)
    }

    fn summary_json(&self) -> Option<serde_json::Value> {
        let line = self.summary.lock().expect("not poisoned").clone()?;
        serde_json::from_str(&line).ok()
    }
}

fn push_bounded(lines: &Mutex<VecDeque<String>>, line: String) {
    let mut t = lines.lock().expect("not poisoned");
    if t.len() >= 200 {
        t.pop_front();
    }
    t.push_back(line);
}

const SIGINT: i32 = 2;

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// VmRSS of a process in KiB, from /proc/PID/status.
fn rss_kib(pid: u32) -> Option<u64> {
    let mut s = String::new();
    std::fs::File::open(format!("/proc/{pid}/status"))
        .ok()?
        .read_to_string(&mut s)
        .ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Samples every tracer's RSS until `done` says the run is over.
fn sample_until(
    tracers: &mut [&mut Watched],
    mut done: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let start = Instant::now();
    // The first sample after the tracer has loaded and attached.
    let mut next = start + SAMPLE_EVERY;
    loop {
        while Instant::now() < next {
            if done()? {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        // Not once the target has ended: a detaching tracer frees its memory.
        if done()? {
            return Ok(());
        }
        let at = start.elapsed().as_secs_f64();
        for t in tracers.iter_mut() {
            t.sample(at)?;
        }
        if tracers.iter().all(|t| t.status.is_some()) {
            return Ok(());
        }
        // Short naps above, so the end of the run is seen within a second.
        next += SAMPLE_EVERY;
    }
}

fn engine(minutes: u64, ring_mb: Option<u32>) -> anyhow::Result<String> {
    let engine = build_go_program("engine-l4", true)?;
    let mut cmd = Command::new(tracer_binary());
    cmd.args(["cache", "--json"]);
    if let Some(mb) = ring_mb {
        cmd.arg(format!("--ring-mb={mb}"));
    }
    cmd.arg("--")
        .arg(&engine)
        // One caller, as `cargo xtask bench` runs it (four concurrent sessions stopped
        // the tracer on a recipe digest mismatch after 5 minutes once; see the README).
        .args(["-scenario", "highrate", "-sessions", "1", "-duration"])
        .arg(format!("{minutes}m"));
    eprintln!("soak: tracer cache on the L4 stand-in, highrate, {minutes} min");
    let mut tracer = Watched::spawn("tracer cache", cmd)?;
    // The engine is the tracer's child: its end shows as the tracer detaching.
    let stderr = tracer.stderr.clone();
    sample_until(&mut [&mut tracer], || {
        Ok(stderr
            .lock()
            .expect("not poisoned")
            .iter()
            .any(|l| l.starts_with("tracer: detached")))
    })?;
    // `tracer cache -- CMD` exits with the target's status.
    let status = tracer.finish()?;
    let summary = tracer.summary_json();
    let ring = ring_mb.map_or(String::new(), |mb| format!(" --ring-mb={mb}"));
    let mut out = format!(
        "\nsoak: `tracer cache --json{ring} -- engine-l4 -scenario highrate -sessions 1 -duration {minutes}m` (L4 stand-in)\n"
    );
    out.push_str(&rss_table(&[&tracer], minutes));
    out.push_str(&format!(
        "target exit: {status} ({})\n",
        if status.success() {
            "no crash"
        } else {
            "FAILED"
        }
    ));
    out.push_str(&summary_line(
        &tracer,
        summary.as_ref(),
        &["calls", "lost_events", "evicted_state", "state_sizes"],
    ));
    if let Some(rate) = tracer
        .stdout_text()
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rate="))
    {
        out.push_str(&format!("engine rate: {rate}\n"));
    }
    if !status.success() {
        bail!("{out}\nthe engine failed: {}", tracer.stderr_text());
    }
    Ok(out)
}

fn sched(minutes: u64) -> anyhow::Result<String> {
    let program = build_go_program("sched", true)?;
    let gate = workspace_root().join(format!("target/soak-sched-{}.gate", std::process::id()));
    let _ = std::fs::remove_file(&gate);
    let mut target = Command::new(&program);
    target
        .args(["-duration", &format!("{minutes}m"), "-gate"])
        .arg(&gate);
    let mut sched = Watched::spawn("sched", target)?;
    sched.wait_ready("waiting", true)?;
    let pid = sched.child.id().to_string();
    let mut locks = Command::new(tracer_binary());
    locks.args(["locks", "--json", "--pid", &pid]);
    let mut locks = Watched::spawn("tracer locks", locks)?;
    locks.wait_ready("tracer: lock contention", false)?;
    let mut watch = Command::new(tracer_binary());
    watch.args([
        "hang",
        "--watch",
        "--threshold",
        "1",
        "--json",
        "--pid",
        &pid,
    ]);
    let mut watch = Watched::spawn("tracer hang --watch", watch)?;
    watch.wait_ready("tracer: watching", false)?;
    std::fs::write(&gate, "").with_context(|| format!("cannot create {}", gate.display()))?;
    eprintln!("soak: tracer locks and tracer hang --watch on tests/go/sched, {minutes} min");
    sample_until(&mut [&mut locks, &mut watch], || {
        Ok(sched
            .child
            .try_wait()?
            .inspect(|s| sched.status = Some(*s))
            .is_some())
    })?;
    let status = sched.finish()?;
    let _ = std::fs::remove_file(&gate);
    let locks_status = locks.finish()?;
    let watch_status = watch.finish()?;
    let mut out = format!(
        "\nsoak: `tracer locks --json --pid` and `tracer hang --watch --threshold 1 --json --pid` together on `sched -duration {minutes}m`\n"
    );
    out.push_str(&rss_table(&[&locks, &watch], minutes));
    out.push_str(&format!(
        "target exit: {status} ({}); tracers: {locks_status}, {watch_status}\n",
        if status.success() {
            "no crash"
        } else {
            "FAILED"
        }
    ));
    if let Some(v) = sched.summary_json() {
        out.push_str(&format!(
            "sched: {} hand-offs, {:.0} ns each\n",
            v["ops"],
            v["ns_per_op"].as_f64().unwrap_or(0.0)
        ));
    }
    out.push_str(&summary_line(
        &locks,
        locks.summary_json().as_ref(),
        &["contended", "locks", "lost_events", "evicted"],
    ));
    out.push_str(&summary_line(
        &watch,
        watch.summary_json().as_ref(),
        &["reports", "lost_events", "evicted"],
    ));
    if !status.success() {
        bail!("{out}\nsched failed: {}", sched.stderr_text());
    }
    Ok(out)
}

/// Chosen fields of a tracer's JSON summary, on one line.
fn summary_line(t: &Watched, v: Option<&serde_json::Value>, fields: &[&str]) -> String {
    let Some(v) = v else {
        return format!(
            "{}: no JSON summary (stderr: {})\n",
            t.label,
            t.stderr_text()
        );
    };
    let shown: Vec<String> = fields.iter().map(|f| format!("{f} {}", v[*f])).collect();
    format!("{}: {}\n", t.label, shown.join(", "))
}

/// RSS per minute (the last sample at or before each minute mark) of each tracer, and
/// the growth from warm-up to the end.
fn rss_table(tracers: &[&Watched], minutes: u64) -> String {
    let mib = |kib: u64| kib as f64 / 1024.0;
    // The last sample at or before the minute's mark, if the tracer still ran then.
    let at_minute = |t: &Watched, m: u64| -> Option<u64> {
        let mark = m as f64 * 60.0;
        t.samples
            .iter()
            .take_while(|(s, _)| *s <= mark + 1.0)
            .last()
            .filter(|(s, _)| mark - s < SAMPLE_EVERY.as_secs_f64() + 1.0)
            .map(|(_, k)| *k)
    };
    let mut out = format!("{:<8}", "minute");
    for t in tracers {
        out.push_str(&format!(" {:>22}", format!("{} RSS", t.label)));
    }
    out.push('\n');
    let first = |t: &Watched| t.samples.first().map(|(_, k)| *k);
    out.push_str(&format!("{:<8}", "0:10"));
    for t in tracers {
        out.push_str(&format!(" {:>18.1} MiB", first(t).map_or(0.0, mib)));
    }
    out.push('\n');
    for m in 1..=minutes {
        out.push_str(&format!("{m:<8}"));
        for t in tracers {
            match at_minute(t, m) {
                Some(k) => out.push_str(&format!(" {:>18.1} MiB", mib(k))),
                None => out.push_str(&format!(" {:>22}", "-")),
            }
        }
        out.push('\n');
    }
    let warm = WARM_UP_MINUTES.min(minutes / 2);
    for t in tracers {
        let from = if warm == 0 {
            first(t)
        } else {
            at_minute(t, warm)
        };
        let end = t.samples.last().map(|(_, k)| *k);
        let peak = t.samples.iter().map(|(_, k)| *k).max();
        if let (Some(from), Some(end), Some(peak)) = (from, end, peak) {
            out.push_str(&format!(
                "{}: RSS minute {warm} -> end {:.1} -> {:.1} MiB ({:+.1}%), peak {:.1} MiB, {} samples\n",
                t.label,
                mib(from),
                mib(end),
                (end as f64 / from as f64 - 1.0) * 100.0,
                mib(peak),
                t.samples.len()
            ));
        }
    }
    out
}

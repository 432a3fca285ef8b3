//! Probe overhead: the same Go program (a framed noinline function in a tight loop)
//! untraced, traced with entry probes only, and traced with entry + RET probes.
//! Configurations are interleaved run by run so machine drift hits all of them alike;
//! the overhead per hit is traced minus untraced from the same session.
//! Also: the stand-in engine under `tracer cache`, and a scheduler-heavy program
//! (tests/go/sched) under `tracer hang --watch` and `tracer locks`, attached by pid.
use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::{build_go_program, tracer_binary, workspace_root};

/// The benchmarks `cargo xtask bench --only` can select.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Probe overhead per hit (`tracer funcs` on tests/go/bench).
    Probes,
    /// The stand-in engine's high-rate scenario under `tracer cache`.
    Engine,
    /// Scheduler hand-offs under `tracer hang --watch` and `tracer locks`.
    Sched,
}

#[derive(Clone, Copy)]
enum Config {
    Untraced,
    EntryOnly,
    EntryAndReturn,
}

impl Config {
    fn label(self) -> &'static str {
        match self {
            Config::Untraced => "untraced",
            Config::EntryOnly => "entry probe only",
            Config::EntryAndReturn => "entry + RET probes",
        }
    }
}

pub fn run(calls: u64, runs: usize, sched_ops: u64, only: &[Part]) -> anyhow::Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let selected = |part| only.is_empty() || only.contains(&part);
    if selected(Part::Probes) {
        probe_overhead(calls, runs)?;
    }
    if selected(Part::Engine) {
        engine_throughput(runs)?;
    }
    if selected(Part::Sched) {
        sched_overhead(sched_ops, runs)?;
    }
    Ok(())
}

fn probe_overhead(calls: u64, runs: usize) -> anyhow::Result<()> {
    let program = build_go_program("bench", true)?;
    let configs = [Config::Untraced, Config::EntryOnly, Config::EntryAndReturn];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    for run in 0..runs {
        for (i, config) in configs.iter().enumerate() {
            let ns = measure(*config, &program, calls)?;
            eprintln!(
                "bench: run {}/{runs} {:<20} {ns:>9.1} ns/call",
                run + 1,
                config.label()
            );
            samples[i].push(ns);
        }
    }
    let medians: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
    let base = medians[0];
    println!(
        "\nprobe overhead on main.probed, {calls} calls per run, median of {runs} runs (stripped Go {} binary)",
        crate::setup::DEFAULT_GO
    );
    println!(
        "{:<20} {:>12} {:>14} {:>8}",
        "configuration", "ns/call", "overhead/hit", "ratio"
    );
    for (config, m) in configs.iter().zip(&medians) {
        println!(
            "{:<20} {:>12.1} {:>11.2} us {:>7.1}x",
            config.label(),
            m,
            (m - base) / 1000.0,
            m / base
        );
    }
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn measure(config: Config, program: &std::path::Path, calls: u64) -> anyhow::Result<f64> {
    let n = calls.to_string();
    let mut cmd = match config {
        Config::Untraced => Command::new(program),
        Config::EntryOnly | Config::EntryAndReturn => {
            let mut cmd = Command::new(tracer_binary());
            cmd.args([
                "funcs",
                "--match",
                r"main\.probed",
                "--json",
                "-o",
                "/dev/null",
            ]);
            if matches!(config, Config::EntryOnly) {
                cmd.arg("--entry-only");
            }
            cmd.arg("--").arg(program);
            cmd
        }
    };
    let out = cmd
        .args(["-n", &n])
        .output()
        .context("cannot run the benchmark")?;
    if !out.status.success() {
        bail!(
            "{} run failed: {}",
            config.label(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The program's own report is its last JSON line on stdout.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.contains("ns_per_call"))
        .with_context(|| format!("no result line from the benchmark program: {stdout}"))?;
    let v: serde_json::Value = serde_json::from_str(line)?;
    let elapsed = v["elapsed_ns"].as_f64().context("elapsed_ns missing")?;
    let measured_calls = v["calls"].as_f64().context("calls missing")?;
    Ok(elapsed / measured_calls)
}

/// The stand-in engine's sustained high-rate workload, untraced and under
/// `tracer cache`, interleaved run by run; plus the tracer's own CPU per 1,000 calls.
fn engine_throughput(runs: usize) -> anyhow::Result<()> {
    let engine = build_go_program("engine", true)?;
    let modes: [(&str, &[&str]); 2] = [
        ("tracer cache", &[]),
        ("tracer cache --light", &["--light"]),
    ];
    let mut untraced = Vec::new();
    let mut traced: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut cpu_per_k: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for run in 0..runs {
        untraced.push(engine_rate(Command::new(&engine))?.0);
        for (i, (label, flags)) in modes.iter().enumerate() {
            let mut cmd = Command::new(tracer_binary());
            cmd.args(["cache", "--json", "-o", "/dev/stderr"])
                .args(*flags)
                .arg("--")
                .arg(&engine);
            let (rate, cpu) = engine_rate(cmd)?;
            traced[i].push(rate);
            cpu_per_k[i].push(cpu.context("no tracer CPU figure in the cache summary")?);
            eprintln!(
                "bench: run {}/{runs} engine highrate, {label}: {rate:.0} calls/s",
                run + 1
            );
        }
        eprintln!(
            "bench: run {}/{runs} engine highrate, untraced: {:.0} calls/s",
            run + 1,
            untraced[run]
        );
    }
    let u = median(&mut untraced);
    println!("\nstand-in engine, scenario highrate (5 s), median of {runs} runs");
    println!(
        "{:<24} {:>16} {:>8} {:>18} {:>22}",
        "mode", "calls/s", "ratio", "overhead per call", "tracer CPU/1,000 calls"
    );
    println!("{:<24} {:>16.0} {:>8.2}", "untraced", u, 1.0);
    for (i, (label, _)) in modes.iter().enumerate() {
        let t = median(&mut traced[i]);
        let c = median(&mut cpu_per_k[i]);
        let overhead_us = (1.0 / t - 1.0 / u) * 1e6;
        println!(
            "{label:<24} {t:>16.0} {:>8.2} {:>15.1} us {:>19.2} ms",
            t / u,
            overhead_us,
            c / 1e6
        );
    }
    Ok(())
}

/// Runs the engine's high-rate scenario; returns its calls/s and, when traced, the
/// tracer's CPU ns per 1,000 calls (from the JSON summary, sent to stderr).
fn engine_rate(mut cmd: Command) -> anyhow::Result<(f64, Option<f64>)> {
    let out = cmd
        .args(["-scenario", "highrate"])
        .output()
        .context("cannot run the engine")?;
    if !out.status.success() {
        bail!(
            "engine run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rate = stdout
        .split_whitespace()
        .find_map(|w| {
            w.strip_prefix("rate=")?
                .strip_suffix("/s")?
                .parse::<f64>()
                .ok()
        })
        .with_context(|| format!("no rate in the engine's output: {stdout}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let cpu = stderr
        .lines()
        .filter(|l| l.contains("\"cache_summary\""))
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let calls = v["calls"].as_f64()?;
            Some(v["tracer_cpu_ns"].as_f64()? * 1000.0 / calls)
        });
    Ok((rate, cpu))
}

/// Ping-pong pairs in the scheduler benchmark (the program's default), besides its
/// 8 goroutines contending on one Mutex.
const SCHED_PAIRS: u32 = 64;
/// How long a tracer may take to attach before the run is given up.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy)]
enum SchedConfig {
    Untraced,
    HangWatch,
    HangWatchOwn,
    Locks,
}

impl SchedConfig {
    fn label(self) -> &'static str {
        match self {
            SchedConfig::Untraced => "untraced",
            SchedConfig::HangWatch => "`tracer hang --watch --threshold 1`",
            SchedConfig::HangWatchOwn => "`tracer hang --watch --threshold 1 --own main`",
            SchedConfig::Locks => "`tracer locks`",
        }
    }

    /// The tracer's arguments after `--pid PID`, and the stderr line prefix it prints
    /// once its probes are attached; `None` untraced.
    fn tracer(self) -> Option<(&'static [&'static str], &'static str)> {
        match self {
            SchedConfig::Untraced => None,
            SchedConfig::HangWatch => Some((
                &["--watch", "--threshold", "1", "--duration", "600"],
                "tracer: watching pid",
            )),
            SchedConfig::HangWatchOwn => Some((
                &[
                    "--watch",
                    "--threshold",
                    "1",
                    "--own",
                    "main",
                    "--duration",
                    "600",
                ],
                "tracer: watching pid",
            )),
            SchedConfig::Locks => Some((
                &["--duration", "600", "-o", "/dev/null"],
                "tracer: lock contention in pid",
            )),
        }
    }

    /// What the tracer's own count (see `SchedSample::events`) counts.
    fn counted(self) -> &'static str {
        match self {
            SchedConfig::Locks => "contended acquisitions",
            _ => "reports",
        }
    }

    fn subcommand(self) -> &'static str {
        match self {
            SchedConfig::Locks => "locks",
            _ => "hang",
        }
    }
}

/// One run of the scheduler benchmark.
struct SchedSample {
    ns_per_op: f64,
    /// The tracer's own count from its last stderr line: reports for `hang --watch`,
    /// contended acquisitions for `locks`.
    events: Option<u64>,
    lost: Option<u64>,
}

/// tests/go/sched untraced and with a tracer attached to the gated process by pid,
/// interleaved run by run; the work starts only once the tracer's probes are in.
fn sched_overhead(ops: u64, runs: usize) -> anyhow::Result<()> {
    if ops == 0 {
        bail!("--sched-ops must be at least 1");
    }
    let program = build_go_program("sched", true)?;
    let gate = workspace_root().join(format!("target/bench-sched-{}.gate", std::process::id()));
    let configs = [
        SchedConfig::Untraced,
        SchedConfig::HangWatch,
        SchedConfig::HangWatchOwn,
        SchedConfig::Locks,
    ];
    let mut samples: Vec<Vec<SchedSample>> = configs.iter().map(|_| Vec::new()).collect();
    let result = (|| {
        for run in 0..runs {
            for (i, config) in configs.iter().enumerate() {
                let s = sched_measure(*config, &program, ops, &gate)?;
                eprintln!(
                    "bench: run {}/{runs} sched {:<32} {:>10.1} ns/op{}",
                    run + 1,
                    config.label(),
                    s.ns_per_op,
                    match (s.events, s.lost) {
                        (Some(e), Some(l)) =>
                            format!(" ({e} {}, {l} events lost)", config.counted()),
                        _ => String::new(),
                    }
                );
                samples[i].push(s);
            }
        }
        anyhow::Ok(())
    })();
    let _ = std::fs::remove_file(&gate);
    result?;

    let mut medians = Vec::new();
    for s in &samples {
        let mut ns: Vec<f64> = s.iter().map(|s| s.ns_per_op).collect();
        let mut events: Vec<u64> = s.iter().filter_map(|s| s.events).collect();
        events.sort_unstable();
        let lost = s.iter().filter_map(|s| s.lost).max();
        medians.push((median(&mut ns), events.get(events.len() / 2).copied(), lost));
    }
    let base = medians[0].0;
    println!(
        "\nscheduler hand-offs (tests/go/sched: {SCHED_PAIRS} ping-pong pairs, 8 goroutines on one Mutex), {ops} ops per run, tracer attached by pid before the work starts, median of {runs} runs (stripped Go {} binary)\n",
        crate::setup::DEFAULT_GO
    );
    println!(
        "| mode | ns/op | throughput vs untraced | overhead per op | tracer's count (median) | lost events (max) |"
    );
    println!("|---|---|---|---|---|---|");
    for (config, (m, events, lost)) in configs.iter().zip(&medians) {
        if matches!(config, SchedConfig::Untraced) {
            println!("| {} | {m:.1} | 1.00 | | | |", config.label());
        } else {
            println!(
                "| {} | {m:.1} | {:.3} | {:.1} ns | {} | {} |",
                config.label(),
                base / m,
                m - base,
                events.map_or(String::new(), |e| format!("{e} {}", config.counted())),
                lost.map_or(String::new(), |l| l.to_string())
            );
        }
    }
    Ok(())
}

/// Kills and reaps a child still running when dropped (on an error path).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn sched_measure(
    config: SchedConfig,
    program: &Path,
    ops: u64,
    gate: &Path,
) -> anyhow::Result<SchedSample> {
    match std::fs::remove_file(gate) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot remove {}", gate.display()));
        }
        _ => {}
    }
    let mut sched = Reaped(
        Command::new(program)
            .args(["-ops", &ops.to_string(), "-pairs", &SCHED_PAIRS.to_string()])
            .arg("-gate")
            .arg(gate)
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the sched program")?,
    );
    let mut lines = BufReader::new(sched.0.stdout.take().expect("piped")).lines();
    match lines.next().transpose()? {
        Some(l) if l == "waiting" => {}
        other => bail!("sched did not start waiting at its gate (first line: {other:?})"),
    }

    let mut tracer = None;
    if let Some((args, ready)) = config.tracer() {
        let mut child = Reaped(
            Command::new(tracer_binary())
                .args([config.subcommand(), "--pid", &sched.0.id().to_string()])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .context("cannot start the tracer")?,
        );
        // Every stderr line goes through the channel, so the pipe never fills.
        let stderr = child.0.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + ATTACH_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let done = line.starts_with(ready);
                    seen.push(line);
                    if done {
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => bail!(
                    "{}: the tracer did not attach within {ATTACH_TIMEOUT:?}: {}",
                    config.label(),
                    seen.join("\n")
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!(
                    "{}: the tracer exited before attaching ({:?}): {}",
                    config.label(),
                    child.0.wait()?,
                    seen.join("\n")
                ),
            }
        }
        tracer = Some((child, rx, seen));
    }

    std::fs::write(gate, "").with_context(|| format!("cannot create {}", gate.display()))?;
    let mut result = None;
    for line in lines {
        let line = line?;
        if line.contains("ns_per_op") {
            result = Some(line);
        }
    }
    let status = sched.0.wait()?;
    if !status.success() {
        bail!("{}: sched failed with {status}", config.label());
    }
    let line = result.with_context(|| format!("{}: no result line from sched", config.label()))?;
    let v: serde_json::Value = serde_json::from_str(&line)?;
    let elapsed = v["elapsed_ns"].as_f64().context("elapsed_ns missing")?;
    let measured_ops = v["ops"].as_f64().context("ops missing")?;
    if v["pid"].as_u64() != Some(u64::from(sched.0.id())) {
        bail!("sched reported another pid: {line}");
    }

    let mut sample = SchedSample {
        ns_per_op: elapsed / measured_ops,
        events: None,
        lost: None,
    };
    if let Some((mut child, rx, mut seen)) = tracer {
        // The tracer may already have stopped on its own when the target exited; it is
        // not reaped yet, so the pid still names it.
        // SAFETY: kill has no memory preconditions; the pid is our unreaped child.
        if unsafe { libc_kill(child.0.id() as i32, SIGINT) } != 0 {
            bail!(
                "cannot SIGINT the tracer: {}",
                std::io::Error::last_os_error()
            );
        }
        let status = child.0.wait()?;
        seen.extend(rx.iter());
        if !status.success() {
            bail!(
                "{}: the tracer failed with {status}: {}",
                config.label(),
                seen.join("\n")
            );
        }
        // "tracer: N reports; lost events: L; ..." or "N contended acquisitions; lost events: L"
        if let Some(last) = seen.iter().rev().find(|l| l.contains("lost events: ")) {
            let count = |after: &str| {
                after
                    .split(|c: char| !c.is_ascii_digit())
                    .find(|w| !w.is_empty())
                    .and_then(|w| w.parse().ok())
            };
            sample.lost = last.split("lost events: ").nth(1).and_then(count);
            sample.events = count(last.trim_start_matches("tracer: "));
        }
    }
    Ok(sample)
}

const SIGINT: i32 = 2;

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

//! Probe overhead: the same Go program (a framed noinline function in a tight loop)
//! untraced, traced with entry probes only, and traced with entry + RET probes.
//! Configurations are interleaved run by run so machine drift hits all of them alike;
//! the overhead per hit is traced minus untraced from the same session.
//! Also: the stand-in engine under `tracer cache`, a scheduler-heavy program
//! (tests/go/sched) under `tracer hang --watch` and `tracer locks`, attached by pid; the
//! time to attach and detach 100 to 5,000 probes on a big busy program (tests/go/wide);
//! and the entry-probe cost on Go 1.19 against Go 1.26 builds of the same program; and
//! the cost of each output sink (Perfetto, `--metrics`, `--otlp`) against `--json`.
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::{build_go_program, build_go_program_with, setup, tracer_binary, workspace_root};

/// The benchmarks `cargo xtask bench --only` can select.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Probe overhead per hit (`tracer funcs` on tests/go/bench).
    Probes,
    /// The stand-in engine's high-rate scenario under `tracer cache`.
    Engine,
    /// Scheduler hand-offs under `tracer hang --watch` and `tracer locks`.
    Sched,
    /// Attach and detach times of 100 to 5,000 entry probes on a busy program.
    Attach,
    /// Entry-probe cost per hit on Go 1.19 and Go 1.26 builds of tests/go/bench.
    Entry119,
    /// `tracer cache --record` against `tracer cache` on the L4 stand-in, the file size
    /// per million events, and `tracer replay` speed.
    Replay,
    /// The output sinks (Perfetto, `--metrics`, `--otlp` to a local receiver) against
    /// `--json` on the L4 stand-in: engine throughput and tracer CPU per 1,000 calls.
    Sinks,
    /// The engine benchmark within one engine run: `tracer cache` attached and detached
    /// in turn, each traced stretch against the untraced ones around it.
    EnginePaired,
}

/// What `cargo xtask bench` measures and how much.
pub struct Options {
    pub calls: u64,
    pub runs: usize,
    /// Engine benchmark: calls per worker session before it rotates, one table each
    /// (0: one session for the whole run, no release churn).
    pub session_calls: Vec<u32>,
    pub sched_ops: u64,
    pub attach_probes: Vec<usize>,
    pub only: Vec<Part>,
    /// Engine benchmark: the code lines to measure (empty: all).
    pub lines: Vec<String>,
    /// Engine benchmark: another tracer binary run in every mode too, in the same runs.
    pub baseline: Option<PathBuf>,
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

pub fn run(opts: &Options) -> anyhow::Result<()> {
    let Options {
        calls,
        runs,
        ref session_calls,
        sched_ops,
        ref attach_probes,
        ref only,
        ref lines,
        ref baseline,
    } = *opts;
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let selected = |part| only.is_empty() || only.contains(&part);
    if selected(Part::Probes) {
        probe_overhead(calls, runs)?;
    }
    if selected(Part::Engine) {
        engine_throughput(runs, session_calls, lines, baseline.as_deref())?;
    }
    if selected(Part::Sched) {
        sched_overhead(sched_ops, runs)?;
    }
    if selected(Part::Entry119) {
        entry_cost_by_go(calls, runs)?;
    }
    if selected(Part::Attach) {
        attach_detach(attach_probes, runs)?;
    }
    if selected(Part::Replay) {
        recording_cost(runs)?;
    }
    if selected(Part::Sinks) {
        sink_cost(runs)?;
    }
    if selected(Part::EnginePaired) {
        crate::bench_paired::engine_paired(runs, session_calls, lines)?;
    }
    Ok(())
}

/// One way of writing what `tracer cache` sees.
struct Sink {
    label: &'static str,
    args: Vec<String>,
}

/// The cost of each sink against `--json` on the same engine workload (the L4 stand-in's
/// high-rate scenario, one caller), modes interleaved run by run: engine calls/s and the
/// tracer's CPU per 1,000 calls (its summary line). `--otlp` goes to a receiver in this
/// process that reads each request whole and answers 200 (no decoding: the receiver's cost
/// is not the tracer's); `--metrics` serves an endpoint nobody scrapes.
fn sink_cost(runs: usize) -> anyhow::Result<()> {
    let engine = build_go_program("engine-l4", true)?;
    let dir = workspace_root().join("target/bench-recordings");
    std::fs::create_dir_all(&dir)?;
    let receiver = otlp_sink::start()?;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let pftrace = dir.join("sinks.pftrace");
    let sinks = [
        Sink {
            label: "--json (baseline)",
            args: vec!["--json".into(), "-o".into(), "/dev/null".into()],
        },
        Sink {
            label: "--format perfetto",
            args: vec![
                "--format".into(),
                "perfetto".into(),
                "-o".into(),
                pftrace.display().to_string(),
            ],
        },
        Sink {
            label: "--json --metrics",
            args: vec![
                "--json".into(),
                "-o".into(),
                "/dev/null".into(),
                "--metrics".into(),
                format!("127.0.0.1:{metrics_port}"),
            ],
        },
        Sink {
            label: "--json --otlp",
            args: vec![
                "--json".into(),
                "-o".into(),
                "/dev/null".into(),
                "--otlp".into(),
                format!("http://127.0.0.1:{}", receiver.port),
            ],
        },
    ];
    let mut untraced = Vec::new();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); sinks.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); sinks.len()];
    let mut otlp_dropped = Vec::new();
    let mut trace_bytes_per_call = Vec::new();
    for run in 0..runs {
        untraced.push(engine_rate(Command::new(&engine))?.0);
        for (i, sink) in sinks.iter().enumerate() {
            let mut cmd = Command::new(tracer_binary());
            cmd.arg("cache").args(&sink.args).arg("--").arg(&engine);
            let (rate, tracer_cpu, stdout, stderr) = engine_rate_with_output(cmd)?;
            rates[i].push(rate);
            cpu[i].push(tracer_cpu.context("no tracer CPU figure in the summary")?);
            if sink.label == "--format perfetto" {
                let calls = count_after_word(&stdout, "calls=")
                    .context("no calls= in the engine's output")?;
                trace_bytes_per_call.push(std::fs::metadata(&pftrace)?.len() as f64 / calls);
            }
            if sink.label == "--json --otlp" {
                let (spans, dropped) = otlp_counts(&stderr)
                    .with_context(|| format!("no otlp line from the tracer: {stderr}"))?;
                otlp_dropped.push(dropped / spans);
            }
            eprintln!(
                "bench: run {}/{runs} sinks, {}: {rate:.0} calls/s, tracer CPU {:.2} ms per 1,000 calls",
                run + 1,
                sink.label,
                tracer_cpu.unwrap_or(f64::NAN) / 1e6
            );
        }
    }
    let _ = std::fs::remove_file(&pftrace);
    let u = median(&mut untraced);
    let base_rate = median(&mut rates[0].clone());
    let base_cpu = median(&mut cpu[0].clone());
    println!(
        "
sinks (L4 stand-in highrate, one caller, `tracer cache`), median of {runs} runs; untraced {u:.0} calls/s
{:<22} {:>10} {:>10} {:>24} {:>14}",
        "sink", "calls/s", "vs --json", "tracer CPU/1,000 calls", "vs --json"
    );
    for (i, sink) in sinks.iter().enumerate() {
        let r = median(&mut rates[i]);
        let c = median(&mut cpu[i]);
        println!(
            "{:<22} {r:>10.0} {:>9.2}x {:>21.2} ms {:>+11.2} ms",
            sink.label,
            r / base_rate,
            c / 1e6,
            (c - base_cpu) / 1e6
        );
    }
    println!(
        "perfetto trace: {:.0} bytes per call; otlp: {:.1}% of spans dropped (receiver took {} requests)",
        median(&mut trace_bytes_per_call),
        median(&mut otlp_dropped) * 100.0,
        receiver.requests()
    );
    Ok(())
}

/// A number right after `key` in whitespace-separated text (`calls=1234`).
fn count_after_word(text: &str, key: &str) -> Option<f64> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.parse::<f64>().ok())
}

/// Spans and dropped spans from the tracer's `otlp: N spans to URL: M exported, K dropped`.
fn otlp_counts(stderr: &str) -> Option<(f64, f64)> {
    let line = stderr.lines().find(|l| l.starts_with("otlp: "))?;
    let spans = count_after(line, "otlp: ")?;
    let dropped = line
        .split(", ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse::<f64>()
        .ok()?;
    Some((spans, dropped))
}

/// A stand-in OTLP/HTTP collector for the sink benchmark: reads each request whole and
/// answers 200 with an empty `ExportTraceServiceResponse` (zero bytes), on loopback.
mod otlp_sink {
    use std::{
        io::{BufRead, BufReader, Read, Write},
        net::{TcpListener, TcpStream},
        sync::{
            Arc,
            atomic::{AtomicU64, Ordering},
        },
    };

    pub struct Receiver {
        pub port: u16,
        requests: Arc<AtomicU64>,
    }

    impl Receiver {
        pub fn requests(&self) -> u64 {
            self.requests.load(Ordering::Relaxed)
        }
    }

    pub fn start() -> anyhow::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let requests = Arc::new(AtomicU64::new(0));
        let counted = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let counted = counted.clone();
                std::thread::spawn(move || serve(conn, &counted));
            }
        });
        Ok(Receiver { port, requests })
    }

    /// Requests on one keep-alive connection, until it closes or errs.
    fn serve(conn: TcpStream, requests: &AtomicU64) {
        let Ok(mut out) = conn.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(conn);
        loop {
            let mut length = 0usize;
            let mut line = String::new();
            // The request line and headers, up to the empty line.
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let header = line.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            requests.fetch_add(1, Ordering::Relaxed);
            let reply = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
            if out.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// Recording and replay: the L4 stand-in's high-rate scenario under `tracer cache`
/// with and without `--record`, interleaved run by run; the recording's bytes per
/// million events; and `tracer replay --json` of each recording (one thread, output
/// to /dev/null), in events per second.
fn recording_cost(runs: usize) -> anyhow::Result<()> {
    let engine = build_go_program("engine-l4", true)?;
    let dir = workspace_root().join("target/bench-recordings");
    std::fs::create_dir_all(&dir)?;
    let (mut plain, mut recorded, mut bytes_per_m, mut replay_rates, mut replay_cpu_rates) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let mut cmd = Command::new(tracer_binary());
        cmd.args(["cache", "--json", "-o", "/dev/stderr", "--"])
            .arg(&engine);
        plain.push(engine_rate(cmd)?.0);
        let file = dir.join(format!("run{run}.trace"));
        let mut cmd = Command::new(tracer_binary());
        cmd.args(["cache", "--json", "-o", "/dev/stderr", "--record"])
            .arg(&file)
            .arg("--")
            .arg(&engine);
        let (rate, _, stderr) = engine_rate_with_stderr(cmd)?;
        recorded.push(rate);
        let events = count_after(&stderr, "tracer: recorded ")
            .context("no `recorded N events` line from the tracer")?;
        bytes_per_m.push(std::fs::metadata(&file)?.len() as f64 * 1e6 / events);
        let cpu_before = children_cpu_s()?;
        let out = Command::new(tracer_binary())
            .arg("replay")
            .arg(&file)
            .arg("--json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let replay = stderr
            .lines()
            .find_map(|l| {
                let rest = l.strip_prefix("tracer: replayed ")?;
                rest.split_once('(')?
                    .1
                    .strip_suffix(" events/s)")?
                    .parse::<f64>()
                    .ok()
            })
            .with_context(|| format!("no replay rate from the tracer: {stderr}"))?;
        replay_rates.push(replay);
        // Events per second of the replay's own CPU time (one thread): unlike the wall
        // clock, it does not move with what else the machine runs.
        let replayed = count_after(&stderr, "tracer: replayed ")
            .context("no `replayed N events` line from the tracer")?;
        let cpu = children_cpu_s()? - cpu_before;
        replay_cpu_rates.push(replayed / cpu.max(0.01));
        eprintln!(
            "bench: run {}/{runs} recording: {:.0} calls/s plain, {rate:.0} recorded, replay {replay:.0} events/s ({:.0} per CPU second)",
            run + 1,
            plain[run],
            replay_cpu_rates[run]
        );
        let _ = std::fs::remove_file(&file);
    }
    let (p, r) = (median(&mut plain), median(&mut recorded));
    println!(
        "\nrecording (L4 stand-in highrate, one caller), median of {runs} runs\n{:<32} {:>12}\n{:<32} {:>12.0}\n{:<32} {:>12.0} ({:.3}x)\n{:<32} {:>9.1} MB\n{:<32} {:>12.0}\n{:<32} {:>12.0}",
        "",
        "",
        "tracer cache: calls/s",
        p,
        "tracer cache --record: calls/s",
        r,
        r / p,
        "recording size per 1M events",
        median(&mut bytes_per_m) / 1e6,
        "replay --json: events/s",
        median(&mut replay_rates),
        "replay --json: events/CPU s",
        median(&mut replay_cpu_rates)
    );
    Ok(())
}

/// CPU seconds (user and system) of this process's waited-for children so far, from
/// /proc/self/stat (in clock ticks of 1/100 s, Linux's USER_HZ).
fn children_cpu_s() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name's closing parenthesis start at field 3; cutime and
    // cstime are fields 16 and 17.
    let rest = stat
        .rsplit_once(')')
        .context("no command name in /proc/self/stat")?
        .1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("/proc/self/stat is too short")?
            .parse::<f64>()?)
    };
    Ok((ticks(13)? + ticks(14)?) / 100.0)
}

/// The number after `prefix` on a line of `text`.
fn count_after(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(prefix)?
            .split_whitespace()
            .next()?
            .parse::<f64>()
            .ok()
    })
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

pub(crate) fn median(v: &mut [f64]) -> f64 {
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

/// The stand-in engines of every code line.
pub(crate) const ENGINE_LINES: [(&str, &str); 4] = [
    ("L1 (v0.20.x)", "engine-l1"),
    ("L2 (egraph branch)", "engine"),
    ("L3 (v0.21.x)", "engine-l3"),
    ("L4 (main)", "engine-l4"),
];

/// Each code line's stand-in engine on its sustained high-rate workload, untraced and
/// under `tracer cache` (default, `--light`, `--returns-at-ret`), interleaved run by run; plus the
/// tracer's own CPU per 1,000 calls. Once per session length: with sessions of 500
/// calls, each session's release (and the ownership it drops) is part of the work; with
/// one session, a cache call is measured alone.
fn engine_throughput(
    runs: usize,
    session_calls: &[u32],
    lines: &[String],
    baseline: Option<&Path>,
) -> anyhow::Result<()> {
    let mut tables = Vec::new();
    for (line, program) in selected_lines(lines)? {
        let engine = build_go_program(program, true)?;
        for &n in session_calls {
            tables.push(engine_line(line, &engine, runs, n, baseline)?);
        }
    }
    for t in tables {
        println!("{t}");
    }
    Ok(())
}

/// The code lines `--lines` names (all when empty), as (label, stand-in program).
pub(crate) fn selected_lines(
    lines: &[String],
) -> anyhow::Result<Vec<(&'static str, &'static str)>> {
    for wanted in lines {
        if !ENGINE_LINES
            .iter()
            .any(|(l, _)| l.starts_with(&format!("{wanted} ")))
        {
            bail!("--lines: no code line {wanted} (L1, L2, L3 or L4)");
        }
    }
    Ok(ENGINE_LINES
        .into_iter()
        .filter(|(line, _)| {
            lines.is_empty() || lines.iter().any(|l| line.starts_with(&format!("{l} ")))
        })
        .collect())
}

pub(crate) fn session_label(session_calls: u32) -> String {
    if session_calls == 0 {
        "one session".into()
    } else {
        format!("sessions of {session_calls} calls")
    }
}

fn engine_line(
    line: &str,
    engine: &Path,
    runs: usize,
    session_calls: u32,
    baseline: Option<&Path>,
) -> anyhow::Result<String> {
    // The cache call's returns are read in its callers; the same run with them read at
    // its RETs shows what that saves.
    let flags: [(&str, &[&str]); 3] = [
        ("tracer cache", &[]),
        ("tracer cache --light", &["--light"]),
        ("tracer cache --returns-at-ret", &["--returns-at-ret"]),
    ];
    let mut modes: Vec<(String, PathBuf, &[&str])> = flags
        .iter()
        .map(|(label, f)| (label.to_string(), tracer_binary(), *f))
        .collect();
    if let Some(b) = baseline {
        modes.extend(
            flags
                .iter()
                .map(|(label, f)| (format!("baseline {label}"), b.to_path_buf(), *f)),
        );
    }
    let mut untraced = Vec::new();
    let mut untraced_cpu = Vec::new();
    let mut traced: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut traced_cpu: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut cpu_per_k: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut hits: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let scenario = session_label(session_calls);
    let sessions = session_calls.to_string();
    let engine_cmd = |cmd: &mut Command| {
        cmd.args(["-session-calls", &sessions]);
    };
    for run in 0..runs {
        let mut cmd = Command::new(engine);
        engine_cmd(&mut cmd);
        let run_u = engine_run(cmd)?;
        untraced.push(run_u.rate);
        untraced_cpu.push(run_u.cpu_per_call.context("no cpu_us from the engine")?);
        for (i, (label, tracer, flags)) in modes.iter().enumerate() {
            // Records to /dev/null: formatted as for any reader, but nobody (this
            // process, on the same two CPUs) reads them; the tracer's CPU comes from its
            // summary line on stderr.
            let mut cmd = Command::new(tracer);
            cmd.args(["cache", "--json", "-o", "/dev/null"])
                .args(*flags)
                .arg("--")
                .arg(engine);
            engine_cmd(&mut cmd);
            let r = engine_run(cmd)?;
            traced[i].push(r.rate);
            traced_cpu[i].push(r.cpu_per_call.context("no cpu_us from the engine")?);
            cpu_per_k[i].push(
                r.tracer_cpu_per_k
                    .context("no tracer CPU figure in the cache summary")?,
            );
            hits[i].push(
                r.hits_per_call
                    .context("no probe hits line in the cache summary")?,
            );
            eprintln!(
                "bench: run {}/{runs} {line} highrate ({scenario}), {label}: {:.0} calls/s, engine CPU {:.2} us/call",
                run + 1,
                r.rate,
                r.cpu_per_call.unwrap_or(f64::NAN) / 1e3
            );
        }
        eprintln!(
            "bench: run {}/{runs} {line} highrate ({scenario}), untraced: {:.0} calls/s, engine CPU {:.2} us/call",
            run + 1,
            untraced[run],
            untraced_cpu[run] / 1e3
        );
    }
    let u = median(&mut untraced);
    let u_cpu = median(&mut untraced_cpu);
    let mut out = format!(
        "\nstand-in engine {line}, scenario highrate (5 s, one caller, {scenario}), median of {runs} runs\n{:<24} {:>12} {:>7} {:>18} {:>20} {:>22} {:>14} {:>18}\n{:<24} {:>12.0} {:>7.2} {:>18} {:>17.2} us\n",
        "mode",
        "calls/s",
        "ratio",
        "overhead per call",
        "engine CPU per call",
        "tracer CPU/1,000 calls",
        "hits per call",
        "engine CPU per hit",
        "untraced",
        u,
        1.0,
        "",
        u_cpu / 1e3,
    );
    for (i, (label, _, _)) in modes.iter().enumerate() {
        let t = median(&mut traced[i]);
        let t_cpu = median(&mut traced_cpu[i]);
        let c = median(&mut cpu_per_k[i]);
        let h = median(&mut hits[i]);
        let overhead_us = (1.0 / t - 1.0 / u) * 1e6;
        out.push_str(&format!(
            "{label:<24} {t:>12.0} {:>7.2} {:>15.1} us {:>12.2} us (+{:.2}) {:>19.2} ms {:>14.2} {:>15.2} us\n",
            t / u,
            overhead_us,
            t_cpu / 1e3,
            (t_cpu - u_cpu) / 1e3,
            c / 1e6,
            h,
            (t_cpu - u_cpu) / 1e3 / h
        ));
    }
    out.push_str(
        "(overhead per call: from the call rates, 1/traced - 1/untraced, so it includes waiting for a CPU another program holds; engine CPU per call: the engine process's own user + system time per call, which includes the kernel's work for every probe hit; hits per call: the tracer's count of probe hits whose events arrived, per cache call; engine CPU per hit: the added engine CPU per call over the hits per call)\n",
    );
    Ok(out)
}

/// One run of the engine's high-rate scenario.
struct EngineRun {
    rate: f64,
    /// The tracer's CPU ns per 1,000 calls, when traced.
    tracer_cpu_per_k: Option<f64>,
    /// The engine process's CPU ns (user + system) per call, from its `cpu_us=`.
    cpu_per_call: Option<f64>,
    /// Probe hits per cache call, from the tracer's summary, when traced.
    hits_per_call: Option<f64>,
}

/// Probe hits per cache call from the summary line
/// `probe hits: 206472 (2.14 per cache call): LightCall 96627, ...`.
pub(crate) fn probe_hits_per_call(line: &str) -> Option<f64> {
    let rest = line.strip_prefix("probe hits: ")?;
    let inner = rest.split_once('(')?.1.split_once(" per cache call)")?.0;
    inner.parse().ok()
}

fn engine_run(cmd: Command) -> anyhow::Result<EngineRun> {
    let (rate, tracer_cpu_per_k, stdout, stderr) = engine_rate_with_output(cmd)?;
    let word = |key: &str| {
        stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.parse::<f64>().ok())
    };
    let cpu_per_call = match (word("cpu_us="), word("calls=")) {
        (Some(cpu_us), Some(calls)) if calls > 0.0 => Some(cpu_us * 1e3 / calls),
        _ => None,
    };
    Ok(EngineRun {
        rate,
        tracer_cpu_per_k,
        cpu_per_call,
        hits_per_call: stderr.lines().find_map(probe_hits_per_call),
    })
}

/// Runs the engine's high-rate scenario; returns its calls/s and, when traced, the
/// tracer's CPU ns per 1,000 calls (from the JSON summary, sent to stderr).
fn engine_rate(cmd: Command) -> anyhow::Result<(f64, Option<f64>)> {
    engine_rate_with_stderr(cmd).map(|(rate, cpu, _)| (rate, cpu))
}

/// [`engine_rate`], with the run's stderr.
fn engine_rate_with_stderr(cmd: Command) -> anyhow::Result<(f64, Option<f64>, String)> {
    engine_rate_with_output(cmd).map(|(rate, cpu, _, stderr)| (rate, cpu, stderr))
}

/// [`engine_rate`], with the run's stdout and stderr.
fn engine_rate_with_output(mut cmd: Command) -> anyhow::Result<(f64, Option<f64>, String, String)> {
    let out = cmd
        // One caller: the overhead per call is then the time the probes add to a call
        // (the tracer's own processing runs on the other CPU and is reported apart).
        .args(["-scenario", "highrate", "-sessions", "1"])
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
        })
        .or_else(|| stderr.lines().find_map(cpu_per_thousand_calls));
    Ok((rate, cpu, stdout.into_owned(), stderr.into_owned()))
}

/// The tracer's CPU per 1,000 calls in ns, from its summary line
/// `tracer CPU: 740.62ms (12.27ms per 1,000 calls)`.
pub(crate) fn cpu_per_thousand_calls(line: &str) -> Option<f64> {
    let rest = line.split("tracer CPU: ").nth(1)?;
    let inner = rest.split_once('(')?.1.strip_suffix(" per 1,000 calls)")?;
    let (number, scale) = [("ns", 1.0), ("us", 1e3), ("ms", 1e6), ("s", 1e9)]
        .iter()
        .find_map(|(unit, scale)| Some((inner.strip_suffix(unit)?, *scale)))?;
    Some(number.parse::<f64>().ok()? * scale)
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

/// The Go toolchains compared by the entry119 part: Go 1.19 (first body instruction after
/// the stack check is `sub rsp`, single-stepped) and the default (`push rbp`, emulated).
const ENTRY_GO_VERSIONS: [&str; 2] = ["1.19", setup::DEFAULT_GO];

/// Entry-probe cost per hit on Go 1.19 and Go 1.26 builds of tests/go/bench, each against
/// its own untraced runs; all four configurations interleaved run by run.
fn entry_cost_by_go(calls: u64, runs: usize) -> anyhow::Result<()> {
    let programs = ENTRY_GO_VERSIONS
        .iter()
        .map(|v| build_go_program_with("bench", v, true))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let configs = [Config::Untraced, Config::EntryOnly];
    // samples[version][config]
    let mut samples = vec![vec![Vec::new(); configs.len()]; programs.len()];
    for run in 0..runs {
        for (v, program) in programs.iter().enumerate() {
            for (c, config) in configs.iter().enumerate() {
                let ns = measure(*config, program, calls)?;
                eprintln!(
                    "bench: run {}/{runs} Go {:<7} {:<20} {ns:>9.1} ns/call",
                    run + 1,
                    ENTRY_GO_VERSIONS[v],
                    config.label()
                );
                samples[v][c].push(ns);
            }
        }
    }
    println!(
        "\nentry probe on main.probed by Go version, {calls} calls per run, median of {runs} runs (stripped builds of tests/go/bench; each version against its own untraced runs)\n"
    );
    println!(
        "| Go | untraced ns/call | `--entry-only` ns/call | overhead per hit | traced / untraced |"
    );
    println!("|---|---|---|---|---|");
    let mut overheads = Vec::new();
    for (v, per_config) in samples.iter_mut().enumerate() {
        let untraced = median(&mut per_config[0]);
        let traced = median(&mut per_config[1]);
        let overhead_us = (traced - untraced) / 1000.0;
        overheads.push(overhead_us);
        println!(
            "| {} | {untraced:.1} | {traced:.1} | {overhead_us:.2} us | {:.1}x |",
            ENTRY_GO_VERSIONS[v],
            traced / untraced
        );
    }
    println!(
        "\nGo {} entry overhead per hit = {:.2} x Go {}'s",
        ENTRY_GO_VERSIONS[0],
        overheads[0] / overheads[1],
        ENTRY_GO_VERSIONS[1]
    );
    Ok(())
}

/// `--duration` of each traced run in the attach benchmark.
const ATTACH_TRACE_SECS: f64 = 1.0;

/// One `tracer funcs` run of the attach benchmark.
struct AttachSample {
    /// From the tracer's `tracer: attached N probes in X ms` line, when it prints one.
    attach_ms: Option<f64>,
    /// From its `tracer: detached N probes in Y ms` line.
    detach_ms: Option<f64>,
    /// The tracer process's wall time minus `--duration`: start-up (reading the binary,
    /// planning), loading, attaching, detaching and the summary.
    wall_minus_duration_ms: f64,
}

/// Attach and detach wall times of N entry probes (`tracer funcs --entry-only --pid`) on a
/// busy program with many functions (tests/go/wide, an HTTPS client and server in one).
fn attach_detach(sizes: &[usize], runs: usize) -> anyhow::Result<()> {
    if sizes.is_empty() || sizes.contains(&0) {
        bail!("--attach-probes needs probe counts of at least 1");
    }
    let program = build_go_program("wide", true)?;
    let catalog = FunctionCatalog::read(&program)?;
    let mut patterns = Vec::new();
    for &n in sizes {
        let (pattern, how) = catalog.pattern_for(n)?;
        check_pattern(&program, &pattern, n)?;
        eprintln!(
            "bench: {n} probes: {how} ({} characters of regex)",
            pattern.len()
        );
        patterns.push(pattern);
    }

    let mut wide = Reaped(
        Command::new(&program)
            .args(["-clients", "2", "-interval", "2ms"])
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start tests/go/wide")?,
    );
    let mut lines = BufReader::new(wide.0.stdout.take().expect("piped")).lines();
    match lines.next().transpose()? {
        Some(l) if l.starts_with("ready ") => {}
        other => bail!("tests/go/wide did not start serving (first line: {other:?})"),
    }
    let pid = wide.0.id();

    let mut samples: Vec<Vec<AttachSample>> = sizes.iter().map(|_| Vec::new()).collect();
    for run in 0..runs {
        for (i, &n) in sizes.iter().enumerate() {
            let s = attach_measure(pid, &patterns[i], n)?;
            let shown = |v: Option<f64>| v.map_or("-".into(), |ms| format!("{ms:.1} ms"));
            eprintln!(
                "bench: run {}/{runs} {n:>5} probes: attach {}, detach {}, wall - duration {:.1} ms",
                run + 1,
                shown(s.attach_ms),
                shown(s.detach_ms),
                s.wall_minus_duration_ms
            );
            samples[i].push(s);
        }
    }
    if let Ok(Some(status)) = wide.0.try_wait() {
        bail!("tests/go/wide exited during the benchmark ({status})");
    }
    drop(wide);

    println!(
        "\nattach and detach, `tracer funcs --entry-only --duration {ATTACH_TRACE_SECS} --pid` on a busy program (tests/go/wide: HTTPS client and server, stripped Go {}, {} functions), median of {runs} runs\n",
        setup::DEFAULT_GO,
        catalog.functions.len()
    );
    println!(
        "| probes | attach (tracer's timing) | detach (tracer's timing) | tracer wall time - {ATTACH_TRACE_SECS} s |"
    );
    println!("|---|---|---|---|");
    for (n, s) in sizes.iter().zip(&mut samples) {
        // A column needs the tracer's line in every run: a median over some runs only
        // would mislead.
        let timed = |mut v: Vec<f64>| {
            if v.len() < runs {
                return "not printed by the tracer".to_string();
            }
            format_ms(median(&mut v))
        };
        let attach = timed(s.iter().filter_map(|s| s.attach_ms).collect());
        let detach = timed(s.iter().filter_map(|s| s.detach_ms).collect());
        let mut wall: Vec<f64> = s.iter().map(|s| s.wall_minus_duration_ms).collect();
        println!(
            "| {n} | {attach} | {detach} | {} |",
            format_ms(median(&mut wall))
        );
    }
    Ok(())
}

fn format_ms(ms: f64) -> String {
    if ms >= 10_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{ms:.1} ms")
    }
}

fn attach_measure(pid: u32, pattern: &str, probes: usize) -> anyhow::Result<AttachSample> {
    let started = Instant::now();
    let out = Command::new(tracer_binary())
        .args(["funcs", "--entry-only", "--match", pattern])
        .args(["--duration", &ATTACH_TRACE_SECS.to_string()])
        .args(["--pid", &pid.to_string()])
        .args(["--max-probes", &probes.to_string()])
        .args(["--json", "-o", "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .context("cannot run the tracer")?;
    let wall = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "`tracer funcs` with {probes} probes failed ({}): {}",
            out.status,
            stderr.trim()
        );
    }
    let timing = |verb| -> anyhow::Result<Option<f64>> {
        match probe_timing(&stderr, verb) {
            Some((n, _)) if n != probes => {
                bail!("the tracer {verb} {n} probes, expected {probes}: {stderr}")
            }
            t => Ok(t.map(|(_, ms)| ms)),
        }
    };
    Ok(AttachSample {
        attach_ms: timing("attached")?,
        detach_ms: timing("detached")?,
        wall_minus_duration_ms: (wall.as_secs_f64() - ATTACH_TRACE_SECS) * 1000.0,
    })
}

/// Reads the tracer's `tracer: <verb> N probes in X ms` stderr line (verb: `attached` or
/// `detached`): N and X.
fn probe_timing(stderr: &str, verb: &str) -> Option<(usize, f64)> {
    stderr.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("tracer: ")?.strip_prefix(verb)?;
        let (count, ms) = rest.strip_prefix(' ')?.split_once(" probes in ")?;
        Some((count.parse().ok()?, ms.strip_suffix(" ms")?.parse().ok()?))
    })
}

/// The functions of a Go binary as `tracer inspect --json` reports them, and which of them
/// the attach benchmark may probe.
struct FunctionCatalog {
    /// Every function name, in the binary's order (duplicates kept).
    functions: Vec<String>,
    /// Whether each function may be probed (same order).
    usable: Vec<bool>,
}

impl FunctionCatalog {
    fn read(program: &Path) -> anyhow::Result<FunctionCatalog> {
        let report = inspect_json(program, ".*")?;
        let matches = report["matches"]
            .as_array()
            .context("no `matches` in the inspect report")?;
        let mut catalog = FunctionCatalog {
            functions: Vec::with_capacity(matches.len()),
            usable: Vec::with_capacity(matches.len()),
        };
        for f in matches {
            let name = f["name"].as_str().context("a function without a name")?;
            catalog
                .usable
                .push(probe_usable(f) && package_usable(package_of(name)));
            catalog.functions.push(name.to_string());
        }
        Ok(catalog)
    }

    /// A regex (for `--match`, anchored by the tracer) matching exactly `n` usable
    /// functions: whole packages (`pkg\..*`) where every function is usable, biggest first
    /// while they fit, then single names; and how it was made.
    fn pattern_for(&self, n: usize) -> anyhow::Result<(String, String)> {
        use std::collections::BTreeMap;
        // Per package: function count, whether all are usable.
        let mut packages: BTreeMap<&str, (usize, bool)> = BTreeMap::new();
        let mut name_count: BTreeMap<&str, usize> = BTreeMap::new();
        for (name, usable) in self.functions.iter().zip(&self.usable) {
            let p = packages.entry(package_of(name)).or_insert((0, true));
            p.0 += 1;
            p.1 &= *usable;
            *name_count.entry(name).or_default() += 1;
        }
        let mut whole: Vec<(&str, usize)> = packages
            .iter()
            .filter(|(_, (_, all_usable))| *all_usable)
            .map(|(p, (count, _))| (*p, *count))
            .collect();
        whole.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut chosen = Vec::new();
        let mut total = 0;
        for (p, count) in whole {
            if total + count <= n {
                chosen.push(p);
                total += count;
            }
        }
        let mut singles = Vec::new();
        for (name, usable) in self.functions.iter().zip(&self.usable) {
            if total == n {
                break;
            }
            if *usable && name_count[name.as_str()] == 1 && !chosen.contains(&package_of(name)) {
                singles.push(regex_escape(name));
                total += 1;
            }
        }
        if total < n {
            bail!(
                "tests/go/wide has only {total} functions the attach benchmark may probe, fewer than {n}"
            );
        }
        let mut alternatives = Vec::new();
        if !chosen.is_empty() {
            let packages: Vec<String> = chosen.iter().map(|p| regex_escape(p)).collect();
            alternatives.push(format!("(?:{})\\..*", packages.join("|")));
        }
        let how = format!(
            "{} functions in {} whole packages + {} single functions",
            n - singles.len(),
            chosen.len(),
            singles.len()
        );
        alternatives.extend(singles);
        Ok((alternatives.join("|"), how))
    }
}

/// `tracer inspect --json --match PATTERN PROGRAM`.
fn inspect_json(program: &Path, pattern: &str) -> anyhow::Result<serde_json::Value> {
    let out = Command::new(tracer_binary())
        .args(["inspect", "--json", "--match", pattern])
        .arg(program)
        .output()
        .context("cannot run tracer inspect")?;
    if !out.status.success() {
        bail!(
            "tracer inspect failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("tracer inspect --json printed no JSON")
}

/// Confirms with `tracer inspect` that `pattern` matches exactly `n` functions, all usable.
fn check_pattern(program: &Path, pattern: &str, n: usize) -> anyhow::Result<()> {
    let report = inspect_json(program, pattern)?;
    let matches = report["matches"].as_array().context("no matches")?;
    let unusable = matches.iter().filter(|f| !probe_usable(f)).count();
    if matches.len() != n || unusable != 0 {
        bail!(
            "the regex for {n} probes matches {} functions ({unusable} not probe-able)",
            matches.len()
        );
    }
    Ok(())
}

/// Whether an inspect record has a probe plan whose entry instruction the kernel accepts
/// for a uprobe (it refuses e.g. AVX-512 instructions and int3 padding).
fn probe_usable(f: &serde_json::Value) -> bool {
    if !f["error"].is_null() {
        return false;
    }
    let Some(insn) = f["probe"]["entry_insn"].as_str() else {
        return false;
    };
    let insn = insn.trim();
    // VEX/EVEX instructions and mask-register moves start with v or k; keep to plain ones.
    !(insn.starts_with('v') || insn.starts_with('k') || insn.starts_with("int3"))
}

/// Packages the benchmark leaves alone: the runtime and low-level internals (probing them
/// would trap on every allocation, lock or syscall of the busy program, which measures
/// the program, not the attach), and linker pseudo-symbols.
fn package_usable(package: &str) -> bool {
    const SKIPPED: &[&str] = &[
        "runtime",
        "internal/",
        "sync",
        "syscall",
        "unsafe",
        "go:",
        "type:",
    ];
    !SKIPPED.iter().any(|p| package.starts_with(p))
}

/// The package path of a Go function name: up to the first '.' after the last '/' that
/// comes before any receiver or type-parameter bracket (`net/http.(*Server).Serve` is
/// in `net/http`, `vendor/golang.org/x/net/http2/hpack.NewEncoder` in
/// `vendor/golang.org/x/net/http2/hpack`).
fn package_of(name: &str) -> &str {
    let head = name.find(['(', '[']).unwrap_or(name.len());
    let start = name[..head].rfind('/').map_or(0, |i| i + 1);
    match name[start..].find('.') {
        Some(dot) => &name[..start + dot],
        None => name,
    }
}

/// Escapes regex metacharacters (the regex crate's set) so `s` matches itself.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if r"\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_tracers_probe_timings() {
        let stderr = "tracer: tracing 100 function(s) with 100 probes in pid 7 (go1.26.6), entry only\n\
                      tracer: attached 100 probes in 12.5 ms\n\
                      tracer: 300 calls\n\
                      tracer: detached 100 probes in 1034 ms\n";
        assert_eq!(probe_timing(stderr, "attached"), Some((100, 12.5)));
        assert_eq!(probe_timing(stderr, "detached"), Some((100, 1034.0)));
        assert_eq!(
            probe_timing("tracer: attached many probes in 3 ms", "attached"),
            None
        );
        assert_eq!(
            probe_timing("tracer: tracing 3 functions", "attached"),
            None
        );
    }

    #[test]
    fn reads_the_tracers_cpu_per_thousand_calls() {
        let line = "tracer CPU: 740.62ms (12.27ms per 1,000 calls)";
        assert_eq!(cpu_per_thousand_calls(line), Some(12.27e6));
        assert_eq!(
            cpu_per_thousand_calls("tracer CPU: 1.000s (950.00us per 1,000 calls)"),
            Some(950e3)
        );
        assert_eq!(cpu_per_thousand_calls("tracer CPU: 5ms"), None);
    }

    #[test]
    fn reads_the_tracers_probe_hits_per_call() {
        let line = "probe hits: 206472 (2.14 per cache call): LightCall 96627, Exec 2090";
        assert_eq!(probe_hits_per_call(line), Some(2.14));
        assert_eq!(probe_hits_per_call("probe hits: 3: Call 3"), None);
        assert_eq!(probe_hits_per_call("lost events: 0"), None);
    }

    #[test]
    fn package_paths() {
        assert_eq!(package_of("net/http.(*Server).Serve"), "net/http");
        assert_eq!(package_of("main.main.func1"), "main");
        assert_eq!(
            package_of("vendor/golang.org/x/net/http2/hpack.NewEncoder"),
            "vendor/golang.org/x/net/http2/hpack"
        );
        assert_eq!(
            package_of("sync/atomic.(*Pointer[go.shape.struct { a/b.c int }]).Load"),
            "sync/atomic"
        );
        assert_eq!(
            package_of("encoding/json.typeFields[go.shape.string]"),
            "encoding/json"
        );
    }

    #[test]
    fn escapes_names() {
        assert_eq!(
            regex_escape("net/http.(*Server).Serve"),
            r"net/http\.\(\*Server\)\.Serve"
        );
    }

    #[test]
    fn patterns_match_exactly_n_usable_functions() {
        let names = [
            "a.f",
            "a.g",
            "a.h",
            "b.f",
            "b.g",
            "c.x",
            "c.y",
            "runtime.m",
            "d.bad",
            "d.ok",
        ];
        let catalog = FunctionCatalog {
            functions: names.iter().map(|s| s.to_string()).collect(),
            usable: names
                .iter()
                .map(|n| !n.contains("bad") && !n.starts_with("runtime"))
                .collect(),
        };
        let (pattern, _) = catalog.pattern_for(4).unwrap();
        assert_eq!(pattern, r"(?:a)\..*|b\.f");
        let (pattern, _) = catalog.pattern_for(7).unwrap();
        assert_eq!(pattern, r"(?:a|b|c)\..*");
        let (pattern, how) = catalog.pattern_for(8).unwrap();
        assert_eq!(pattern, r"(?:a|b|c)\..*|d\.ok");
        assert_eq!(how, "7 functions in 3 whole packages + 1 single functions");
        assert!(catalog.pattern_for(9).is_err());
    }
}

//! The engine benchmark with the machine's drift taken out: one long run of a stand-in
//! engine's high-rate scenario, `tracer cache` attached by pid and detached in turn, and
//! each traced stretch compared with the untraced stretches just before and after it in
//! the same process. On this shared VM the untraced engine's call rate moves by up to 2x
//! between separate runs a few seconds apart, which the run-per-mode benchmark can only
//! average over; adjacent stretches of one run see the same machine.
use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::{
    bench::{cpu_per_thousand_calls, median, probe_hits_per_call, selected_lines, session_label},
    build_go_program, tracer_binary,
};

/// How long each untraced stretch lasts, and each traced one (the tracer's `--duration`).
const UNTRACED: Duration = Duration::from_secs(2);
const TRACED_SECS: u64 = 3;
/// Left out at each end of a stretch: the attach, detach and the scheduler settling.
const MARGIN: Duration = Duration::from_millis(300);
/// The engine reports its calls and CPU this often.
const PROGRESS_EVERY: &str = "100ms";
/// How long the engine may take to print its first progress line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The modes compared, as (label, `tracer cache` flags).
const MODES: [(&str, &[&str]); 2] = [
    ("tracer cache", &[]),
    ("tracer cache --light", &["--light"]),
];

/// One progress line of the engine, stamped when it arrived.
#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    elapsed_us: f64,
    calls: f64,
    cpu_us: f64,
}

/// What the engine did in a stretch: calls per second, and its CPU microseconds per call.
#[derive(Clone, Copy)]
struct Stretch {
    rate: f64,
    cpu_us_per_call: f64,
}

/// One traced stretch against its neighbours.
struct Pair {
    /// From the call rates: 1/traced - mean(1/untraced), microseconds per call.
    overhead_us: f64,
    /// The engine's own CPU per call, traced minus untraced, microseconds.
    cpu_overhead_us: f64,
    tracer_cpu_ms_per_k: Option<f64>,
    hits_per_call: Option<f64>,
}

pub fn engine_paired(runs: usize, session_calls: &[u32], lines: &[String]) -> anyhow::Result<()> {
    let mut tables = Vec::new();
    for (line, program) in selected_lines(lines)? {
        let engine = build_go_program(program, true)?;
        for &n in session_calls {
            tables.push(paired_line(line, &engine, runs, n)?);
        }
    }
    for t in tables {
        println!("{t}");
    }
    Ok(())
}

fn paired_line(
    line: &str,
    engine: &Path,
    runs: usize,
    session_calls: u32,
) -> anyhow::Result<String> {
    let scenario = session_label(session_calls);
    let mut child = Command::new(engine)
        .args([
            "-scenario",
            "highrate",
            "-sessions",
            "1",
            "-duration",
            "24h",
        ])
        .args(["-session-calls", &session_calls.to_string()])
        .args(["-progress", PROGRESS_EVERY])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start the engine")?;
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let reader = {
        let stderr = child.stderr.take().context("no engine stderr")?;
        let samples = Arc::clone(&samples);
        thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(s) = progress(&l) {
                    samples.lock().expect("samples").push(s);
                }
            }
        })
    };
    let result = run_stretches(&mut child, &samples, runs, line, &scenario);
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    let pairs = result?;
    Ok(table(line, &scenario, runs, &pairs))
}

/// Untraced, then each mode traced and untraced again, `runs` times; the pairs per mode.
fn run_stretches(
    child: &mut Child,
    samples: &Mutex<Vec<Sample>>,
    runs: usize,
    line: &str,
    scenario: &str,
) -> anyhow::Result<Vec<Vec<Pair>>> {
    let pid = child.id();
    // The workload's start, and a first untraced stretch.
    let started = Instant::now();
    while samples.lock().expect("samples").is_empty() {
        if started.elapsed() > START_TIMEOUT {
            bail!("the engine printed no progress");
        }
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_secs(1));
    let mut before = untraced_stretch(samples)?;
    let mut pairs: Vec<Vec<Pair>> = MODES.iter().map(|_| Vec::new()).collect();
    for run in 0..runs {
        for (m, (label, flags)) in MODES.iter().enumerate() {
            if child.try_wait()?.is_some() {
                bail!("the engine exited during the benchmark");
            }
            let traced = traced_stretch(samples, pid, flags)?;
            let after = untraced_stretch(samples)?;
            let untraced_per_call = (1.0 / before.rate + 1.0 / after.rate) / 2.0;
            let untraced_cpu = (before.cpu_us_per_call + after.cpu_us_per_call) / 2.0;
            let pair = Pair {
                overhead_us: (1.0 / traced.stretch.rate - untraced_per_call) * 1e6,
                cpu_overhead_us: traced.stretch.cpu_us_per_call - untraced_cpu,
                tracer_cpu_ms_per_k: traced.tracer_cpu_ms_per_k,
                hits_per_call: traced.hits_per_call,
            };
            eprintln!(
                "bench: paired {}/{runs} {line} highrate ({scenario}), {label}: untraced {:.0} / traced {:.0} / untraced {:.0} calls/s; +{:.2} us per call by rate, +{:.2} us engine CPU",
                run + 1,
                before.rate,
                traced.stretch.rate,
                after.rate,
                pair.overhead_us,
                pair.cpu_overhead_us
            );
            pairs[m].push(pair);
            before = after;
        }
    }
    Ok(pairs)
}

fn untraced_stretch(samples: &Mutex<Vec<Sample>>) -> anyhow::Result<Stretch> {
    let from = Instant::now() + MARGIN;
    thread::sleep(UNTRACED);
    stretch(samples, from, Instant::now())
}

struct Traced {
    stretch: Stretch,
    tracer_cpu_ms_per_k: Option<f64>,
    hits_per_call: Option<f64>,
}

/// Attaches `tracer cache FLAGS --pid PID` for [`TRACED_SECS`]; the stretch runs from
/// its "attached" line to its "detached" line, less the margins.
fn traced_stretch(
    samples: &Mutex<Vec<Sample>>,
    pid: u32,
    flags: &[&str],
) -> anyhow::Result<Traced> {
    let mut tracer = Command::new(tracer_binary())
        .args(["cache", "--json", "-o", "/dev/null"])
        .args(flags)
        .args([
            "--pid",
            &pid.to_string(),
            "--duration",
            &TRACED_SECS.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start the tracer")?;
    let stderr = tracer.stderr.take().context("no tracer stderr")?;
    let mut attached = None;
    let mut detached = None;
    let mut text = String::new();
    for l in BufReader::new(stderr).lines().map_while(Result::ok) {
        if l.starts_with("tracer: attached ") {
            attached = Some(Instant::now());
        } else if l.starts_with("tracer: detached ") {
            detached = Some(Instant::now());
        }
        text.push_str(&l);
        text.push('\n');
    }
    let status = tracer.wait()?;
    let (Some(attached), Some(detached)) = (attached, detached) else {
        bail!("the tracer did not attach and detach ({status}): {text}");
    };
    // The detach line comes after the probes are gone: the stretch ends a margin before
    // the detach began, which the line's own figure is well within.
    let end = detached.checked_sub(MARGIN * 2).context("clock")?;
    let stretch = stretch(samples, attached + MARGIN, end)?;
    Ok(Traced {
        stretch,
        tracer_cpu_ms_per_k: text
            .lines()
            .find_map(cpu_per_thousand_calls)
            .map(|ns| ns / 1e6),
        hits_per_call: text.lines().find_map(probe_hits_per_call),
    })
}

/// The engine's rate and CPU per call between the first and last samples in `from..to`.
fn stretch(samples: &Mutex<Vec<Sample>>, from: Instant, to: Instant) -> anyhow::Result<Stretch> {
    // The last sample may still be on its way.
    thread::sleep(Duration::from_millis(150));
    let samples = samples.lock().expect("samples");
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at <= to)
        .collect();
    let (Some(first), Some(last)) = (inside.first(), inside.last()) else {
        bail!("no engine progress in a stretch");
    };
    let calls = last.calls - first.calls;
    let secs = (last.elapsed_us - first.elapsed_us) / 1e6;
    if calls <= 0.0 || secs <= 0.0 {
        bail!("the engine made no calls in a stretch");
    }
    Ok(Stretch {
        rate: calls / secs,
        cpu_us_per_call: (last.cpu_us - first.cpu_us) / calls,
    })
}

/// `progress elapsed_us=N calls=N cpu_us=N`.
fn progress(line: &str) -> Option<Sample> {
    let rest = line.strip_prefix("progress ")?;
    let field = |key: &str| {
        rest.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.parse::<f64>().ok())
    };
    Some(Sample {
        at: Instant::now(),
        elapsed_us: field("elapsed_us=")?,
        calls: field("calls=")?,
        cpu_us: field("cpu_us=")?,
    })
}

fn table(line: &str, scenario: &str, runs: usize, pairs: &[Vec<Pair>]) -> String {
    let mut out = format!(
        "\nstand-in engine {line}, scenario highrate (one caller, {scenario}), {runs} traced stretches per mode, each against the untraced stretches around it in the same run (median, min-max)\n{:<22} {:>24} {:>26} {:>22} {:>14}\n",
        "mode",
        "overhead per call",
        "engine CPU per call",
        "tracer CPU/1,000 calls",
        "hits per call"
    );
    for ((label, _), p) in MODES.iter().zip(pairs) {
        let spread = |f: &dyn Fn(&Pair) -> f64| {
            let mut v: Vec<f64> = p.iter().map(f).collect();
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            format!("{:.2} ({:.1}-{:.1}) us", median(&mut v), lo, hi)
        };
        let mut tracer_cpu: Vec<f64> = p.iter().filter_map(|x| x.tracer_cpu_ms_per_k).collect();
        let mut hits: Vec<f64> = p.iter().filter_map(|x| x.hits_per_call).collect();
        out.push_str(&format!(
            "{label:<22} {:>24} {:>26} {:>19} ms {:>14}\n",
            spread(&|x| x.overhead_us),
            format!("+{}", spread(&|x| x.cpu_overhead_us)),
            if tracer_cpu.is_empty() {
                f64::NAN
            } else {
                median(&mut tracer_cpu)
            },
            if hits.is_empty() {
                "-".to_string()
            } else {
                format!("{:.2}", median(&mut hits))
            },
        ));
    }
    out.push_str("(overhead per call: 1/traced rate - the mean of 1/untraced rate of the stretches before and after, so it includes waiting for a CPU the tracer holds; engine CPU per call: the engine's own user + system time per call, traced minus untraced; both the median over the traced stretches, with the smallest and largest)\n");
    out
}

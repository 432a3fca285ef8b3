//! Probe overhead: the same Go program (a framed noinline function in a tight loop)
//! untraced, traced with entry probes only, and traced with entry + RET probes.
//! Configurations are interleaved run by run so machine drift hits all of them alike;
//! the overhead per hit is traced minus untraced from the same session.
use std::process::Command;

use anyhow::{Context, bail};

use crate::{build_go_program, tracer_binary};

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

pub fn run(calls: u64, runs: usize) -> anyhow::Result<()> {
    probe_overhead(calls, runs)?;
    engine_throughput(runs)
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

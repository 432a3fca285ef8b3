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

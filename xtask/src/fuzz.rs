//! `cargo xtask fuzz --secs N` / `--runs N`: cargo-fuzz (libFuzzer) over the parsers of
//! untrusted input, each target for N seconds or N executions, with seeds from real Go
//! binaries of every Go version the tests use. Targets and their shared entry points are in
//! `fuzz/`; the committed seeds and crash reproducers are replayed by
//! `tracer/tests/fuzz_replay.rs` in the normal test run.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

use crate::{build_go_variant, setup, shown, workspace_root};

/// Every target in `fuzz/fuzz_targets`, cheapest first: the per-parser ones, then the
/// walker and the whole-binary ones.
pub const TARGETS: &[&str] = &[
    "event",
    "buildinfo",
    "code",
    "dwarf",
    "pclntab",
    "recording",
    "walker",
    "gobin_bytes",
    "gobin_patch",
];

/// When a target's run ends: after this many seconds, this many executions, or whichever
/// comes first.
#[derive(Clone, Copy)]
pub struct Limit {
    pub secs: Option<u64>,
    pub runs: Option<u64>,
}

pub fn run(limit: Limit, only: &[String]) -> anyhow::Result<()> {
    for t in only {
        if !TARGETS.contains(&t.as_str()) {
            bail!("unknown fuzz target {t} (targets: {})", TARGETS.join(", "));
        }
    }
    let targets: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|t| only.is_empty() || only.iter().any(|o| o == t))
        .collect();
    setup::cargo_fuzz()?;
    let fuzz = workspace_root().join("fuzz");
    // The walker and gobin_patch targets read them; the derived seeds came from them.
    bases(&fuzz.join("bases"))?;
    for t in &targets {
        corpus(&fuzz, t)?;
    }
    eprintln!("fuzz: building the targets (nightly, libFuzzer)");
    crate::run_cmd(&mut fuzz_cmd("build"))?;

    let mut results = Vec::new();
    for t in &targets {
        results.push(run_target(&fuzz, t, limit)?);
    }
    println!(
        "{:<12} {:>6} {:>12} {:>9} {:>8} {:>8}",
        "target", "secs", "executions", "exec/s", "crashes", "hangs"
    );
    for r in &results {
        println!(
            "{:<12} {:>6} {:>12} {:>9} {:>8} {:>8}",
            r.target,
            r.secs,
            r.execs,
            r.execs / r.secs.max(1),
            r.crashes,
            r.hangs
        );
    }
    let bad: Vec<_> = results
        .iter()
        .filter(|r| r.crashes + r.hangs > 0 || !r.clean_exit)
        .collect();
    for r in &bad {
        eprintln!(
            "fuzz: {} found a problem: see {} and the log {}; make it a regression input in fuzz/regressions/{}",
            r.target,
            fuzz.join("artifacts").join(r.target).display(),
            r.log.display(),
            r.target,
        );
    }
    if !bad.is_empty() {
        bail!("{} fuzz target(s) found crashes or hangs", bad.len());
    }
    Ok(())
}

struct Outcome {
    target: &'static str,
    secs: u64,
    execs: u64,
    crashes: usize,
    hangs: usize,
    clean_exit: bool,
    log: PathBuf,
}

/// `cargo +nightly fuzz <sub> -s none`: no sanitizer (the parsers are safe Rust; the
/// few unsafe reads in tracer-common are length-checked) for the speed; overflow checks
/// and debug assertions stay on (cargo-fuzz's default).
fn fuzz_cmd(sub: &str) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.current_dir(workspace_root())
        .env("PATH", setup::path_with_tools())
        .env("AYA_BUILD_SKIP", "1")
        .args([
            "run",
            "nightly",
            "cargo",
            "fuzz",
            sub,
            "--sanitizer",
            "none",
        ]);
    cmd
}

fn run_target(fuzz: &Path, target: &'static str, limit: Limit) -> anyhow::Result<Outcome> {
    let artifacts = fuzz.join("artifacts").join(target);
    fs::create_dir_all(&artifacts)?;
    let count = |prefix: &str| {
        fs::read_dir(&artifacts)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                    .count()
            })
            .unwrap_or(0)
    };
    let before = (
        count("crash-") + count("oom-") + count("leak-"),
        count("timeout-"),
    );
    let mut cmd = fuzz_cmd("run");
    cmd.arg(target)
        .arg(fuzz.join("corpus").join(target))
        .arg("--")
        // 0: no time limit (then -runs ends it).
        .arg(format!("-max_total_time={}", limit.secs.unwrap_or(0)))
        .arg(format!("-runs={}", limit.runs.map_or(-1, |r| r as i64)))
        .arg("-timeout=20")
        .arg("-rss_limit_mb=3072")
        .arg("-print_final_stats=1")
        .args(target_options(target))
        .arg(format!("-artifact_prefix={}/", artifacts.display()));
    let until = match (limit.secs, limit.runs) {
        (Some(s), Some(r)) => format!("{r} runs or {s}s"),
        (Some(s), None) => format!("{s}s"),
        (None, Some(r)) => format!("{r} runs"),
        (None, None) => "no limit".into(),
    };
    eprintln!("fuzz: {target} for {until}: {}", shown(&cmd));
    let started = std::time::Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", shown(&cmd)))?;
    let log = fuzz.join("artifacts").join(format!("{target}.log"));
    let mut text = out.stdout.clone();
    text.extend_from_slice(&out.stderr);
    fs::write(&log, &text)?;
    let text = String::from_utf8_lossy(&text);
    let execs = text
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    // The time libFuzzer really ran (less than asked when it stopped at a crash or hang).
    let ran = text
        .lines()
        .find_map(|l| l.strip_prefix("Done ")?.split(" runs in ").nth(1))
        .and_then(|r| r.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| started.elapsed().as_secs());
    Ok(Outcome {
        target,
        secs: ran,
        execs,
        crashes: count("crash-") + count("oom-") + count("leak-") - before.0,
        hangs: count("timeout-") - before.1,
        clean_exit: out.status.success(),
        log,
    })
}

/// libFuzzer options of one target.
fn target_options(target: &str) -> &'static [&'static str] {
    match target {
        // An input is a base, a region and a few patches: full-length inputs from the
        // start (no slow growth from the 11-byte seeds), and no more than 512 bytes of
        // patches, which already rewrite any header or table entry many times over.
        "gobin_patch" => &["-len_control=0", "-max_len=512"],
        _ => &[],
    }
}

/// Real stripped binaries of every Go version the tests use, and two with DWARF, as the
/// structure-aware targets' bases, in `fuzz/bases`. Existing builds are reused: those in
/// `$TRACER_FUZZ_GO_PROGRAMS` (read only), then `target/go-programs`; else built.
///
/// The two with DWARF keep `gobin_patch` fast where patches land in DWARF (each such
/// input inflates and walks it afresh): `funcs-go1.26.6-debug` has the whole DWARF
/// uncompressed (`-compressdwarf=false`: walked, never inflated), and
/// `funcs-go1.26.6-debug-types` only what the linker writes (types, lines, frames: no
/// compiler DWARF, `-dwarf=false`), zlib-compressed as Go does by default, so the
/// inflating path is fuzzed on a third of the bytes.
fn bases(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    // (Go version, kind in target/go-programs, `go build` flags, name in fuzz/bases)
    let mut wanted: Vec<(String, &str, &[&str], Option<&str>)> = setup::go_versions()?
        .into_iter()
        .map(|v| (v, "stripped", &["-ldflags=-s -w"][..], None))
        .collect();
    let go = setup::DEFAULT_GO.to_owned();
    wanted.push((
        go.clone(),
        "debug-uncompressed",
        &["-ldflags=-compressdwarf=false"],
        Some("debug"),
    ));
    wanted.push((go, "debug-types", &["-gcflags=all=-dwarf=false"], None));
    let mut out = Vec::new();
    for (version, kind, flags, named) in wanted {
        let src = match find_program(&version, kind) {
            Some(p) => p,
            None => build_go_variant("funcs", &version, kind, flags)?,
        };
        let name = src.file_name().context("program name")?.to_string_lossy();
        let name = match named {
            Some(short) => name.replace(&format!("-{kind}"), &format!("-{short}")),
            None => name.into_owned(),
        };
        let dst = dir.join(name);
        let same = fs::metadata(&dst)
            .ok()
            .zip(fs::metadata(&src).ok())
            .is_some_and(|(a, b)| a.len() == b.len());
        if same {
            eprintln!("fuzz: seed {}: present", dst.display());
        } else {
            eprintln!("fuzz: seed {} from {}", dst.display(), src.display());
            fs::copy(&src, &dst)?;
        }
        out.push(dst);
    }
    Ok(out)
}

/// `funcs-go<version>[.<patch>]-<kind>` in the directories of prebuilt test programs.
fn find_program(version: &str, kind: &str) -> Option<PathBuf> {
    let dirs = std::env::var_os("TRACER_FUZZ_GO_PROGRAMS")
        .map(PathBuf::from)
        .into_iter()
        .chain([workspace_root().join("target/go-programs")]);
    for dir in dirs {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                let Some(rest) = name.strip_prefix(&format!("funcs-go{version}")) else {
                    return false;
                };
                rest == format!("-{kind}")
                    || rest
                        .strip_prefix('.')
                        .and_then(|r| r.strip_suffix(&format!("-{kind}")))
                        .is_some_and(|patch| patch.chars().all(|c| c.is_ascii_digit()))
            })
            .collect();
        found.sort();
        if let Some(p) = found.pop() {
            return Some(p);
        }
    }
    None
}

/// The working corpus `fuzz/corpus/<target>`: committed seeds and regressions. libFuzzer
/// adds what it finds there (not committed).
fn corpus(fuzz: &Path, target: &str) -> anyhow::Result<()> {
    let dst = fuzz.join("corpus").join(target);
    fs::create_dir_all(&dst)?;
    let mut n = 0;
    for kind in ["seeds", "regressions"] {
        let Ok(entries) = fs::read_dir(fuzz.join(kind).join(target)) else {
            continue;
        };
        for e in entries.filter_map(|e| e.ok()) {
            fs::copy(
                e.path(),
                dst.join(format!("{kind}-{}", e.file_name().to_string_lossy())),
            )?;
            n += 1;
        }
    }
    eprintln!(
        "fuzz: corpus {target}: {n} seed inputs in {}",
        dst.display()
    );
    Ok(())
}

//! `cargo xtask dist`: one static `tracer` executable, eBPF object inside (tracer/build.rs
//! embeds it), to copy into any container: `target/dist/tracer`.
//!
//! musl (`x86_64-unknown-linux-musl`) when rustup could install that target, otherwise
//! glibc linked statically (`-C target-feature=+crt-static`). Either way the result is
//! checked to have no ELF interpreter and no shared-library dependency, then run in an
//! empty root that holds only itself and a Go program: `--version` and `inspect` in a
//! fresh PID namespace, and a real trace (with /sys bound in, which aya needs to find the
//! uprobe PMU and privileged containers always have).
use std::{path::Path, process::Command, time::Instant};

use anyhow::{Context, bail};

use crate::{build_go_program, cargo, run_cmd, setup, workspace_root};

/// The libc the binary was linked against.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Libc {
    Musl,
    Glibc,
}

impl Libc {
    fn target(self) -> &'static str {
        match self {
            Libc::Musl => setup::MUSL_TARGET,
            Libc::Glibc => "x86_64-unknown-linux-gnu",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Libc::Musl => "musl",
            Libc::Glibc => "glibc (+crt-static; musl target unavailable or not chosen)",
        }
    }
}

/// Calls of main.probed the in-root trace must see: the bench program's timed calls plus
/// its 1,000 warm-up calls.
const VERIFY_CALLS: u64 = 10_000;
const VERIFY_WARMUP: u64 = 1_000;

pub fn run(force_glibc: bool) -> anyhow::Result<()> {
    setup::run(true)?;
    let libc = if force_glibc {
        eprintln!("dist: --glibc given: building a static glibc binary");
        Libc::Glibc
    } else if setup::musl_target() {
        Libc::Musl
    } else {
        Libc::Glibc
    };

    let started = Instant::now();
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--package", "tracer", "--target"])
        .arg(libc.target())
        // Line tables are for local debugging; the shipped binary keeps only its symbols.
        // (A --config flag, unlike an environment variable, does not reach the nested
        // eBPF build, whose BTF needs its debug info.)
        .args(["--config", "profile.release.strip=\"debuginfo\""]);
    if libc == Libc::Glibc {
        cmd.args([
            "--config",
            "target.x86_64-unknown-linux-gnu.rustflags=[\"-C\", \"target-feature=+crt-static\"]",
        ]);
    }
    run_cmd(&mut cmd)?;
    let build_secs = started.elapsed().as_secs_f64();

    let root = workspace_root();
    let built = root
        .join("target")
        .join(libc.target())
        .join("release/tracer");
    let dist_dir = root.join("target/dist");
    std::fs::create_dir_all(&dist_dir)
        .with_context(|| format!("cannot create {}", dist_dir.display()))?;
    let dist = dist_dir.join("tracer");
    // Replace, never write through: a running copy may be mapped.
    let _ = std::fs::remove_file(&dist);
    std::fs::copy(&built, &dist)
        .with_context(|| format!("cannot copy {} to {}", built.display(), dist.display()))?;

    let linking = Linking::read(&dist)?;
    if !linking.is_static() {
        bail!(
            "{} is not static: interpreter {:?}, {} shared-library dependencies",
            dist.display(),
            linking.interpreter,
            linking.needed
        );
    }
    let file_says = describe_with_file(&dist);

    let verified = verify_in_empty_root(&dist)?;

    let size = std::fs::metadata(&dist)?.len();
    println!("dist: {}", dist.display());
    println!(
        "dist:   size     {:.1} MiB ({size} bytes)",
        size as f64 / (1024.0 * 1024.0)
    );
    println!(
        "dist:   linked   statically against {}, target {}, {}: no ELF interpreter, no shared libraries",
        libc.describe(),
        libc.target(),
        if linking.pie { "static-pie" } else { "static" }
    );
    if let Some(f) = file_says {
        println!("dist:   file(1)  {f}");
    }
    println!("dist:   built in {build_secs:.0} s");
    println!("dist:   verified in an empty root (only the binary and a Go program): {verified}");
    Ok(())
}

/// What the ELF program headers say about dynamic linking.
struct Linking {
    interpreter: Option<String>,
    /// DT_NEEDED entries.
    needed: usize,
    /// ET_DYN: position independent (static-pie when static).
    pie: bool,
}

impl Linking {
    fn read(path: &Path) -> anyhow::Result<Linking> {
        let data =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let bad = || anyhow::anyhow!("{} is not a 64-bit little-endian ELF file", path.display());
        if data.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
            return Err(bad());
        }
        let u16_at = |o: usize| -> anyhow::Result<u16> {
            Ok(u16::from_le_bytes(
                data.get(o..o + 2).ok_or_else(bad)?.try_into()?,
            ))
        };
        let u32_at = |o: usize| -> anyhow::Result<u32> {
            Ok(u32::from_le_bytes(
                data.get(o..o + 4).ok_or_else(bad)?.try_into()?,
            ))
        };
        let u64_at = |o: usize| -> anyhow::Result<u64> {
            Ok(u64::from_le_bytes(
                data.get(o..o + 8).ok_or_else(bad)?.try_into()?,
            ))
        };
        const ET_DYN: u16 = 3;
        const PT_DYNAMIC: u32 = 2;
        const PT_INTERP: u32 = 3;
        const DT_NEEDED: u64 = 1;
        let pie = u16_at(0x10)? == ET_DYN;
        let phoff = u64_at(0x20)? as usize;
        let phentsize = usize::from(u16_at(0x36)?);
        let phnum = usize::from(u16_at(0x38)?);
        let mut linking = Linking {
            interpreter: None,
            needed: 0,
            pie,
        };
        for i in 0..phnum {
            let ph = phoff + i * phentsize;
            let offset = u64_at(ph + 8)? as usize;
            let size = u64_at(ph + 32)? as usize;
            let bytes = data.get(offset..offset + size).ok_or_else(bad)?;
            match u32_at(ph)? {
                PT_INTERP => {
                    let text = String::from_utf8_lossy(bytes);
                    linking.interpreter = Some(text.trim_end_matches('\0').to_string());
                }
                PT_DYNAMIC => {
                    for entry in bytes.chunks_exact(16) {
                        let tag = u64::from_le_bytes(entry[..8].try_into()?);
                        match tag {
                            0 => break,
                            DT_NEEDED => linking.needed += 1,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(linking)
    }

    fn is_static(&self) -> bool {
        self.interpreter.is_none() && self.needed == 0
    }
}

/// file(1)'s description of the binary, if file is installed.
fn describe_with_file(path: &Path) -> Option<String> {
    let out = Command::new("file").arg("-b").arg(path).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs the dist binary in a root that holds nothing but it and a stripped Go program (no
/// libc, no /dev, no /etc), as PID 1's child in a new PID namespace with its own /proc.
fn verify_in_empty_root(dist: &Path) -> anyhow::Result<String> {
    let program = build_go_program("bench", true)?;
    let root = workspace_root().join("target/dist/empty-root");
    if root.exists() {
        std::fs::remove_dir_all(&root)
            .with_context(|| format!("cannot clear {}", root.display()))?;
    }
    for dir in ["proc", "sys"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    std::fs::copy(dist, root.join("tracer"))?;
    std::fs::copy(&program, root.join("bench"))?;
    let in_root = |args: &[&str]| {
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "--mount-proc"])
            .arg(format!("--root={}", root.display()))
            .arg("/tracer")
            .args(args);
        cmd
    };

    let version = checked_output(&mut in_root(&["--version"]))?;
    if !version.starts_with("tracer ") {
        bail!("`tracer --version` in the empty root printed {version:?}");
    }

    let inspect = checked_output(&mut in_root(&["inspect", "--json", "/bench"]))?;
    let report: serde_json::Value = serde_json::from_str(inspect.trim())
        .with_context(|| format!("`tracer inspect --json` printed {inspect:?}"))?;
    let want = format!("go{}", setup::DEFAULT_GO);
    if report["go_version"] != want.as_str() || report["functions"].as_u64().unwrap_or(0) == 0 {
        bail!("`tracer inspect` in the empty root read {report}, expected {want}");
    }

    // A real trace: eBPF loaded from the embedded object, probes attached, events read.
    // aya finds the uprobe PMU under /sys, which is bound in inside a private mount
    // namespace (gone when the command ends). This one stays in the host's PID namespace:
    // the tracer's in-kernel pid filter compares the global tgid, so from a PID namespace
    // of its own it sees no events (a tracer limitation, reported; not a libc matter).
    let calls = VERIFY_CALLS.to_string();
    let mut traced = Command::new("unshare");
    traced
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(
            r#"mount --rbind /sys "$1/sys" && exec unshare --mount-proc --root="$1" /tracer funcs --entry-only --match 'main\.probed' --json -o /calls.jsonl -- /bench -n "$2""#,
        )
        .arg("sh")
        .arg(&root)
        .arg(&calls);
    checked_output(&mut traced)?;
    let records = std::fs::read_to_string(root.join("calls.jsonl"))?;
    let summary: serde_json::Value = records
        .lines()
        .rev()
        .find(|l| l.contains("\"summary\""))
        .map(serde_json::from_str)
        .transpose()?
        .context("the in-root trace wrote no summary")?;
    let want_calls = VERIFY_CALLS + VERIFY_WARMUP;
    if summary["calls"].as_u64() != Some(want_calls) || summary["lost_events"].as_u64() != Some(0) {
        bail!("the in-root trace of {want_calls} calls summarized as {summary}");
    }
    std::fs::remove_dir_all(&root)?;
    Ok(format!(
        "`{}` and `inspect` ({want}, {} functions) in a fresh PID namespace; `funcs --entry-only` ({want_calls} of {want_calls} calls, 0 lost) in the host's",
        version.trim(),
        report["functions"]
    ))
}

/// Runs a command (echoed) and returns its stdout; fails with its stderr if it fails.
fn checked_output(cmd: &mut Command) -> anyhow::Result<String> {
    eprintln!("xtask: $ {}", crate::shown(cmd));
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", crate::shown(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed with {}: {}",
            crate::shown(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

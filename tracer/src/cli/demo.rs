//! `tracer demo`: builds the bundled stand-in engine if needed, starts it on the
//! mixed workload, and traces its cache for a few seconds.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};
use clap::Args;

use super::{
    TargetArgs,
    cache::{self, CacheArgs},
};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// How long the stand-in engine runs its workload.
    #[arg(long, default_value_t = 4)]
    seconds: u32,
    /// Workload: mixed, hits, joins, ttl, errors, leak, filesync, highrate.
    #[arg(long, default_value = "mixed")]
    scenario: String,
    /// JSON lines instead of human-readable lines.
    #[arg(long)]
    json: bool,
}

/// The stand-in engine's source, in this repository.
fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/go/engine")
}

/// A Go 1.26 toolchain: the one `cargo xtask setup` installs, else `go` on PATH.
fn go_binary() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    let dir = std::env::var_os("TRACER_GO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&home).join(".cache/go-tracer/go"));
    let installed = dir.join("1.26.6/go/bin/go");
    if installed.is_file() {
        return Ok(installed);
    }
    let on_path = Command::new("go").arg("version").output();
    if on_path.is_ok_and(|o| o.status.success()) {
        return Ok(PathBuf::from("go"));
    }
    bail!("no Go toolchain to build the stand-in engine (hint: run `cargo xtask setup --minimal`)")
}

/// Builds `dagger-engine` like the real one: CGO off, `-s -w` (stripped), non-PIE.
fn build_engine() -> anyhow::Result<PathBuf> {
    let src = source_dir();
    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/demo");
    std::fs::create_dir_all(&out_dir)?;
    let out = out_dir.join("dagger-engine");
    eprintln!(
        "tracer demo: building the stand-in engine ({}) with -ldflags \"-s -w\"",
        src.display()
    );
    let status = Command::new(go_binary()?)
        .current_dir(&src)
        .env("CGO_ENABLED", "0")
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-buildvcs=false")
        .args(["build", "-ldflags=-s -w", "-o"])
        .arg(&out)
        .arg("./cmd/engine")
        .status()
        .context("cannot run go build")?;
    if !status.success() {
        bail!("building the stand-in engine failed ({status})");
    }
    Ok(out)
}

pub fn run(args: DemoArgs) -> anyhow::Result<i32> {
    let engine = build_engine()?;
    eprintln!(
        "tracer demo: starting {} -scenario {} and tracing its dagql cache\n",
        engine.display(),
        args.scenario
    );
    cache::run(CacheArgs {
        target: TargetArgs {
            pid: None,
            exe: None,
            inner: false,
            command: vec![
                engine.display().to_string(),
                "-scenario".into(),
                args.scenario,
                "-duration".into(),
                format!("{}s", args.seconds),
            ],
        },
        follow: Default::default(),
        json: args.json,
        duration: None,
        output: None,
        ring_mb: 16,
        light: false,
    })
}

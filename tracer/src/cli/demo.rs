//! `tracer demo`: starts a stand-in engine of one code line on its mixed workload and
//! traces its dagql cache. The stand-ins are built by `cargo xtask demo` (the tracer
//! binary carries no source tree); it finds them with `--engine`, in
//! `$TRACER_DEMO_DIR`, or in `demo/` next to itself.
use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, ValueEnum};

use super::{
    TargetArgs,
    cache::{self, CacheArgs},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CodeLine {
    /// v0.20.x.
    L1,
    /// The egraph branch (in no release).
    L2,
    /// v0.21.x, the default install.
    L3,
    /// v1.0 betas and main.
    L4,
}

impl CodeLine {
    /// The stand-in's file name, as `cargo xtask demo` lays them out.
    fn file_name(self) -> &'static str {
        match self {
            CodeLine::L1 => "dagger-engine-l1",
            CodeLine::L2 => "dagger-engine-l2",
            CodeLine::L3 => "dagger-engine-l3",
            CodeLine::L4 => "dagger-engine-l4",
        }
    }
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Which engine code line's stand-in to run.
    #[arg(long, value_enum, default_value = "l4", ignore_case = true)]
    code_line: CodeLine,
    /// The stand-in engine binary (default: found as the module doc says).
    #[arg(long, value_name = "PATH")]
    engine: Option<PathBuf>,
    /// How long the stand-in engine runs its workload.
    #[arg(long, default_value_t = 4)]
    seconds: u32,
    /// Workload: mixed (every line), anomalies (L3, L4), highrate; L2 also hits,
    /// joins, ttl, errors, leak, filesync.
    #[arg(long, default_value = "mixed")]
    scenario: String,
    /// JSON lines instead of human-readable lines.
    #[arg(long)]
    json: bool,
    /// How records are written: human, json, or perfetto (a timeline for
    /// ui.perfetto.dev; needs -o FILE).
    #[arg(long, value_enum, conflicts_with = "json")]
    format: Option<crate::output::Format>,
    /// Write records to this file instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Also keep every raw event in this file, for `tracer replay` and `tracer diff`.
    #[arg(long, value_name = "FILE")]
    pub(super) record: Option<std::path::PathBuf>,
    /// Say why each miss missed (see `tracer cache --explain`).
    #[arg(long)]
    explain: bool,
    /// Cheaper tracing: entry probes only.
    #[arg(long)]
    light: bool,
}

/// Where the stand-in of `line` is, or why there is none.
fn find_engine(line: CodeLine, given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        bail!(
            "no stand-in engine at {} (hint: `cargo xtask demo` builds them)",
            p.display()
        );
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("TRACER_DEMO_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(dir.join("demo"));
    }
    for dir in &dirs {
        let p = dir.join(line.file_name());
        if p.is_file() {
            return Ok(p);
        }
    }
    let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    bail!(
        "no stand-in engine for code line {line:?} (looked in {}) (hint: `cargo xtask demo` builds them, or pass --engine PATH)",
        looked.join(", ")
    )
}

pub fn run(args: DemoArgs) -> anyhow::Result<i32> {
    let engine = find_engine(args.code_line, args.engine.as_deref())?;
    eprintln!(
        "tracer demo: starting {} -scenario {} and tracing its dagql cache\n",
        engine.display(),
        args.scenario
    );
    let mut command = vec![
        engine.display().to_string(),
        "-scenario".into(),
        args.scenario,
        "-duration".into(),
        format!("{}s", args.seconds),
    ];
    // --light reads goroutine exits from the engine's goroutine table while it runs: the
    // stand-in stays a moment after its workload so that its last goroutines are seen gone.
    if args.light {
        command.extend(["-linger".into(), "300ms".into()]);
    }
    cache::run(CacheArgs {
        target: TargetArgs {
            pid: None,
            exe: None,
            inner: false,
            command,
        },
        follow: Default::default(),
        json: args.json,
        format: args.format,
        metrics: None,
        duration: None,
        output: args.output,
        ring_mb: 16,
        returns_at_ret: false,
        light: args.light,
        record: args.record,
        explain: args.explain,
        otlp: None,
    })
}

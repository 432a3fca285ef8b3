//! Orchestration: machine setup, builds, tests, the demo and benchmarks.
//!
//! `cargo xtask demo` and `cargo xtask test` are the README's two commands; both
//! provision what is missing first, idempotently, saying what they install.
mod bench;
mod bench_paired;
mod dist;
mod fuzz;
mod setup;
mod soak;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Build, setup, test and bench orchestration for the tracer")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what the build and the tests need (idempotent).
    Setup {
        /// Only what the demo needs (one Go toolchain).
        #[arg(long)]
        minimal: bool,
    },
    /// Set up, build, and trace the bundled demo program.
    Demo,
    /// Build one static `tracer` binary (eBPF object inside) into target/dist/tracer,
    /// musl if possible, and check it in an empty root.
    Dist {
        /// Build the static glibc variant even when the musl target is available.
        #[arg(long)]
        glibc: bool,
    },
    /// Set up, build, lint, and run every test (unit and real-eBPF integration).
    Test {
        /// Extra arguments passed to `cargo test` (e.g. a test name filter).
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// rustfmt --check and clippy -D warnings on userspace and eBPF crates.
    Lint,
    /// Fuzz the parsers of untrusted input (cargo-fuzz on the nightly), each target N
    /// seconds or N executions (60 seconds when neither is given).
    Fuzz {
        /// Seconds per target (with --runs: whichever comes first).
        #[arg(long)]
        secs: Option<u64>,
        /// Executions per target (libFuzzer's -runs).
        #[arg(long)]
        runs: Option<u64>,
        /// Only these targets (default: all).
        targets: Vec<String>,
    },
    /// Measure probe overhead per hit against an untraced run of the same program.
    Bench {
        /// Calls per run.
        #[arg(long, default_value_t = 200_000)]
        calls: u64,
        /// Runs per configuration (the median is reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Engine benchmark: calls per session before the stand-in releases it and opens
        /// another, one table each (comma-separated; 0: one session for the whole run).
        #[arg(long, value_delimiter = ',', default_value = "500,0")]
        session_calls: Vec<u32>,
        /// Channel hand-offs per run of the scheduler benchmark (tests/go/sched).
        #[arg(long, default_value_t = 4_000_000)]
        sched_ops: u64,
        /// Probe counts of the attach benchmark (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "100,1000,5000")]
        attach_probes: Vec<usize>,
        /// Run only these benchmarks (comma-separated; default: all).
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<bench::Part>,
        /// Engine benchmark: only these code lines (comma-separated, e.g. L1,L2; default:
        /// all four).
        #[arg(long, value_delimiter = ',')]
        lines: Vec<String>,
        /// Engine benchmark: also run every mode with this tracer binary (e.g. a build of
        /// an earlier commit), interleaved in the same runs: a before/after comparison
        /// under the same load.
        #[arg(long)]
        baseline: Option<std::path::PathBuf>,
    },
    /// Leave the tracer attached for minutes at the highest event rates and record its
    /// RSS over time (flat after warm-up is the goal).
    Soak {
        /// Minutes per target.
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        /// Only these targets (comma-separated; default: all).
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<soak::Target>,
        /// `tracer cache --ring-mb` (default: the tracer's): a small ring loses events,
        /// to see what lost goroutine exits and RETs leave behind.
        #[arg(long)]
        ring_mb: Option<u32>,
    },
}

fn main() {
    if let Err(err) = run(Cli::parse()) {
        eprintln!("xtask: {err:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Setup { minimal } => setup::run(minimal),
        Cmd::Demo => demo(),
        Cmd::Dist { glibc } => dist::run(glibc),
        Cmd::Test { cargo_args } => test(&cargo_args),
        Cmd::Lint => lint(),
        Cmd::Fuzz {
            secs,
            runs,
            targets,
        } => fuzz::run(
            fuzz::Limit {
                secs: secs.or(runs.is_none().then_some(60)),
                runs,
            },
            &targets,
        ),
        Cmd::Bench {
            calls,
            runs,
            session_calls,
            sched_ops,
            attach_probes,
            only,
            lines,
            baseline,
        } => {
            // Even the minimal setup installs Debian's Go 1.19 (entry119 part).
            setup::run(true)?;
            build_release()?;
            bench::run(&bench::Options {
                calls,
                runs,
                session_calls,
                sched_ops,
                attach_probes,
                only,
                lines,
                baseline,
            })
        }
        Cmd::Soak {
            minutes,
            only,
            ring_mb,
        } => {
            setup::run(true)?;
            build_release()?;
            soak::run(minutes, &only, ring_mb)
        }
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_path_buf()
}

pub fn tracer_binary() -> PathBuf {
    workspace_root().join("target/release/tracer")
}

/// Runs a command, echoing it, and fails if it fails.
pub fn run_cmd(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: $ {}", shown(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", shown(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", shown(cmd));
    }
    Ok(())
}

pub fn shown(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root())
        .env("PATH", setup::path_with_tools());
    cmd
}

fn build_release() -> anyhow::Result<()> {
    run_cmd(cargo().args(["build", "--release", "--package", "tracer"]))
}

/// Builds a Go program under tests/go with the default (1.26) toolchain.
pub fn build_go_program(name: &str, stripped: bool) -> anyhow::Result<PathBuf> {
    build_go_program_with(name, setup::DEFAULT_GO, stripped)
}

/// Builds a Go program under tests/go with the given Go toolchain (see setup::go_binary).
pub fn build_go_program_with(
    name: &str,
    go_version: &str,
    stripped: bool,
) -> anyhow::Result<PathBuf> {
    let (kind, flags): (&str, &[&str]) = if stripped {
        ("stripped", &["-ldflags=-s -w"])
    } else {
        ("debug", &[])
    };
    build_go_variant(name, go_version, kind, flags)
}

/// `target/go-programs/{name}-go{go_version}-{kind}`, built with `flags` (`go build` flags).
pub fn build_go_variant(
    name: &str,
    go_version: &str,
    kind: &str,
    flags: &[&str],
) -> anyhow::Result<PathBuf> {
    let go = setup::go_binary(go_version)?;
    let root = workspace_root();
    let out = root.join(format!("target/go-programs/{name}-go{go_version}-{kind}"));
    let dir = root.join("tests/go").join(name);
    // A program laid out like a repository (the stand-in engine) has its main in cmd/.
    let package = if dir.join("cmd/engine").is_dir() {
        "./cmd/engine"
    } else {
        "."
    };
    let mut cmd = Command::new(go);
    cmd.current_dir(&dir)
        .env("GOFLAGS", "-buildvcs=false")
        .env("CGO_ENABLED", "0")
        .env("GOTOOLCHAIN", "local")
        .env(
            "GOCACHE",
            root.join(format!("target/go-cache/{go_version}")),
        )
        .args(["build", "-o"])
        .arg(&out)
        .args(flags);
    run_cmd(cmd.arg(package))?;
    Ok(out)
}

/// The stand-in engines `tracer demo` runs, one per code line, built stripped like the
/// real engine and laid out where the tracer binary finds them (`demo/` next to it).
const DEMO_ENGINES: [(&str, &str); 4] = [
    ("engine-l1", "dagger-engine-l1"),
    ("engine", "dagger-engine-l2"),
    ("engine-l3", "dagger-engine-l3"),
    ("engine-l4", "dagger-engine-l4"),
];

fn demo() -> anyhow::Result<()> {
    setup::run(true)?;
    build_release()?;
    let demo_dir = tracer_binary()
        .parent()
        .context("tracer binary has no directory")?
        .join("demo");
    std::fs::create_dir_all(&demo_dir)?;
    for (program, name) in DEMO_ENGINES {
        println!(
            "xtask: building the stand-in engine tests/go/{program} -> {}",
            demo_dir.join(name).display()
        );
        let built = build_go_program(program, true)?;
        let dest = demo_dir.join(name);
        // Replace, not overwrite: a running demo engine may still map the old file.
        let _ = std::fs::remove_file(&dest);
        std::fs::copy(&built, &dest)?;
    }
    // The newest code line (main, the v1.0 betas); `tracer demo --code-line L1|L2|L3`
    // runs the others.
    run_cmd(Command::new(tracer_binary()).args(["demo", "--code-line", "l4"]))
}

fn lint() -> anyhow::Result<()> {
    run_cmd(cargo().args(["fmt", "--all", "--check"]))?;
    // The eBPF crate is linted on its own: together with tracer-common's `user`
    // feature it would pull std into a no_std build.
    run_cmd(cargo().env("AYA_BUILD_SKIP", "1").args([
        "clippy",
        "--workspace",
        "--exclude",
        "tracer-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run_cmd(
        Command::new("rustup")
            .current_dir(workspace_root().join("tracer-ebpf"))
            .env("PATH", setup::path_with_tools())
            .args([
                "run",
                "nightly",
                "cargo",
                "clippy",
                "--target",
                "bpfel-unknown-none",
            ])
            .args(["-Z", "build-std=core", "--", "-D", "warnings"]),
    )
}

fn test(cargo_args: &[String]) -> anyhow::Result<()> {
    setup::run(false)?;
    lint()?;
    build_release()?;
    // Integration tests load eBPF and trace real processes: they need root.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        bail!("the tests load eBPF programs and need root (hint: sudo -E cargo xtask test)");
    }
    run_cmd(
        cargo()
            .args([
                "test",
                "--release",
                "--workspace",
                "--exclude",
                "tracer-ebpf",
            ])
            .args(cargo_args)
            .env("TRACER_BIN", tracer_binary())
            .env("TRACER_GO_DIR", setup::go_dir()),
    )
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

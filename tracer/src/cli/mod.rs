//! Command-line interface: one file per subcommand, each thin: parse, wire the
//! pipeline, print.
mod cache;
mod demo;
mod diff;
mod follow;
mod funcs;
mod goroutine_exits;
mod goroutine_names;
mod hang;
mod inspect;
mod locks;
mod ps;
mod reader_thread;
mod replay;
mod target;
mod tracing;
mod watch;

use clap::{Parser, Subcommand};

pub use target::TargetArgs;

#[derive(Parser)]
#[command(
    name = "tracer",
    version,
    about = "Zero-instrumentation eBPF tracer for Go programs"
)]
pub struct Cli {
    /// On an error, also print each of its causes and, when the kernel refused a program,
    /// the verifier's log.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what the tracer knows about a Go binary: version, goroutine-id offset,
    /// functions, and where probes would go.
    Inspect(inspect::InspectArgs),
    /// Trace every call of the Go functions whose full name matches a regex.
    Funcs(funcs::FuncsArgs),
    /// dagql cache timelines of a Dagger engine: per call identity, outcome, session.
    Cache(cache::CacheArgs),
    /// Start the bundled stand-in engine and trace its cache for a few seconds.
    Demo(demo::DemoArgs),
    /// Every goroutine's state and stack, read live without stopping the process;
    /// blocked goroutines, what they wait on, and deadlocks.
    Hang(hang::HangArgs),
    /// Lock contention: every contended Mutex/RWMutex acquisition with its waiter, wait
    /// time, releaser and stack; per-lock totals at the end.
    Locks(locks::LocksArgs),
    /// Every Go process in sight: pid namespaces, container, Go version, engine role.
    Ps(ps::PsArgs),
    /// Run `funcs`, `cache`, `demo`, `locks` or `hang --watch` and keep every raw event in
    /// a file for `replay`.
    Record(replay::RecordArgs),
    /// Read a recording again offline (no root, no binary): the same records and summary
    /// the live run printed.
    Replay(replay::ReplayArgs),
    /// Compare two cache runs (recordings or `cache --json` outputs) by identity flow and
    /// show the first divergence. Exit 0: same, 1: diverged, 2: bad input.
    Diff(diff::DiffArgs),
}

/// Compiles a user's function-name pattern, anchored at both ends.
/// Why a pattern matched no function, as a hint: it must match whole names, so say when
/// it matches parts of some.
fn no_match_hint(binary: &crate::gobin::GoBinary, pattern: &str) -> String {
    let partly = anchored_regex(&format!(".*(?:{pattern}).*"))
        .map(|r| binary.find_functions(&r).len())
        .unwrap_or(0);
    if partly > 0 {
        format!(
            "the pattern must match the whole name, package path included: `.*{pattern}.*` matches {partly}"
        )
    } else {
        format!(
            "`tracer inspect {} --match '.*<part>.*'` lists the names",
            binary.path().display()
        )
    }
}

fn anchored_regex(pattern: &str) -> anyhow::Result<regex::Regex> {
    regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        // The regex crate explains over several lines; its last line says what is wrong.
        let text = e.to_string();
        let why = text
            .lines()
            .last()
            .unwrap_or("")
            .trim_start_matches("error: ");
        anyhow::anyhow!("`{pattern}` is not a valid regex: {why}")
    })
}

impl Command {
    /// Whether the subcommand loads eBPF programs and attaches uprobes.
    fn loads_probes(&self) -> bool {
        match self {
            Command::Funcs(_)
            | Command::Cache(_)
            | Command::Demo(_)
            | Command::Locks(_)
            | Command::Record(_) => true,
            Command::Hang(args) => args.watches(),
            Command::Inspect(_) | Command::Ps(_) | Command::Replay(_) | Command::Diff(_) => false,
        }
    }
}

/// Runs a subcommand; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    // Before any work: a missing capability is one sentence naming it, not an EPERM from
    // the kernel after the target was analysed (and maybe started). Reading another user's
    // process (CAP_SYS_PTRACE) is checked when the target is resolved.
    if cli.command.loads_probes() {
        crate::privileges::require(crate::privileges::PROBES, "load eBPF programs")?;
    }
    match cli.command {
        Command::Inspect(args) => inspect::run(args),
        Command::Funcs(args) => funcs::run(args),
        Command::Cache(args) => cache::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Hang(args) => hang::run(args),
        Command::Locks(args) => locks::run(args),
        Command::Ps(args) => ps::run(args),
        Command::Record(args) => replay::record(args),
        Command::Replay(args) => replay::replay(args),
        Command::Diff(args) => diff::run(args),
    }
}

//! The TARGET arguments every tracing subcommand shares.
use std::path::PathBuf;

use clap::Args;

use crate::target::{GatedChild, Process, resolve_command};

#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// Trace the running process with this pid.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Trace the running process whose executable has this name.
    #[arg(long)]
    pub exe: Option<String>,
    /// Trace the inner dev engine: the one `dagger-engine` started with
    /// `--network-name dagger-dev` (the engine under test of `dagger call engine-dev`).
    #[arg(long)]
    pub inner: bool,
    /// Start this command and trace it from its first instruction.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// A target, resolved: either a running process or a command held before exec.
pub enum Resolved {
    Running(Process),
    Spawn { program: PathBuf, argv: Vec<String> },
}

impl TargetArgs {
    pub fn resolve(&self) -> anyhow::Result<Resolved> {
        if let Some(pid) = self.pid {
            return Ok(Resolved::Running(Process::from_pid(pid)?));
        }
        if let Some(name) = &self.exe {
            return Ok(Resolved::Running(Process::from_exe_name(name)?));
        }
        if self.inner {
            return Ok(Resolved::Running(Process::inner_engine()?));
        }
        let program = resolve_command(&self.command[0])?;
        // The uprobe binds to the file's inode; a canonical path names it plainly.
        let program = program.canonicalize().unwrap_or(program);
        Ok(Resolved::Spawn {
            program,
            argv: self.command.clone(),
        })
    }
}

impl Resolved {
    /// The file to analyse and attach probes to.
    pub fn binary(&self) -> PathBuf {
        match self {
            Resolved::Running(p) => p.exe.clone(),
            Resolved::Spawn { program, .. } => program.clone(),
        }
    }

    /// Starts the command (held before exec) if this target is one.
    pub fn spawn(&self) -> anyhow::Result<Option<GatedChild>> {
        match self {
            Resolved::Running(_) => Ok(None),
            Resolved::Spawn { program, argv } => Ok(Some(GatedChild::spawn(program, argv)?)),
        }
    }
}

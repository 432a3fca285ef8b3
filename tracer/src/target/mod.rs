//! Finding and describing the traced process: by pid, by executable name, the inner dev
//! engine, or by spawning a command that is held before `exec` until the probes are attached.
//!
//! Process facts come from /proc through the `procfs` crate, read relative to one open
//! `/proc/PID` directory so that a pid reused in between cannot mix two processes' facts.
mod cgroup;
pub mod memory;
mod role;
mod scan;
mod spawn;
mod watch;

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use procfs::{ProcError, process::Process as ProcDir};

use crate::privileges::{self, Capability, MissingCapabilities};

pub use cgroup::container_hint;
pub use role::{EngineFlags, INNER_NETWORK_NAME, Role};
pub use scan::{BinaryFacts, GoProcess, Scan, scan_go_processes};
pub use spawn::{ChildExit, GatedChild};
pub use watch::process_exit;

/// The inode of the initial PID namespace (`PROC_PID_INIT_INO` in the kernel).
pub const PROC_PID_INIT_INO: u64 = 0xEFFF_FFFC;

/// The executable name of Dagger engines, inner and outer alike.
pub const ENGINE_EXE: &str = "dagger-engine";

/// Errors a user can hit while naming a target; each is one sentence with a hint.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("no process with pid {0} (hint: it may have exited; check with `ps -p {0}`)")]
    NoSuchPid(u32),
    /// Refused although the tracer holds CAP_SYS_PTRACE, or its capabilities are unknown.
    #[error(
        "cannot read /proc/{pid}/exe: {source} (hint: reading another user's process needs root or CAP_SYS_PTRACE; Yama's ptrace_scope or a security module such as AppArmor can refuse it even then)"
    )]
    ExeUnreadable { pid: u32, source: std::io::Error },
    /// `process_vm_readv` refused although the tracer holds CAP_SYS_PTRACE (or its
    /// capabilities are unknown).
    #[error(
        "not allowed to read the memory of process {pid}: {} (hint: Yama's kernel.yama.ptrace_scope, or a security module such as AppArmor, refuses it; ptrace_scope 1 lets a tracer without CAP_SYS_PTRACE read only its own children)",
        crate::output::os_error_text(.source)
    )]
    MemoryRefused { pid: u32, source: std::io::Error },
    /// Refused, and the tracer lacks CAP_SYS_PTRACE.
    #[error(transparent)]
    NotPermitted(#[from] MissingCapabilities),
    #[error(
        "no running process has the executable name `{0}` (hint: check `pgrep -a {0}`, or pass --pid)"
    )]
    NoSuchExe(String),
    #[error("{count} processes are named `{name}`; choose one with --pid:\n{list}{hint}")]
    AmbiguousExe {
        name: String,
        count: usize,
        list: String,
        /// Empty, or a line naming the inner dev engine among them.
        hint: String,
    },
    #[error(
        "no inner dev engine (a `dagger-engine` started with --network-name dagger-dev) is running (hint: `tracer ps` lists Go processes; pass --pid){found}"
    )]
    NoInnerEngine {
        /// Empty, or the `dagger-engine` processes that are not inner.
        found: String,
    },
    #[error(
        "{count} inner dev engines (--network-name dagger-dev) are running; choose one with --pid:\n{list}"
    )]
    AmbiguousInner { count: usize, list: String },
    #[error("command `{0}` not found (hint: give a path, or check PATH)")]
    CommandNotFound(String),
    #[error("could not start `{command}`: {source}")]
    SpawnFailed {
        command: String,
        source: std::io::Error,
    },
}

/// A running process we attach to.
#[derive(Debug, Clone)]
pub struct Process {
    /// The pid in the tracer's PID namespace (what `--pid` takes).
    pub pid: u32,
    /// `/proc/PID/exe`: opens the mapped file even when it lives in another mount
    /// namespace (a container), and uprobes bind to that inode.
    pub exe: PathBuf,
    /// Where `/proc/PID/exe` points: the executable's path as the process itself sees it
    /// (in its own mount namespace), with ` (deleted)` if the file was removed.
    pub exe_link: PathBuf,
    /// The arguments, `argv[0]` first.
    pub argv: Vec<String>,
    /// The arguments joined by spaces.
    pub cmdline: String,
    /// `NSpid` as this tracer's /proc shows it: first the pid in the tracer's PID namespace,
    /// last the pid in the process's own namespace (one entry when they are the same).
    pub ns_pids: Vec<u32>,
    /// How many PID namespaces below the tracer's the process lives (`ns_pids.len() - 1`).
    pub pid_ns_depth: usize,
    /// The pid in the initial PID namespace; known only when the tracer runs there.
    pub host_pid: Option<u32>,
    /// Inode of the process's PID namespace (`/proc/PID/ns/pid`), if readable.
    pub pid_ns: Option<u64>,
    /// The container the process runs in, from `/proc/PID/cgroup`: a runtime and a short
    /// id (`docker:0123456789ab`), or the cgroup path; `None` in the root cgroup.
    pub container: Option<String>,
}

impl Process {
    pub fn from_pid(pid: u32) -> Result<Process, TargetError> {
        let dir = open_pid(pid)?;
        let exe_link = dir.exe().map_err(|e| match e {
            ProcError::NotFound(_) => TargetError::NoSuchPid(pid),
            e => ptrace_refused(&dir, pid, io_error(e))
                .unwrap_or_else(|source| TargetError::ExeUnreadable { pid, source }),
        })?;
        // The executable itself must be readable too: mode 0711 keeps it from anyone
        // without CAP_DAC_READ_SEARCH, however the process may be read.
        if let Err(e) = fs::File::open(format!("/proc/{pid}/exe"))
            && e.kind() == std::io::ErrorKind::PermissionDenied
        {
            let missing = privileges::missing(&[Capability::DacReadSearch]);
            if !missing.is_empty() {
                return Err(TargetError::NotPermitted(MissingCapabilities {
                    action: format!(
                        "read the executable of process {pid} ({})",
                        exe_link.display()
                    ),
                    missing,
                    refusal: Some(e.into()),
                }));
            }
        }
        Ok(Process::describe(&dir, pid, exe_link))
    }

    /// Reads every fact but the executable from an open `/proc/PID`; facts that cannot be
    /// read (a process exiting meanwhile) are left at their neutral value.
    fn describe(dir: &ProcDir, pid: u32, exe_link: PathBuf) -> Process {
        let argv = read_argv(dir);
        let ns_pids = dir
            .status()
            .ok()
            .and_then(|s| s.nspid)
            .map(|ids| ids.into_iter().map(|id| id as u32).collect::<Vec<_>>())
            .filter(|ids| !ids.is_empty())
            .unwrap_or_else(|| vec![pid]);
        let pid_ns = dir
            .namespaces()
            .ok()
            .and_then(|ns| ns.0.get(std::ffi::OsStr::new("pid")).map(|n| n.identifier));
        let container = dir.cgroups().ok().and_then(|groups| {
            container_hint(
                groups
                    .0
                    .iter()
                    .map(|g| (g.hierarchy, g.controllers.as_slice(), g.pathname.as_str())),
            )
        });
        Process {
            pid,
            exe: PathBuf::from(format!("/proc/{pid}/exe")),
            exe_link,
            cmdline: argv.join(" "),
            argv,
            pid_ns_depth: ns_pids.len() - 1,
            host_pid: tracer_in_init_pid_ns().then_some(ns_pids[0]),
            ns_pids,
            pid_ns,
            container,
        }
    }

    /// The pid inside the process's own PID namespace.
    pub fn ns_pid(&self) -> u32 {
        *self.ns_pids.last().unwrap_or(&self.pid)
    }

    /// The engine flags on the command line (`--network-name`, `--addr`, `--debugaddr`).
    pub fn engine_flags(&self) -> EngineFlags {
        EngineFlags::parse(&self.argv)
    }

    /// Finds the single process whose executable (or comm) is `name`.
    pub fn from_exe_name(name: &str) -> Result<Process, TargetError> {
        let found = processes_named(name);
        match found.as_slice() {
            [] => Err(TargetError::NoSuchExe(name.to_string())),
            [(pid, _)] => Process::from_pid(*pid),
            many => {
                let described = describe_all(many);
                let inner: Vec<&Process> = described
                    .iter()
                    .filter(|p| p.engine_flags().is_inner())
                    .collect();
                let hint = match inner.as_slice() {
                    [one] => format!(
                        "\nhint: pass --pid {} (the inner dev engine: --network-name {INNER_NETWORK_NAME}) or --inner",
                        one.pid
                    ),
                    _ => String::new(),
                };
                Err(TargetError::AmbiguousExe {
                    name: name.to_string(),
                    count: many.len(),
                    list: list_lines(&described),
                    hint,
                })
            }
        }
    }

    /// Finds the inner dev engine of the debugging guide: the one `dagger-engine` whose
    /// command line has `--network-name dagger-dev`.
    pub fn inner_engine() -> Result<Process, TargetError> {
        let described = describe_all(&processes_named(ENGINE_EXE));
        let (inner, other): (Vec<Process>, Vec<Process>) = described
            .into_iter()
            .partition(|p| p.engine_flags().is_inner());
        match inner.as_slice() {
            [] => Err(TargetError::NoInnerEngine {
                found: if other.is_empty() {
                    String::new()
                } else {
                    format!("\n`{ENGINE_EXE}` processes found:\n{}", list_lines(&other))
                },
            }),
            [_] => Ok(inner.into_iter().next().expect("one")),
            many => Err(TargetError::AmbiguousInner {
                count: many.len(),
                list: list_lines(many),
            }),
        }
    }

    pub fn is_alive(&self) -> bool {
        is_alive(self.pid)
    }
}

/// A refusal to read process `pid`, as the sentence naming CAP_SYS_PTRACE when the tracer
/// lacks it; any other error is handed back.
fn ptrace_refused(
    dir: &ProcDir,
    pid: u32,
    err: std::io::Error,
) -> Result<TargetError, std::io::Error> {
    if err.kind() != std::io::ErrorKind::PermissionDenied {
        return Err(err);
    }
    let missing = privileges::missing(&[Capability::SysPtrace]);
    if missing.is_empty() {
        return Err(err);
    }
    // The owner is readable by anyone (the owner of /proc/PID).
    let owner = dir
        .uid()
        .map_or(String::new(), |uid| format!(" of user {uid}"));
    Ok(TargetError::NotPermitted(MissingCapabilities {
        action: format!("read process {pid}{owner}"),
        missing,
        refusal: Some(err.into()),
    }))
}

/// One line per process for a refusal: pid, where it lives, what it runs.
fn list_lines(processes: &[Process]) -> String {
    processes
        .iter()
        .map(|p| {
            let place = if p.pid_ns_depth == 0 {
                String::new()
            } else {
                format!(
                    "[pid {} in a PID namespace {} deep]  ",
                    p.ns_pid(),
                    p.pid_ns_depth
                )
            };
            let role = match p.engine_flags().is_inner() {
                true => "  <- inner dev engine",
                false => "",
            };
            format!("  {}  {place}{}{role}", p.pid, p.cmdline)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Describes the listed processes, leaving out any that exited meanwhile.
fn describe_all(found: &[(u32, PathBuf)]) -> Vec<Process> {
    found
        .iter()
        .filter_map(|(pid, exe_link)| {
            let dir = ProcDir::new(*pid as i32).ok()?;
            Some(Process::describe(&dir, *pid, exe_link.clone()))
        })
        .collect()
}

/// Processes (not this one) whose executable's file name or comm is `name`, with where
/// their `/proc/PID/exe` points, by pid.
fn processes_named(name: &str) -> Vec<(u32, PathBuf)> {
    let me = std::process::id();
    let mut found: Vec<(u32, PathBuf)> = all_processes()
        .filter(|dir| dir.pid() as u32 != me)
        .filter_map(|dir| {
            let exe_link = dir.exe().ok();
            let by_exe = exe_link
                .as_deref()
                .is_some_and(|l| exe_file_name(l) == name);
            let by_comm = || {
                dir.stat()
                    .is_ok_and(|s| !s.comm.is_empty() && s.comm == truncate_comm(name))
            };
            (by_exe || by_comm()).then(|| (dir.pid() as u32, exe_link.unwrap_or_default()))
        })
        .collect();
    found.sort_by_key(|(pid, _)| *pid);
    found
}

/// The file name of an `/proc/PID/exe` target, without the ` (deleted)` mark.
fn exe_file_name(link: &Path) -> String {
    let link = link.to_string_lossy();
    link.trim_end_matches(" (deleted)")
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string()
}

/// Every process this tracer's /proc shows (thread groups, not threads).
fn all_processes() -> impl Iterator<Item = ProcDir> {
    procfs::process::all_processes()
        .into_iter()
        .flatten()
        .flatten()
}

fn open_pid(pid: u32) -> Result<ProcDir, TargetError> {
    if pid == 0 || pid > i32::MAX as u32 {
        return Err(TargetError::NoSuchPid(pid));
    }
    ProcDir::new(pid as i32).map_err(|_| TargetError::NoSuchPid(pid))
}

/// Whether this tracer runs in the initial PID namespace, where the pids /proc shows are
/// the host's.
pub fn tracer_in_init_pid_ns() -> bool {
    static IN_INIT: OnceLock<bool> = OnceLock::new();
    *IN_INIT.get_or_init(|| {
        ProcDir::myself()
            .and_then(|me| me.namespaces())
            .ok()
            .and_then(|ns| {
                ns.0.get(std::ffi::OsStr::new("pid"))
                    .map(|n| n.identifier == PROC_PID_INIT_INO)
            })
            .unwrap_or(false)
    })
}

/// The process's arguments; a non-UTF-8 byte becomes U+FFFD rather than losing them all.
fn read_argv(dir: &ProcDir) -> Vec<String> {
    let mut raw = Vec::new();
    if dir
        .open_relative("cmdline")
        .and_then(|mut f| Ok(f.read_to_end(&mut raw)?))
        .is_err()
    {
        return Vec::new();
    }
    raw.split(|b| *b == 0)
        .filter(|part| !part.is_empty())
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect()
}

/// A procfs error as the I/O error it stands for.
pub(crate) fn io_error(e: ProcError) -> std::io::Error {
    use std::io::{Error, ErrorKind};
    match e {
        ProcError::Io(e, _) => e,
        ProcError::PermissionDenied(_) => Error::from(ErrorKind::PermissionDenied),
        ProcError::NotFound(_) => Error::from(ErrorKind::NotFound),
        other => Error::other(other.to_string()),
    }
}

/// True while `/proc/PID` exists and the process is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    open_pid(pid).is_ok_and(|dir| dir.is_alive())
}

fn truncate_comm(name: &str) -> &str {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// The command line, arguments joined by spaces (empty if unreadable).
pub fn read_cmdline(pid: u32) -> String {
    open_pid(pid)
        .map(|dir| read_argv(&dir).join(" "))
        .unwrap_or_default()
}

/// Resolves a command name like a shell does: a name with a slash is a path,
/// anything else is searched in PATH.
pub fn resolve_command(command: &str) -> Result<PathBuf, TargetError> {
    if command.contains('/') {
        let path = Path::new(command);
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(TargetError::CommandNotFound(command.to_string()))
        };
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .map(|dir| dir.join(command))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| TargetError::CommandNotFound(command.to_string()))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_itself_by_pid_and_rejects_missing_pid() {
        let me = Process::from_pid(std::process::id()).unwrap();
        assert!(me.is_alive());
        assert!(!me.cmdline.is_empty());
        assert_eq!(me.cmdline, me.argv.join(" "));
        assert_eq!(me.exe, Path::new(&format!("/proc/{}/exe", me.pid)));
        assert_eq!(me.exe_link, std::env::current_exe().unwrap());
        // The test runs in the PID namespace of its /proc: NSpid starts with our pid.
        assert_eq!(me.ns_pids[0], me.pid);
        assert_eq!(me.pid_ns_depth, me.ns_pids.len() - 1);
        assert_eq!(me.ns_pid(), *me.ns_pids.last().unwrap());
        assert_eq!(me.host_pid.is_some(), tracer_in_init_pid_ns());
        if let Some(host) = me.host_pid {
            assert_eq!(host, me.pid);
        }
        let own_ns = fs::metadata("/proc/self/ns/pid").map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.ino()
        });
        assert_eq!(me.pid_ns, own_ns.ok());
        assert!(matches!(
            Process::from_pid(0),
            Err(TargetError::NoSuchPid(0))
        ));
        let err = Process::from_pid(u32::MAX - 1).unwrap_err().to_string();
        assert!(err.starts_with("no process with pid"), "{err}");
    }

    #[test]
    fn resolves_commands_like_a_shell() {
        assert!(resolve_command("sh").unwrap().is_absolute());
        assert!(matches!(
            resolve_command("no-such-command-xyz"),
            Err(TargetError::CommandNotFound(_))
        ));
        assert!(resolve_command("/bin/sh").is_ok());
    }

    #[test]
    fn comm_truncation_keeps_fifteen_bytes() {
        assert_eq!(truncate_comm("dagger-engine"), "dagger-engine");
        assert_eq!(truncate_comm("a-very-long-binary-name"), "a-very-long-bin");
    }
}

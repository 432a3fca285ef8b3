//! Finding and describing the traced process: by pid, by executable name, or by
//! spawning a command that is held before `exec` until the probes are attached.
pub mod memory;
mod spawn;
mod watch;

use std::{
    fs,
    path::{Path, PathBuf},
};

pub use spawn::{ChildExit, GatedChild};
pub use watch::process_exit;

/// Errors a user can hit while naming a target; each is one sentence with a hint.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("no process with pid {0} (hint: it may have exited; check with `ps -p {0}`)")]
    NoSuchPid(u32),
    #[error("cannot read /proc/{pid}/exe: {source} (hint: tracing another process needs root)")]
    ExeUnreadable { pid: u32, source: std::io::Error },
    #[error(
        "no running process has the executable name `{0}` (hint: check `pgrep -a {0}`, or pass --pid)"
    )]
    NoSuchExe(String),
    #[error("{count} processes are named `{name}`; choose one with --pid:\n{list}")]
    AmbiguousExe {
        name: String,
        count: usize,
        list: String,
    },
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
    pub pid: u32,
    /// `/proc/PID/exe`: opens the mapped file even when it lives in another mount
    /// namespace (a container), and uprobes bind to that inode.
    pub exe: PathBuf,
    pub cmdline: String,
}

impl Process {
    pub fn from_pid(pid: u32) -> Result<Process, TargetError> {
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        if pid == 0 || !proc_dir.exists() {
            return Err(TargetError::NoSuchPid(pid));
        }
        let exe = proc_dir.join("exe");
        fs::read_link(&exe).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => TargetError::NoSuchPid(pid),
            _ => TargetError::ExeUnreadable { pid, source },
        })?;
        Ok(Process {
            pid,
            exe,
            cmdline: read_cmdline(pid),
        })
    }

    /// Finds the single process whose executable (or comm) is `name`.
    pub fn from_exe_name(name: &str) -> Result<Process, TargetError> {
        let me = std::process::id();
        let mut found = Vec::new();
        for pid in all_pids() {
            if pid != me && exe_name_matches(pid, name) {
                found.push(pid);
            }
        }
        match found.as_slice() {
            [] => Err(TargetError::NoSuchExe(name.to_string())),
            [pid] => Process::from_pid(*pid),
            many => Err(TargetError::AmbiguousExe {
                name: name.to_string(),
                count: many.len(),
                list: many
                    .iter()
                    .map(|pid| format!("  {pid}  {}", read_cmdline(*pid)))
                    .collect::<Vec<_>>()
                    .join("\n"),
            }),
        }
    }

    pub fn is_alive(&self) -> bool {
        is_alive(self.pid)
    }
}

/// True while `/proc/PID` exists and the process is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised comm, which may itself contain ')'.
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn all_pids() -> impl Iterator<Item = u32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
}

fn exe_name_matches(pid: u32, name: &str) -> bool {
    if let Ok(target) = fs::read_link(format!("/proc/{pid}/exe")) {
        let target = target.to_string_lossy();
        let base = target
            .trim_end_matches(" (deleted)")
            .rsplit('/')
            .next()
            .unwrap_or("");
        if base == name {
            return true;
        }
    }
    // comm is the kernel's 15-byte truncation of the name.
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|comm| !comm.trim_end().is_empty() && comm.trim_end() == truncate_comm(name))
}

fn truncate_comm(name: &str) -> &str {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

pub fn read_cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|part| !part.is_empty())
                .map(|part| String::from_utf8_lossy(part).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
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

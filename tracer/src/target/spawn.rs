//! Starting a command so that no call escapes the probes: the child is forked,
//! waits on a pipe before `exec`, and is released once every probe is attached.
use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::Path,
};

use super::TargetError;

/// A forked child held before `exec` of the traced command.
pub struct GatedChild {
    pub pid: u32,
    command: String,
    /// Writing one byte lets the child exec; closing it unwritten makes it exit.
    gate: Option<OwnedFd>,
    /// CLOEXEC pipe: EOF means exec succeeded, 4 bytes are the exec errno.
    exec_status: OwnedFd,
}

/// How the traced command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    Code(i32),
    Signal(i32),
}

impl ChildExit {
    /// The status a shell would report: the code, or 128 + signal.
    pub fn shell_status(self) -> i32 {
        match self {
            ChildExit::Code(c) => c,
            ChildExit::Signal(s) => 128 + s,
        }
    }
}

fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid 2-int array; on success both fds are ours.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: freshly created descriptors, owned exactly once.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl GatedChild {
    /// Forks a child that will exec `program` with `argv` once released.
    pub fn spawn(program: &Path, argv: &[String]) -> Result<GatedChild, TargetError> {
        let command = argv.join(" ");
        let fail = |source| TargetError::SpawnFailed {
            command: command.clone(),
            source,
        };
        // Everything the child needs is allocated before fork: after fork only
        // async-signal-safe calls are allowed.
        let invalid = || {
            fail(io::Error::new(
                io::ErrorKind::InvalidInput,
                "NUL byte in argument",
            ))
        };
        let c_program = CString::new(program.as_os_str().as_bytes()).map_err(|_| invalid())?;
        let c_args = argv
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| invalid())?;
        let mut c_argv: Vec<*const libc::c_char> = c_args.iter().map(|a| a.as_ptr()).collect();
        c_argv.push(std::ptr::null());

        let (gate_read, gate_write) = pipe_cloexec().map_err(fail)?;
        let (status_read, status_write) = pipe_cloexec().map_err(fail)?;
        // SAFETY: fork in a process that may have threads; the child only makes
        // async-signal-safe calls (read, write, prctl, execv, _exit) before exec.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(fail(io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: child side, async-signal-safe calls only.
            unsafe {
                // Our copies of the parent's ends: with the gate's write end open
                // here, the read below would never see the tracer go away.
                libc::close(gate_write.as_raw_fd());
                libc::close(status_read.as_raw_fd());
                let mut byte = 0u8;
                let n = loop {
                    let n = libc::read(gate_read.as_raw_fd(), (&raw mut byte).cast(), 1);
                    if n < 0 && *libc::__errno_location() == libc::EINTR {
                        continue;
                    }
                    break n;
                };
                if n != 1 {
                    // The tracer went away before attaching: do not run untraced.
                    libc::_exit(127);
                }
                // Capabilities granted to the tracer as ambient ones (setpriv, systemd's
                // AmbientCapabilities) would pass to the traced command through exec; it
                // runs with none of them. Failure (a kernel before 4.3) leaves nothing to clear.
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_CLEAR_ALL,
                    0,
                    0,
                    0,
                );
                libc::execv(c_program.as_ptr(), c_argv.as_ptr());
                let errno = *libc::__errno_location();
                libc::write(status_write.as_raw_fd(), (&raw const errno).cast(), 4);
                libc::_exit(127);
            }
        }
        drop(gate_read);
        drop(status_write);
        Ok(GatedChild {
            pid: pid as u32,
            command,
            gate: Some(gate_write),
            exec_status: status_read,
        })
    }

    /// Lets the child exec the command; fails if exec itself failed.
    pub fn release(&mut self) -> Result<(), TargetError> {
        let Some(gate) = self.gate.take() else {
            return Ok(());
        };
        let byte = 1u8;
        // SAFETY: writing one byte from a valid buffer to our pipe.
        unsafe { libc::write(gate.as_raw_fd(), (&raw const byte).cast(), 1) };
        drop(gate);
        let mut errno = 0i32;
        // SAFETY: reading at most 4 bytes into a 4-byte integer.
        let n = unsafe { libc::read(self.exec_status.as_raw_fd(), (&raw mut errno).cast(), 4) };
        if n == 4 {
            return Err(TargetError::SpawnFailed {
                command: self.command.clone(),
                source: io::Error::from_raw_os_error(errno),
            });
        }
        Ok(())
    }

    /// Blocks until the child ends.
    pub fn wait(&self) -> io::Result<ChildExit> {
        wait_pid(self.pid, 0).map(|status| status.expect("a blocking wait returns a status"))
    }

    /// The child's status if it has ended, without blocking.
    pub fn try_wait(&self) -> io::Result<Option<ChildExit>> {
        wait_pid(self.pid, libc::WNOHANG)
    }
}

impl Drop for GatedChild {
    fn drop(&mut self) {
        // A child never released exits at once when the gate closes; reap it.
        if self.gate.take().is_some() {
            let _ = wait_pid(self.pid, 0);
        }
    }
}

/// `waitpid` with `flags`; `None` when `WNOHANG` is given and the child still runs.
fn wait_pid(pid: u32, flags: libc::c_int) -> io::Result<Option<ChildExit>> {
    let mut status = 0;
    loop {
        // SAFETY: waiting on our own child with a valid status pointer.
        let r = unsafe { libc::waitpid(pid as i32, &mut status, flags) };
        if r == pid as i32 {
            break;
        }
        if r == 0 {
            return Ok(None);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    if libc::WIFEXITED(status) {
        Ok(Some(ChildExit::Code(libc::WEXITSTATUS(status))))
    } else {
        Ok(Some(ChildExit::Signal(libc::WTERMSIG(status))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_runs_only_after_release_and_reports_status() {
        let argv = vec!["sh".to_string(), "-c".to_string(), "exit 7".to_string()];
        let mut child = GatedChild::spawn(Path::new("/bin/sh"), &argv).unwrap();
        // Held before exec: still our forked image, not sh.
        assert!(super::super::is_alive(child.pid));
        child.release().unwrap();
        assert_eq!(child.wait().unwrap(), ChildExit::Code(7));
    }

    #[test]
    fn exit_is_seen_without_blocking() {
        let argv = vec![
            "sh".to_string(),
            "-c".to_string(),
            "sleep 0.1; exit 3".to_string(),
        ];
        let mut child = GatedChild::spawn(Path::new("/bin/sh"), &argv).unwrap();
        child.release().unwrap();
        assert_eq!(child.try_wait().unwrap(), None);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Seen ended (a zombie) by its pidfd, then reaped.
        rt.block_on(super::super::process_exit(child.pid)).unwrap();
        assert_eq!(child.try_wait().unwrap(), Some(ChildExit::Code(3)));
    }

    #[test]
    fn exec_failure_is_reported() {
        let argv = vec!["/nonexistent".to_string()];
        let mut child = GatedChild::spawn(Path::new("/nonexistent/binary"), &argv).unwrap();
        let err = child.release().unwrap_err().to_string();
        assert!(err.contains("could not start"), "{err}");
        let _ = child.wait();
    }

    #[test]
    fn unreleased_child_exits_without_running() {
        let argv = vec!["sh".to_string(), "-c".to_string(), "exit 0".to_string()];
        let child = GatedChild::spawn(Path::new("/bin/sh"), &argv).unwrap();
        let pid = child.pid;
        drop(child);
        assert!(!super::super::is_alive(pid));
    }
}

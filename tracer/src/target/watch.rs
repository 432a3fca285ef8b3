//! Noticing that a process has exited, without polling where the kernel can tell us.
use std::{
    future::Future,
    io,
    os::fd::{FromRawFd, OwnedFd},
    time::Duration,
};

use tokio::io::{Interest, unix::AsyncFd};

/// How often a process is looked for when no pidfd can watch it.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// Resolves when process `pid` has exited (for our own child: when it is a zombie, not yet
/// reaped).
///
/// The pidfd is opened when this is called, not when the future is first polled: from then
/// on the watch is tied to this process, and a pid reused later cannot be mistaken for it.
/// A pidfd becomes readable as the whole thread group has exited, so the exit is seen at
/// once. Where there is none to be had (a thread id rather than a process, an old kernel),
/// `/proc/PID` is looked at every 50 ms instead.
pub fn process_exit(pid: u32) -> impl Future<Output = io::Result<()>> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    let opened = if raw < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: the descriptor was just created and is owned only here.
        Ok(unsafe { OwnedFd::from_raw_fd(raw as i32) })
    };
    async move {
        let fd = match opened {
            Ok(fd) => fd,
            // No such process: it is already gone.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(()),
            Err(_) => {
                while super::is_alive(pid) {
                    tokio::time::sleep(POLL_EVERY).await;
                }
                return Ok(());
            }
        };
        // SAFETY: the AsyncFd owns the OwnedFd, which stays open until both are dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(io::Error::from)?;
        let _ready = fd.readable().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn an_exit_is_seen_at_once() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .unwrap();
        let started = Instant::now();
        rt.block_on(async {
            let exited = process_exit(child.id());
            tokio::time::timeout(Duration::from_secs(5), exited)
                .await
                .expect("exit seen")
                .unwrap();
        });
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(150), "{waited:?}");
        assert!(waited < Duration::from_millis(600), "{waited:?}");
        child.wait().unwrap();
        // A process that is gone already (reaped) resolves at once.
        rt.block_on(process_exit(child.id())).unwrap();
    }
}

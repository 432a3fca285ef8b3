//! What the kernel must offer, checked once before anything is loaded, so that an older
//! kernel gets one sentence naming what is missing instead of a raw error mid-attach.
//!
//! Needed: multi-uprobe links with cookies and a pid filter (Linux 6.6), which imply the
//! BPF ring buffer (5.8) and attach cookies (5.15).
use std::path::Path;

use super::{ProbeError, error::not_permitted, multi::MultiProgram};

/// The oldest kernel with everything the tracer uses.
pub const MIN_KERNEL: (u32, u32) = (6, 6);

/// What the first trial load or link did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Supported,
    TooOld,
    /// Errno of the trial load (EPERM, EACCES: refused; else not supported).
    LoadFailed(i32),
    /// Errno of the trial link.
    LinkFailed(i32),
    Untrustworthy,
}

/// Checks the running kernel; the error is one sentence with a hint.
pub fn check() -> Result<(), ProbeError> {
    // Probed once per process; the error is rebuilt from the verdict (errors are not Clone).
    static VERDICT: std::sync::OnceLock<Verdict> = std::sync::OnceLock::new();
    let release = kernel_release();
    let io = std::io::Error::from_raw_os_error;
    match *VERDICT.get_or_init(|| probe_kernel(&release)) {
        Verdict::Supported => Ok(()),
        Verdict::TooOld => Err(ProbeError::KernelTooOld { release }),
        Verdict::LoadFailed(code @ (libc::EPERM | libc::EACCES)) => {
            Err(not_permitted("load eBPF programs", io(code)))
        }
        Verdict::LinkFailed(code @ (libc::EPERM | libc::EACCES)) => {
            Err(not_permitted("attach uprobes", io(code)))
        }
        Verdict::LoadFailed(code) | Verdict::LinkFailed(code) => Err(ProbeError::NoMultiUprobe {
            release,
            source: io(code),
        }),
        Verdict::Untrustworthy => Err(ProbeError::Untrustworthy),
    }
}

fn probe_kernel(release: &str) -> Verdict {
    if let Some(version) = parse_release(release)
        && version < MIN_KERNEL
    {
        return Verdict::TooOld;
    }
    // A two-instruction program loaded as a multi-uprobe program, then linked to a path
    // that is not a regular file: a kernel with multi-uprobe links answers EBADF.
    let program = match MultiProgram::trivial() {
        Ok(p) => p,
        Err(e) => return Verdict::LoadFailed(super::error::os_code(&e).unwrap_or(libc::EINVAL)),
    };
    match program.attach(Path::new("/"), &[0], &[0], 0) {
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => Verdict::Supported,
        Err(e) => Verdict::LinkFailed(e.raw_os_error().unwrap_or(libc::EINVAL)),
        Ok(_) => Verdict::Untrustworthy,
    }
}

fn kernel_release() -> String {
    // SAFETY: utsname is plain data; uname fills it.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return "unknown".into();
    }
    let bytes: Vec<u8> = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `6.18.44-fc` -> (6, 18).
fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_parse() {
        assert_eq!(parse_release("6.18.44-fc-v1045"), Some((6, 18)));
        assert_eq!(parse_release("5.15.0"), Some((5, 15)));
        assert!(parse_release("5.15.0").unwrap() < MIN_KERNEL);
        assert_eq!(parse_release("weird"), None);
    }
}

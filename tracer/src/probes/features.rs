//! What the kernel must offer, checked once before anything is loaded, so that an older
//! kernel gets one sentence naming what is missing instead of a raw error mid-attach.
//!
//! Needed: multi-uprobe links with cookies and a pid filter (Linux 6.6), which imply the
//! BPF ring buffer (5.8) and attach cookies (5.15).
use std::path::Path;

use super::multi::MultiProgram;

/// The oldest kernel with everything the tracer uses.
pub const MIN_KERNEL: (u32, u32) = (6, 6);

/// Checks the running kernel; `Err` is one sentence with a hint.
pub fn check() -> Result<(), String> {
    static RESULT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    RESULT.get_or_init(probe_kernel).clone()
}

fn probe_kernel() -> Result<(), String> {
    let release = kernel_release();
    if let Some(version) = parse_release(&release)
        && version < MIN_KERNEL
    {
        return Err(format!(
            "Linux {release} is too old: the tracer needs multi-uprobe links (Linux {}.{} or newer) (hint: run it on a newer kernel)",
            MIN_KERNEL.0, MIN_KERNEL.1
        ));
    }
    // A two-instruction program loaded as a multi-uprobe program, then linked to a path
    // that is not a regular file: a kernel with multi-uprobe links answers EBADF.
    // A refusal for want of privileges is classified (and hinted) by the loader.
    let program = MultiProgram::trivial()
        .map_err(|e| format!("cannot load a multi-uprobe program on Linux {release}: {e}"))?;
    match program.attach(Path::new("/"), &[0], &[0], 0) {
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            Err(format!("attaching uprobes was refused: {e}"))
        }
        Err(e) => Err(format!(
            "Linux {release} does not offer multi-uprobe links ({e}); the tracer needs them (Linux {}.{} or newer with CONFIG_UPROBES)",
            MIN_KERNEL.0, MIN_KERNEL.1
        )),
        Ok(_) => Err("the kernel accepted a uprobe on a directory; refusing to trust it".into()),
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

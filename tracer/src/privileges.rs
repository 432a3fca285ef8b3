//! Which Linux capabilities the tracer holds and which a run needs, checked before anything
//! is loaded or read, so that a missing one is named in one sentence with a hint instead of
//! surfacing as a bare EPERM from deep inside a `bpf()` call.
//!
//! What needs what was measured on Linux 6.18 (README, "Privileges"): loading the programs,
//! creating the maps and attaching multi-uprobe links need CAP_BPF and CAP_PERFMON (the
//! kernel counts CAP_SYS_ADMIN as both); reading a process of another user (`/proc/PID/exe`,
//! `/proc/PID/maps`, `process_vm_readv`) needs CAP_SYS_PTRACE. BPF memory is charged to the
//! cgroup since Linux 5.11, so RLIMIT_MEMLOCK plays no part on the kernels the tracer runs on.
use std::fmt;

/// A capability the tracer may need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    Bpf,
    Perfmon,
    SysPtrace,
    /// Only to read an executable the tracer's user may not read (mode 0711).
    DacReadSearch,
}

/// What the hint proposes to grant: everything but an unreadable executable needs.
const USUAL: &[Capability] = &[Capability::Bpf, Capability::Perfmon, Capability::SysPtrace];

/// What loading and attaching the probes needs.
pub const PROBES: &[Capability] = &[Capability::Bpf, Capability::Perfmon];

/// `CAP_SYS_ADMIN`'s bit: the kernel accepts it in place of CAP_BPF and CAP_PERFMON
/// (`bpf_capable()`, `perfmon_capable()`).
const CAP_SYS_ADMIN: u32 = 21;

impl Capability {
    /// The bit in the capability sets (linux/capability.h).
    fn bit(self) -> u32 {
        match self {
            Capability::DacReadSearch => 2,
            Capability::SysPtrace => 19,
            Capability::Perfmon => 38,
            Capability::Bpf => 39,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Capability::Bpf => "CAP_BPF",
            Capability::Perfmon => "CAP_PERFMON",
            Capability::SysPtrace => "CAP_SYS_PTRACE",
            Capability::DacReadSearch => "CAP_DAC_READ_SEARCH",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An effective capability set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held(u64);

impl Held {
    /// This process's effective set as the kernel will judge it, or `None` when that cannot
    /// be known: `/proc/self/status` unreadable, or a user namespace other than the initial
    /// one (the kernel checks CAP_BPF and CAP_PERFMON there, unless a BPF token delegates
    /// them, which only trying shows).
    pub fn current() -> Option<Held> {
        if !in_initial_user_ns()? {
            return None;
        }
        let status = procfs::process::Process::myself().ok()?.status().ok()?;
        Some(Held(status.capeff))
    }

    pub fn has(self, cap: Capability) -> bool {
        let set = |bit: u32| self.0 & (1u64 << bit) != 0;
        set(cap.bit())
            || (matches!(cap, Capability::Bpf | Capability::Perfmon) && set(CAP_SYS_ADMIN))
    }

    /// The capabilities of `needed` this set lacks, in `needed`'s order.
    pub fn missing(self, needed: &[Capability]) -> Vec<Capability> {
        needed.iter().copied().filter(|c| !self.has(*c)).collect()
    }
}

/// Capabilities of `needed` this process lacks; empty when it holds them all or when that
/// cannot be known (then the kernel decides, and its EPERM is reported the same way).
pub fn missing(needed: &[Capability]) -> Vec<Capability> {
    Held::current().map_or_else(Vec::new, |held| held.missing(needed))
}

/// `/proc/self/ns/user` is the initial user namespace (`PROC_USER_INIT_INO`).
fn in_initial_user_ns() -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    const PROC_USER_INIT_INO: u64 = 0xEFFF_FFFD;
    let meta = std::fs::metadata("/proc/self/ns/user").ok()?;
    Some(meta.ino() == PROC_USER_INIT_INO)
}

/// How to grant the usual capabilities and `missing`: the end of every privilege error.
pub fn hint(missing: &[Capability]) -> String {
    let mut grant = USUAL.to_vec();
    grant.extend(missing.iter().filter(|c| !USUAL.contains(c)));
    let setcap: Vec<String> = grant.iter().map(|c| c.name().to_lowercase()).collect();
    let docker: Vec<String> = grant
        .iter()
        .map(|c| format!("--cap-add {}", &c.name()["CAP_".len()..]))
        .collect();
    format!(
        "hint: run as root, or grant the capabilities with `sudo setcap {}+ep $(which tracer)`, or in Docker `docker run {} ...`",
        setcap.join(","),
        docker.join(" ")
    )
}

/// A run needs capabilities this process lacks. The same sentence whether the check made
/// before loading found it or the kernel's EPERM did; the kernel's error, if any, is kept.
#[derive(Debug, thiserror::Error)]
#[error("not allowed to {action}: the tracer lacks {} ({})", names(.missing), hint(.missing))]
pub struct MissingCapabilities {
    /// What was to be done, as "not allowed to ..." continues: "load eBPF programs".
    pub action: String,
    pub missing: Vec<Capability>,
    /// The kernel's refusal, when it was the kernel that said no.
    #[source]
    pub refusal: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Fails with one sentence naming what is missing, if anything of `needed` is; an
/// inconclusive check passes.
pub fn require(needed: &[Capability], action: &str) -> Result<(), MissingCapabilities> {
    let missing = missing(needed);
    if missing.is_empty() {
        return Ok(());
    }
    Err(MissingCapabilities {
        action: action.to_string(),
        missing,
        refusal: None,
    })
}

/// "CAP_BPF", "CAP_BPF and CAP_PERFMON", "CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE".
fn names(caps: &[Capability]) -> String {
    let names: Vec<&str> = caps.iter().map(|c| c.name()).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sys_admin_stands_for_bpf_and_perfmon_not_ptrace() {
        let admin = Held(1 << CAP_SYS_ADMIN);
        assert!(admin.has(Capability::Bpf) && admin.has(Capability::Perfmon));
        assert!(!admin.has(Capability::SysPtrace));
        let none = Held(0);
        assert_eq!(
            none.missing(&[Capability::Bpf, Capability::SysPtrace]),
            [Capability::Bpf, Capability::SysPtrace]
        );
        // CapEff of a process with exactly cap_bpf,cap_perfmon,cap_sys_ptrace.
        let least = Held(0x0000_00c0_0008_0000);
        assert!(least.missing(PROBES).is_empty());
        assert!(least.has(Capability::SysPtrace));
    }

    #[test]
    fn one_sentence_names_what_is_missing() {
        let err = MissingCapabilities {
            action: "load eBPF programs".into(),
            missing: vec![Capability::Bpf, Capability::Perfmon],
            refusal: None,
        };
        let text = err.to_string();
        assert!(
            text.starts_with(
                "not allowed to load eBPF programs: the tracer lacks CAP_BPF and CAP_PERFMON (hint: run as root, or grant"
            ),
            "{text}"
        );
        assert!(text.contains("setcap cap_bpf,cap_perfmon,cap_sys_ptrace+ep"));
        assert!(text.contains("--cap-add BPF --cap-add PERFMON --cap-add SYS_PTRACE"));
        assert!(!text.contains('\n'));
        assert_eq!(
            names(&[Capability::Bpf, Capability::Perfmon, Capability::SysPtrace]),
            "CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE"
        );
        // A capability beyond the usual three is added to what the hint grants.
        let extra = hint(&[Capability::DacReadSearch]);
        assert!(
            extra.contains("setcap cap_bpf,cap_perfmon,cap_sys_ptrace,cap_dac_read_search+ep"),
            "{extra}"
        );
        assert!(
            extra.contains("--cap-add SYS_PTRACE --cap-add DAC_READ_SEARCH ..."),
            "{extra}"
        );
    }

    #[test]
    fn the_current_set_is_read() {
        // The test runs somewhere with a /proc; whatever it holds, reading it works and a
        // set that holds everything it needs asks for nothing.
        if let Some(held) = Held::current() {
            let needed: Vec<Capability> =
                [Capability::Bpf, Capability::Perfmon, Capability::SysPtrace]
                    .into_iter()
                    .filter(|c| held.has(*c))
                    .collect();
            assert!(held.missing(&needed).is_empty());
        }
    }
}

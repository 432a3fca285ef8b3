//! What can go wrong loading and attaching the probes. Each error keeps its cause as its
//! `source` (aya's error, the kernel's errno) and is told apart by the errno found along
//! that chain, never by the text of a message. Each message is one sentence with a hint;
//! the verifier's log is kept aside for `--verbose` and `TRACER_VERIFIER_LOG`.
use std::{error::Error, io};

use tracer_common::MAX_SPECS;

use crate::privileges::{self, MissingCapabilities};

/// Any error, as a cause kept inside ours.
pub type Cause = Box<dyn Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "this tracer was built without its eBPF object (AYA_BUILD_SKIP was set); rebuild it with `cargo build --release`"
    )]
    NoObject,
    /// The kernel said EPERM or EACCES and the tracer lacks a capability it needs: the same
    /// sentence the check before loading gives.
    #[error(transparent)]
    MissingCapabilities(#[from] MissingCapabilities),
    /// The kernel said EPERM or EACCES although the tracer holds the capabilities (or they
    /// could not be read): something else refuses.
    #[error(
        "not allowed to {action}: {} (hint: run as root on the host; a seccomp profile, a Linux security module or a user namespace can refuse eBPF even with CAP_BPF and CAP_PERFMON)",
        chain_text(.source.as_ref())
    )]
    NotPermitted {
        action: &'static str,
        #[source]
        source: Cause,
    },
    #[error(
        "Linux {release} is too old: the tracer needs multi-uprobe links (Linux {}.{} or newer) (hint: run it on a newer kernel)",
        super::features::MIN_KERNEL.0, super::features::MIN_KERNEL.1
    )]
    KernelTooOld { release: String },
    #[error(
        "Linux {release} does not offer multi-uprobe links ({}); the tracer needs them (hint: Linux {}.{} or newer with CONFIG_UPROBES)",
        crate::output::os_error_text(.source),
        super::features::MIN_KERNEL.0, super::features::MIN_KERNEL.1
    )]
    NoMultiUprobe {
        release: String,
        #[source]
        source: io::Error,
    },
    #[error("the kernel accepted a uprobe on a directory; refusing to trust it")]
    Untrustworthy,
    /// The verifier (or the kernel's loader) refused a program; `log` is what it said.
    #[error(
        "the kernel refused program {program}: {} (hint: `tracer -v` prints the verifier's log; TRACER_VERIFIER_LOG=FILE writes it whole to FILE)",
        crate::output::os_error_text(.source)
    )]
    Verifier {
        program: String,
        #[source]
        source: io::Error,
        log: String,
    },
    /// The object could not be parsed or relocated: a build problem, not the kernel's.
    #[error("the embedded eBPF object is unusable: {} (hint: rebuild the tracer)", chain_text(.source.as_ref()))]
    Object {
        #[source]
        source: Cause,
    },
    #[error(
        "not enough memory for the eBPF maps: {} (hint: a smaller --ring-mb, or a higher memory limit for the tracer's cgroup)",
        chain_text(.source.as_ref())
    )]
    OutOfMemory {
        #[source]
        source: Cause,
    },
    #[error("could not load the eBPF programs: {}", chain_text(.source.as_ref()))]
    Load {
        #[source]
        source: Cause,
    },
    #[error("map {0} is missing from the eBPF object (hint: rebuild the tracer)")]
    MapMissing(&'static str),
    #[error("could not use map {name}: {}", chain_text(.source))]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("more than {MAX_SPECS} probe specs (hint: trace fewer functions or sites)")]
    TooManySpecs,
    #[error("could not attach a uprobe at file offset {offset:#x} of {path}: {reason}")]
    Attach {
        path: String,
        offset: u64,
        reason: String,
    },
    #[error(
        "could not attach uprobes to {path}: {} (hint: was the file removed or replaced?)",
        crate::output::os_error_text(.source)
    )]
    FileGone {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot read {path} to check the instructions to probe: {}",
        crate::output::os_error_text(.source)
    )]
    FileUnreadable {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "process {0} is gone, so its probes could not be attached (hint: check that it is still running)"
    )]
    ProcessGone(u32),
}

impl ProbeError {
    /// The verifier's log, when the kernel refused a program and said why.
    pub fn verifier_log(&self) -> Option<&str> {
        match self {
            ProbeError::Verifier { log, .. } if !log.trim().is_empty() => Some(log),
            _ => None,
        }
    }
}

/// The errno of the first OS error along `err`'s chain of causes.
pub fn os_code(err: &(dyn Error + 'static)) -> Option<i32> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(code) = e
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
        {
            return Some(code);
        }
        next = e.source();
    }
    None
}

/// A failure of `action`, classified by the errno along its chain: EPERM or EACCES is a
/// privilege problem (named capabilities when the tracer lacks some), ENOMEM the maps'
/// memory, anything else a load failure.
pub fn classify(action: &'static str, err: impl Into<Cause>) -> ProbeError {
    let err = err.into();
    match os_code(err.as_ref()) {
        Some(libc::EPERM | libc::EACCES) => not_permitted(action, err),
        Some(libc::ENOMEM) => ProbeError::OutOfMemory { source: err },
        _ => ProbeError::Load { source: err },
    }
}

/// The kernel's EPERM or EACCES for `action`, as the capability sentence when the tracer
/// lacks a capability the probes need.
pub fn not_permitted(action: &'static str, err: impl Into<Cause>) -> ProbeError {
    let missing = privileges::missing(privileges::PROBES);
    if missing.is_empty() {
        return ProbeError::NotPermitted {
            action,
            source: err.into(),
        };
    }
    ProbeError::MissingCapabilities(MissingCapabilities {
        action: action.to_string(),
        missing,
        refusal: Some(err.into()),
    })
}

/// An error and its causes as one text, each said once: aya's errors often repeat their
/// source's words.
pub fn chain_text(err: &(dyn Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wrapper like aya's `MapError::CreateError`: its own words, the OS error as source.
    #[derive(Debug, thiserror::Error)]
    #[error("failed to create map `{name}`")]
    struct Wrapped {
        name: &'static str,
        #[source]
        io_error: io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("map error: {0}")]
    struct Outer(#[from] Wrapped);

    fn wrapped(code: i32) -> Outer {
        Outer(Wrapped {
            name: "EVENTS",
            io_error: io::Error::from_raw_os_error(code),
        })
    }

    #[test]
    fn the_errno_is_found_along_the_chain() {
        assert_eq!(os_code(&wrapped(libc::EPERM)), Some(libc::EPERM));
        assert_eq!(
            os_code(&Wrapped {
                name: "X",
                io_error: io::Error::other("no code")
            }),
            None
        );
        let text = chain_text(&wrapped(libc::ENOMEM));
        assert_eq!(
            text,
            "map error: failed to create map `EVENTS`: Cannot allocate memory (os error 12)"
        );
    }

    #[test]
    fn errors_are_classified_by_errno_not_by_text() {
        assert!(matches!(
            classify("create the eBPF maps", wrapped(libc::ENOMEM)),
            ProbeError::OutOfMemory { .. }
        ));
        assert!(matches!(
            classify("create the eBPF maps", wrapped(libc::EINVAL)),
            ProbeError::Load { .. }
        ));
        // Whatever the capabilities here, a refusal is a privilege error, cause kept.
        let err = classify("create the eBPF maps", wrapped(libc::EACCES));
        let text = err.to_string();
        assert!(
            text.starts_with("not allowed to create the eBPF maps: "),
            "{text}"
        );
        assert!(text.contains("(hint: run as root"), "{text}");
        assert_eq!(os_code(&err), Some(libc::EACCES));
        // A message that only says "Permission denied" in words is not a refusal.
        let words = io::Error::other("Permission denied");
        assert!(matches!(classify("x", words), ProbeError::Load { .. }));
    }

    #[test]
    fn the_verifier_log_stays_out_of_the_sentence() {
        let err = ProbeError::Verifier {
            program: "tracer_probe".into(),
            source: io::Error::from_raw_os_error(libc::EACCES),
            log: "0: (b7) r0 = 0\nR0 !read_ok\nprocessed 1 insns".into(),
        };
        let text = err.to_string();
        assert!(
            !text.contains('\n') && !text.contains("R0 !read_ok"),
            "{text}"
        );
        assert!(text.contains("tracer -v") && text.contains("TRACER_VERIFIER_LOG"));
        assert_eq!(
            err.verifier_log(),
            Some("0: (b7) r0 = 0\nR0 !read_ok\nprocessed 1 insns")
        );
    }
}

//! Turning "probe these instructions" into attached uprobes: loading the eBPF
//! object, attaching the generic programs with cookies, and reading the ring buffer.
mod captures;
mod error;
pub mod features;
mod loader;
mod multi;
pub mod plan;
mod reader;
pub mod sync;

pub use captures::CaptureBox;
pub use error::{ProbeError, chain_text, os_code};
pub use loader::{AttachedProbes, KernelFailures, LoadOptions};
pub use multi::MultiLink;
pub use reader::{Event, EventReader, MAX_PER_DRAIN};

/// How often the reader drains the ring buffer when the kernel has not woken it.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

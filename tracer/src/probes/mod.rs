//! Turning "probe these instructions" into attached uprobes: loading the eBPF
//! object, attaching the generic programs with cookies, and reading the ring buffer.
mod loader;
mod reader;

pub use loader::{AttachedProbes, LoadOptions, ProbeError};
pub use reader::EventReader;

//! A zero-instrumentation eBPF tracer for Go programs.
//!
//! The data path, one module per step: a Go binary is analysed ([`gobin`]) and a
//! process found ([`target`]) -> uprobes are attached and their raw events read
//! ([`probes`]) -> models rebuild calls from events ([`model`]) -> outputs render
//! them ([`output`]). [`privileges`] checks the capabilities a run needs before it starts.
//! [`recording`] keeps the raw events of a run for replay. [`cli`]
//! wires one pipeline per subcommand.
pub mod cli;
pub mod gobin;
pub mod model;
pub mod output;
pub mod privileges;
pub mod probes;
pub mod profiles;
pub mod recording;
pub mod target;

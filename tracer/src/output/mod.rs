//! Rendering: human-readable lines, JSON lines, and the exit summary.
pub mod cache;
pub mod calls;
pub mod format;
pub mod goroutines;
pub mod json;
pub mod locks;

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::Path,
};

/// Where records go: stdout (shared with a spawned target's own output) or a file.
pub fn record_sink(path: Option<&Path>) -> io::Result<Box<dyn Write + Send>> {
    Ok(match path {
        Some(p) => Box::new(BufWriter::new(File::create(p)?)),
        None => Box::new(BufWriter::new(io::stdout())),
    })
}

//! Rendering: human-readable lines, JSON lines, and the exit summary.
pub mod cache;
pub mod calls;
pub mod counters;
pub mod format;
pub mod goroutines;
pub mod json;
pub mod locks;
pub mod metrics;
pub mod otel;
pub mod perfetto;
pub mod records;

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::Path,
};

/// How records are written (`--format`; `--json` is `--format json`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Lines for a person.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
    /// A Perfetto trace (needs `-o FILE`): open it in ui.perfetto.dev.
    Perfetto,
}

impl Format {
    /// `--json` or `--format`, checked against `-o` (a Perfetto trace is binary).
    pub fn chosen(
        json: bool,
        format: Option<Format>,
        output: Option<&Path>,
    ) -> anyhow::Result<Format> {
        let f = if json {
            Format::Json
        } else {
            format.unwrap_or_default()
        };
        if f == Format::Perfetto && output.is_none() {
            anyhow::bail!(
                "a Perfetto trace is binary: give it a file (hint: --format perfetto -o run.pftrace)"
            );
        }
        Ok(f)
    }
}

/// Where records go: stdout (shared with a spawned target's own output) or a file.
pub fn record_sink(path: Option<&Path>) -> io::Result<Box<dyn Write + Send>> {
    Ok(match path {
        Some(p) => Box::new(BufWriter::new(File::create(p)?)),
        None => Box::new(BufWriter::new(io::stdout())),
    })
}

/// Opens `-o FILE` (or stdout) for the records, with a one-line error that says what to do.
/// Subcommands call it before loading or attaching anything, so a mistyped path costs
/// nothing and leaves no probe behind.
pub fn open_record_sink(path: Option<&Path>) -> anyhow::Result<Box<dyn Write + Send>> {
    record_sink(path).map_err(|e| {
        let shown = path.map_or("stdout".into(), |p| p.display().to_string());
        anyhow::anyhow!(
            "cannot write records to {shown}: {} (hint: {})",
            os_error_text(&e),
            path_hint(&e)
        )
    })
}

/// What to do about a file that cannot be created.
pub fn path_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::NotFound => "create the directory first",
        io::ErrorKind::PermissionDenied => "choose a directory you can write to",
        io::ErrorKind::IsADirectory => "give a file name, not a directory",
        io::ErrorKind::NotADirectory => "a part of the path is a file, not a directory",
        io::ErrorKind::ReadOnlyFilesystem => "choose a writable file system",
        _ => "check the path",
    }
}

/// An I/O error's text without the `(os error N)` suffix the standard library appends.
pub fn os_error_text(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_owned(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_one_line_with_a_hint() {
        let path = Path::new("/nonexistent-dir-of-tracer-tests/x.jsonl");
        let Err(err) = open_record_sink(Some(path)) else {
            panic!("opened a file in a missing directory");
        };
        assert_eq!(
            err.to_string(),
            "cannot write records to /nonexistent-dir-of-tracer-tests/x.jsonl: No such file or \
             directory (hint: create the directory first)"
        );
        let Err(err) = open_record_sink(Some(Path::new("/"))) else {
            panic!("opened a directory as a file");
        };
        assert!(err.to_string().contains("(hint: give a file name"), "{err}");
    }
}

/// The records' writer, shared by the incarnations of a followed target.
#[derive(Clone)]
pub struct SharedSink(std::sync::Arc<std::sync::Mutex<Box<dyn Write + Send>>>);

impl SharedSink {
    pub fn new(inner: Box<dyn Write + Send>) -> SharedSink {
        SharedSink(std::sync::Arc::new(std::sync::Mutex::new(inner)))
    }

    pub fn write_line(&self, line: &str) -> anyhow::Result<()> {
        let mut w = self.0.lock().expect("the sink is never poisoned");
        writeln!(w, "{line}")
            .and_then(|()| w.flush())
            .map_err(|e| anyhow::anyhow!("cannot write records: {}", os_error_text(&e)))
    }
}

impl Write for SharedSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .expect("the sink is never poisoned")
            .write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.lock().expect("the sink is never poisoned").flush()
    }
}

/// Records kept in memory (e.g. a replay that `diff` reads back).
#[derive(Clone, Default)]
pub struct MemorySink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl MemorySink {
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().expect("the sink is never poisoned"))
    }
}

impl Write for MemorySink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .expect("the sink is never poisoned")
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

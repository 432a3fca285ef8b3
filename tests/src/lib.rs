//! Shared helpers for the integration tests: building the Go programs under
//! tests/go, running the real `tracer` binary against them, and reading both the
//! tracer's records and the ground truth the programs write themselves.
//!
//! Every test here loads real eBPF programs. They require root and fail (never
//! skip) without it.
pub mod gobuild;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

use serde_json::Value;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

/// The release `tracer` binary that `cargo xtask test` builds first.
pub fn tracer_bin() -> PathBuf {
    let path = std::env::var_os("TRACER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/release/tracer"));
    assert!(
        path.is_file(),
        "{} is missing: run the tests through `cargo xtask test`, which builds it",
        path.display()
    );
    path
}

/// Panics unless we can load eBPF (root). Tests never skip quietly.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { geteuid() };
    assert_eq!(
        euid, 0,
        "integration tests load eBPF programs and must run as root"
    );
}

unsafe extern "C" {
    fn geteuid() -> u32;
}

/// A fresh scratch directory under target/ for one test.
pub fn scratch_dir(name: &str) -> PathBuf {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let dir = workspace_root().join("target/test-scratch").join(format!(
        "{name}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A private copy of `binary` (its own inode), for a test that attaches uprobes while other
/// tests may trace the same program: uprobes belong to the file, and tests running in
/// parallel must not share them.
pub fn private_copy(binary: &Path) -> PathBuf {
    let name = binary.file_name().expect("a file name");
    let copy = scratch_dir("bin").join(name);
    std::fs::copy(binary, &copy).expect("copy the test program");
    copy
}

pub fn tracer() -> Command {
    require_root();
    Command::new(tracer_bin())
}

/// Runs a command and returns its output, with its stderr echoed for test logs.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run command");
    eprintln!(
        "--- stderr of {:?}\n{}",
        cmd.get_program(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Parses a JSON-lines file (or text); panics on a malformed line.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

pub fn read_json_lines(path: &Path) -> Vec<Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    json_lines(&text)
}

/// Records of one kind (`"kind": ...`).
pub fn of_kind<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["kind"] == kind).collect()
}

pub fn as_u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
        .iter()
        .map(|x| {
            x.as_u64()
                .unwrap_or_else(|| panic!("expected an unsigned int, got {x}"))
        })
        .collect()
}

/// Go's int as the unsigned register value the tracer reports.
pub fn go_int_register(v: &Value) -> u64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("expected an int, got {v}")) as u64
}

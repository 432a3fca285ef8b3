//! Shared helpers for the integration tests: building the Go programs under
//! tests/go, running the real `tracer` binary against them, and reading both the
//! tracer's records and the ground truth the programs write themselves.
//!
//! Every test here loads real eBPF programs. They require root and fail (never
//! skip) without it.
mod background;
pub mod gobuild;
pub mod standins;

pub use background::BackgroundTracer;

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
    copy_executable(binary, &copy);
    copy
}

/// Copies an executable with `cp`, so the copy's write descriptor lives in that child only.
/// Copied in this process, the descriptor (close-on-exec, but open until exec) is inherited
/// by any child another test thread forks meanwhile, and exec of the copy then fails with
/// "Text file busy" (seen in CI: metrics, 2026-12-03).
pub fn copy_executable(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("--")
        .arg(from)
        .arg(to)
        .status()
        .expect("run cp");
    assert!(
        status.success(),
        "cp {} {}: {status}",
        from.display(),
        to.display()
    );
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

/// Runs a command to completion with a time limit; on timeout the command is killed
/// (SIGKILL) and the test fails. Its stderr is echoed for test logs.
pub fn run_with_timeout(cmd: &mut Command, limit: std::time::Duration) -> Output {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out_pipe.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err_pipe.read_to_end(&mut b);
        b
    });
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the command") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {limit:?}; killed");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let out = Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    };
    eprintln!(
        "--- stderr of {:?}\n{}",
        cmd.get_program(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Checks `tracer funcs --json` records of a run of `tests/go/matrix` against the truth
/// the program wrote (`-truth`): the same goroutine ids, per goroutine the same calls in
/// entry order (function, first argument, result, each returned), the per-function
/// counts of the program's "end" line, and a summary with that many calls and no lost
/// event. `at` names the case in failure messages.
pub fn assert_matrix_truth(at: &str, records: &[Value], truth: &[Value]) {
    use std::collections::BTreeMap;
    let ends = of_kind(truth, "end");
    assert_eq!(ends.len(), 1, "{at}: the program's truth has no end line");
    let end = ends[0];
    let truth_calls = of_kind(truth, "call");
    let total = end["total"].as_u64().expect("end.total") as usize;
    assert_eq!(truth_calls.len(), total, "{at}: truth lines vs its total");
    assert!(total > 0, "{at}: the program made no call");

    let mut want: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for c in &truth_calls {
        want.entry(c["goid"].as_u64().expect("truth goid"))
            .or_default()
            .push(c);
    }
    for calls in want.values_mut() {
        calls.sort_by_key(|c| c["seq"].as_u64());
    }
    let traced = of_kind(records, "func_call");
    let mut got: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for r in &traced {
        let goid = r["goid"]
            .as_u64()
            .unwrap_or_else(|| panic!("{at}: record without goroutine id: {r}"));
        got.entry(goid).or_default().push(r);
    }
    for calls in got.values_mut() {
        calls.sort_by_key(|r| r["start_ns"].as_u64());
    }
    let mut per_func: BTreeMap<String, u64> = BTreeMap::new();
    for r in &traced {
        *per_func
            .entry(r["func"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    let want_per_func: BTreeMap<String, u64> = end["calls"]
        .as_object()
        .expect("end.calls")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .filter(|(_, v)| *v > 0)
        .collect();
    assert_eq!(
        per_func, want_per_func,
        "{at}: calls per function, traced vs the program's own count"
    );
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{at}: goroutine ids, traced vs the program's own"
    );
    for (goid, want_calls) in &want {
        let got_calls = &got[goid];
        assert_eq!(
            got_calls.len(),
            want_calls.len(),
            "{at}: number of calls on goroutine {goid}"
        );
        for (i, (w, g)) in want_calls.iter().zip(got_calls).enumerate() {
            let here = format!("{at}: goroutine {goid} call #{i}: truth {w} traced {g}");
            assert_eq!(g["func"], w["func"], "{here}");
            assert_eq!(g["status"], "returned", "{here}");
            assert_eq!(
                g["args"][0].as_u64(),
                Some(go_int_register(&w["args"][0])),
                "{here}: first argument"
            );
            assert_eq!(
                g["ret"][0].as_u64(),
                Some(go_int_register(&w["ret"])),
                "{here}: result"
            );
        }
    }
    let summaries = of_kind(records, "summary");
    assert_eq!(summaries.len(), 1, "{at}: exactly one summary record");
    assert_eq!(summaries[0]["lost_events"], 0, "{at}: lost events");
    assert_eq!(summaries[0]["calls"], total, "{at}: summary calls");
}

/// `Command::spawn`, retried while exec says "Text file busy". Tests run in parallel threads
/// of one process: a child forked by one test holds (until its own exec) the write
/// descriptor of a binary another test is copying, and exec of that fresh copy fails with
/// ETXTBSY meanwhile. The window is short; a few retries close it.
pub trait SpawnRetrying {
    fn spawn_retrying(&mut self) -> std::io::Result<std::process::Child>;
}

impl SpawnRetrying for Command {
    fn spawn_retrying(&mut self) -> std::io::Result<std::process::Child> {
        const ETXTBSY: i32 = 26;
        let mut tries = 0;
        loop {
            match self.spawn() {
                Err(e) if e.raw_os_error() == Some(ETXTBSY) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => return other,
            }
        }
    }
}

/// The host pid of the process running `exe` (a private copy: exactly one).
pub fn host_pid_of(exe: &Path) -> Option<u32> {
    let exe = exe.canonicalize().ok()?;
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe"))
                .ok()
                .as_deref()
                == Some(&exe)
        })
}

/// Polls `cond` every 10 ms; fails the test after 30 s.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills and reaps the child when dropped, whether the test passed or not: for servers
/// a test starts (a receiver, Prometheus, etcd).
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Kills (and reaps) the child if the test panics while it runs.
pub struct KillOnDrop<'a>(pub &'a mut std::process::Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

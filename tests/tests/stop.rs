//! How tracing ends: SIGTERM and Ctrl-C stop the tracer within a second with its summary,
//! the attached process's exit likewise, and `--duration` with a spawned command leaves
//! the command running when the time is up.
use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use integration_tests::{
    BackgroundTracer as Tracer, SpawnRetrying, gobuild, json_lines, of_kind, private_copy,
    read_json_lines, scratch_dir, tracer,
};

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory preconditions.
    assert_eq!(unsafe { kill(pid as i32, sig) }, 0, "kill({pid}, {sig})");
}

/// Alive: `/proc/PID` exists and the process is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next());
        !matches!(state, Some("Z" | "X") | None)
    })
}

/// The funcs test program spinning: `main.add9` back to back with `interval` between calls.
struct Target {
    child: Child,
}

impl Target {
    fn spin(binary: &Path, interval: &str) -> Target {
        let child = Command::new(binary)
            .args(["-mode", "spin", "-seconds", "60", "-interval", interval])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn_retrying()
            .unwrap();
        Target { child }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn funcs_binary() -> PathBuf {
    private_copy(&gobuild::build_default("funcs", true).unwrap())
}

/// A signal to a tracer attached (two probes) to a busy program: it stops within about a
/// second, with its summary (JSON record and stderr) and the signal's exit status, and the
/// program goes on running.
fn stops_on_signal(sig: i32, status: i32) {
    let bin = funcs_binary();
    let mut target = Target::spin(&bin, "0s");
    let records = scratch_dir("stop").join("records.jsonl");
    let pid = target.child.id().to_string();
    let mut t = Tracer::start(
        &["funcs", "--match", r"main\.add9", "--json", "--pid", &pid],
        &records,
    );
    t.wait_attached();
    sleep(Duration::from_millis(500));
    let sent = Instant::now();
    signal(t.child.id(), sig);
    let (code, took) = t.wait_exit(sent);
    eprintln!("signal {sig}: the tracer exited {took:?} after it");
    assert_eq!(code, Some(status), "{:?}", t.seen);
    assert!(
        took < Duration::from_millis(1500),
        "took {took:?} to stop after signal {sig}"
    );
    let recs = read_json_lines(&records);
    let summary = of_kind(&recs, "summary");
    assert_eq!(summary.len(), 1, "one summary record");
    assert!(
        !of_kind(&recs, "func_call").is_empty(),
        "a busy program makes calls"
    );
    assert!(
        t.seen.iter().any(|l| l.contains("lost events")),
        "summary on stderr: {:?}",
        t.seen
    );
    assert!(
        target.child.try_wait().unwrap().is_none(),
        "target still runs"
    );
}

#[test]
fn sigterm_stops_with_the_summary_within_a_second() {
    stops_on_signal(SIGTERM, 128 + SIGTERM);
}

#[test]
fn sigint_stops_with_the_summary_within_a_second() {
    stops_on_signal(SIGINT, 128 + SIGINT);
}

#[test]
fn target_exit_ends_the_trace_within_a_second() {
    let bin = funcs_binary();
    let mut target = Target::spin(&bin, "1ms");
    let records = scratch_dir("stop").join("records.jsonl");
    let pid = target.child.id().to_string();
    let mut t = Tracer::start(
        &["funcs", "--match", r"main\.add9", "--json", "--pid", &pid],
        &records,
    );
    t.wait_attached();
    sleep(Duration::from_millis(300));
    // The program stops on SIGTERM (after writing its totals).
    signal(target.child.id(), SIGTERM);
    target.child.wait().unwrap();
    let exited = Instant::now();
    let (code, took) = t.wait_exit(exited);
    eprintln!("the tracer exited {took:?} after its target");
    assert_eq!(code, Some(0), "{:?}", t.seen);
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(of_kind(&read_json_lines(&records), "summary").len(), 1);
}

#[test]
fn duration_leaves_a_spawned_command_running() {
    let bin = funcs_binary();
    let dir = scratch_dir("stop");
    let (records, truth, log) = (
        dir.join("records.jsonl"),
        dir.join("truth.jsonl"),
        dir.join("stderr.txt"),
    );
    // The command's stdout and stderr are the tracer's: files, so that nothing waits for
    // the command to close a pipe.
    let started = Instant::now();
    let status = tracer()
        .args([
            "funcs",
            "--match",
            r"main\.add9",
            "--json",
            "--duration",
            "1",
        ])
        .arg("-o")
        .arg(&records)
        .arg("--")
        .arg(&bin)
        .args([
            "-mode",
            "spin",
            "-seconds",
            "60",
            "-interval",
            "1ms",
            "-truth",
        ])
        .arg(&truth)
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .status()
        .unwrap();
    let took = started.elapsed();
    let stderr = std::fs::read_to_string(&log).unwrap();
    eprintln!("{stderr}\n--duration 1 with a command: the tracer took {took:?}");
    let start = json_lines(&std::fs::read_to_string(&truth).unwrap())
        .into_iter()
        .find(|r| r["kind"] == "start")
        .expect("the command started");
    let pid = start["pid"].as_u64().unwrap() as u32;
    let still_running = alive(pid);
    if still_running {
        signal(pid, 9);
    }
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    assert!(still_running, "the command must outlive the tracer");
    assert!(stderr.contains("keeps running"), "{stderr}");
    let recs = read_json_lines(&records);
    assert_eq!(of_kind(&recs, "summary").len(), 1);
    assert!(
        of_kind(&recs, "func_call").len() >= 50,
        "about 1000 calls a second"
    );
}

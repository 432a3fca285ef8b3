//! `--follow`: the tracer waits for a program that is not running yet, traces it, and
//! attaches again when it is started anew; each incarnation's calls are exact.
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::SpawnRetrying;
use integration_tests::{gobuild, json_lines, of_kind, scratch_dir, tracer};
use serde_json::Value;

/// A tracer started with `--follow`, whose stderr lines are echoed and can be awaited.
struct Follower {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Follower {
    fn start(args: &[&str], records: &std::path::Path) -> Follower {
        let mut child = tracer()
            .args(args)
            .arg("-o")
            .arg(records)
            .stderr(Stdio::piped())
            .spawn_retrying()
            .expect("start the tracer");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("tracer: {line}");
                let _ = tx.send(line);
            }
        });
        Follower { child, lines }
    }

    /// Waits (60 s at most) for a stderr line containing `what`.
    fn wait_line(&self, what: &str) -> String {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the tracer never said {what:?}"));
            if line.contains(what) {
                return line;
            }
        }
    }

    /// SIGTERM, then the exit code, which must be 0: a followed trace ends cleanly.
    fn stop(mut self) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        assert_eq!(self.child.wait().unwrap().code(), Some(0));
    }
}

#[test]
fn follow_waits_for_the_target_and_reattaches_after_a_restart() {
    let built = gobuild::build_default("funcs", true).expect("build");
    let dir = scratch_dir("follow");
    // A name of its own (as a restarted dev engine keeps its name), under 15 bytes.
    let name = format!("fol{}", std::process::id() % 1_000_000);
    let binary = dir.join(&name);
    integration_tests::copy_executable(&built, &binary);
    let records = dir.join("records.jsonl");

    let follower = Follower::start(
        &[
            "funcs",
            "--match",
            "main\\.add9",
            "--json",
            "--follow",
            "--exe",
            &name,
            "--duration",
            "60",
        ],
        &records,
    );
    follower.wait_line("waiting for the target to start");

    // Two incarnations, each calling main.add9 80 times once the tracer is in.
    let mut pids = Vec::new();
    let mut truths = Vec::new();
    for run in 0..2 {
        let truth = dir.join(format!("truth{run}.jsonl"));
        let mut child = Command::new(&binary)
            .args(["-mode", "basic", "-goroutines", "2", "-calls", "40"])
            .args(["-leafcalls", "0", "-start-delay", "2s", "-truth"])
            .arg(&truth)
            .stdout(Stdio::null())
            .spawn_retrying()
            .expect("start the program");
        follower.wait_line(&format!("incarnation {}, pid {}", run + 1, child.id()));
        pids.push(child.id());
        assert!(child.wait().unwrap().success());
        truths.push(truth);
    }
    follower.wait_line("waiting for the target to start");
    follower.stop();

    let text = std::fs::read_to_string(&records).expect("records");
    let recs = json_lines(&text);
    let attaches = of_kind(&recs, "attach");
    assert_eq!(attaches.len(), 2, "{attaches:?}");
    for (i, (a, pid)) in attaches.iter().zip(&pids).enumerate() {
        assert_eq!(a["incarnation"], i as u64 + 1);
        assert_eq!(a["pid"], *pid);
        assert!(a["unix_ns"].as_u64().unwrap() > 0);
    }
    assert_eq!(
        of_kind(&recs, "summary").len(),
        2,
        "one summary per incarnation"
    );
    for (pid, truth) in pids.iter().zip(&truths) {
        let truth_text = std::fs::read_to_string(truth).expect("truth");
        let truth = json_lines(&truth_text);
        let expected: Vec<&Value> = truth
            .iter()
            .filter(|r| r["kind"] == "call" && r["func"] == "main.add9")
            .collect();
        let got: Vec<&Value> = of_kind(&recs, "func_call")
            .into_iter()
            .filter(|r| r["pid"] == *pid)
            .collect();
        assert_eq!(expected.len(), 80);
        assert_eq!(got.len(), expected.len(), "pid {pid}");
        let mut want: Vec<u64> = expected
            .iter()
            .map(|r| r["goid"].as_u64().unwrap())
            .collect();
        let mut have: Vec<u64> = got.iter().map(|r| r["goid"].as_u64().unwrap()).collect();
        want.sort_unstable();
        have.sort_unstable();
        assert_eq!(have, want, "pid {pid}: goroutine ids");
        assert!(got.iter().all(|r| r["status"] == "returned"));
    }
}

/// The stand-in engine restarted under `tracer cache --follow`: each incarnation's calls
/// (between its `attach` record and the next) equal that run's own record of its calls.
#[test]
fn cache_follow_traces_each_engine_incarnation() {
    let built = gobuild::build_default("engine", true).expect("build the engine");
    let dir = scratch_dir("follow-cache");
    let name = format!("eng{}", std::process::id() % 1_000_000);
    let binary = dir.join(&name);
    integration_tests::copy_executable(&built, &binary);
    let records = dir.join("records.jsonl");

    let follower = Follower::start(
        &[
            "cache",
            "--json",
            "--follow",
            "--exe",
            &name,
            "--duration",
            "90",
        ],
        &records,
    );
    follower.wait_line("waiting for the target to start");
    let mut truths = Vec::new();
    for run in 0..2 {
        let truth = dir.join(format!("truth{run}.jsonl"));
        let gate = dir.join(format!("gate{run}"));
        let mut engine = Command::new(&binary)
            .args(["-scenario", "hits", "-seed", &(run + 5).to_string()])
            .args(["-duration", "1s", "-start-gate"])
            .arg(&gate)
            .arg("-truth")
            .arg(&truth)
            .stdout(Stdio::null())
            .spawn_retrying()
            .expect("start the engine");
        // Probes are in once the tracer names the engine in this pid.
        follower.wait_line(&format!("probes in pid {}", engine.id()));
        std::fs::write(&gate, "").unwrap();
        assert!(engine.wait().unwrap().success());
        truths.push(truth);
    }
    follower.wait_line("waiting for the target to start");
    follower.stop();

    let text = std::fs::read_to_string(&records).expect("records");
    let recs = json_lines(&text);
    let starts: Vec<usize> = recs
        .iter()
        .enumerate()
        .filter(|(_, r)| r["kind"] == "attach")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 2, "two attach records");
    for (run, truth) in truths.iter().enumerate() {
        let end = starts.get(run + 1).copied().unwrap_or(recs.len());
        let segment = &recs[starts[run]..end];
        let got = of_kind(segment, "cache_call").len();
        let truth_text = std::fs::read_to_string(truth).expect("truth");
        let want = of_kind(&json_lines(&truth_text), "call").len();
        assert!(want > 0, "run {run}: the engine made calls");
        assert_eq!(got, want, "run {run}: cache calls of this incarnation");
        assert_eq!(of_kind(segment, "cache_summary").len(), 1, "run {run}");
    }
}

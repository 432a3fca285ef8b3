//! Attaching to a running process, by pid and by executable name, and leaving it
//! unharmed when the tracer is killed.
use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    os::unix::fs::FileExt,
    path::Path,
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use integration_tests::SpawnRetrying;
use integration_tests::{gobuild, json_lines, of_kind, read_json_lines, run, scratch_dir, tracer};
use serde_json::Value;

/// A spinning Go program that calls main.add9 every 2 ms and logs each call.
struct Spinner {
    child: Child,
    truth: std::path::PathBuf,
}

impl Spinner {
    fn start(binary: &Path) -> Spinner {
        let truth = scratch_dir("spin").join("truth.jsonl");
        let child = Command::new(binary)
            .args(["-mode", "spin", "-interval", "2ms", "-truth"])
            .arg(&truth)
            .stdout(Stdio::null())
            .spawn_retrying()
            .unwrap();
        let s = Spinner { child, truth };
        wait_for(|| s.truth_calls().len() >= 5, "the spinner to make calls");
        s
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn truth_calls(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.truth).unwrap_or_default();
        json_lines(&text)
            .into_iter()
            .filter(|v| v["kind"] == "call")
            .collect()
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        sleep(Duration::from_millis(20));
    }
}

fn count_calls(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter(|l| l.contains("\"func_call\"")).count()
}

fn read_target_byte(pid: u32, vaddr: u64) -> u8 {
    let mut mem = File::open(format!("/proc/{pid}/mem")).unwrap();
    mem.seek(SeekFrom::Start(vaddr)).unwrap();
    let mut b = [0u8; 1];
    mem.read_exact(&mut b).unwrap();
    b[0]
}

fn file_byte(path: &Path, offset: u64) -> u8 {
    let mut b = [0u8; 1];
    File::open(path)
        .unwrap()
        .read_exact_at(&mut b, offset)
        .unwrap();
    b[0]
}

#[test]
fn attach_by_pid_then_sigkill_leaves_the_target_running_and_unprobed() {
    let bin = gobuild::build_default("funcs", true).unwrap();
    let mut spinner = Spinner::start(&bin);
    let pid = spinner.pid();

    let plan_out =
        run(tracer()
            .arg("inspect")
            .arg(&bin)
            .args(["--json", "--match", r"main\.add9"]));
    let plan: Value = serde_json::from_slice(&plan_out.stdout).unwrap();
    let probe = &plan["matches"][0]["probe"];
    let mut points = vec![(
        probe["entry_vaddr"].as_u64().unwrap(),
        probe["entry_file_offset"].as_u64().unwrap(),
    )];
    for r in probe["rets"].as_array().unwrap() {
        points.push((
            r["vaddr"].as_u64().unwrap(),
            r["file_offset"].as_u64().unwrap(),
        ));
    }
    for &(vaddr, offset) in &points {
        assert_eq!(
            read_target_byte(pid, vaddr),
            file_byte(&bin, offset),
            "untouched before attaching"
        );
    }

    let records = scratch_dir("attach").join("records.jsonl");
    let mut tracer_proc = tracer()
        .args([
            "funcs",
            "--match",
            r"main\.add9",
            "--json",
            "--pid",
            &pid.to_string(),
            "-o",
        ])
        .arg(&records)
        .stderr(Stdio::null())
        .spawn_retrying()
        .unwrap();
    wait_for(
        || count_calls(&records) >= 20,
        "calls traced from the running process",
    );
    // While attached, every probe point holds the breakpoint instruction.
    for &(vaddr, _) in &points {
        assert_eq!(
            read_target_byte(pid, vaddr),
            0xcc,
            "int3 at {vaddr:#x} while attached"
        );
    }

    tracer_proc.kill().unwrap(); // SIGKILL: no chance to clean up in userspace
    tracer_proc.wait().unwrap();
    let seen_after_kill = spinner.truth_calls().len();
    sleep(Duration::from_millis(300));
    for &(vaddr, offset) in &points {
        assert_eq!(
            read_target_byte(pid, vaddr),
            file_byte(&bin, offset),
            "probe at {vaddr:#x} removed"
        );
    }
    assert!(spinner.alive(), "the target survives the tracer's death");
    wait_for(
        || spinner.truth_calls().len() > seen_after_kill + 10,
        "the target to keep calling",
    );

    // What was traced is real: each record is a call the program made, on its goroutine.
    let truth: Vec<(u64, Vec<u64>)> = spinner
        .truth_calls()
        .iter()
        .map(|c| {
            (
                c["goid"].as_u64().unwrap(),
                c["args"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_i64().unwrap() as u64)
                    .collect(),
            )
        })
        .collect();
    let traced = read_json_lines(&records);
    let calls = of_kind(&traced, "func_call");
    assert!(calls.len() >= 20);
    for c in calls.iter().filter(|c| c["status"] == "returned") {
        let goid = c["goid"].as_u64().unwrap();
        let args: Vec<u64> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_u64().unwrap())
            .collect();
        assert!(
            truth.iter().any(|(g, a)| *g == goid && *a == args),
            "traced call not in the truth: {c}"
        );
    }
}

#[test]
fn attach_by_executable_name_and_duration() {
    let bin = gobuild::build_default("funcs", true).unwrap();
    let dir = scratch_dir("exe");
    let name = format!("spin{}", std::process::id());
    let copy = dir.join(&name);
    integration_tests::copy_executable(&bin, &copy);
    let _spinner = Spinner::start(&copy);

    let records = dir.join("records.jsonl");
    let started = Instant::now();
    let out = run(tracer()
        .args([
            "funcs",
            "--match",
            r"main\.add9",
            "--json",
            "--duration",
            "1",
            "--exe",
            &name,
            "-o",
        ])
        .arg(&records));
    assert_eq!(out.status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(10));
    let recs = read_json_lines(&records);
    assert!(
        of_kind(&recs, "func_call").len() >= 50,
        "about 500 calls a second"
    );

    // A second process of the same name makes the name ambiguous.
    let _second = Spinner::start(&copy);
    let out = run(tracer().args(["funcs", "--match", r"main\.add9", "--exe", &name]));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("choose one with --pid"), "{stderr}");
}

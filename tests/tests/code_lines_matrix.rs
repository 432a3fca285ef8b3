//! The L3 (v0.21.x) and L4 (beta.8-10) stand-in engines built the other ways users build
//! and run Go programs: PIE, `-race`, an older (1.22) and the newest (1.27) Go, and run
//! inside a PID namespace traced from the host; L1 (v0.20.x) as PIE, with `-race` and on Go
//! 1.22 and 1.27, where its session layer's returns are read at call sites whose code the
//! compiler, the race detector or position-independent code changes. Each cell runs `tracer cache` over the
//! `mixed` scenario and compares every call, session, load hit, arbitrary-cache and
//! filesync outcome with the engine's own record, as `code_lines.rs` does for the default
//! build (Go 1.26, static executable).
use std::{process::Stdio, time::Duration};

use integration_tests::{
    KillOnDrop, SpawnRetrying,
    gobuild::{self, BuildOptions},
    host_pid_of, private_copy, read_json_lines, scratch_dir,
    standins::{
        Traced, assert_calls, assert_clean_run, assert_l1_run, assert_ownership_run, trace,
    },
    tracer, wait_for,
};

/// (program, build tags, the line `tracer cache` must detect, reads CacheDecision).
const L3: (&str, &str, &str, bool) = ("engine-l3", "", "L3", false);
const L4: (&str, &str, &str, bool) = ("engine-l4", "l4beta10", "L4 (beta.8-10)", true);
const L1: (&str, &str, &str, bool) = ("engine-l1", "", "L1", false);

fn build(line: (&str, &str, &str, bool), minor: u32, pie: bool, race: bool) -> std::path::PathBuf {
    let tc = gobuild::toolchain(minor).unwrap();
    let opts = BuildOptions {
        stripped: true,
        pie,
        race,
        tags: line.1.to_string(),
        ..BuildOptions::default()
    };
    gobuild::build_with(line.0, &tc, &opts).unwrap()
}

fn cell(line: (&str, &str, &str, bool), what: &str, minor: u32, pie: bool, race: bool) {
    let bin = build(line, minor, pie, race);
    let t = trace(&bin, "mixed", &[]);
    assert_ownership_run(&t, &format!("{} {what}", line.0), line.2, line.3);
}

/// L1 has no ownership: its calls, sessions and references, and where returns were read.
fn l1_cell(what: &str, minor: u32, pie: bool, race: bool) {
    let bin = build(L1, minor, pie, race);
    let t = trace(&bin, "mixed", &[]);
    assert_l1_run(&t, &format!("engine-l1 {what}"));
    // --light reads a miss from its execution's start (the creator in g.parentGoid) and a
    // join at its call of `wait`: every build must give the same outcomes.
    let what = format!("engine-l1 {what} --light");
    let t = trace(&bin, "mixed", &["--light"]);
    assert_clean_run(&t, &what, "L1", true);
    assert_calls(
        &t,
        &what,
        &["digest", "outcome", "session", "parent_digest"],
        true,
    );
}

#[test]
fn l1_pie() {
    l1_cell("PIE", 26, true, false);
}

#[test]
fn l1_race() {
    l1_cell("-race", 26, false, true);
}

#[test]
fn l1_go1_22() {
    l1_cell("Go 1.22", 22, false, false);
}

#[test]
fn l1_go1_27() {
    l1_cell("Go 1.27", 27, false, false);
}

#[test]
fn l3_pie() {
    cell(L3, "PIE", 26, true, false);
}

#[test]
fn l4_pie() {
    cell(L4, "PIE", 26, true, false);
}

#[test]
fn l3_race() {
    cell(L3, "-race", 26, false, true);
}

#[test]
fn l4_race() {
    cell(L4, "-race", 26, false, true);
}

#[test]
fn l3_go1_22() {
    cell(L3, "Go 1.22", 22, false, false);
}

#[test]
fn l4_go1_22() {
    cell(L4, "Go 1.22", 22, false, false);
}

#[test]
fn l3_go1_27() {
    cell(L3, "Go 1.27", 27, false, false);
}

#[test]
fn l4_go1_27() {
    cell(L4, "Go 1.27", 27, false, false);
}

/// The engine runs inside a new PID namespace (`unshare --pid --fork --mount-proc`, as a
/// container runs it), held at its start gate; the tracer, on the host, attaches by the
/// engine's host pid, then opens the gate, and follows it until it exits.
fn in_pid_namespace(line: (&str, &str, &str, bool)) {
    let bin = private_copy(&build(line, 26, false, false));
    let dir = scratch_dir("code-lines-ns");
    let (records, truth, gate) = (
        dir.join("records.jsonl"),
        dir.join("truth.jsonl"),
        dir.join("gate"),
    );
    let mut engine = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(&bin)
        .args(["-scenario", "mixed", "-seed", "7", "-truth"])
        .arg(&truth)
        .arg("-start-gate")
        .arg(&gate)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn_retrying()
        .unwrap();
    let guard = KillOnDrop(&mut engine);
    let mut pid = None;
    wait_for("the engine to start", || {
        pid = host_pid_of(&bin);
        pid.is_some()
    });
    let pid = pid.unwrap();
    let nspid = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        nspid
            .lines()
            .any(|l| l.starts_with("NSpid:") && l.split_whitespace().count() == 3),
        "the engine is one PID namespace deep: {nspid}"
    );
    let err_path = dir.join("tracer.err");
    let mut t = tracer()
        .args(["cache", "--json", "-o"])
        .arg(&records)
        .args(["--pid", &pid.to_string()])
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn_retrying()
        .unwrap();
    let stderr = || std::fs::read_to_string(&err_path).unwrap_or_default();
    wait_for("the tracer to attach", || {
        stderr().contains("probes in pid") || t.try_wait().unwrap().is_some()
    });
    std::fs::write(&gate, b"").unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = t.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = t.kill();
            panic!(
                "the tracer did not stop after the engine exited: {}",
                stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let engine_status = guard.0.wait().unwrap();
    let what = format!("{} in a PID namespace, traced from the host", line.0);
    assert!(engine_status.success(), "{what}: engine {engine_status}");
    let traced = Traced {
        status: status.code(),
        stderr: stderr(),
        records: read_json_lines(&records),
        truth: read_json_lines(&truth),
    };
    eprintln!("--- tracer stderr\n{}", traced.stderr);
    assert_ownership_run(&traced, &what, line.2, line.3);
}

#[test]
fn l3_in_a_pid_namespace() {
    in_pid_namespace(L3);
}

#[test]
fn l4_in_a_pid_namespace() {
    in_pid_namespace(L4);
}

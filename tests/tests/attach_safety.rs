//! Attaching safely: calls already running when the probes go live are never reported as
//! `unwound`, and functions the kernel cannot probe are skipped and listed, never fatal
//! (unless they are all the user asked for).
use std::{
    process::{Command, Stdio},
    thread::sleep,
    time::Duration,
};

use integration_tests::SpawnRetrying;
use integration_tests::{gobuild, json_lines, of_kind, private_copy, run, scratch_dir, tracer};
use serde_json::Value;

/// A busy program (deep recursion on 8 goroutines, round after round) traced from the
/// middle of its run: frames entered before attaching return after it. Every call the
/// tracer saw enter must be paired; none may be `unwound`.
#[test]
fn attaching_to_a_busy_program_reports_no_unwound_calls() {
    for minor in [19, 26] {
        let tc = gobuild::toolchain(minor).expect("toolchain");
        let binary = private_copy(&gobuild::build("funcs", &tc, true).expect("build"));
        let truth = scratch_dir("busy").join("truth.jsonl");
        let mut child = Command::new(&binary)
            .args(["-mode", "stress", "-goroutines", "8", "-depth", "300"])
            .args(["-rounds", "1000000", "-truth"])
            .arg(&truth)
            .stdout(Stdio::null())
            .spawn_retrying()
            .expect("start the program");
        sleep(Duration::from_millis(300));
        let records = scratch_dir("busy").join("records.jsonl");
        let out = run(tracer()
            .args(["funcs", "--match", "main\\.recurse|main\\.add9", "--json"])
            .args(["--duration", "1", "--pid"])
            .arg(child.id().to_string())
            .arg("-o")
            .arg(&records));
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(out.status.code(), Some(0), "go1.{minor}");
        let text = std::fs::read_to_string(&records).expect("records");
        let recs = json_lines(&text);
        let summary = of_kind(&recs, "summary");
        assert_eq!(summary.len(), 1);
        let calls = of_kind(&recs, "func_call");
        let returned = calls.iter().filter(|c| c["status"] == "returned").count();
        assert!(
            returned > 1000,
            "go1.{minor}: only {returned} calls returned"
        );
        assert_eq!(summary[0]["unwound"], 0, "go1.{minor}: {}", summary[0]);
        assert_eq!(summary[0]["lost_events"], 0, "go1.{minor}");
        assert!(
            calls.iter().all(|c| c["status"] != "unwound"),
            "go1.{minor}: an unwound call"
        );
    }
}

/// `runtime.abort` is an `int3`, and Go 1.26+ runtimes open `expandAVX512_*` with an
/// AVX-512 instruction: both are refused by the kernel. A match that includes them
/// traces the rest exactly and names what it skipped.
#[test]
fn unprobeable_functions_are_skipped_and_listed() {
    let tc = gobuild::toolchain(26).expect("toolchain");
    let binary = private_copy(&gobuild::build("funcs", &tc, true).expect("build"));
    let dir = scratch_dir("skip");
    let (records, truth) = (dir.join("records.jsonl"), dir.join("truth.jsonl"));
    let out = run(tracer()
        .args(["funcs", "--json", "--match"])
        .arg("runtime\\.abort|.*expandAVX512_1|main\\.add9")
        .arg("-o")
        .arg(&records)
        .arg("--")
        .arg(&binary)
        .args([
            "-mode",
            "basic",
            "-goroutines",
            "2",
            "-calls",
            "50",
            "-truth",
        ])
        .arg(&truth));
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let skipped: Vec<&str> = stderr.lines().filter(|l| l.contains("skipped")).collect();
    assert_eq!(skipped.len(), 1, "one line lists the skipped: {stderr}");
    assert!(
        skipped[0].contains("skipped 2 function(s)"),
        "{}",
        skipped[0]
    );
    assert!(skipped[0].contains("runtime.abort (the kernel does not probe `int 3`)"));
    assert!(skipped[0].contains("expandAVX512_1 ("), "{}", skipped[0]);
    assert!(skipped[0].contains("AVX-512"), "{}", skipped[0]);

    let text = std::fs::read_to_string(&records).expect("records");
    let traced = json_lines(&text)
        .into_iter()
        .filter(|r| r["kind"] == "func_call" && r["func"] == "main.add9")
        .count();
    let truth_text = std::fs::read_to_string(&truth).expect("truth");
    let expected = json_lines(&truth_text)
        .iter()
        .filter(|r: &&Value| r["kind"] == "call" && r["func"] == "main.add9")
        .count();
    assert_eq!(traced, expected);
    assert_eq!(expected, 100);

    // Named alone, an unprobeable function is an error with the reason, nothing attached.
    let out = run(tracer()
        .args(["funcs", "--match", "runtime\\.abort", "--"])
        .arg(&binary));
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot probe runtime.abort: the kernel does not probe `int 3`"),
        "{stderr}"
    );
    assert!(!stderr.contains("attached"), "{stderr}");
}

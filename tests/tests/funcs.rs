//! `tracer funcs` against Go programs that record their own ground truth.
use std::{collections::BTreeMap, path::Path};

use integration_tests::{
    as_u64s, go_int_register, gobuild, of_kind, read_json_lines, run, scratch_dir, tracer,
};
use serde_json::Value;

struct Traced {
    status: Option<i32>,
    stdout: String,
    stderr: String,
    records: Vec<Value>,
    truth: Vec<Value>,
}

/// Runs `tracer funcs --json` over `program` spawned with `program_args`.
fn trace(binary: &Path, pattern: &str, extra: &[&str], program_args: &[&str]) -> Traced {
    let dir = scratch_dir("funcs");
    let records_path = dir.join("records.jsonl");
    let truth_path = dir.join("truth.jsonl");
    let out = run(tracer()
        .args(["funcs", "--match", pattern, "--json", "-o"])
        .arg(&records_path)
        .args(extra)
        .arg("--")
        .arg(binary)
        .args(program_args)
        .arg("-truth")
        .arg(&truth_path));
    Traced {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        records: read_json_lines(&records_path),
        truth: read_json_lines(&truth_path),
    }
}

fn summary(records: &[Value]) -> &Value {
    let s = of_kind(records, "summary");
    assert_eq!(s.len(), 1, "exactly one summary record");
    s[0]
}

/// Compares every traced call with the program's own record of it, goroutine by
/// goroutine in entry order: function, goroutine id, argument registers, how it
/// ended and its integer result.
fn assert_matches_truth(t: &Traced) {
    let mut truth_by_g: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for c in of_kind(&t.truth, "call") {
        truth_by_g
            .entry(c["goid"].as_u64().unwrap())
            .or_default()
            .push(c);
    }
    let mut traced_by_g: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for r in of_kind(&t.records, "func_call") {
        let goid = r["goid"]
            .as_u64()
            .unwrap_or_else(|| panic!("record without goroutine id: {r}"));
        traced_by_g.entry(goid).or_default().push(r);
    }
    for calls in traced_by_g.values_mut() {
        calls.sort_by_key(|r| r["start_ns"].as_u64().expect("start_ns"));
    }
    let truth_goids: Vec<_> = truth_by_g.keys().collect();
    let traced_goids: Vec<_> = traced_by_g.keys().collect();
    assert_eq!(
        traced_goids, truth_goids,
        "goroutine ids differ from the program's own"
    );

    let mut compared = 0;
    for (goid, truth_calls) in &truth_by_g {
        let traced = &traced_by_g[goid];
        assert_eq!(
            traced.len(),
            truth_calls.len(),
            "number of calls on goroutine {goid}"
        );
        for (i, (want, got)) in truth_calls.iter().zip(traced).enumerate() {
            let at = format!("goroutine {goid} call #{i}: truth {want} traced {got}");
            assert_eq!(got["func"], want["func"], "{at}");
            let want_args: Vec<u64> = want["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(go_int_register)
                .collect();
            let got_args = as_u64s(&got["args"]);
            assert_eq!(got_args.len(), 9, "{at}");
            assert_eq!(&got_args[..want_args.len()], &want_args[..], "{at}");
            if want["returned"] == true {
                assert_eq!(got["status"], "returned", "{at}");
                assert!(got["duration_ns"].as_u64().is_some(), "{at}");
                if !want["ret"].is_null() {
                    assert_eq!(
                        got["ret"][0].as_u64().unwrap(),
                        go_int_register(&want["ret"]),
                        "{at}"
                    );
                }
            } else {
                assert_eq!(got["status"], "unwound", "{at}");
                assert!(got["ret"].is_null() && got["duration_ns"].is_null(), "{at}");
            }
            compared += 1;
        }
    }
    assert!(compared > 0, "no calls compared");
    let traced_total = of_kind(&t.records, "func_call").len();
    assert_eq!(
        traced_total, compared,
        "every traced call corresponds to exactly one real call"
    );
}

#[test]
fn basic_calls_match_ground_truth_stripped_and_unstripped() {
    for stripped in [true, false] {
        let bin = gobuild::build_default("funcs", stripped).unwrap();
        let t = trace(
            &bin,
            r"main\.(add9|leaf)",
            &[],
            &["-mode", "basic", "-goroutines", "4", "-calls", "100"],
        );
        assert_eq!(t.status, Some(0), "{}", t.stderr);
        // The traced program's stdout passes through untouched.
        assert_eq!(t.stdout.trim(), "funcs: done calls=440");
        assert_eq!(of_kind(&t.truth, "call").len(), 440);
        assert_matches_truth(&t);
        let s = summary(&t.records);
        assert_eq!(s["lost_events"], 0);
        assert_eq!(s["calls"], 440);
    }
}

#[test]
fn goroutine_ids_and_args_on_every_go_version() {
    let toolchains = gobuild::toolchains();
    assert!(
        toolchains.len() >= 8,
        "expected Go 1.19 and 1.21..1.27, found {toolchains:?}"
    );
    for tc in &toolchains {
        let bin = gobuild::build("funcs", tc, true).unwrap();
        let t = trace(
            &bin,
            r"main\.(add9|leaf)",
            &[],
            &["-mode", "basic", "-goroutines", "3", "-calls", "20"],
        );
        assert_eq!(t.status, Some(0), "go {}: {}", tc.version, t.stderr);
        assert_matches_truth(&t);
    }
}

#[test]
fn stress_recursion_panics_and_gc_every_call_exactly_once() {
    let bin = gobuild::build_default("funcs", true).unwrap();
    let t = trace(
        &bin,
        r"main\.(recurse|mayPanic|catcher|add9)",
        &[],
        &[
            "-mode",
            "stress",
            "-goroutines",
            "4",
            "-rounds",
            "10",
            "-depth",
            "2000",
        ],
    );
    assert_eq!(t.status, Some(0), "{}", t.stderr);
    let end = of_kind(&t.truth, "end");
    assert_eq!(end.len(), 1);
    let unwound_truth: u64 = end[0]["unwound"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(
        unwound_truth > 0,
        "the stress run must unwind frames by panics"
    );
    assert!(end[0]["calls"]["main.recurse"].as_u64().unwrap() >= 4 * 2001);
    assert_matches_truth(&t);
    let s = summary(&t.records);
    assert_eq!(s["lost_events"], 0, "no event may be lost at this rate");
    assert_eq!(s["unwound"].as_u64().unwrap(), unwound_truth);
}

#[test]
fn entry_only_reports_every_call_without_results() {
    let bin = gobuild::build_default("funcs", true).unwrap();
    let t = trace(
        &bin,
        r"main\.add9",
        &["--entry-only"],
        &["-mode", "basic", "-goroutines", "2", "-calls", "50"],
    );
    assert_eq!(t.status, Some(0), "{}", t.stderr);
    let calls = of_kind(&t.records, "func_call");
    assert_eq!(calls.len(), 100);
    assert!(
        calls.iter().all(|c| c["status"] == "entry_only"
            && c["ret"].is_null()
            && c["duration_ns"].is_null())
    );
    let truth: Vec<Vec<u64>> = of_kind(&t.truth, "call")
        .iter()
        .filter(|c| c["func"] == "main.add9")
        .map(|c| {
            c["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(go_int_register)
                .collect()
        })
        .collect();
    let mut want = truth.clone();
    let mut got: Vec<Vec<u64>> = calls.iter().map(|c| as_u64s(&c["args"])).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
}

#[test]
fn exit_status_of_the_command_is_passed_through() {
    let bin = gobuild::build_default("funcs", true).unwrap();
    // Go's flag package exits with status 2 on an unknown flag.
    let out = run(tracer()
        .args(["funcs", "--match", r"main\.add9", "--"])
        .arg(&bin)
        .arg("-no-such-flag"));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn human_output_has_one_line_per_call() {
    let bin = gobuild::build_default("funcs", true).unwrap();
    let out = run(tracer()
        .args(["funcs", "--match", r"main\.leaf", "--"])
        .arg(&bin)
        .args([
            "-mode",
            "basic",
            "-goroutines",
            "1",
            "-calls",
            "1",
            "-leafcalls",
            "3",
        ]));
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<_> = stdout
        .lines()
        .filter(|l| l.contains("main.leaf("))
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    // leaf(x) = 3x+1: the result register is shown next to the argument.
    for l in lines {
        assert!(l.trim_start().starts_with('g') && l.contains(" = ("), "{l}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--- summary ---") && stderr.contains("lost events: 0"),
        "{stderr}"
    );
}

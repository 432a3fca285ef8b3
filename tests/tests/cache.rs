//! `tracer cache` against the stand-in engine (tests/go/engine), which records what
//! each cache call really did: every call, outcome, goroutine, session and the
//! executor of each join must match exactly, with no lost events.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::SpawnRetrying;
use integration_tests::{gobuild, of_kind, read_json_lines, run, scratch_dir, tracer};
use serde_json::Value;

const SCENARIOS: [&str; 8] = [
    "mixed", "hits", "joins", "ttl", "errors", "leak", "filesync", "highrate",
];

fn engine(stripped: bool) -> PathBuf {
    let tc = gobuild::default_toolchain().unwrap();
    gobuild::build("engine", &tc, stripped).unwrap()
}

struct Traced {
    status: Option<i32>,
    stderr: String,
    records: Vec<Value>,
    truth: Vec<Value>,
}

fn trace(binary: &Path, scenario: &str) -> Traced {
    trace_with(binary, scenario, &[])
}

fn trace_with(binary: &Path, scenario: &str, extra: &[&str]) -> Traced {
    let dir = scratch_dir("cache");
    let binary = &integration_tests::private_copy(binary);
    let records = dir.join("records.jsonl");
    let truth = dir.join("truth.jsonl");
    let out = run(tracer()
        .args(["cache", "--json", "-o"])
        .arg(&records)
        .args(extra)
        .arg("--")
        .arg(binary)
        .args([
            "-scenario",
            scenario,
            "-seed",
            "7",
            "-duration",
            "2s",
            "-truth",
        ])
        .arg(&truth)
        .args(integration_tests::standins::engine_linger(extra)));
    Traced {
        status: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        records: read_json_lines(&records),
        truth: read_json_lines(&truth),
    }
}

fn summary(records: &[Value]) -> &Value {
    let s = of_kind(records, "cache_summary");
    assert_eq!(s.len(), 1, "one summary");
    s[0]
}

/// Every call the engine made, compared with the tracer's record of it, per
/// goroutine in start order.
fn assert_calls_match(t: &Traced, what: &str) {
    let mut truth: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for c in of_kind(&t.truth, "call") {
        truth
            .entry(c["goid"].as_u64().unwrap())
            .or_default()
            .push(c);
    }
    let mut traced: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for c in of_kind(&t.records, "cache_call") {
        traced
            .entry(c["goid"].as_u64().unwrap())
            .or_default()
            .push(c);
    }
    for (_, v) in truth.iter_mut() {
        v.sort_by_key(|c| c["start_ns"].as_u64().unwrap_or(0));
    }
    for (_, v) in traced.iter_mut() {
        v.sort_by_key(|c| c["start_ns"].as_u64().unwrap_or(0));
    }
    assert_eq!(
        traced.keys().collect::<Vec<_>>(),
        truth.keys().collect::<Vec<_>>(),
        "{what}: goroutines that made cache calls"
    );
    let mut n = 0;
    let mut texts = 0;
    for (goid, want) in &truth {
        let got = &traced[goid];
        assert_eq!(got.len(), want.len(), "{what}: calls on goroutine {goid}");
        for (w, g) in want.iter().zip(got.iter()) {
            let at = format!("{what}: goroutine {goid}\n truth {w}\n traced {g}");
            assert_eq!(g["digest"], w["digest"], "{at}");
            assert_eq!(g["outcome"], w["outcome"], "{at}");
            assert_eq!(g["session"], w["session"], "{at}");
            if w["outcome"] == "join" || w["outcome"] == "miss" {
                assert_eq!(g["exec_goid"], w["exec_goid"], "{at}");
            }
            assert_eq!(g["parent_digest"], w["parent_digest"], "{at}");
            assert_eq!(g["ttl"]["db_read"], w["db_read"], "{at}");
            assert_eq!(g["ttl"]["db_written"], w["db_written"], "{at}");
            // The TTL path hands its storage key to the DB write.
            if w["db_written"] == true {
                assert!(
                    g["storage_key"].as_str().is_some_and(|k| !k.is_empty()),
                    "{at}"
                );
            }
            // Error texts are read from the error value's first field; error types
            // without a message field (context.DeadlineExceeded) give null, never a guess.
            if !g["error"].is_null() {
                assert_eq!(g["error"], w["error"], "{at}");
                texts += 1;
            }
            n += 1;
        }
    }
    // A scenario without dagql calls (filesync) must show none either.
    assert!(
        n > 0 || of_kind(&t.truth, "call").is_empty(),
        "{what}: no calls compared"
    );
    let with_error = of_kind(&t.truth, "call")
        .iter()
        .filter(|c| !c["error"].is_null())
        .count();
    assert!(
        with_error == 0 || texts > 0,
        "{what}: no error text read at all"
    );
}

#[test]
fn every_scenario_matches_ground_truth_stripped_and_unstripped() {
    for stripped in [true, false] {
        let bin = engine(stripped);
        for scenario in SCENARIOS {
            let what = format!("{scenario} stripped={stripped}");
            let t = trace(&bin, scenario);
            assert_eq!(t.status, Some(0), "{what}: {}", t.stderr);
            assert!(
                t.stderr.contains("code line L2"),
                "{what}: detected code line\n{}",
                t.stderr
            );
            assert_calls_match(&t, &what);
            let s = summary(&t.records);
            assert_eq!(s["lost_events"], 0, "{what}");
            // The session layer's returns are read in its callers, none missed.
            assert_eq!(s["returns_read_at"], "callers", "{what}");
            assert_eq!(s["calls_with_unread_return"], 0, "{what}");
            assert_eq!(s["unknown_outcome"], 0, "{what}");
            // Sessions: refs taken and released as the engine counted them.
            for close in of_kind(&t.truth, "session_close") {
                let session = &close["session"];
                let got = s["sessions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| &x["session"] == session)
                    .unwrap_or_else(|| panic!("{what}: session {session} missing in {s}"));
                assert_eq!(got["refs_taken"], close["refs_taken"], "{what} {session}");
                assert_eq!(
                    got["refs_released"], close["refs_released"],
                    "{what} {session}"
                );
                assert_eq!(got["leaked"], close["leaked"], "{what} {session}");
            }
            if scenario == "leak" {
                assert!(
                    t.stderr.contains("refs still held"),
                    "{what}: leak warning\n{}",
                    t.stderr
                );
            }
            if scenario == "filesync" {
                let conflicts = of_kind(&t.truth, "conflict").len();
                assert!(conflicts > 0);
                assert_eq!(of_kind(&t.records, "conflict").len(), conflicts, "{what}");
                let outcomes = |recs: &[Value]| {
                    let mut v: Vec<(String, String)> = of_kind(recs, "change")
                        .iter()
                        .map(|c| {
                            (
                                c["path"].as_str().unwrap_or("").to_string(),
                                c["outcome"].as_str().unwrap().to_string(),
                            )
                        })
                        .collect();
                    v.sort();
                    v
                };
                assert_eq!(
                    outcomes(&t.records),
                    outcomes(&t.truth),
                    "{what}: change outcomes"
                );
            }
        }
    }
}

/// --light reads no return: a call is its session-layer entry (one trap), its path (wait,
/// execution, recursive refusal) says what it was; errors are not seen and references
/// are not followed.
#[test]
fn light_mode_keeps_outcomes_from_one_trap_per_call() {
    let bin = engine(true);
    for scenario in ["mixed", "errors", "joins", "ttl"] {
        let what = format!("light {scenario}");
        let t = trace_with(&bin, scenario, &["--light"]);
        assert_eq!(t.status, Some(0), "{what}: {}", t.stderr);
        assert!(t.stderr.contains("light mode"), "{}", t.stderr);
        assert!(!t.stderr.contains("warning"), "{what}: {}", t.stderr);
        assert_light_calls_match(&t, &what);
        let s = summary(&t.records);
        assert_eq!(s["lost_events"], 0, "{what}");
        assert_eq!(s["refs_followed"], false, "{what}");
        let roles = s["probe_hits"]["by_role"].as_object().unwrap();
        // `wait` is not probed: joins are read at their call of it, misses from their
        // execution's start.
        for dropped in ["SessionCall return", "Release", "Wait"] {
            assert!(
                !roles.contains_key(dropped),
                "{what}: {dropped} probed: {s}"
            );
        }
        if scenario == "joins" {
            assert!(roles.contains_key("LightJoin"), "{what}: {s}");
        }
    }
}

/// As `assert_calls_match`, but a call that failed is only paired (its error is in its
/// return, which --light does not read).
fn assert_light_calls_match(t: &Traced, what: &str) {
    let failed: Vec<bool> = sorted_by_goroutine(of_kind(&t.truth, "call"))
        .iter()
        .map(|c| c["outcome"] == "error")
        .collect();
    let traced = sorted_by_goroutine(of_kind(&t.records, "cache_call"));
    assert_eq!(traced.len(), failed.len(), "{what}: calls");
    let mut compared = 0;
    for (c, (g, failed)) in sorted_by_goroutine(of_kind(&t.truth, "call"))
        .iter()
        .zip(traced.iter().zip(failed))
    {
        let at = format!("{what}\n truth  {c}\n traced {g}");
        assert_eq!(g["goid"], c["goid"], "{at}");
        // Nothing shows that a goroutine's last call ended: it may still run.
        if g["status"] == "unfinished" {
            assert!(
                failed || g["outcome"].is_null() || g["outcome"] == c["outcome"],
                "{at}"
            );
            continue;
        }
        assert_eq!(g["status"], "entry_only", "{at}");
        if failed {
            continue;
        }
        for f in ["digest", "outcome", "session", "parent_digest"] {
            assert_eq!(g[f], c[f], "{f}: {at}");
        }
        if c["outcome"] == "join" || c["outcome"] == "miss" {
            assert_eq!(g["exec_goid"], c["exec_goid"], "{at}");
        }
        compared += 1;
    }
    assert!(compared > 0, "{what}: nothing compared");
}

/// Calls per goroutine in start order, goroutines in id order.
fn sorted_by_goroutine(calls: Vec<&Value>) -> Vec<&Value> {
    let mut by: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for c in calls {
        by.entry(c["goid"].as_u64().unwrap()).or_default().push(c);
    }
    by.into_values()
        .flat_map(|mut v| {
            v.sort_by_key(|c| c["start_ns"].as_u64().unwrap_or(0));
            v
        })
        .collect()
}

#[test]
fn attaching_to_a_running_engine_reports_calls_from_then_on() {
    let bin = engine(true);
    let dir = scratch_dir("cache-attach");
    let gate = dir.join("go");
    let truth = dir.join("truth.jsonl");
    let records = dir.join("records.jsonl");
    let mut engine = Command::new(&bin)
        .args([
            "-scenario",
            "mixed",
            "-seed",
            "3",
            "-duration",
            "2s",
            "-start-gate",
        ])
        .arg(&gate)
        .arg("-truth")
        .arg(&truth)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn_retrying()
        .unwrap();
    let pid = engine.id();
    let mut tracer_proc = tracer()
        .args(["cache", "--json", "--pid", &pid.to_string(), "-o"])
        .arg(&records)
        .stderr(Stdio::piped())
        .spawn_retrying()
        .unwrap();
    // Attached once the tracer names the engine; then open the gate.
    let started = Instant::now();
    let stderr = tracer_proc.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let named = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.contains("code line"))
        .expect("the tracer names the code line once attached");
    assert!(named.contains("code line L2"), "{named}");
    std::fs::write(&gate, "").unwrap();
    let status = tracer_proc.wait().unwrap();
    assert!(status.success(), "tracer exits when the engine does");
    assert!(started.elapsed() < Duration::from_secs(30));
    let _ = engine.wait();
    let t = Traced {
        status: status.code(),
        stderr: String::new(),
        records: read_json_lines(&records),
        truth: read_json_lines(&truth),
    };
    assert_calls_match(&t, "attached by pid");
    assert_eq!(summary(&t.records)["lost_events"], 0);
}

#[test]
fn not_an_engine_and_an_engine_missing_a_probe() {
    let funcs = gobuild::build_default("funcs", true).unwrap();
    let out = run(tracer().args(["cache", "--"]).arg(&funcs));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("is not a Dagger engine"), "{stderr}");

    let tc = gobuild::default_toolchain().unwrap();
    let renamed = gobuild::build_tagged("engine", &tc, true, "renamedprobe").unwrap();
    let out = run(tracer().args(["cache", "--"]).arg(&renamed));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("dagql.(*cache).lookupCacheForID"),
        "names the missing function: {stderr}"
    );
}

//! The stand-in engines (tests/go/engine-*, tests/go/STANDINS.md) traced by `tracer cache`,
//! and the comparisons of its records with the truth each stand-in writes: shared by the
//! code-line tests and their build matrix.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde_json::Value;

use crate::{gobuild, of_kind, read_json_lines, run, scratch_dir, tracer};

pub fn stand_in(program: &str, stripped: bool, tags: &str) -> PathBuf {
    let tc = gobuild::default_toolchain().unwrap();
    gobuild::build_tagged(program, &tc, stripped, tags).unwrap()
}

/// `--light` reads goroutine exits from the engine's goroutine table while the engine
/// runs: the stand-in stays a moment after its workload, as a server outlives its calls'
/// goroutines, so that its last goroutines are seen gone (a call whose goroutine ends as
/// the engine exits stays unfinished, which `light_tails_of_an_exiting_engine_stay_unfinished`
/// covers).
pub fn engine_linger(tracer_args: &[&str]) -> &'static [&'static str] {
    if tracer_args.contains(&"--light") {
        &["-linger", "600ms"]
    } else {
        &[]
    }
}

pub struct Traced {
    pub status: Option<i32>,
    pub stderr: String,
    pub records: Vec<Value>,
    pub truth: Vec<Value>,
}

pub fn trace(binary: &Path, scenario: &str, extra: &[&str]) -> Traced {
    trace_with(binary, scenario, extra, &[])
}

/// [`trace`], with `engine_extra` given to the stand-in.
pub fn trace_with(binary: &Path, scenario: &str, extra: &[&str], engine_extra: &[&str]) -> Traced {
    let dir = scratch_dir("code-lines");
    let binary = crate::private_copy(binary);
    let records = dir.join("records.jsonl");
    let truth = dir.join("truth.jsonl");
    let out = run(tracer()
        .args(["cache", "--json", "-o"])
        .arg(&records)
        .args(extra)
        .arg("--")
        .arg(&binary)
        .args(["-scenario", scenario, "-seed", "7", "-truth"])
        .arg(&truth)
        .args(engine_linger(extra))
        .args(engine_extra));
    Traced {
        status: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        records: read_json_lines(&records),
        truth: read_json_lines(&truth),
    }
}

pub fn summary(records: &[Value]) -> &Value {
    let s = of_kind(records, "cache_summary");
    assert_eq!(s.len(), 1, "one summary");
    s[0]
}

/// Per goroutine in start order: `(truth, traced)` pairs of cache calls.
pub fn paired<'a>(t: &'a Traced, what: &str) -> Vec<(&'a Value, &'a Value)> {
    let group = |recs: Vec<&'a Value>| {
        let mut m: BTreeMap<u64, Vec<&'a Value>> = BTreeMap::new();
        for c in recs {
            m.entry(c["goid"].as_u64().unwrap()).or_default().push(c);
        }
        for v in m.values_mut() {
            v.sort_by_key(|c| c["start_ns"].as_u64().unwrap_or(0));
        }
        m
    };
    let truth = group(of_kind(&t.truth, "call"));
    let traced = group(of_kind(&t.records, "cache_call"));
    assert_eq!(
        traced.keys().collect::<Vec<_>>(),
        truth.keys().collect::<Vec<_>>(),
        "{what}: goroutines that made cache calls"
    );
    let mut pairs = Vec::new();
    for (goid, want) in &truth {
        let got = &traced[goid];
        assert_eq!(got.len(), want.len(), "{what}: calls on goroutine {goid}");
        pairs.extend(want.iter().copied().zip(got.iter().copied()));
    }
    assert!(!pairs.is_empty(), "{what}: no calls compared");
    pairs
}

/// Every call's identity, outcome, route and goroutines equal the truth's. `light`:
/// no RET probes, so a returned error is not seen (those calls are only paired); an
/// uncached call is seen where no register holds its session or request (L3/L4), so
/// those are null (never another call's).
pub fn assert_calls(t: &Traced, what: &str, fields: &[&str], light: bool) {
    for (w, g) in paired(t, what) {
        let at = format!("{what}\n truth  {w}\n traced {g}");
        if light && (w["outcome"] == "error" || w["outcome"] == "recursive") {
            // Nothing shows that a goroutine's last call ended: it may still run.
            assert!(
                g["status"] == "entry_only" || g["status"] == "unfinished",
                "{at}"
            );
            continue;
        }
        // L1 tells a content hit by the returned result, which --light does not read.
        let w = &if light && w["outcome"] == "hit_content" && g["outcome"] == "hit" {
            let mut w = (*w).clone();
            w["outcome"] = "hit".into();
            w
        } else {
            (*w).clone()
        };
        let unread: &[&str] = if light && w["outcome"] == "uncached" && g["session"].is_null() {
            &["digest", "session"]
        } else {
            &[]
        };
        for f in fields {
            if unread.contains(f) {
                assert!(g[*f].is_null(), "{f} null or right: {at}");
                continue;
            }
            assert_eq!(g[*f], w[*f], "{f}: {at}");
        }
        if w["outcome"] == "join" || w["outcome"] == "miss" {
            assert_eq!(g["exec_goid"], w["exec_goid"], "exec_goid: {at}");
        }
        if w["outcome"] == "join" {
            assert!(g["waiters"].as_u64().unwrap_or(0) >= 2, "waiters: {at}");
        }
        // Error texts are read from the error value's first field; null means unreadable.
        if !g["error"].is_null() {
            assert_eq!(g["error"], w["error"], "error: {at}");
        }
        assert_eq!(g["engine_disagrees"], false, "{at}");
    }
}

/// An L1 run by default: calls, sessions and references as the engine made them, and the
/// session layer's returns read in its callers.
pub fn assert_l1_run(t: &Traced, what: &str) {
    assert_clean_run(t, what, "L1", false);
    assert_calls(
        t,
        what,
        &["digest", "outcome", "session", "parent_digest"],
        false,
    );
    assert_sessions(t, what, false);
    assert_eq!(returns_read_at(t, what), "callers", "{what}");
}

/// Session release accounting, per session, equals the engine's.
pub fn assert_sessions(t: &Traced, what: &str, with_results: bool) {
    let s = summary(&t.records);
    let closes = of_kind(&t.truth, "session_close");
    assert!(!closes.is_empty(), "{what}: no session closed");
    let traced = of_kind(&t.records, "session_close");
    for close in closes {
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
        if with_results {
            let rec = traced
                .iter()
                .find(|x| &x["session"] == session)
                .unwrap_or_else(|| panic!("{what}: no session_close record for {session}"));
            assert_eq!(
                rec["results_released"], close["results_released"],
                "{what} {session}"
            );
        }
    }
}

/// Multisets of a record kind's chosen fields.
pub fn bag(records: &[Value], kind: &str, fields: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = of_kind(records, kind)
        .iter()
        .map(|r| {
            fields
                .iter()
                .map(|f| r[*f].to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    v.sort();
    v
}

pub fn assert_clean_run(t: &Traced, what: &str, line: &str, light: bool) {
    assert_eq!(t.status, Some(0), "{what}: {}", t.stderr);
    assert!(
        t.stderr.contains(&format!("code line {line}")),
        "{what}: detected line\n{}",
        t.stderr
    );
    let s = summary(&t.records);
    assert_eq!(s["lost_events"], 0, "{what}");
    // Traced from the first instruction: every RET has its entry registers, every
    // probe its spec, every save succeeded.
    assert_eq!(s["malformed_events"], 0, "{what}");
    for failure in ["entry_save_failed", "entry_missing", "spec_missing"] {
        assert_eq!(s["kernel_failures"][failure], 0, "{what}: {failure}");
    }
    let unseen = if light {
        // Calls that failed before any lookup or wait: their path shows nothing.
        of_kind(&t.truth, "call")
            .iter()
            .filter(|c| c["outcome"] == "error" || c["outcome"] == "recursive")
            .count() as u64
    } else {
        0
    };
    assert!(
        s["unknown_outcome"].as_u64().unwrap() <= unseen,
        "{what}: {s}"
    );
}

/// What the ownership lines (L3, L4) report besides calls.
pub fn assert_ownership_line_extras(t: &Traced, what: &str) {
    assert_eq!(
        bag(
            &t.records,
            "load_hit",
            &["goid", "digest", "via", "hit_route", "result_id"]
        ),
        bag(
            &t.truth,
            "load_hit",
            &["goid", "digest", "via", "hit_route", "result_id"]
        ),
        "{what}: load hits"
    );
    assert!(
        !of_kind(&t.truth, "load_hit").is_empty(),
        "{what}: no load hit in the scenario"
    );
    assert_eq!(
        bag(&t.records, "arbitrary", &["goid", "outcome"]),
        bag(&t.truth, "arbitrary", &["goid", "outcome"]),
        "{what}: arbitrary cache"
    );
    assert_eq!(
        bag(&t.records, "ownership_anomaly", &["type", "result_id"]),
        bag(&t.truth, "anomaly", &["type", "result_id"]),
        "{what}: ownership anomalies"
    );
    let changes = |r: &[Value]| bag(r, "change", &["path", "outcome"]);
    assert_eq!(changes(&t.records), changes(&t.truth), "{what}: filesync");
    assert_eq!(
        of_kind(&t.records, "conflict").len(),
        of_kind(&t.truth, "conflict").len(),
        "{what}: conflicts"
    );
    // The summary's probe hits: one `GetOrInitCall` entry and one return per call the
    // engine made (its own count), and the parts add up.
    let hits = &summary(&t.records)["probe_hits"];
    let calls = Some(of_kind(&t.truth, "call").len() as u64);
    assert_eq!(
        hits["by_role"]["Call"].as_u64(),
        calls,
        "{what}: entries: {hits}"
    );
    assert_eq!(
        hits["by_role"]["Call return"].as_u64(),
        calls,
        "{what}: returns: {hits}"
    );
    let parts: u64 = hits["by_role"]
        .as_object()
        .expect("by_role")
        .values()
        .map(|n| n.as_u64().expect("a count"))
        .sum();
    assert_eq!(hits["total"].as_u64(), Some(parts), "{what}: {hits}");
    let at = returns_read_at(t, what);
    assert!(
        at == "callers" || at == "ret",
        "{what}: returns read at {at}"
    );
}

/// Where the run read `GetOrInitCall`'s returns (`callers` or `ret`), checked against
/// what its first lines said; no call may have escaped the probes read.
pub fn returns_read_at(t: &Traced, what: &str) -> String {
    let s = summary(&t.records);
    assert_eq!(
        s["calls_with_unread_return"].as_u64(),
        Some(0),
        "{what}: calls whose return was not read: {s}"
    );
    let at = s["returns_read_at"]
        .as_str()
        .expect("returns_read_at")
        .to_string();
    let said = t.stderr.contains("cache call returns read at their");
    assert_eq!(said, at == "callers", "{what}: {at}, stderr: {}", t.stderr);
    at
}

pub const OWNERSHIP_FIELDS: &[&str] =
    &["digest", "outcome", "session", "hit_route", "parent_digest"];

/// Everything an ownership-line (L3, L4) run of the `mixed` scenario must match: a clean
/// run on the detected `line`, every call (with the engine's `CacheDecision` when
/// `engine_decision`), sessions, load hits, arbitrary cache, anomalies and filesync.
pub fn assert_ownership_run(t: &Traced, what: &str, line: &str, engine_decision: bool) {
    assert_clean_run(t, what, line, false);
    let mut fields = OWNERSHIP_FIELDS.to_vec();
    if engine_decision {
        fields.extend(["engine_outcome", "engine_hit_route"]);
    }
    assert_calls(t, what, &fields, false);
    assert_sessions(t, what, true);
    assert_ownership_line_extras(t, what);
}

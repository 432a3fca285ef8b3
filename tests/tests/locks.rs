//! `tracer locks` against tests/go/locks, a program that makes known contention (waiters
//! queued on a held Mutex, RWMutex readers behind a writer, a writer behind readers) while
//! other goroutines lock their own mutexes uncontended, and records, per contended
//! acquisition, the waiter, the goroutine that released it to it, and the function that
//! waited.
use std::collections::BTreeMap;

use integration_tests::{gobuild, json_lines, of_kind, read_json_lines, run, scratch_dir, tracer};
use serde_json::Value;

/// Go versions (stripped builds): the oldest, one before and one after the move of the
/// Mutex slow paths to internal/sync (1.24), and the newest.
const MINORS: [u32; 4] = [19, 22, 24, 27];

/// (lock type, lock address, waiter, released_by) of a record from either side.
type Key = (String, u64, u64, Option<u64>);

fn check_version(minor: u32) {
    let tc = gobuild::toolchain(minor).unwrap();
    let binary = gobuild::build("locks", &tc, true).unwrap();
    let v = tc.go_version();
    let dir = scratch_dir("locks");
    let truth_path = dir.join("truth.jsonl");
    let out = run(tracer()
        .args(["locks", "--json", "--"])
        .arg(integration_tests::private_copy(&binary))
        .args(["-rounds", "2", "-waiters", "3"])
        .arg("-truth")
        .arg(&truth_path));
    assert!(out.status.success(), "{v}: {out:?}");
    let records = json_lines(&String::from_utf8_lossy(&out.stdout));
    let truth = read_json_lines(&truth_path);

    let key = |lock_type: &Value, lock: &Value, waiter: &Value, by: &Value| -> Key {
        (
            lock_type.as_str().unwrap().to_owned(),
            lock.as_u64().unwrap(),
            waiter.as_u64().unwrap(),
            by.as_u64(),
        )
    };
    let mut want: Vec<Key> = of_kind(&truth, "contended")
        .iter()
        .map(|t| key(&t["type"], &t["addr"], &t["waiter"], &t["released_by"]))
        .collect();
    let contentions = of_kind(&records, "contention");
    let mut got: Vec<Key> = contentions
        .iter()
        .map(|c| key(&c["lock_type"], &c["lock"], &c["waiter"], &c["released_by"]))
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "{v}: contended acquisitions differ");
    assert_eq!(want.len(), 2 * (3 + 3 + 1), "{v}: truth has every round");

    // Each waiter's stack shows the function that waited, and the wait is measured.
    for c in &contentions {
        let t = of_kind(&truth, "contended")
            .into_iter()
            .find(|t| t["waiter"] == c["waiter"] && t["addr"] == c["lock"])
            .unwrap();
        let funcs: Vec<&str> = c["stack"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["func"].as_str().unwrap())
            .collect();
        assert!(
            funcs.contains(&t["func"].as_str().unwrap()),
            "{v}: {} not in {funcs:?}",
            t["func"]
        );
        assert!(c["wait_ns"].as_u64().unwrap() > 1_000_000, "{v}: {c}");
    }

    // Per-lock totals: contended counts and reader waits match the program's records.
    let mut per_lock: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for t in of_kind(&truth, "contended") {
        let e = per_lock.entry(t["addr"].as_u64().unwrap()).or_default();
        e.0 += 1;
        e.1 += (t["type"] == "rwmutex_read") as u64;
    }
    let summaries = of_kind(&records, "lock_summary");
    assert_eq!(summaries.len(), per_lock.len(), "{v}: {summaries:?}");
    for s in summaries {
        let (n, readers) = per_lock[&s["lock"].as_u64().unwrap()];
        assert_eq!(s["contended"].as_u64(), Some(n), "{v}: {s}");
        assert_eq!(s["reader_waits"].as_u64(), Some(readers), "{v}: {s}");
        let lock = of_kind(&truth, "lock")
            .into_iter()
            .find(|l| l["addr"] == s["lock"])
            .unwrap();
        assert_eq!(s["lock_type"], lock["lock"], "{v}: {s}");
        assert!(s["p99_wait_ns"].as_u64().unwrap() > 0, "{v}: {s}");
        assert!(!s["top_stacks"].as_array().unwrap().is_empty(), "{v}: {s}");
    }
    let summary = of_kind(&records, "summary")[0];
    assert_eq!(summary["lost_events"], 0, "{v}: {summary}");
    assert_eq!(summary["contended"].as_u64(), Some(want.len() as u64));
    eprintln!("{v}: ok ({} contended acquisitions match)", want.len());
}

#[test]
fn locks_match_the_programs_records_on_stripped_builds() {
    for minor in MINORS {
        check_version(minor);
    }
}

/// On the stand-in engine the contended locks carry the engine's names, and each named one
/// is at its field's offset in the base cache the program reports (callsMu +0, egraphMu +8).
#[test]
fn locks_name_the_engines_locks() {
    let tc = gobuild::toolchain(26).unwrap();
    let binary = gobuild::build("engine", &tc, true).unwrap();
    let truth_path = scratch_dir("locks-engine").join("truth.jsonl");
    let out = run(tracer()
        .args(["locks", "--json", "--"])
        .arg(integration_tests::private_copy(&binary))
        .args(["-scenario", "highrate", "-duration", "2s", "-truth"])
        .arg(&truth_path));
    assert!(out.status.success(), "{out:?}");
    let records = json_lines(&String::from_utf8_lossy(&out.stdout));
    let truth = read_json_lines(&truth_path);
    let cache = of_kind(&truth, "end")[0]["cache_addr"].as_u64().unwrap();
    let named: Vec<&Value> = of_kind(&records, "lock_summary")
        .into_iter()
        .filter(|s| !s["lock_name"].is_null())
        .collect();
    let egraph: Vec<&&Value> = named
        .iter()
        .filter(|s| s["lock_name"] == "dagql cache egraphMu")
        .collect();
    assert_eq!(egraph.len(), 1, "{named:?}");
    assert!(egraph[0]["contended"].as_u64().unwrap() > 0);
    for s in &named {
        let offset = match s["lock_name"].as_str().unwrap() {
            "dagql cache callsMu" => Some(0),
            "dagql cache egraphMu" => Some(8),
            _ => None,
        };
        if let Some(off) = offset {
            assert_eq!(s["lock"].as_u64(), Some(cache + off), "{s}");
            // The base cache's address came from its GetOrInitCall: named by offset.
            assert_eq!(s["lock_named_by"], "offset", "{s}");
        }
    }
    // Every contention on that lock carries the name, none elsewhere does.
    for c in of_kind(&records, "contention") {
        let on_egraph = c["lock"].as_u64() == Some(cache + 8);
        assert_eq!(c["lock_name"] == "dagql cache egraphMu", on_egraph, "{c}");
    }
}

/// On the L3 and L4 stand-ins (`locks` scenario) the cache's three locks are named by their
/// offset from the cache, whichever method waits: `ReleaseSession` waits on sessionMu and
/// on callsMu, which its name alone could not tell apart. Every waiter the engine planted
/// is reported on its lock with that lock's name, and every contention at one of the
/// cache's locks carries the name of the lock at that address.
#[test]
fn locks_name_the_cache_locks_by_offset_on_l3_and_l4() {
    for (program, tags) in [
        ("engine-l3", ""),
        ("engine-l4", ""),
        ("engine-l4", "l4beta10"),
    ] {
        let what = format!("{program} {tags}");
        let binary = integration_tests::standins::stand_in(program, true, tags);
        let truth_path = scratch_dir("locks-offsets").join("truth.jsonl");
        let out = run(tracer()
            .args(["locks", "--json", "--"])
            .arg(integration_tests::private_copy(&binary))
            .args(["-scenario", "locks", "-truth"])
            .arg(&truth_path));
        assert!(out.status.success(), "{what}: {out:?}");
        let records = json_lines(&String::from_utf8_lossy(&out.stdout));
        let truth = read_json_lines(&truth_path);
        let planted = of_kind(&truth, "lock_wait");
        assert_eq!(planted.len(), 6, "{what}: two waiters per lock");
        let name_at: std::collections::HashMap<u64, String> = planted
            .iter()
            .map(|w| {
                let name = format!("dagql cache {}", w["lock"].as_str().unwrap());
                (w["addr"].as_u64().unwrap(), name)
            })
            .collect();
        assert_eq!(name_at.len(), 3, "{what}: {name_at:?}");
        let contentions = of_kind(&records, "contention");
        for w in &planted {
            let c = contentions
                .iter()
                .find(|c| c["waiter"] == w["goid"] && c["lock"] == w["addr"])
                .unwrap_or_else(|| panic!("{what}: planted wait {w} not reported"));
            assert_eq!(c["lock_named_by"], "offset", "{what}: {c}");
        }
        for c in contentions.iter().chain(&of_kind(&records, "lock_summary")) {
            match name_at.get(&c["lock"].as_u64().unwrap()) {
                Some(name) => {
                    assert_eq!(c["lock_name"], name.as_str(), "{what}: {c}");
                    assert_eq!(c["lock_named_by"], "offset", "{what}: {c}");
                }
                None => assert!(
                    !c["lock_name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("dagql cache")),
                    "{what}: a cache lock's name elsewhere: {c}"
                ),
            }
        }
    }
}

/// The human-readable lines: one per contended acquisition, naming the lock, the waiter and
/// the releaser, then the per-lock summary.
#[test]
fn locks_human_output() {
    let tc = gobuild::newest_toolchain().unwrap();
    let binary = gobuild::build("locks", &tc, true).unwrap();
    let truth_path = scratch_dir("locks-human").join("truth.jsonl");
    let out = run(tracer()
        .args(["locks", "--"])
        .arg(integration_tests::private_copy(&binary))
        .args(["-rounds", "1", "-waiters", "2", "-truth"])
        .arg(&truth_path));
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let truth = read_json_lines(&truth_path);
    for t in of_kind(&truth, "contended") {
        let line = format!(
            "{} {:#x}  goroutine {} waited ",
            t["type"].as_str().unwrap(),
            t["addr"].as_u64().unwrap(),
            t["waiter"]
        );
        let found = text
            .lines()
            .find(|l| l.contains(&line))
            .unwrap_or_else(|| panic!("no line with {line:?} in {text}"));
        assert!(
            found.ends_with(&format!("released by goroutine {}", t["released_by"])),
            "{found}"
        );
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let n = of_kind(&truth, "contended").len();
    assert!(
        stderr.contains(&format!("{n} contended acquisitions; lost events: 0")),
        "{stderr}"
    );
}

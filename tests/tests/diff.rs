//! `tracer diff`: two runs of the L4 stand-in's deterministic `sequence` scenario, one
//! with a planted change (one nested call's argument). The first divergence must be
//! exactly the call the stand-in says it changed, with its parent chain; identical runs
//! must agree; bad input exits 2.
use std::path::{Path, PathBuf};

use integration_tests::{gobuild, of_kind, read_json_lines, run, scratch_dir, tracer};
use serde_json::Value;

struct Recorded {
    recording: PathBuf,
    records: PathBuf,
    truth: Vec<Value>,
}

fn record(dir: &Path, engine: &Path, name: &str, planted: bool) -> Recorded {
    let recording = dir.join(format!("{name}.trace"));
    let records = dir.join(format!("{name}.jsonl"));
    let truth = dir.join(format!("{name}.truth.jsonl"));
    let mut cmd = tracer();
    cmd.args(["cache", "--json", "--explain", "--record"])
        .arg(&recording)
        .arg("-o")
        .arg(&records)
        .arg("--")
        .arg(engine)
        .args(["-scenario", "sequence", "-truth"])
        .arg(&truth);
    if planted {
        cmd.arg("-plant-arg");
    }
    assert_eq!(run(&mut cmd).status.code(), Some(0), "{name}");
    Recorded {
        recording,
        records,
        truth: read_json_lines(&truth),
    }
}

fn diff(a: &Path, b: &Path) -> (Option<i32>, Value) {
    let out = run(tracer().arg("diff").arg(a).arg(b).arg("--json"));
    let text = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(text.trim()).unwrap_or(Value::Null);
    (out.status.code(), v)
}

#[test]
fn the_first_divergence_is_the_planted_call_and_identical_runs_agree() {
    let dir = scratch_dir("diff");
    let tc = gobuild::default_toolchain().unwrap();
    let engine = integration_tests::private_copy(
        &gobuild::build_tagged("engine-l4", &tc, true, "").unwrap(),
    );
    let a = record(&dir, &engine, "a", false);
    let b = record(&dir, &engine, "b", true);
    let c = record(&dir, &engine, "c", false);

    // Same flags, same identity flow: exit 0, for recordings and JSON outputs alike.
    for (x, y) in [(&a.recording, &c.recording), (&a.records, &c.recording)] {
        let (code, v) = diff(x, y);
        assert_eq!(code, Some(0), "{v}");
        assert_eq!(v["diverged"], false);
        assert!(v["first_divergence"].is_null());
    }
    let out = run(tracer().arg("diff").arg(&a.recording).arg(&c.recording));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no divergence"));

    // The planted change: exactly the watched call on both sides, with its parent chain.
    let site = |t: &[Value]| -> Value { of_kind(t, "plant_site")[0].clone() };
    let (site_a, site_b) = (site(&a.truth), site(&b.truth));
    assert_eq!(site_a["planted"], false);
    assert_eq!(site_b["planted"], true);
    assert_ne!(site_a["digest"], site_b["digest"]);
    for (x, y) in [(&a.recording, &b.recording), (&a.records, &b.recording)] {
        let (code, v) = diff(x, y);
        assert_eq!(code, Some(1), "{v}");
        let first = &v["first_divergence"];
        assert_eq!(first["differs"], serde_json::json!(["digest"]), "{v}");
        assert_eq!(first["a"]["call"]["digest"], site_a["digest"], "{v}");
        assert_eq!(first["b"]["call"]["digest"], site_b["digest"], "{v}");
        for side in ["a", "b"] {
            assert_eq!(
                first[side]["parent_chain"],
                serde_json::json!([site_a["parent_digest"]]),
                "the dep's parent is a root build call: {v}"
            );
            assert_eq!(first[side]["call"]["session"], "sess-1");
        }
        // Only the planted call's digest differs: nothing else was asked for differently.
        assert_eq!(v["summary"]["digests_only_in_a"], 1, "{v}");
        assert_eq!(v["summary"]["digests_only_in_b"], 1, "{v}");
        assert_eq!(v["summary"]["digests_differing"], 0, "{v}");
        // Per call name (the runs read identities): only `dep` differs.
        let by_field = v["summary"]["by_field"].as_object().unwrap();
        for (field, f) in by_field {
            let changed = f["only_in_a"].as_u64().unwrap() + f["only_in_b"].as_u64().unwrap();
            assert_eq!(changed, if field == "dep" { 2 } else { 0 }, "{field}: {f}");
        }
        assert!(by_field.contains_key("build"), "{v}");
    }
    let calls = of_kind(&read_json_lines(&a.records), "cache_call").len();
    let truth_calls = of_kind(&a.truth, "call").len();
    assert_eq!(calls, truth_calls, "every call of the run was compared");

    // Bad input: exit 2 with one sentence.
    let junk = dir.join("junk.txt");
    std::fs::write(&junk, "not json\n").unwrap();
    let out = run(tracer().arg("diff").arg(&a.recording).arg(&junk));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a JSON record"), "{stderr}");
    let out = run(tracer()
        .arg("diff")
        .arg(&a.recording)
        .arg(dir.join("missing.trace")));
    assert_eq!(out.status.code(), Some(2));
}

/// `--explain` on the misses the stand-in plants (a changed argument, the same call on
/// another receiver, DoNotCache, a new field with a sensitive argument): each names the
/// part the stand-in changed; a sensitive value is never shown, live or replayed.
#[test]
fn explain_names_the_part_each_planted_miss_changed() {
    let dir = scratch_dir("explain");
    let tc = gobuild::default_toolchain().unwrap();
    let engine = integration_tests::private_copy(
        &gobuild::build_tagged("engine-l4", &tc, true, "").unwrap(),
    );
    let recording = dir.join("explain.trace");
    let records = dir.join("explain.jsonl");
    let truth = dir.join("truth.jsonl");
    let out = run(tracer()
        .args(["cache", "--explain", "--json", "--record"])
        .arg(&recording)
        .arg("-o")
        .arg(&records)
        .arg("--")
        .arg(&engine)
        .args(["-scenario", "sequence", "-truth"])
        .arg(&truth));
    assert_eq!(out.status.code(), Some(0));
    let records = read_json_lines(&records);
    let truth = read_json_lines(&truth);
    let calls = of_kind(&records, "cache_call");
    let plants = of_kind(&truth, "explain_plant");
    assert_eq!(plants.len(), 5, "the scenario plants five misses");
    for plant in &plants {
        let outcome = if plant["part"] == "do_not_cache" {
            "uncached"
        } else {
            "miss"
        };
        let call = calls
            .iter()
            .find(|c| c["digest"] == plant["digest"] && c["outcome"] == outcome)
            .unwrap_or_else(|| panic!("no {outcome} call for {plant}"));
        let first = &call["explain"]["differs"][0];
        assert_eq!(
            first["part"], plant["part"],
            "{plant} -> {}",
            call["explain"]
        );
        if plant["part"] != "do_not_cache" {
            assert_eq!(call["identity"]["field"], plant["field"], "{call}");
        }
        if plant["part"] == "input 0" {
            // The receiver differs; the self digest (field and arguments) does not.
            assert_ne!(first["was"], first["now"]);
            assert!(first["now"].as_str().unwrap().starts_with("xxh3:"));
        }
    }
    // The engine's own miss facts (its armed CacheDecision), as the stand-in recorded them.
    let truth_misses = of_kind(&truth, "call");
    let mut unknown_inputs = 0;
    for c in calls.iter().filter(|c| c["outcome"] == "miss") {
        let t = truth_misses
            .iter()
            .find(|t| t["digest"] == c["digest"] && t["outcome"] == "miss")
            .unwrap_or_else(|| panic!("no truth for {c}"));
        let want = &t["engine_miss"];
        let got = &c["engine_miss"];
        if want.is_null() {
            assert!(got.is_null(), "{c}");
            continue;
        }
        assert_eq!(
            got["incompatible_candidates"],
            want["incompatible_candidates"]
        );
        assert_eq!(got["saw_expired"], want["saw_expired"]);
        let unknown = want["unknown_input"].as_i64().filter(|i| *i >= 0);
        assert_eq!(got["unknown_input"].as_i64(), unknown, "{c}");
        unknown_inputs += unknown.is_some() as u32;
    }
    assert_eq!(
        unknown_inputs, 1,
        "the sub on a receiver the cache never saw"
    );
    // Every miss and uncached call is explained, no hit is.
    for c in &calls {
        let explained = !c["explain"].is_null();
        let should = c["outcome"] == "miss" || c["outcome"] == "uncached";
        assert_eq!(explained, should, "{c}");
    }
    // The sensitive argument: seen as sensitive, its value nowhere.
    let secret = plants
        .iter()
        .find_map(|p| p["secret"].as_str())
        .expect("a planted secret");
    let login = calls
        .iter()
        .find(|c| c["identity"]["field"] == "login")
        .expect("the login call");
    assert_eq!(login["identity"]["args"][1]["name"], "token");
    assert_eq!(login["identity"]["args"][1]["sensitive"], true);
    assert!(login["identity"]["args"][1]["value"].is_null());
    let live_text = serde_json::to_string(&records).unwrap();
    assert!(!live_text.contains(secret));
    let replayed = run(tracer().arg("replay").arg(&recording).arg("--json"));
    let replayed_text = String::from_utf8_lossy(&replayed.stdout);
    assert!(!replayed_text.contains(secret));
    assert_eq!(
        integration_tests::json_lines(&replayed_text),
        records,
        "replay equals the live run with --explain too"
    );
}

/// `--explain` on L3 (v0.21.x): the same probes read the same parts; each call's field and
/// first argument equal what the stand-in recorded for it, and every miss is explained.
#[test]
fn explain_reads_each_calls_identity_on_l3() {
    let dir = scratch_dir("explain-l3");
    let tc = gobuild::default_toolchain().unwrap();
    let engine = integration_tests::private_copy(
        &gobuild::build_tagged("engine-l3", &tc, true, "").unwrap(),
    );
    let records = dir.join("records.jsonl");
    let truth = dir.join("truth.jsonl");
    let out = run(tracer()
        .args(["cache", "--explain", "--json", "-o"])
        .arg(&records)
        .arg("--")
        .arg(&engine)
        .args(["-scenario", "mixed", "-seed", "7", "-truth"])
        .arg(&truth));
    assert_eq!(out.status.code(), Some(0));
    let records = read_json_lines(&records);
    let truth = read_json_lines(&truth);
    let truth_calls = of_kind(&truth, "call");
    let mut checked = 0;
    for c in of_kind(&records, "cache_call") {
        if c["outcome"] == "miss" {
            assert!(!c["explain"].is_null(), "{c}");
        }
        let id = &c["identity"];
        if id.is_null() {
            continue;
        }
        let t = truth_calls
            .iter()
            .find(|t| t["digest"] == c["digest"])
            .unwrap_or_else(|| panic!("no truth for {c}"));
        assert_eq!(id["field"], t["field"], "{c}");
        assert_eq!(id["args"][0]["name"], "k", "{c}");
        assert_eq!(id["args"][0]["value"], t["arg0"], "{c}");
        assert!(id["self_digest"].as_str().unwrap().starts_with("xxh3:"));
        checked += 1;
    }
    assert!(checked > 50, "identities read: {checked}");
}

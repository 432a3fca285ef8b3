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
    cmd.args(["cache", "--json", "--record"])
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

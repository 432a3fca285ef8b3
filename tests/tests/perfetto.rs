//! `--format perfetto`: the trace is decoded with Perfetto's own schema (PyPI's
//! `perfetto` package, `perfetto_trace_pb2`, installed by `cargo xtask setup`): every
//! packet parses, every track used is described first, slices nest per track, and the
//! slices per outcome and the flows equal the JSON records of the same run; for `tracer
//! locks`, the wait slices and release flows equal its contention records.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Command,
};

use integration_tests::{gobuild, of_kind, read_json_lines, run, scratch_dir, tracer};
use serde_json::Value;

/// Decodes a trace with Perfetto's generated module and summarises it as JSON.
const CHECK: &str = r#"
import json, sys
from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb
trace = pb.Trace()
trace.ParseFromString(open(sys.argv[1], 'rb').read())
described, names, args, track_names, parked = set(), {}, {}, {}, set()
undescribed, nest_errors, slices, flows = 0, 0, {}, set()
pending, intervals = {}, {}
for p in trace.packet:
    if p.sequence_flags & 1:
        names.clear(); args.clear()
    for n in p.interned_data.event_names:
        names[n.iid] = n.name
    for n in p.interned_data.debug_annotation_names:
        args[n.iid] = n.name
    if p.HasField('track_descriptor'):
        d = p.track_descriptor
        track_names[d.uuid] = d.name
        if d.HasField('parent_uuid') and d.parent_uuid not in described:
            undescribed += 1
        described.add(d.uuid)
    if not p.HasField('track_event'):
        continue
    e = p.track_event
    if e.track_uuid not in described:
        undescribed += 1
    if e.type == pb.TrackEvent.TYPE_SLICE_BEGIN or e.type == pb.TrackEvent.TYPE_INSTANT:
        a = {args[x.name_iid]: (x.string_value if x.HasField('string_value') else x.uint_value)
             for x in e.debug_annotations}
        # Cache calls by outcome; lock waits, releases and acquisitions by their event.
        outcome = a.get('outcome') or a.get('event')
        if outcome == 'parked':
            parked.add(track_names.get(e.track_uuid))
        slices[outcome] = slices.get(outcome, 0) + 1
        if names.get(e.name_iid) is None:
            undescribed += 1
        flows.update(e.flow_ids)
        if e.type == pb.TrackEvent.TYPE_SLICE_BEGIN:
            if e.track_uuid in pending:
                nest_errors += 1
            pending[e.track_uuid] = p.timestamp
    elif e.type == pb.TrackEvent.TYPE_SLICE_END:
        begin = pending.pop(e.track_uuid, None)
        if begin is None or begin > p.timestamp:
            nest_errors += 1
        else:
            intervals.setdefault(e.track_uuid, []).append((begin, p.timestamp))
# Per track, sorted by time (as Perfetto sorts them), a slice that starts inside another
# must end inside it.
for spans in intervals.values():
    spans.sort(key=lambda x: (x[0], -x[1]))
    ends = []
    for b, e in spans:
        while ends and ends[-1] <= b:
            ends.pop()
        if ends and e > ends[-1]:
            nest_errors += 1
        ends.append(e)
print(json.dumps({'packets': len(trace.packet), 'tracks': len(described),
                  'undescribed': undescribed, 'nest_errors': nest_errors,
                  'unclosed': len(pending),
                  'slices': slices, 'flows': len(flows),
                  'parked_tracks': sorted(t for t in parked if t)}))
"#;

fn decode(trace: &Path) -> Value {
    let python = gobuild::tracer_go_dir().join("python");
    assert!(
        python.join("perfetto").is_dir() || std::env::var_os("CI").is_none(),
        "Perfetto's Python package is missing in {} (cargo xtask setup installs it)",
        python.display()
    );
    let out = Command::new("python3")
        .env("PYTHONPATH", &python)
        .args(["-c", CHECK])
        .arg(trace)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the trace does not decode with Perfetto's schema: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the checker prints JSON")
}

/// Nesting by time on each track, from the JSON records: calls on one goroutine either
/// nest or follow each other.
fn records_nest(calls: &[&Value]) -> bool {
    let mut by_goid: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
    for c in calls {
        if let (Some(s), Some(d)) = (c["start_ns"].as_u64(), c["duration_ns"].as_u64()) {
            by_goid
                .entry(c["goid"].as_u64().unwrap())
                .or_default()
                .push((s, s + d));
        }
    }
    by_goid.values_mut().all(|v| {
        v.sort();
        let mut stack: Vec<u64> = Vec::new();
        v.iter().all(|&(s, e)| {
            while stack.last().is_some_and(|&end| end <= s) {
                stack.pop();
            }
            let ok = stack.last().is_none_or(|&end| e <= end);
            stack.push(e);
            ok
        })
    })
}

#[test]
fn a_perfetto_trace_decodes_with_perfettos_schema_and_matches_the_records() {
    let dir = scratch_dir("perfetto");
    let tc = gobuild::default_toolchain().unwrap();
    let engine = integration_tests::private_copy(
        &gobuild::build_tagged("engine-l4", &tc, true, "").unwrap(),
    );
    let recording = dir.join("mixed.trace");
    let records = dir.join("mixed.jsonl");
    let out = run(tracer()
        .args(["cache", "--json", "--explain", "--record"])
        .arg(&recording)
        .arg("-o")
        .arg(&records)
        .arg("--")
        .arg(&engine)
        .args(["-scenario", "mixed", "-seed", "7"]));
    assert_eq!(out.status.code(), Some(0));
    let pftrace = dir.join("mixed.pftrace");
    let out = run(tracer()
        .arg("replay")
        .arg(&recording)
        .args(["--format", "perfetto", "-o"])
        .arg(&pftrace));
    assert_eq!(out.status.code(), Some(0));
    let got = decode(&pftrace);
    assert_eq!(got["undescribed"], 0, "{got}");
    assert_eq!(got["nest_errors"], 0, "{got}");
    assert_eq!(got["unclosed"], 0, "{got}");

    let records = read_json_lines(&records);
    let calls = of_kind(&records, "cache_call");
    assert!(
        records_nest(&calls),
        "the records themselves nest per goroutine"
    );
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for c in &calls {
        let o = c["outcome"].as_str().unwrap_or("unknown").to_string();
        *want.entry(o).or_default() += 1;
    }
    let got_slices: BTreeMap<String, u64> = serde_json::from_value(got["slices"].clone()).unwrap();
    assert_eq!(got_slices, want, "slices per outcome");
    let executions: BTreeSet<u64> = calls
        .iter()
        .filter(|c| c["outcome"] == "miss" || c["outcome"] == "join")
        .filter_map(|c| c["exec_goid"].as_u64())
        .collect();
    assert!(!executions.is_empty());
    assert_eq!(got["flows"], executions.len(), "one flow per execution");
    let goroutines: BTreeSet<u64> = calls.iter().filter_map(|c| c["goid"].as_u64()).collect();
    assert_eq!(
        got["tracks"],
        goroutines.len() + 1,
        "a track per goroutine + the process"
    );

    // Live, too: slices per outcome equal the engine's own record of its calls.
    let live = dir.join("live.pftrace");
    let truth = dir.join("live-truth.jsonl");
    let out = run(tracer()
        .args(["cache", "--format", "perfetto", "-o"])
        .arg(&live)
        .arg("--")
        .arg(&engine)
        .args(["-scenario", "sequence", "-truth"])
        .arg(&truth));
    assert_eq!(out.status.code(), Some(0));
    let got = decode(&live);
    assert_eq!(got["undescribed"], 0, "{got}");
    assert_eq!(got["nest_errors"], 0, "{got}");
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for c in of_kind(&read_json_lines(&truth), "call") {
        *want
            .entry(c["outcome"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let got_slices: BTreeMap<String, u64> = serde_json::from_value(got["slices"].clone()).unwrap();
    assert_eq!(
        got_slices, want,
        "live slices per outcome against the engine's record"
    );

    // Binary to a terminal is refused before anything is attached.
    let out = run(tracer()
        .args(["cache", "--format", "perfetto", "--"])
        .arg(&engine));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("give it a file"));
}

#[test]
fn a_locks_timeline_has_one_wait_slice_per_contention_and_a_flow_per_known_release() {
    let dir = scratch_dir("perfetto-locks");
    let tc = gobuild::default_toolchain().unwrap();
    let program = integration_tests::private_copy(&gobuild::build("locks", &tc, true).unwrap());
    let recording = dir.join("locks.trace");
    let records = dir.join("locks.jsonl");
    let out = run(tracer()
        .args(["locks", "--json", "--record"])
        .arg(&recording)
        .arg("-o")
        .arg(&records)
        .arg("--")
        .arg(&program)
        .args(["-rounds", "2", "-waiters", "3"]));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let pftrace = dir.join("locks.pftrace");
    let out = run(tracer()
        .arg("replay")
        .arg(&recording)
        .args(["--format", "perfetto", "-o"])
        .arg(&pftrace));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let got = decode(&pftrace);
    assert_eq!(got["undescribed"], 0, "{got}");
    assert_eq!(got["nest_errors"], 0, "{got}");
    assert_eq!(got["unclosed"], 0, "{got}");

    let records = read_json_lines(&records);
    let contentions = of_kind(&records, "contention");
    assert!(!contentions.is_empty(), "the program makes contention");
    let released = contentions
        .iter()
        .filter(|c| c["released_by"].as_u64().is_some())
        .count() as u64;
    let slices: BTreeMap<String, u64> = serde_json::from_value(got["slices"].clone()).unwrap();
    let want: BTreeMap<String, u64> = [
        ("lock_wait".to_string(), contentions.len() as u64),
        ("lock_release".to_string(), released),
        ("lock_acquired".to_string(), released),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .collect();
    assert_eq!(slices, want, "waits, releases and acquisitions");
    assert_eq!(got["flows"], released, "one flow per known releaser");
    let goroutines: BTreeSet<u64> = contentions
        .iter()
        .flat_map(|c| [c["waiter"].as_u64(), c["released_by"].as_u64()])
        .flatten()
        .collect();
    assert_eq!(
        got["tracks"],
        goroutines.len() + 1,
        "a track per goroutine + the process"
    );
}

/// `hang --watch --format perfetto`: each goroutine of tests/go/hang's hangs is one parked
/// slice on its track (closed at the stop), the AB-BA pair one possible deadlock.
#[test]
fn a_watch_timeline_has_a_parked_slice_per_hung_goroutine() {
    let dir = scratch_dir("perfetto-watch");
    let tc = gobuild::default_toolchain().unwrap();
    let program = integration_tests::private_copy(&gobuild::build("hang", &tc, true).unwrap());
    let truth_path = dir.join("truth.jsonl");
    let mut hung = Command::new(&program)
        .arg("-truth")
        .arg(&truth_path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the hang program starts");
    let stdout = hung.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    while lines
        .next()
        .expect("it says when its hangs formed")
        .unwrap()
        != "ready"
    {}
    let pftrace = dir.join("watch.pftrace");
    let out = run(tracer()
        .args(["hang", "--watch", "--threshold", "0.5", "--duration", "4"])
        .args(["--format", "perfetto", "-o"])
        .arg(&pftrace)
        .arg("--pid")
        .arg(hung.id().to_string()));
    let _ = hung.kill();
    let _ = hung.wait();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let got = decode(&pftrace);
    assert_eq!(got["undescribed"], 0, "{got}");
    assert_eq!(got["nest_errors"], 0, "{got}");
    assert_eq!(got["unclosed"], 0, "{got}");
    let parked: BTreeSet<String> = serde_json::from_value(got["parked_tracks"].clone()).unwrap();
    let truth = read_json_lines(&truth_path);
    let hung_goroutines: Vec<&Value> = truth.iter().filter(|t| t["kind"] != "holds").collect();
    assert!(!hung_goroutines.is_empty());
    for t in &hung_goroutines {
        let track = format!("goroutine {}", t["goid"]);
        assert!(parked.contains(&track), "{} not parked: {got}", t["name"]);
    }
    assert_eq!(
        got["slices"]["parked"].as_u64(),
        Some(parked.len() as u64),
        "one parked slice per goroutine: {got}"
    );
    assert!(
        got["slices"]["possible_deadlock"].as_u64() >= Some(2),
        "the AB-BA pair: {got}"
    );
}

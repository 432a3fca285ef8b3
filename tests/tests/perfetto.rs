//! `--format perfetto`: the trace is decoded with Perfetto's own schema (PyPI's
//! `perfetto` package, `perfetto_trace_pb2`, installed by `cargo xtask setup`): every
//! packet parses, every track used is described first, slices nest per track, and the
//! slices per outcome and the flows equal the JSON records of the same run; for `tracer
//! locks`, the wait slices and release flows equal its contention records.
use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
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
counter_tracks, counter_values, bad_counters = set(), {}, 0
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
        if d.HasField('counter'):
            counter_tracks.add(d.uuid)
        if d.HasField('parent_uuid') and d.parent_uuid not in described:
            undescribed += 1
        described.add(d.uuid)
    if not p.HasField('track_event'):
        continue
    e = p.track_event
    if e.track_uuid not in described:
        undescribed += 1
    if e.type == pb.TrackEvent.TYPE_COUNTER:
        if e.track_uuid not in counter_tracks or not e.HasField('counter_value'):
            bad_counters += 1
        counter_values.setdefault(e.track_uuid, []).append((p.timestamp, e.counter_value))
        continue
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
# Each counter track's values in time order (as Perfetto sorts them), by track name.
counters = {track_names[u]: [v for _, v in sorted(counter_values.get(u, []), key=lambda x: x[0])]
            for u in counter_tracks}
goroutine_tracks = sorted(track_names[u] for u in described - counter_tracks
                          if (track_names.get(u) or '').startswith('goroutine '))
print(json.dumps({'packets': len(trace.packet), 'tracks': len(described - counter_tracks),
                  'counters': counters, 'bad_counters': bad_counters,
                  'goroutine_tracks': goroutine_tracks,
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

/// The last value of each counter track whose name starts with `prefix`.
fn last_counter_values(got: &Value, prefix: &str) -> BTreeMap<String, i64> {
    let counters: BTreeMap<String, Vec<i64>> =
        serde_json::from_value(got["counters"].clone()).unwrap();
    counters
        .into_iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(name, values)| {
            let last = *values
                .last()
                .unwrap_or_else(|| panic!("counter track {name} has no value"));
            (name, last)
        })
        .collect()
}

/// Every session of the JSON summary that took or released a ref has a `refs held` counter
/// track whose last value is its refs taken minus released, and no other session has one.
fn assert_refs_counters_match(got: &Value, summary: &Value) {
    assert_eq!(got["bad_counters"], 0, "{got}");
    let mut want = BTreeMap::new();
    for s in summary["sessions"].as_array().unwrap() {
        let Some(id) = s["session"].as_str() else {
            continue;
        };
        let taken = s["refs_taken"].as_i64().unwrap();
        let released = s["refs_released"].as_i64().unwrap();
        if taken + released > 0 {
            want.insert(format!("refs held: {id}"), taken - released);
        }
    }
    assert!(!want.is_empty(), "the run's sessions took refs: {summary}");
    assert_eq!(
        last_counter_values(got, "refs held: "),
        want,
        "refs held per session against the JSON summary"
    );
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
    // Counter tracks: refs held per session against the same run's JSON summary, and the
    // cache entries the live run read at its end, when it could (this engine exits with
    // its workload: then the counter holds only the reads made while it ran).
    let summary = of_kind(&records, "cache_summary")[0];
    assert_refs_counters_match(&got, summary);
    if let Some(want) = summary["metrics"]["dagger_dagql_cache_entries"].as_i64() {
        let entries = last_counter_values(&got, "cache entries");
        assert_eq!(
            entries.get("cache entries").copied(),
            Some(want),
            "cache entries against the summary"
        );
    }

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

/// `tracer cache --format perfetto --record` of the L4 stand-in's `scenario`, which stays up
/// after its workload until the tracer has stopped; the timeline, the recording and the
/// engine's truth, in `dir`.
fn live_serving_run(dir: &Path, scenario: &str) -> (PathBuf, PathBuf, Vec<Value>) {
    let tc = gobuild::default_toolchain().unwrap();
    let engine = integration_tests::private_copy(
        &gobuild::build_tagged("engine-l4", &tc, true, "").unwrap(),
    );
    let pftrace = dir.join("live.pftrace");
    let recording = dir.join("live.trace");
    let truth = dir.join("truth.jsonl");
    let mut traced = tracer()
        .args(["cache", "--format", "perfetto", "-o"])
        .arg(&pftrace)
        .arg("--record")
        .arg(&recording)
        .arg("--")
        .arg(&engine)
        .args(["-scenario", scenario, "-seed", "7", "-serve", "-truth"])
        .arg(&truth)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .expect("the tracer starts");
    // The engine says when its workload is done (then idles until signalled).
    let stdout = traced.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .expect("the engine reports its workload")
            .unwrap();
        if line.starts_with("engine: ") {
            break;
        }
    }
    // A few turns of the event loop read the idle engine's cache size.
    std::thread::sleep(Duration::from_millis(500));
    // SIGINT to the tracer alone (it reads the idle engine's cache size at the stop), then
    // the engine, its process group, is killed.
    let pid = traced.id() as i32;
    // SAFETY: kill has no memory preconditions.
    unsafe { libc_kill(pid, 2) };
    let status = traced.wait().unwrap();
    // SAFETY: as above.
    unsafe { libc_kill(-pid, 9) };
    assert_eq!(
        status.code(),
        Some(130),
        "the tracer stops with its summary"
    );
    (pftrace, recording, read_json_lines(&truth))
}

/// The live timeline's goroutine tracks named `goroutine N: F` each name the function the
/// engine recorded goroutine N started its work in (its first user function); the number
/// of named tracks.
fn assert_names_match_truth(got: &Value, truth: &[Value]) -> usize {
    let want: BTreeMap<u64, &str> = of_kind(truth, "goroutine")
        .iter()
        .map(|g| (g["goid"].as_u64().unwrap(), g["func"].as_str().unwrap()))
        .collect();
    let tracks: Vec<String> = serde_json::from_value(got["goroutine_tracks"].clone()).unwrap();
    let mut named = 0;
    for t in &tracks {
        let Some((goid, function)) = t
            .strip_prefix("goroutine ")
            .and_then(|t| t.split_once(": "))
        else {
            continue;
        };
        let goid: u64 = goid.parse().unwrap();
        assert_eq!(
            want.get(&goid).copied(),
            Some(function),
            "track `{t}` against the engine's record of goroutine {goid}"
        );
        named += 1;
    }
    named
}

/// A replay of the live run's recording draws the same timeline, byte for byte: the cache
/// sizes and goroutine functions the live run read from memory are facts in the recording.
/// Returns the replayed timeline, decoded.
fn assert_replay_draws_the_same(dir: &Path, live: &Path, recording: &Path) -> Value {
    let replayed = dir.join("replayed.pftrace");
    let out = run(tracer()
        .arg("replay")
        .arg(recording)
        .args(["--format", "perfetto", "-o"])
        .arg(&replayed));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let (live_bytes, replayed_bytes) = (
        std::fs::read(live).unwrap(),
        std::fs::read(&replayed).unwrap(),
    );
    let (got_live, got_replayed) = (decode(live), decode(&replayed));
    assert_eq!(
        got_live["counters"]["cache entries"], got_replayed["counters"]["cache entries"],
        "the cache entries counter, live and replayed"
    );
    assert_eq!(
        got_live["goroutine_tracks"], got_replayed["goroutine_tracks"],
        "the goroutine tracks' names, live and replayed"
    );
    assert!(
        live_bytes == replayed_bytes,
        "live ({} bytes) and replayed ({} bytes) timelines differ: {got_live} vs {got_replayed}",
        live_bytes.len(),
        replayed_bytes.len()
    );
    got_replayed
}

/// Live, on an engine that stays up after its workload: the cache entries counter ends at
/// the size the engine itself reports, and the refs held per session equal the JSON summary
/// of the same run (its recording replayed to JSON); its replay draws the same timeline.
#[test]
fn a_live_timeline_counts_refs_per_session_and_cache_entries() {
    let dir = scratch_dir("perfetto-counters");
    let (pftrace, recording, truth) = live_serving_run(&dir, "mixed");
    let got = decode(&pftrace);
    assert_eq!(got["undescribed"], 0, "{got}");
    assert_eq!(got["nest_errors"], 0, "{got}");
    let end = of_kind(&truth, "end")[0];
    let entries = last_counter_values(&got, "cache entries");
    assert_eq!(
        entries.get("cache entries").copied(),
        end["cache_entries"].as_i64(),
        "the entries counter ends at the engine's own Size(): {got}"
    );
    let filled = got["counters"]["cache entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v.as_i64() > Some(0));
    assert!(
        filled,
        "the counter followed the workload filling the cache: {got}"
    );
    let out = run(tracer().arg("replay").arg(&recording).arg("--json"));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let records = integration_tests::json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_refs_counters_match(&got, of_kind(&records, "cache_summary")[0]);
    let reads = got["counters"]["cache entries"].as_array().unwrap().len();
    assert!(
        reads > 1,
        "the counter has the reads made while tracing: {got}"
    );
    assert!(
        assert_names_match_truth(&got, &truth) > 0,
        "the main goroutine's track is named: {got}"
    );
    assert_replay_draws_the_same(&dir, &pftrace, &recording);
}

/// `tracer cache` reads its goroutines' first user functions from the engine's memory: in
/// the stand-in's `locks` scenario each goroutine that waits 100 ms on a cache lock inside a
/// cache call has a track named by the function the engine recorded for it; every named
/// track agrees with the engine; a replay draws the same names without the memory.
#[test]
fn cache_goroutine_tracks_are_named_by_their_first_user_function() {
    let dir = scratch_dir("perfetto-names");
    let (pftrace, recording, truth) = live_serving_run(&dir, "locks");
    let got = decode(&pftrace);
    assert_eq!(got["undescribed"], 0, "{got}");
    assert_eq!(got["nest_errors"], 0, "{got}");
    assert_names_match_truth(&got, &truth);
    let recorded: BTreeMap<u64, &str> = of_kind(&truth, "goroutine")
        .iter()
        .map(|g| (g["goid"].as_u64().unwrap(), g["func"].as_str().unwrap()))
        .collect();
    let tracks: BTreeSet<String> = serde_json::from_value(got["goroutine_tracks"].clone()).unwrap();
    let waiters: Vec<u64> = of_kind(&truth, "lock_wait")
        .iter()
        .map(|w| w["goid"].as_u64().unwrap())
        .filter(|g| recorded.contains_key(g))
        .collect();
    assert!(!waiters.is_empty(), "the scenario planted waiting calls");
    for g in waiters {
        let want = format!("goroutine {g}: {}", recorded[&g]);
        assert!(tracks.contains(&want), "{want} not among {tracks:?}");
    }
    assert_replay_draws_the_same(&dir, &pftrace, &recording);
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
    // Each waiter's track is named by its goroutine's first user function: the outermost
    // frame outside the runtime of a waiting stack the records show for it.
    let names: BTreeSet<String> = serde_json::from_value(got["goroutine_tracks"].clone()).unwrap();
    for c in &contentions {
        let waiter = c["waiter"].as_u64().unwrap();
        let named: Vec<&String> = names
            .iter()
            .filter(|n| n.starts_with(&format!("goroutine {waiter}: ")))
            .collect();
        assert_eq!(
            named.len(),
            1,
            "goroutine {waiter} has one named track: {names:?}"
        );
        let function = named[0].split_once(": ").unwrap().1;
        assert!(function.starts_with("main."), "{function}");
        let outermost_user = |r: &&Value| {
            r["stack"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|f| f["func"].as_str())
                .rfind(|f| !f.starts_with("runtime."))
                .map(str::to_owned)
        };
        assert!(
            contentions
                .iter()
                .filter(|r| r["waiter"] == c["waiter"])
                .filter_map(outermost_user)
                .any(|f| f == function),
            "goroutine {waiter}'s track names {function}, the outermost user frame of a stack it waited with"
        );
    }
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
    // Each hung goroutine's track is named by its goid and the function it was started
    // with, as the program itself recorded it.
    for t in &hung_goroutines {
        let track = format!("goroutine {}: {}", t["goid"], t["func"].as_str().unwrap());
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

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

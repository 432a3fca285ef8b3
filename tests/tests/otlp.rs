//! `tracer cache --otlp URL`: a receiver on loopback (tests/otlp_receiver.py, decoding with
//! PyPI's `opentelemetry-proto`, installed by `cargo xtask setup`) takes the spans of the
//! L4 stand-in's run; they equal the tracer's JSON records of the same run (per outcome,
//! digests, routes, goroutines, sessions, durations, parent links), carry the engine's
//! attribute names and the resource, and the summary counts them. With nothing listening,
//! or a collector that never answers, the tracer still exits promptly and counts the spans
//! it dropped. `tracer locks --otlp`: one span per contended wait, equal to the run's
//! `contention` records, live and replayed; a stopped receiver costs counted drops.
use std::{
    collections::{BTreeMap, HashMap},
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use integration_tests::{
    ChildGuard, free_port, gobuild, of_kind, read_json_lines, run, scratch_dir, tracer,
};
use serde_json::Value;

/// The Python with opentelemetry-proto, or None outside CI when it is missing (under
/// CI=true a missing receiver fails the test).
fn python_path() -> Option<PathBuf> {
    let python = gobuild::tracer_go_dir().join("python");
    let present = python
        .join("opentelemetry/proto/collector/trace/v1/trace_service_pb2.py")
        .is_file();
    assert!(
        present || std::env::var_os("CI").is_none(),
        "opentelemetry-proto is missing in {} (cargo xtask setup installs it)",
        python.display()
    );
    if !present {
        eprintln!("opentelemetry-proto missing: skipped outside CI (cargo xtask setup)");
    }
    present.then_some(python)
}

/// Starts the receiver writing spans to `out`; returns it and its port.
fn receiver(python: &Path, out: &Path) -> (ChildGuard, u16) {
    let script = integration_tests::workspace_root().join("tests/otlp_receiver.py");
    let mut child = Command::new("python3")
        .env("PYTHONPATH", python)
        .arg(script)
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .strip_prefix("listening ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("the receiver did not start: {line:?}"));
    (ChildGuard(child), port)
}

fn l4_engine() -> PathBuf {
    let tc = gobuild::default_toolchain().unwrap();
    integration_tests::private_copy(&gobuild::build_tagged("engine-l4", &tc, true, "").unwrap())
}

fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn read_spans(path: &Path) -> Vec<Value> {
    if path.exists() {
        read_json_lines(path)
    } else {
        Vec::new()
    }
}

/// A sorted list of one key per item, to compare multisets.
fn bag<T: Ord>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut v: Vec<T> = items.collect();
    v.sort();
    v
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// The engine's `dagger.io/cache.outcome` for the tracer's outcome.
fn engine_word(outcome: &str) -> Option<&'static str> {
    match outcome {
        "hit" | "hit_content" => Some("hit"),
        "miss" => Some("executed"),
        "join" => Some("joined"),
        "uncached" => Some("uncached"),
        _ => None,
    }
}

/// Spans against the records of the same run, call for call.
fn assert_spans_match_records(spans: &[Value], calls: &[&Value]) {
    assert_eq!(spans.len(), calls.len(), "one span per cache_call record");
    let attr = |s: &Value, k: &str| s["attributes"][k].clone();

    // Per outcome, in the tracer's words and the engine's.
    let count = |it: &mut dyn Iterator<Item = String>| {
        let mut m: BTreeMap<String, u64> = BTreeMap::new();
        for k in it {
            *m.entry(k).or_default() += 1;
        }
        m
    };
    let outcome_of = |c: &Value| c["outcome"].as_str().unwrap_or("unknown").to_string();
    let want = count(&mut calls.iter().map(|c| outcome_of(c)));
    let got = count(&mut spans.iter().map(|s| {
        attr(s, "tracer.cache.outcome")
            .as_str()
            .unwrap_or("unknown")
            .to_string()
    }));
    assert_eq!(got, want, "spans per outcome");
    for s in spans {
        let ours = attr(s, "tracer.cache.outcome");
        let engine = attr(s, "dagger.io/cache.outcome");
        assert_eq!(
            text(&engine).as_deref(),
            ours.as_str().and_then(engine_word),
            "dagger.io/cache.outcome in the engine's words: {s}"
        );
    }

    // Digests, routes, goroutines, sessions, durations, errors, names: call for call.
    type Key = (
        Option<String>,
        Option<String>,
        Option<String>,
        u64,
        Option<String>,
        u64,
        Option<String>,
        String,
    );
    let from_record = |c: &&Value| -> Key {
        (
            text(&c["digest"]),
            text(&c["outcome"]),
            text(&c["hit_route"]),
            c["goid"].as_u64().unwrap(),
            text(&c["session"]),
            c["duration_ns"].as_u64().unwrap_or(0),
            text(&c["error"]),
            c["identity"]["field"]
                .as_str()
                .unwrap_or("cache call")
                .to_string(),
        )
    };
    let from_span = |s: &Value| -> Key {
        (
            text(&attr(s, "dagger.io/dag.digest")),
            text(&attr(s, "tracer.cache.outcome")),
            text(&attr(s, "dagger.io/cache.hit.route")),
            attr(s, "tracer.goid").as_u64().unwrap(),
            text(&attr(s, "tracer.session")),
            s["end_ns"].as_u64().unwrap() - s["start_ns"].as_u64().unwrap(),
            text(&attr(s, "tracer.error")),
            s["name"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(
        bag(spans.iter().map(from_span)),
        bag(calls.iter().map(from_record)),
        "(digest, outcome, route, goid, session, duration, error, name) per call"
    );
    let errors = spans.iter().filter(|s| s["status_code"] == 2).count();
    assert_eq!(
        errors,
        calls
            .iter()
            .filter(|c| !c["error"].is_null()
                || c["outcome"] == "error"
                || c["outcome"] == "recursive")
            .count(),
        "an error status per failed call"
    );

    // Parent links: every parent was sent, shares the child's trace, and is the call the
    // record names as parent (by digest).
    let by_id: HashMap<&str, &Value> = spans
        .iter()
        .map(|s| (s["span_id"].as_str().unwrap(), s))
        .collect();
    assert_eq!(by_id.len(), spans.len(), "span ids are unique");
    let mut nested = 0;
    for s in spans {
        let parent = s["parent_span_id"].as_str().unwrap();
        if parent.is_empty() {
            continue;
        }
        nested += 1;
        let p = by_id
            .get(parent)
            .unwrap_or_else(|| panic!("the parent of {s} was not sent"));
        assert_eq!(
            p["trace_id"], s["trace_id"],
            "a child shares its parent's trace"
        );
        assert!(
            p["start_ns"].as_u64() <= s["start_ns"].as_u64(),
            "a parent starts before its child"
        );
        assert_eq!(
            attr(p, "dagger.io/dag.digest"),
            attr(s, "tracer.parent_digest"),
            "the parent span is the record's parent"
        );
    }
    let parent_of = |s: &Value| {
        let p = s["parent_span_id"].as_str().unwrap();
        by_id
            .get(p)
            .and_then(|p| text(&attr(p, "dagger.io/dag.digest")))
    };
    assert_eq!(
        bag(spans
            .iter()
            .map(|s| (text(&attr(s, "dagger.io/dag.digest")), parent_of(s)))),
        bag(calls
            .iter()
            .map(|c| (text(&c["digest"]), text(&c["parent_digest"])))),
        "(digest, parent digest) per call"
    );
    assert!(nested > 0, "the workload nests calls");
}

fn assert_resource(spans: &[Value], pid: u64, engine: &Path) {
    let exe_name = engine.file_name().unwrap().to_str().unwrap();
    for s in spans {
        let r = &s["resource"];
        assert_eq!(r["service.name"], "dagger-engine", "{r}");
        assert_eq!(r["process.pid"].as_u64(), Some(pid), "{r}");
        assert_eq!(r["process.executable.name"], exe_name, "{r}");
        assert_eq!(s["scope"], "tracer");
        assert_eq!(s["path"], "/v1/traces");
        assert_eq!(s["content_type"], "application/x-protobuf");
    }
}

#[test]
fn spans_sent_over_otlp_equal_the_records_of_the_run() {
    let Some(python) = python_path() else { return };
    let dir = scratch_dir("otlp");
    let engine = l4_engine();
    let spans_path = dir.join("spans.jsonl");
    let (_receiver, port) = receiver(&python, &spans_path);
    let records_path = dir.join("records.jsonl");
    let recording = dir.join("run.trace");
    let before = unix_now_ns();
    let out = run(tracer()
        .args(["cache", "--json", "--explain", "-o"])
        .arg(&records_path)
        .arg("--record")
        .arg(&recording)
        .arg("--otlp")
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("--")
        .arg(&engine)
        .args(["-scenario", "mixed", "-seed", "7"]));
    let after = unix_now_ns();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);

    let records = read_json_lines(&records_path);
    let calls = of_kind(&records, "cache_call");
    assert!(calls.len() > 10, "the workload made calls");
    let summary = of_kind(&records, "cache_summary")[0];
    let otlp = &summary["otlp"];
    assert_eq!(otlp["spans"].as_u64(), Some(calls.len() as u64), "{otlp}");
    assert_eq!(
        otlp["exported"].as_u64(),
        Some(calls.len() as u64),
        "{otlp}"
    );
    assert_eq!(otlp["dropped"], 0, "{otlp}");
    assert!(
        stderr.contains(&format!(
            "otlp: {n} spans to http://127.0.0.1:{port}/v1/traces: {n} exported, 0 dropped",
            n = calls.len()
        )),
        "the human summary counts the spans"
    );

    let spans = read_spans(&spans_path);
    assert_spans_match_records(&spans, &calls);
    let pid = calls[0]["pid"].as_u64().unwrap();
    assert_resource(&spans, pid, &engine);
    for s in &spans {
        let (start, end) = (
            s["start_ns"].as_u64().unwrap(),
            s["end_ns"].as_u64().unwrap(),
        );
        assert!(
            before <= start && start <= end && end <= after,
            "spans are placed on the wall clock of the run: {s}"
        );
    }

    // The recording replayed to the collector: the same spans, at the same times.
    let replayed_path = dir.join("replayed.jsonl");
    let (_receiver2, port2) = receiver(&python, &replayed_path);
    let out = run(tracer()
        .arg("replay")
        .arg(&recording)
        .args(["cache", "--json", "-o"])
        .arg(dir.join("replayed-records.jsonl"))
        .arg("--otlp")
        .arg(format!("http://127.0.0.1:{port2}")));
    assert_eq!(out.status.code(), Some(0));
    let replayed = read_spans(&replayed_path);
    assert_spans_match_records(&replayed, &calls);
    assert_resource(&replayed, pid, &engine);
    // Live and replay read the two clocks at slightly different moments.
    let starts = |v: &[Value]| {
        bag(v.iter().map(|s| {
            (
                s["attributes"]["dagger.io/dag.digest"].to_string(),
                s["start_ns"].as_u64().unwrap(),
            )
        }))
    };
    for (live, again) in starts(&spans).iter().zip(starts(&replayed).iter()) {
        assert_eq!(live.0, again.0);
        assert!(
            live.1.abs_diff(again.1) < 100_000_000,
            "a replayed span starts when the live one did: {live:?} {again:?}"
        );
    }
}

/// Runs the stand-in under `tracer cache --otlp URL`; returns the summary's counts, the
/// calls recorded and how long the tracer took.
fn run_against(url: &str, dir: &Path) -> (Value, usize, Duration) {
    let engine = l4_engine();
    let records_path = dir.join("records.jsonl");
    let began = Instant::now();
    let out = run(tracer()
        .args(["cache", "--json", "-o"])
        .arg(&records_path)
        .arg("--otlp")
        .arg(url)
        .arg("--")
        .arg(&engine)
        .args(["-scenario", "mixed", "-seed", "7"]));
    let took = began.elapsed();
    assert_eq!(out.status.code(), Some(0), "the usual exit status");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let records = read_json_lines(&records_path);
    let calls = of_kind(&records, "cache_call").len();
    let otlp = of_kind(&records, "cache_summary")[0]["otlp"].clone();
    assert!(
        stderr.contains(&format!("{} dropped", otlp["dropped"])),
        "a human line counts the dropped spans"
    );
    (otlp, calls, took)
}

#[test]
fn a_collector_that_is_down_costs_counted_spans_not_a_slow_exit() {
    let dir = scratch_dir("otlp-down");
    // A baseline for how long the run takes without export.
    let engine = l4_engine();
    let began = Instant::now();
    let out = run(tracer()
        .args(["cache", "--json", "-o"])
        .arg(dir.join("baseline.jsonl"))
        .arg("--")
        .arg(&engine)
        .args(["-scenario", "mixed", "-seed", "7"]));
    assert_eq!(out.status.code(), Some(0));
    let baseline = began.elapsed();

    // Nothing listening: every export is refused.
    let (otlp, calls, took) = run_against(&format!("http://127.0.0.1:{}", free_port()), &dir);
    eprintln!("nothing listening: {took:?}; without --otlp: {baseline:?}");
    assert!(calls > 10);
    assert_eq!(otlp["spans"].as_u64(), Some(calls as u64), "{otlp}");
    assert_eq!(otlp["exported"], 0, "{otlp}");
    assert_eq!(otlp["dropped"].as_u64(), Some(calls as u64), "{otlp}");
    assert!(
        otlp["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{otlp}"
    );
    assert!(
        took < baseline + Duration::from_secs(6),
        "a refused export does not hold the exit: {took:?} against {baseline:?} without --otlp"
    );

    // A collector that accepts connections and never answers: exports time out; the exit
    // waits a bounded time for the queue.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let (otlp, calls, took) = run_against(&url, &scratch_dir("otlp-silent"));
    eprintln!("a silent collector: {took:?}; without --otlp: {baseline:?}");
    assert_eq!(otlp["exported"], 0, "{otlp}");
    assert_eq!(otlp["dropped"].as_u64(), Some(calls as u64), "{otlp}");
    assert!(
        took < baseline + Duration::from_secs(8),
        "a silent collector does not hold the exit: {took:?} against {baseline:?}"
    );
    drop(silent);
}

fn locks_program() -> PathBuf {
    let tc = gobuild::default_toolchain().unwrap();
    integration_tests::private_copy(&gobuild::build("locks", &tc, true).unwrap())
}

/// The traced pid, from the tracer's `lock contention in pid N` line.
fn traced_pid(stderr: &str) -> u64 {
    stderr
        .split("lock contention in pid ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {stderr}"))
}

/// Lock-wait spans against the `contention` records of the same run, wait for wait.
fn assert_lock_spans_match_records(spans: &[Value], contentions: &[&Value], pid: u64, exe: &Path) {
    assert_eq!(
        spans.len(),
        contentions.len(),
        "one span per contention record"
    );
    let attr = |s: &Value, k: &str| s["attributes"][k].clone();
    type Key = (
        String,
        String,
        Option<String>,
        u64,
        u64,
        Option<u64>,
        String,
    );
    let from_record = |c: &&Value| -> Key {
        let lock_type = c["lock_type"].as_str().unwrap().to_string();
        let name = text(&c["lock_name"]);
        let shown = name.clone().unwrap_or_else(|| lock_type.clone());
        (
            format!("{:#x}", c["lock"].as_u64().unwrap()),
            lock_type,
            name,
            c["waiter"].as_u64().unwrap(),
            c["wait_ns"].as_u64().unwrap(),
            c["released_by"].as_u64(),
            format!("wait {shown}"),
        )
    };
    let from_span = |s: &Value| -> Key {
        let wait = s["end_ns"].as_u64().unwrap() - s["start_ns"].as_u64().unwrap();
        assert_eq!(attr(s, "tracer.lock.wait_ns").as_u64(), Some(wait), "{s}");
        (
            text(&attr(s, "tracer.lock.address")).unwrap(),
            text(&attr(s, "tracer.lock.type")).unwrap(),
            text(&attr(s, "tracer.lock.name")),
            attr(s, "tracer.goid").as_u64().unwrap(),
            wait,
            attr(s, "tracer.lock.released_by").as_u64(),
            s["name"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(
        bag(spans.iter().map(from_span)),
        bag(contentions.iter().map(from_record)),
        "(lock, type, name, waiter, wait, releaser, span name) per contended acquisition"
    );
    let exe_name = exe.file_name().unwrap().to_str().unwrap();
    for s in spans {
        let r = &s["resource"];
        assert_eq!(
            r["service.name"], exe_name,
            "not an engine: named by its file: {r}"
        );
        assert_eq!(r["process.pid"].as_u64(), Some(pid), "{r}");
        assert_eq!(s["parent_span_id"], "", "a wait is a trace of its own");
    }
}

#[test]
fn lock_waits_sent_over_otlp_equal_the_contentions_of_the_run() {
    let Some(python) = python_path() else { return };
    let dir = scratch_dir("otlp-locks");
    let program = locks_program();
    let spans_path = dir.join("spans.jsonl");
    let (_receiver, port) = receiver(&python, &spans_path);
    let records_path = dir.join("records.jsonl");
    let recording = dir.join("locks.trace");
    let before = unix_now_ns();
    let out = run(tracer()
        .args(["locks", "--json", "-o"])
        .arg(&records_path)
        .arg("--record")
        .arg(&recording)
        .arg("--otlp")
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("--")
        .arg(&program)
        .args(["-rounds", "2", "-waiters", "3"]));
    let after = unix_now_ns();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let pid = traced_pid(&stderr);

    let records = read_json_lines(&records_path);
    let contentions = of_kind(&records, "contention");
    assert!(!contentions.is_empty(), "the program makes contention");
    let n = contentions.len() as u64;
    let otlp = &of_kind(&records, "summary")[0]["otlp"];
    assert_eq!(otlp["spans"].as_u64(), Some(n), "{otlp}");
    assert_eq!(otlp["exported"].as_u64(), Some(n), "{otlp}");
    assert_eq!(otlp["dropped"], 0, "{otlp}");
    assert!(
        stderr.contains(&format!(
            "otlp: {n} spans to http://127.0.0.1:{port}/v1/traces: {n} exported, 0 dropped"
        )),
        "the human summary counts the spans: {stderr}"
    );
    let spans = read_spans(&spans_path);
    assert_lock_spans_match_records(&spans, &contentions, pid, &program);
    for s in &spans {
        let (start, end) = (
            s["start_ns"].as_u64().unwrap(),
            s["end_ns"].as_u64().unwrap(),
        );
        assert!(
            before <= start && start <= end && end <= after,
            "spans are placed on the wall clock of the run: {s}"
        );
    }

    // The recording replayed to the collector: the same waits.
    let replayed_path = dir.join("replayed.jsonl");
    let (_receiver2, port2) = receiver(&python, &replayed_path);
    let out = run(tracer()
        .arg("replay")
        .arg(&recording)
        .args(["--json", "-o"])
        .arg(dir.join("replayed-records.jsonl"))
        .arg("--otlp")
        .arg(format!("http://127.0.0.1:{port2}")));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_lock_spans_match_records(&read_spans(&replayed_path), &contentions, pid, &program);
}

#[test]
fn a_stopped_receiver_costs_counted_lock_spans_and_a_normal_exit() {
    let Some(python) = python_path() else { return };
    let dir = scratch_dir("otlp-locks-stopped");
    let program = locks_program();
    let baseline_began = Instant::now();
    let out = run(tracer()
        .args(["locks", "--json", "-o"])
        .arg(dir.join("baseline.jsonl"))
        .arg("--")
        .arg(&program)
        .args(["-rounds", "2", "-waiters", "3"]));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let baseline = baseline_began.elapsed();

    // A receiver that was there and is stopped before the run: its port refuses.
    let (receiver, port) = receiver(&python, &dir.join("never.jsonl"));
    drop(receiver);
    let records_path = dir.join("records.jsonl");
    let began = Instant::now();
    let out = run(tracer()
        .args(["locks", "--json", "-o"])
        .arg(&records_path)
        .arg("--otlp")
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("--")
        .arg(&program)
        .args(["-rounds", "2", "-waiters", "3"]));
    let took = began.elapsed();
    assert_eq!(out.status.code(), Some(0), "the usual exit status: {out:?}");
    eprintln!("a stopped receiver: {took:?}; without --otlp: {baseline:?}");
    let records = read_json_lines(&records_path);
    let n = of_kind(&records, "contention").len() as u64;
    assert!(n > 0, "the program makes contention");
    let otlp = &of_kind(&records, "summary")[0]["otlp"];
    assert_eq!(otlp["spans"].as_u64(), Some(n), "{otlp}");
    assert_eq!(otlp["exported"], 0, "{otlp}");
    assert_eq!(
        otlp["dropped"].as_u64(),
        Some(n),
        "every wait dropped and counted: {otlp}"
    );
    assert!(
        otlp["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{otlp}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{n} dropped")),
        "a human line counts the dropped spans: {stderr}"
    );
    assert!(
        took < baseline + Duration::from_secs(6),
        "a refused export does not hold the exit: {took:?} against {baseline:?} without --otlp"
    );
}

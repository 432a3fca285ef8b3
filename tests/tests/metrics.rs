//! `tracer cache --metrics`: a real Prometheus server (Debian's, installed by `cargo xtask
//! setup`, on loopback with a scratch config and data directory) scrapes the tracer while
//! the L4 stand-in runs; what Prometheus stored equals the tracer's own JSON summary. The
//! same for `tracer locks --metrics` on tests/go/locks.
use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{
    ChildGuard, free_port, gobuild, of_kind, read_json_lines, scratch_dir, tracer,
};
use serde_json::Value;

/// An instant query against Prometheus's HTTP API: `(labels, value)` per series.
fn query(port: u16, promql: &str) -> Vec<(Value, f64)> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "--get"])
        .arg(format!("http://127.0.0.1:{port}/api/v1/query"))
        .arg("--data-urlencode")
        .arg(format!("query={promql}"))
        .output()
        .expect("curl runs");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v["data"]["result"]
        .as_array()
        .map(|series| {
            series
                .iter()
                .map(|s| {
                    let value = s["value"][1].as_str().unwrap().parse().unwrap();
                    (s["metric"].clone(), value)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn prometheus_scrapes_what_the_summary_says() {
    let Some(dir) = prometheus_available("metrics") else {
        return;
    };
    let tc = gobuild::default_toolchain().unwrap();
    let engine = integration_tests::private_copy(
        &gobuild::build_tagged("engine-l4", &tc, true, "").unwrap(),
    );
    let metrics_port = free_port();
    let (_prom, web_port) = start_prometheus(&dir, metrics_port);
    let records = dir.join("records.jsonl");
    let mut traced = tracer()
        .args(["cache", "--json", "-o"])
        .arg(&records)
        .arg("--metrics")
        .arg(format!("127.0.0.1:{metrics_port}"))
        .arg("--")
        .arg(&engine)
        .args(["-scenario", "mixed", "-seed", "7", "-serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .expect("the tracer starts");
    let pid = traced.id();
    // The engine says when its workload is done (then idles until signalled).
    let stdout = traced.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = lines
            .next()
            .expect("the engine reports its workload")
            .unwrap();
        if line.starts_with("engine: ") {
            break;
        }
        assert!(Instant::now() < deadline, "no workload report");
    }
    // Scrapes after the workload, until Prometheus holds a stable count.
    stable_value(web_port, "sum(dagger_tracer_cache_calls_total)");
    let by_outcome = query(
        web_port,
        "sum by (outcome) (dagger_tracer_cache_calls_total)",
    );
    let routes = query(
        web_port,
        "sum by (hit_route) (dagger_tracer_cache_calls_total{outcome=\"hit\"})",
    );
    let hist_count = query(
        web_port,
        "sum(dagger_tracer_cache_call_duration_seconds_count)",
    );
    let clients = query(web_port, "dagger_connected_clients");
    let entries = query(web_port, "dagger_dagql_cache_entries");
    let buckets = query(web_port, "{__name__=~\"dagger_dagql_cache_(.*_)?entries\"}");
    // SIGINT to the tracer alone: it reads the idle engine's cache size for its summary
    // and leaves it running; then the engine (its process group) is killed.
    // SAFETY: kill has no memory preconditions.
    unsafe { libc_kill(pid as i32, 2) };
    let status = traced.wait().unwrap();
    // SAFETY: as above.
    unsafe { libc_kill(-(pid as i32), 9) };
    assert_eq!(
        status.code(),
        Some(130),
        "the tracer stops with its summary"
    );

    let records = read_json_lines(&records);
    let summary = of_kind(&records, "cache_summary")[0];
    let calls = of_kind(&records, "cache_call");
    assert!(calls.len() > 100);
    for (labels, value) in &by_outcome {
        let outcome = labels["outcome"].as_str().unwrap();
        assert_eq!(
            summary["outcomes"][outcome]["calls"].as_f64(),
            Some(*value),
            "{outcome}"
        );
    }
    assert_eq!(
        by_outcome.len(),
        summary["outcomes"].as_object().unwrap().len(),
        "every outcome the summary counts is scraped"
    );
    for (labels, value) in &routes {
        let route = labels["hit_route"].as_str().unwrap_or("");
        let want = calls
            .iter()
            .filter(|c| c["outcome"] == "hit" && c["hit_route"].as_str().unwrap_or("") == route)
            .count() as f64;
        assert_eq!(*value, want, "hits by route {route:?}");
    }
    let with_duration = calls.iter().filter(|c| c["duration_ns"].is_u64()).count() as f64;
    assert_eq!(
        hist_count[0].1, with_duration,
        "one observation per timed call"
    );
    assert_eq!(
        Some(clients[0].1),
        summary["metrics"]["dagger_connected_clients"].as_f64()
    );
    assert_eq!(
        Some(entries[0].1),
        summary["metrics"]["dagger_dagql_cache_entries"].as_f64(),
        "the engine was idle between the last scrape and the summary"
    );
    let bucket_sum: f64 = buckets
        .iter()
        .filter(|(l, _)| l["__name__"] != "dagger_dagql_cache_entries")
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        buckets.len(),
        5,
        "the entry gauge and L4's four bucket gauges"
    );
    assert_eq!(bucket_sum, entries[0].1, "Size() is the sum of the buckets");
}

/// The scratch directory for a Prometheus test, or None outside CI when Debian's
/// prometheus is missing (under CI its absence fails the test).
fn prometheus_available(name: &str) -> Option<std::path::PathBuf> {
    let prometheus = std::path::Path::new(PROMETHEUS);
    assert!(
        prometheus.is_file() || std::env::var_os("CI").is_none(),
        "Debian's prometheus is missing (cargo xtask setup installs it)"
    );
    if !prometheus.is_file() {
        eprintln!("prometheus missing: skipped outside CI");
        return None;
    }
    Some(scratch_dir(name))
}

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A real Prometheus on loopback scraping 127.0.0.1:`metrics_port` every second; its web
/// port.
fn start_prometheus(dir: &std::path::Path, metrics_port: u16) -> (ChildGuard, u16) {
    let web_port = free_port();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: tracer\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
        ),
    )
    .unwrap();
    let prom = ChildGuard(
        Command::new(PROMETHEUS)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{web_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    );
    (prom, web_port)
}

/// Waits until `promql`'s first value is positive and the same on two scrapes in a row.
fn stable_value(web_port: u16, promql: &str) -> f64 {
    let mut last = -1.0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        std::thread::sleep(Duration::from_millis(1500));
        let now = query(web_port, promql).first().map_or(-1.0, |s| s.1);
        if now > 0.0 && now == last {
            return now;
        }
        last = now;
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped a stable {promql}"
        );
    }
}

#[test]
fn prometheus_scrapes_lock_contention_as_the_summary_says() {
    let Some(dir) = prometheus_available("metrics-locks") else {
        return;
    };
    let tc = gobuild::default_toolchain().unwrap();
    let program = integration_tests::private_copy(&gobuild::build("locks", &tc, true).unwrap());
    let metrics_port = free_port();
    let (_prom, web_port) = start_prometheus(&dir, metrics_port);
    let records = dir.join("records.jsonl");
    let truth = dir.join("truth.jsonl");
    let mut traced = tracer()
        .args(["locks", "--json", "-o"])
        .arg(&records)
        .arg("--metrics")
        .arg(format!("127.0.0.1:{metrics_port}"))
        .arg("--")
        .arg(&program)
        .args(["-rounds", "2", "-waiters", "3", "-linger", "120s", "-truth"])
        .arg(&truth)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .expect("the tracer starts");
    let pid = traced.id();
    let stdout = traced.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .expect("the program says when it is done")
            .unwrap();
        if line == "done" {
            break;
        }
    }
    let total = stable_value(web_port, "sum(dagger_tracer_lock_contended_total)");
    let per_lock = query(
        web_port,
        "sum by (lock) (dagger_tracer_lock_contended_total)",
    );
    let waits = query(web_port, "sum(dagger_tracer_lock_wait_seconds_count)");
    let lost = query(web_port, "tracer_lost_events_total");
    // SAFETY: kill has no memory preconditions.
    unsafe { libc_kill(pid as i32, 2) };
    let status = traced.wait().unwrap();
    // SAFETY: as above.
    unsafe { libc_kill(-(pid as i32), 9) };
    assert_eq!(
        status.code(),
        Some(130),
        "the tracer stops with its summary"
    );

    let records = read_json_lines(&records);
    let summary = of_kind(&records, "summary")[0];
    assert_eq!(Some(total), summary["contended"].as_f64(), "{summary}");
    assert_eq!(waits[0].1, total, "one wait observation per contention");
    assert_eq!(Some(lost[0].1), summary["lost_events"].as_f64());
    let truth = read_json_lines(&truth);
    assert_eq!(
        total as usize,
        of_kind(&truth, "contended").len(),
        "the program's own count"
    );
    let lock_summaries = of_kind(&records, "lock_summary");
    assert_eq!(per_lock.len(), lock_summaries.len(), "{per_lock:?}");
    for s in lock_summaries {
        let label = s["lock_name"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{:#x}", s["lock"].as_u64().unwrap()));
        let scraped = per_lock
            .iter()
            .find(|(l, _)| l["lock"] == label.as_str())
            .map(|(_, v)| *v);
        assert_eq!(scraped, s["contended"].as_f64(), "lock {label}");
    }
}

#[test]
fn prometheus_scrapes_blocked_goroutines_by_wait_reason_as_reported() {
    let Some(dir) = prometheus_available("metrics-watch") else {
        return;
    };
    let tc = gobuild::default_toolchain().unwrap();
    let program = integration_tests::private_copy(&gobuild::build("hang", &tc, true).unwrap());
    let mut hung = ChildGuard(
        Command::new(&program)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the hang program starts"),
    );
    let stdout = hung.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let Some(line) = lines.next() else {
            // Seen once under load: say how the program ended, so the cause shows.
            panic!(
                "the hang program's output ended before \"ready\": {:?}",
                hung.0.wait()
            );
        };
        if line.unwrap() == "ready" {
            break;
        }
    }
    let metrics_port = free_port();
    let (_prom, web_port) = start_prometheus(&dir, metrics_port);
    let records = dir.join("records.jsonl");
    let mut traced = tracer()
        .args(["hang", "--watch", "--threshold", "0.5", "--json", "--pid"])
        .arg(hung.0.id().to_string())
        .arg("--metrics")
        .arg(format!("127.0.0.1:{metrics_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .arg("-o")
        .arg(&records)
        .spawn()
        .expect("the tracer starts");
    let blocked = stable_value(web_port, "sum(dagger_tracer_blocked_goroutines)");
    let by_reason = query(
        web_port,
        "sum by (wait_reason) (dagger_tracer_blocked_goroutines)",
    );
    let reported = query(
        web_port,
        "sum(dagger_tracer_hang_reports_total{kind=\"blocked\"})",
    );
    // SAFETY: kill has no memory preconditions.
    unsafe { libc_kill(traced.id() as i32, 2) };
    let status = traced.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "the tracer stops with its summary"
    );

    let records = read_json_lines(&records);
    let mut want: std::collections::BTreeMap<String, f64> = Default::default();
    let blocked_records: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "goroutine" && r["event"] == "blocked")
        .collect();
    for r in &blocked_records {
        let reason = r["wait_reason"].as_str().unwrap_or("").to_owned();
        *want.entry(reason).or_default() += 1.0;
    }
    for r in of_kind(&records, "unblocked") {
        let goid = r["goid"].as_u64();
        let reason = blocked_records
            .iter()
            .find(|b| b["goid"].as_u64() == goid)
            .and_then(|b| b["wait_reason"].as_str())
            .unwrap_or("")
            .to_owned();
        *want.entry(reason).or_default() -= 1.0;
    }
    want.retain(|_, n| *n != 0.0);
    let got: std::collections::BTreeMap<String, f64> = by_reason
        .iter()
        .filter(|(_, v)| *v != 0.0)
        .map(|(l, v)| (l["wait_reason"].as_str().unwrap_or("").to_owned(), *v))
        .collect();
    assert_eq!(got, want, "blocked goroutines by wait reason");
    assert_eq!(blocked, want.values().sum::<f64>());
    assert_eq!(reported[0].1, blocked_records.len() as f64);
    assert!(blocked >= 3.0, "the program's hangs are reported: {want:?}");
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

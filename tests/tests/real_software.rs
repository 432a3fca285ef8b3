//! The tracer on Go software nobody here wrote: Debian's etcd, Prometheus and runc (Go 1.19,
//! cgo, stripped executables, installed by `cargo xtask setup`). Each run is checked
//! against what the program itself says: the requests the test made and every one of them
//! answered, etcd's own goroutine dump (`/debug/pprof/goroutine?debug=2`), runc's own
//! output. After the tracer detaches the program must still serve correctly.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use integration_tests::{
    BackgroundTracer, ChildGuard, SpawnRetrying, free_port, host_pid_of, json_lines, of_kind,
    private_copy, read_json_lines, run, run_with_timeout, scratch_dir, tracer, wait_for,
};
use serde_json::Value;

const ETCD: &str = "/usr/bin/etcd";
const ETCDCTL: &str = "/usr/bin/etcdctl";
const PROMETHEUS: &str = "/usr/bin/prometheus";
const RUNC: &str = "/usr/sbin/runc";

/// A private copy of a Debian program (uprobes belong to the file: tests running at the
/// same time must not share them).
fn debian_program(path: &str) -> PathBuf {
    assert!(
        Path::new(path).is_file(),
        "{path} is missing (`cargo xtask setup` installs Debian's etcd-server, etcd-client, prometheus and runc)"
    );
    private_copy(Path::new(path))
}

/// `curl` of a loopback URL: the body, or None when it did not answer 2xx.
fn http_get(url: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "10", url])
        .output()
        .expect("curl runs");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

struct Etcd {
    process: ChildGuard,
    host_pid: u32,
    client_port: u16,
}

/// A one-member etcd on loopback with its pprof endpoints; in its own PID (and mount)
/// namespace when `in_pid_namespace`, as in a container.
fn start_etcd(dir: &Path, in_pid_namespace: bool) -> Etcd {
    let binary = debian_program(ETCD);
    let client_port = free_port();
    let peer_url = format!("http://127.0.0.1:{}", free_port());
    let client_url = format!("http://127.0.0.1:{client_port}");
    let mut cmd = if in_pid_namespace {
        let mut c = Command::new("unshare");
        c.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(&binary);
        c
    } else {
        Command::new(&binary)
    };
    cmd.args(["--name", "t", "--enable-pprof"])
        .arg("--data-dir")
        .arg(dir.join("etcd-data"))
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("t={peer_url}")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("etcd.log")).unwrap());
    // A fresh copy may be briefly busy (ETXTBSY) while another test copies a binary:
    // `unshare` then fails to exec it and exits, so that start is tried again.
    let mut started = None;
    for _attempt in 0..5 {
        let mut process = ChildGuard(cmd.spawn_retrying().expect("etcd starts"));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Some(pid) = host_pid_of(&binary) {
                started = Some((process, pid));
                break;
            }
            if process.0.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if started.is_some() {
            break;
        }
    }
    let (process, host_pid) = started.expect("etcd's process never appeared (see etcd.log)");
    let etcd = Etcd {
        process,
        host_pid,
        client_port,
    };
    wait_for("etcd to serve", || {
        etcdctl(&etcd, &["endpoint", "health"]).is_some()
    });
    etcd
}

/// One etcdctl command against `etcd`: its stdout, or None when it failed.
fn etcdctl(etcd: &Etcd, args: &[&str]) -> Option<String> {
    let out = Command::new(ETCDCTL)
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &format!("127.0.0.1:{}", etcd.client_port)])
        .args(args)
        .output()
        .expect("etcdctl runs");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `func_call` records per function, after checking that every call returned and nothing
/// was lost.
fn calls_per_function(records: &[Value]) -> BTreeMap<String, usize> {
    let summary = of_kind(records, "summary");
    assert_eq!(summary.len(), 1, "one summary: {records:?}");
    assert_eq!(summary[0]["lost_events"], 0, "lost events: {}", summary[0]);
    let mut per_function = BTreeMap::new();
    for call in of_kind(records, "func_call") {
        assert_eq!(call["status"], "returned", "a call did not return: {call}");
        assert!(
            call["duration_ns"].as_u64().is_some(),
            "no duration: {call}"
        );
        *per_function
            .entry(call["func"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    per_function
}

#[test]
fn etcd_in_a_pid_namespace_traced_calls_equal_the_requests_made() {
    let dir = scratch_dir("real-etcd-funcs");
    let etcd = start_etcd(&dir, true);
    let records = dir.join("records.jsonl");
    let mut traced = BackgroundTracer::start(
        &[
            "funcs",
            "--json",
            "--pid",
            &etcd.host_pid.to_string(),
            "--match",
            r"go\.etcd\.io/etcd/etcdserver\.\(\*EtcdServer\)\.(Put|Range)",
        ],
        &records,
    );
    traced.wait_attached();
    const PUTS: usize = 25;
    const GETS: usize = 9;
    for i in 0..PUTS {
        let answer = etcdctl(&etcd, &["put", &format!("key{i}"), &format!("value{i}")]);
        assert_eq!(answer.as_deref(), Some("OK\n"), "put {i}");
    }
    for i in 0..GETS {
        let answer = etcdctl(&etcd, &["get", &format!("key{i}")]);
        assert_eq!(
            answer.as_deref(),
            Some(format!("key{i}\nvalue{i}\n").as_str()),
            "get {i}"
        );
    }
    assert_eq!(traced.interrupt(), Some(130), "{:?}", traced.seen);

    let per_function = calls_per_function(&read_json_lines(&records));
    let expected = BTreeMap::from([
        (
            "go.etcd.io/etcd/etcdserver.(*EtcdServer).Put".to_string(),
            PUTS,
        ),
        (
            "go.etcd.io/etcd/etcdserver.(*EtcdServer).Range".to_string(),
            GETS,
        ),
    ]);
    assert_eq!(
        per_function, expected,
        "calls per function vs requests made"
    );

    // Detached, etcd serves on as before.
    assert_eq!(
        etcdctl(&etcd, &["put", "after", "detach"]).as_deref(),
        Some("OK\n")
    );
    assert_eq!(
        etcdctl(&etcd, &["get", "key3"]).as_deref(),
        Some("key3\nvalue3\n")
    );
    drop(etcd.process);
}

/// One goroutine of a Go traceback as pprof prints it (`debug=2`).
#[derive(Debug, PartialEq)]
struct DumpedGoroutine {
    /// The bracketed state without the minutes: `select`, `IO wait`, `running`, ...
    state: String,
    /// The functions of the stack, innermost first, without the runtime's own frames
    /// (a traceback hides them; the tracer shows them).
    functions: Vec<String>,
    created_by: Option<String>,
}

fn parse_goroutine_dump(text: &str) -> BTreeMap<u64, DumpedGoroutine> {
    let mut dump = BTreeMap::new();
    for block in text.split("\n\n") {
        let mut lines = block.lines();
        let Some(head) = lines.next() else { continue };
        let Some(rest) = head.strip_prefix("goroutine ") else {
            continue;
        };
        let (goid, state) = rest.split_once(" [").expect("goroutine N [state]:");
        let state = state.trim_end_matches("]:");
        let state = state.split(", ").next().unwrap().to_string();
        let mut functions = Vec::new();
        let mut created_by = None;
        for line in lines.filter(|l| !l.starts_with('\t')) {
            if let Some(creator) = line.strip_prefix("created by ") {
                // Go 1.21+ adds " in goroutine N".
                created_by = Some(creator.split(" in goroutine ").next().unwrap().to_string());
            } else if let Some(open) = line.rfind('(') {
                functions.push(line[..open].to_string());
            }
        }
        functions.retain(|f| !f.starts_with("runtime."));
        dump.insert(
            goid.parse().unwrap(),
            DumpedGoroutine {
                state,
                functions,
                created_by,
            },
        );
    }
    dump
}

/// The tracer's goroutine record in the same terms.
fn as_dumped(g: &Value) -> DumpedGoroutine {
    let state = g["wait_reason"]
        .as_str()
        .or(g["state"].as_str())
        .unwrap()
        .to_string();
    let functions = g["stack"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["func"].as_str().unwrap().to_string())
        .filter(|f| !f.starts_with("runtime."))
        .collect();
    let created_by = g["created_by"]["func"].as_str().map(str::to_string);
    DumpedGoroutine {
        state,
        functions,
        created_by,
    }
}

/// etcd's goroutine dump, the tracer's snapshot, and the dump again.
fn bracketed_snapshot(
    etcd: &Etcd,
    dump_url: &str,
) -> (
    BTreeMap<u64, DumpedGoroutine>,
    Vec<Value>,
    BTreeMap<u64, DumpedGoroutine>,
) {
    let dump = || parse_goroutine_dump(&http_get(dump_url).expect("etcd's goroutine dump"));
    let before = dump();
    let out = run_with_timeout(
        tracer()
            .args(["hang", "--json", "--pid"])
            .arg(etcd.host_pid.to_string()),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "tracer hang failed");
    let after = dump();
    (
        before,
        json_lines(&String::from_utf8_lossy(&out.stdout)),
        after,
    )
}

#[test]
fn etcd_goroutines_read_live_equal_its_own_goroutine_dump() {
    let dir = scratch_dir("real-etcd-hang");
    let etcd = start_etcd(&dir, false);
    let dump_url = format!(
        "http://127.0.0.1:{}/debug/pprof/goroutine?debug=2",
        etcd.client_port
    );
    // A goroutine that stood still across two dumps was in that state when the tracer
    // read it in between, unless it woke and slept again meanwhile (etcd's backend
    // commits every 100 ms): such a one is compared again in the next round. Each
    // must agree in some round; one the tracer keeps reading otherwise fails.
    let mut agreed = BTreeSet::new();
    let mut disagreed = BTreeMap::new();
    for _round in 0..3 {
        let (before, records, after) = bracketed_snapshot(&etcd, &dump_url);
        let ours: BTreeMap<u64, &Value> = of_kind(&records, "goroutine")
            .into_iter()
            .map(|g| (g["goid"].as_u64().unwrap(), g))
            .collect();
        // The dump's own HTTP handler runs, so it is left out.
        let still = before
            .iter()
            .filter(|(goid, g)| after.get(goid) == Some(g) && g.state != "running");
        for (goid, dumped) in still {
            let Some(g) = ours.get(goid) else {
                disagreed.insert(*goid, format!("missing, etcd dumped {dumped:?}"));
                continue;
            };
            assert_eq!(g["system"], false, "goroutine {goid} is not a runtime one");
            let read = as_dumped(g);
            if read == *dumped {
                agreed.insert(*goid);
            } else {
                disagreed.insert(*goid, format!("read {read:?}, etcd dumped {dumped:?}"));
            }
        }
        // What the dump leaves out is the runtime's own goroutines; every one the tracer
        // calls a runtime goroutine is absent from both dumps.
        let system: Vec<u64> = ours
            .iter()
            .filter(|(_, g)| g["system"] == true)
            .map(|(goid, _)| *goid)
            .collect();
        assert!(
            !system.is_empty(),
            "the runtime's goroutines (GC workers, ...) were not seen"
        );
        for goid in &system {
            assert!(
                !before.contains_key(goid) && !after.contains_key(goid),
                "goroutine {goid} is in etcd's dump but called a runtime goroutine"
            );
        }
    }
    disagreed.retain(|goid, _| !agreed.contains(goid));
    assert!(
        disagreed.is_empty(),
        "goroutines never read as etcd dumped them: {disagreed:#?}"
    );
    assert!(
        agreed.len() >= 20,
        "etcd idles with dozens of goroutines; only {} agreed",
        agreed.len()
    );
    assert!(
        etcdctl(&etcd, &["endpoint", "health"]).is_some(),
        "etcd is healthy after"
    );
}

#[test]
fn prometheus_query_calls_equal_the_queries_made() {
    let dir = scratch_dir("real-prometheus");
    let binary = debian_program(PROMETHEUS);
    let port = free_port();
    std::fs::write(
        dir.join("prometheus.yml"),
        "global:\n  scrape_interval: 1h\n",
    )
    .unwrap();
    let process = ChildGuard(
        Command::new(&binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn_retrying()
            .expect("prometheus starts"),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_for("prometheus to be ready", || {
        http_get(&format!("{base}/-/ready")).is_some()
    });
    let host_pid = host_pid_of(&binary).expect("prometheus's pid");
    let records = dir.join("records.jsonl");
    let mut traced = BackgroundTracer::start(
        &[
            "funcs",
            "--json",
            "--pid",
            &host_pid.to_string(),
            "--match",
            r"github\.com/prometheus/prometheus/web/api/v1\.\(\*API\)\.query",
        ],
        &records,
    );
    traced.wait_attached();
    const QUERIES: usize = 15;
    for i in 0..QUERIES {
        let body = http_get(&format!("{base}/api/v1/query?query={i}%2B1"))
            .unwrap_or_else(|| panic!("query {i} failed"));
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["status"], "success", "query {i}: {body}");
        assert_eq!(answer["data"]["result"][1], (i + 1).to_string(), "{body}");
    }
    assert_eq!(traced.interrupt(), Some(130), "{:?}", traced.seen);
    let per_function = calls_per_function(&read_json_lines(&records));
    assert_eq!(
        per_function,
        BTreeMap::from([(
            "github.com/prometheus/prometheus/web/api/v1.(*API).query".to_string(),
            QUERIES
        )])
    );
    assert!(
        http_get(&format!("{base}/api/v1/query?query=2%2B2")).is_some_and(|b| b.contains("\"4\"")),
        "prometheus answers after the tracer detached"
    );
    drop(process);
}

#[test]
fn runc_run_under_the_tracer_prints_what_it_prints_alone() {
    let dir = scratch_dir("real-runc");
    let binary = debian_program(RUNC);
    let alone = Command::new(&binary)
        .arg("--version")
        .stdout(Stdio::piped())
        .spawn_retrying()
        .and_then(|c| c.wait_with_output())
        .expect("runc runs");
    assert!(alone.status.success());
    let records = dir.join("records.jsonl");
    let traced = run(tracer()
        .args(["funcs", "--json", "--match", r"main\.main", "-o"])
        .arg(&records)
        .arg("--")
        .arg(&binary)
        .arg("--version"));
    assert!(traced.status.success(), "tracer with runc failed");
    assert_eq!(
        String::from_utf8_lossy(&traced.stdout),
        String::from_utf8_lossy(&alone.stdout),
        "runc's output under the tracer"
    );
    let per_function = calls_per_function(&read_json_lines(&records));
    assert_eq!(per_function, BTreeMap::from([("main.main".to_string(), 1)]));
}

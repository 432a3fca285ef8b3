//! `tracer ps` and `--inner` against real processes: plain, one PID namespace deep, and the
//! debugging guide's nesting (an outer `dagger-engine` one namespace deep running an inner
//! one, started with the dev engine's flags, a namespace deeper still).
//!
//! The pids expected here come from the process tree as the test sees it (parents in
//! /proc/PID/stat, what /proc/PID/exe points to), not from NSpid, which is what the tracer
//! reads.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use integration_tests::SpawnRetrying;
use integration_tests::{
    gobuild, json_lines, of_kind, require_root, run, scratch_dir, tracer, tracer_bin,
};
use serde_json::Value;

/// A process tree killed (SIGKILL) on drop; `unshare --kill-child` passes the kill down, and
/// the death of a PID namespace's init ends everything in that namespace.
struct Tree(Child);

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(cmd: &mut Command) -> Tree {
    Tree(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn_retrying()
            .expect("start"),
    )
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        sleep(Duration::from_millis(20));
    }
}

/// The parent pid from /proc/PID/stat (the field after the parenthesised comm).
fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn children(pid: u32) -> Vec<u32> {
    let mut found: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&p| ppid(p) == Some(pid))
        .collect();
    found.sort();
    found
}

fn exe_of(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// The child of `parent` that runs `exe` (once it has exec'd).
fn child_running(parent: u32, exe: &Path) -> u32 {
    wait_for(
        &format!("a child of {parent} running {}", exe.display()),
        || {
            children(parent)
                .into_iter()
                .find(|&c| exe_of(c).as_deref() == Some(exe))
        },
    )
}

/// `tracer ps --json`: the records by pid, and the summary.
fn ps() -> (Vec<Value>, Value) {
    let out = run(tracer().args(["ps", "--json"]));
    assert_eq!(out.status.code(), Some(0));
    let records = json_lines(&String::from_utf8_lossy(&out.stdout));
    let summary = records.last().cloned().expect("a summary record");
    assert_eq!(summary["kind"], "ps_summary");
    let procs: Vec<Value> = of_kind(&records, "go_process")
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(summary["go_processes"], procs.len());
    (procs, summary)
}

fn record(procs: &[Value], pid: u32) -> &Value {
    procs
        .iter()
        .find(|r| r["pid"] == pid)
        .unwrap_or_else(|| panic!("pid {pid} not listed by tracer ps"))
}

fn copy_as(binary: &Path, dir: &str, name: &str) -> PathBuf {
    let copy = scratch_dir(dir).join(name);
    integration_tests::copy_executable(binary, &copy);
    copy
}

const SPIN: [&str; 4] = ["-mode", "spin", "-interval", "200ms"];

#[test]
fn plain_and_one_namespace_deep_with_versions_and_stripping() {
    require_root();
    let go26 = gobuild::toolchain(26).unwrap();
    let go22 = gobuild::toolchain(22).unwrap();
    let plain_bin = copy_as(
        &gobuild::build("funcs", &go26, false).unwrap(),
        "ps-plain",
        "spin-plain",
    );
    let deep_bin = copy_as(
        &gobuild::build("funcs", &go22, true).unwrap(),
        "ps-deep",
        "spin-deep",
    );

    // (a) plainly.
    let plain = start(Command::new(&plain_bin).args(SPIN));
    let plain_pid = plain.0.id();
    wait_for("the plain program to exec", || {
        (exe_of(plain_pid).as_deref() == Some(&plain_bin)).then_some(())
    });
    // (b) as PID 1 of its own PID namespace.
    let deep = start(
        Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(&deep_bin)
            .args(SPIN),
    );
    let deep_pid = child_running(deep.0.id(), &deep_bin);

    let (procs, summary) = ps();
    // Even root may find a process closed (e.g. a sandbox's init): counted, not listed.
    let unreadable_as_root = summary["unreadable"].as_u64().unwrap() as usize;

    let a = record(&procs, plain_pid);
    assert_eq!(a["host_pid"], plain_pid, "{a}");
    assert_eq!(a["ns_pid"], plain_pid, "{a}");
    assert_eq!(a["ns_pids"], serde_json::json!([plain_pid]), "{a}");
    assert_eq!(a["pid_ns_depth"], 0, "{a}");
    assert_eq!(a["exe"], plain_bin.to_str().unwrap(), "{a}");
    assert_eq!(a["go_version"], go26.go_version(), "{a}");
    assert_eq!(a["stripped"], false, "{a}");
    assert_eq!(a["dagger_engine"], false, "{a}");
    assert!(a["role"].is_null() && a["code_line"].is_null(), "{a}");
    assert!(a["problem"].is_null(), "{a}");

    let b = record(&procs, deep_pid);
    assert_eq!(b["host_pid"], deep_pid, "{b}");
    assert_eq!(b["ns_pids"], serde_json::json!([deep_pid, 1]), "{b}");
    assert_eq!(b["ns_pid"], 1, "{b}");
    assert_eq!(b["pid_ns_depth"], 1, "{b}");
    assert_ne!(b["pid_ns"], a["pid_ns"], "{b}");
    assert_eq!(b["exe"], deep_bin.to_str().unwrap(), "{b}");
    assert_eq!(b["go_version"], go22.go_version(), "{b}");
    assert_eq!(b["stripped"], true, "{b}");
    assert!(b["role"].is_null(), "{b}");
    // Both run in the test's own cgroup.
    assert_eq!(a["container"], b["container"]);

    // The `unshare` parent is not Go, and is not listed.
    assert!(procs.iter().all(|r| r["pid"] != deep.0.id()));

    // Human lines: one per process, the host pid and depth in their columns.
    let out = run(tracer().arg("ps"));
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&deep_pid.to_string()))
        .unwrap_or_else(|| panic!("no line for {deep_pid}:\n{text}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        &cols[1..4],
        [deep_pid.to_string().as_str(), "1", "1"],
        "{line}"
    );
    assert!(line.contains(&go22.go_version()) && line.ends_with(deep_bin.to_str().unwrap()));

    // Without root, other users' processes cannot be read: counted, not listed.
    let out = run(Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(tracer_bin())
        .arg("ps"));
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or("");
    let count: usize = last
        .strip_suffix(" processes could not be read (hint: run as root, or grant CAP_SYS_PTRACE)")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no unreadable count as last line:\n{text}"));
    assert!(count > unreadable_as_root, "{last}");
    assert!(!text.contains(plain_bin.to_str().unwrap()), "{text}");
}

#[test]
fn nested_engines_inner_and_outer() {
    require_root();
    // Different Go versions tell the two engines apart in what `tracer hang` reads.
    let outer_go = gobuild::toolchain(26).unwrap();
    let inner_go = gobuild::toolchain(24).unwrap();
    let outer_bin = copy_as(
        &gobuild::build("engine", &outer_go, true).unwrap(),
        "ps-outer",
        "dagger-engine",
    );
    let inner_bin = copy_as(
        &gobuild::build("engine", &inner_go, false).unwrap(),
        "ps-inner",
        "dagger-engine",
    );

    // The stand-in's Go flag parser rejects unknown flags but stops at `--`: the dev
    // engine's flags follow it, and are on the command line as the real engine's are.
    let script = r#"
        unshare --pid --fork --mount-proc --kill-child "$1" -serve -- \
            --config /etc/dagger/engine.toml \
            --addr unix:///run/dagger-engine.sock --addr tcp://0.0.0.0:1234 \
            --network-name dagger-dev --network-cidr 10.88.0.0/16 --debugaddr 0.0.0.0:6060 &
        exec "$2" -serve -- --config /etc/dagger/engine.toml --debug
    "#;
    let tree = start(
        Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .args(["sh", "-c", script, "sh"])
            .arg(&inner_bin)
            .arg(&outer_bin),
    );
    // unshare -> outer engine (PID 1 of namespace 1) -> unshare -> inner engine (PID 1 of
    // namespace 2).
    let outer = child_running(tree.0.id(), &outer_bin);
    let inner_unshare = wait_for("the inner unshare", || children(outer).into_iter().next());
    let inner = child_running(inner_unshare, &inner_bin);

    let (procs, _) = ps();
    let o = record(&procs, outer);
    assert_eq!(o["host_pid"], outer, "{o}");
    assert_eq!(o["ns_pids"], serde_json::json!([outer, 1]), "{o}");
    assert_eq!(o["pid_ns_depth"], 1, "{o}");
    assert_eq!(o["exe"], outer_bin.to_str().unwrap(), "{o}");
    assert_eq!(o["go_version"], outer_go.go_version(), "{o}");
    assert_eq!(o["stripped"], true, "{o}");
    assert_eq!(o["dagger_engine"], true, "{o}");
    assert_eq!(o["code_line"], "L2", "{o}");
    assert_eq!(o["role"], "outer", "{o}");
    assert!(o["network_name"].is_null(), "{o}");

    let i = record(&procs, inner);
    assert_eq!(i["host_pid"], inner, "{i}");
    let ns_pids = i["ns_pids"].as_array().unwrap();
    assert_eq!(ns_pids.len(), 3, "{i}");
    assert_eq!(
        (&ns_pids[0], &ns_pids[2]),
        (&inner.into(), &1.into()),
        "{i}"
    );
    assert_eq!(i["ns_pid"], 1, "{i}");
    assert_eq!(i["pid_ns_depth"], 2, "{i}");
    assert_eq!(i["exe"], inner_bin.to_str().unwrap(), "{i}");
    assert_eq!(i["go_version"], inner_go.go_version(), "{i}");
    assert_eq!(i["stripped"], false, "{i}");
    assert_eq!(i["dagger_engine"], true, "{i}");
    assert_eq!(i["code_line"], "L2", "{i}");
    assert_eq!(i["role"], "inner", "{i}");
    assert_eq!(i["network_name"], "dagger-dev", "{i}");
    assert_eq!(
        i["addr"],
        serde_json::json!(["unix:///run/dagger-engine.sock", "tcp://0.0.0.0:1234"]),
        "{i}"
    );
    assert_eq!(i["debugaddr"], "0.0.0.0:6060", "{i}");

    // By name, the two are ambiguous; the refusal names the inner one.
    let out = run(tracer().args(["hang", "--json", "--exe", "dagger-engine"]));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("choose one with --pid"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "pass --pid {inner} (the inner dev engine: --network-name dagger-dev) or --inner"
        )),
        "{stderr}"
    );

    // --inner picks it: the goroutine dump is the inner engine's (its Go version).
    let out = run(tracer().args(["hang", "--json", "--inner"]));
    assert_eq!(out.status.code(), Some(0));
    let records = json_lines(&String::from_utf8_lossy(&out.stdout));
    let summary = of_kind(&records, "summary");
    assert_eq!(summary.len(), 1);
    assert_eq!(summary[0]["go_version"], inner_go.go_version());
    assert!(summary[0]["goroutines"].as_u64().unwrap() > 0);

    // Once the inner engine is gone, --inner says so and lists the engine that remains.
    let _ = Command::new("kill")
        .args(["-KILL", &inner.to_string()])
        .status();
    wait_for("the inner engine to exit", || {
        (!Path::new(&format!("/proc/{inner}")).exists()
            || exe_of(inner).as_deref() != Some(&inner_bin))
        .then_some(())
    });
    let out = run(tracer().args(["hang", "--json", "--inner"]));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no inner dev engine"), "{stderr}");
    assert!(stderr.contains(&format!("  {outer}  ")), "{stderr}");
}

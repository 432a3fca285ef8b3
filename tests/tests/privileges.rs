//! Least privilege: the real tracer run as user `nobody` with exactly the capabilities the
//! README lists (ambient capabilities through `setpriv`, or file capabilities on a copy),
//! traces exactly; with one missing it says which, in one line, and exits non-zero without
//! a panic; `replay` needs none.
//!
//! Every test needs root (to hand out capabilities) and `setpriv`; under `CI` a machine
//! without them fails the test instead of skipping it.
use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use integration_tests::{
    SpawnRetrying, go_int_register, gobuild, json_lines, of_kind, read_json_lines, require_root,
    run, tracer_bin, wait_for,
};
use serde_json::Value;

const NOBODY: &str = "65534";
/// What tracing needs, as setpriv names the capabilities.
const ALL: &[&str] = &["bpf", "perfmon", "sys_ptrace"];

/// True when this machine can run the tracer with chosen capabilities; false (said on
/// stderr) outside CI when it cannot; a failed test under CI.
fn least_privilege_possible() -> bool {
    require_root();
    let setpriv = Command::new("setpriv")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    // CAP_BPF and CAP_PERFMON exist since Linux 5.8 (cap_last_cap 40 there).
    let last_cap: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let possible = setpriv && last_cap >= 39;
    assert!(
        possible || std::env::var_os("CI").is_none(),
        "least-privilege tests need setpriv (util-linux) and a kernel with CAP_BPF: setpriv {setpriv}, cap_last_cap {last_cap}"
    );
    if !possible {
        eprintln!(
            "least privilege not testable here (setpriv {setpriv}, cap_last_cap {last_cap}): skipped outside CI"
        );
    }
    possible
}

/// A directory `nobody` can enter and write, removed at the end of the test.
struct Sandbox(PathBuf);

impl Sandbox {
    fn new(name: &str) -> Sandbox {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tracer-priv-{name}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        Sandbox(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// A private copy (its own inode: uprobes belong to the file) of `file`, mode 0755.
    fn copy(&self, file: &Path, name: &str) -> PathBuf {
        let to = self.path(name);
        integration_tests::copy_executable(file, &to);
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
        to
    }

    /// The tracer, where `nobody` can run it (the build tree may be closed to other users).
    fn tracer(&self) -> PathBuf {
        self.copy(&tracer_bin(), "tracer")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `setpriv` running a command as `nobody` with exactly `caps` (effective, permitted,
/// inheritable and ambient, so they survive the exec).
fn as_nobody(caps: &[&str]) -> Command {
    let set = if caps.is_empty() {
        "-all".to_string()
    } else {
        let named: Vec<String> = caps.iter().map(|c| format!("+{c}")).collect();
        format!("-all,{}", named.join(","))
    };
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .arg(format!("--inh-caps={set}"))
        .arg(format!("--ambient-caps={set}"))
        .arg("--");
    cmd
}

/// Runs `cmd`, again while the exec of a freshly copied file fails with ETXTBSY (another
/// test thread's child, between fork and exec, still holds its write descriptor).
fn run_retrying(cmd: &mut Command) -> Output {
    for _ in 0..100 {
        let out = run(cmd);
        if !String::from_utf8_lossy(&out.stderr).contains("Text file busy") {
            return out;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{cmd:?}: text file busy 100 times");
}

/// stderr must be exactly one `tracer: ` line holding every needle; the exit non-zero and
/// not a panic's 101.
fn assert_one_line_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must fail: {stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one error line expected, got {stderr:?}");
    assert!(lines[0].starts_with("tracer: "), "{stderr}");
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "expected {needle:?} in {stderr:?}"
        );
    }
}

/// The hint every capability error gives.
const HINTS: &[&str] = &[
    "(hint: run as root, or grant the capabilities",
    "sudo setcap cap_bpf,cap_perfmon,cap_sys_ptrace+ep $(which tracer)",
    "--cap-add BPF --cap-add PERFMON --cap-add SYS_PTRACE",
];

/// Every traced call is one the program made, per goroutine in entry order: function,
/// arguments and result; and nothing was lost.
fn assert_matches_truth(records: &[Value], truth: &[Value]) {
    let mut want: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for c in of_kind(truth, "call") {
        want.entry(c["goid"].as_u64().unwrap()).or_default().push(c);
    }
    let mut got: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for r in of_kind(records, "func_call") {
        let goid = r["goid"]
            .as_u64()
            .unwrap_or_else(|| panic!("record without goroutine id: {r}"));
        got.entry(goid).or_default().push(r);
    }
    for calls in got.values_mut() {
        calls.sort_by_key(|r| r["start_ns"].as_u64());
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "goroutine ids, traced vs the program's own"
    );
    let mut compared = 0;
    for (goid, want_calls) in &want {
        let got_calls = &got[goid];
        assert_eq!(
            got_calls.len(),
            want_calls.len(),
            "calls on goroutine {goid}"
        );
        for (w, g) in want_calls.iter().zip(got_calls) {
            let at = format!("goroutine {goid}: truth {w} traced {g}");
            assert_eq!(g["func"], w["func"], "{at}");
            let args: Vec<u64> = w["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(go_int_register)
                .collect();
            let traced: Vec<u64> = g["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_u64().unwrap())
                .collect();
            assert_eq!(&traced[..args.len()], &args[..], "{at}");
            assert_eq!(g["status"], "returned", "{at}");
            assert_eq!(
                g["ret"][0].as_u64(),
                Some(go_int_register(&w["ret"])),
                "{at}"
            );
            compared += 1;
        }
    }
    assert!(compared > 0, "no call compared");
    let summary = of_kind(records, "summary");
    assert_eq!(summary.len(), 1, "one summary");
    assert_eq!(summary[0]["lost_events"], 0, "lost events");
    assert_eq!(summary[0]["calls"], compared, "summary calls");
}

/// `tracer funcs --json` of a copy of tests/go/funcs run by `tracer` under `launcher`;
/// returns the tracer's output, its records and the program's truth.
fn trace_funcs(
    sandbox: &Sandbox,
    launcher: Command,
    tracer: &Path,
) -> (Output, Vec<Value>, Vec<Value>) {
    let program = sandbox.copy(&gobuild::build_default("funcs", true).unwrap(), "funcs");
    let records = sandbox.path("records.jsonl");
    let truth = sandbox.path("truth.jsonl");
    let mut cmd = launcher;
    let out = run_retrying(
        cmd.arg(tracer)
            .args(["funcs", "--match", r"main\.(add9|leaf)", "--json", "-o"])
            .arg(&records)
            .arg("--")
            .arg(&program)
            .args([
                "-mode",
                "basic",
                "-goroutines",
                "3",
                "-calls",
                "40",
                "-truth",
            ])
            .arg(&truth),
    );
    let records = if records.exists() {
        read_json_lines(&records)
    } else {
        Vec::new()
    };
    let truth = if truth.exists() {
        read_json_lines(&truth)
    } else {
        Vec::new()
    };
    (out, records, truth)
}

#[test]
fn nobody_with_bpf_perfmon_sys_ptrace_traces_exactly() {
    if !least_privilege_possible() {
        return;
    }
    let sandbox = Sandbox::new("least");
    let tracer = sandbox.tracer();
    let (out, records, truth) = trace_funcs(&sandbox, as_nobody(ALL), &tracer);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(of_kind(&truth, "call").len(), 3 * (40 + 10));
    assert_matches_truth(&records, &truth);
}

#[test]
fn file_capabilities_on_a_copy_work_the_same() {
    if !least_privilege_possible() {
        return;
    }
    let setcap = Command::new("setcap").arg("-h").output().is_ok();
    assert!(
        setcap || std::env::var_os("CI").is_none(),
        "setcap (libcap2-bin) is needed under CI"
    );
    if !setcap {
        eprintln!("setcap missing: skipped outside CI");
        return;
    }
    let sandbox = Sandbox::new("setcap");
    let tracer = sandbox.tracer();
    let set = run(Command::new("setcap")
        .arg("cap_bpf,cap_perfmon,cap_sys_ptrace+ep")
        .arg(&tracer));
    assert!(set.status.success(), "setcap on {}", tracer.display());
    // No ambient capabilities: only the file's.
    let (out, records, truth) = trace_funcs(&sandbox, as_nobody(&[]), &tracer);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_matches_truth(&records, &truth);
}

#[test]
fn a_missing_capability_is_named_in_one_line_before_anything_runs() {
    if !least_privilege_possible() {
        return;
    }
    let sandbox = Sandbox::new("missing");
    let tracer = sandbox.tracer();
    for (caps, named) in [
        (&["perfmon", "sys_ptrace"][..], "the tracer lacks CAP_BPF ("),
        (&["bpf", "sys_ptrace"][..], "the tracer lacks CAP_PERFMON ("),
        (&[][..], "the tracer lacks CAP_BPF and CAP_PERFMON ("),
    ] {
        let (out, records, truth) = trace_funcs(&sandbox, as_nobody(caps), &tracer);
        let mut needles = vec!["tracer: not allowed to load eBPF programs: ", named];
        needles.extend(HINTS);
        assert_one_line_error(&out, &needles);
        // Checked before the command was started or anything written.
        assert!(
            truth.is_empty() && records.is_empty(),
            "{caps:?}: the command ran"
        );
    }
    // The same for every subcommand that loads probes, the pre-check comes first.
    for args in [
        &["locks", "--pid", "1"][..],
        &["cache", "--pid", "1"],
        &["hang", "--watch", "--pid", "1"],
        &[
            "record",
            "-o",
            "/nonexistent/x.trace",
            "funcs",
            "--match",
            "x",
            "--pid",
            "1",
        ],
    ] {
        let out = run_retrying(as_nobody(&["sys_ptrace"]).arg(&tracer).args(args));
        let mut needles =
            vec!["not allowed to load eBPF programs: the tracer lacks CAP_BPF and CAP_PERFMON ("];
        needles.extend(HINTS);
        assert_one_line_error(&out, &needles);
    }
}

/// A child killed and reaped at the end of the test, whatever its outcome.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends SIGTERM to a process that is not our child at the end of the test.
struct KillPid(u32);

impl Drop for KillPid {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.to_string()).status();
    }
}

/// A Go program run by root, calling main.add9 every 10 ms until killed.
fn spin_as_root(sandbox: &Sandbox) -> (Reaped, u32) {
    let program = sandbox.copy(&gobuild::build_default("funcs", true).unwrap(), "spin");
    let child = Command::new(&program)
        .args(["-mode", "spin", "-seconds", "60", "-interval", "10ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn_retrying()
        .unwrap();
    let pid = child.id();
    let child = Reaped(child);
    wait_for("the spinning program", || {
        std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == program)
    });
    (child, pid)
}

#[test]
fn another_users_process_needs_sys_ptrace() {
    if !least_privilege_possible() {
        return;
    }
    let sandbox = Sandbox::new("ptrace");
    let tracer = sandbox.tracer();
    let (_spin, pid) = spin_as_root(&sandbox);
    let pid_arg = pid.to_string();

    // funcs --pid: all three trace it; each call's result is what add9 computes.
    let out = run_retrying(as_nobody(ALL).arg(&tracer).args([
        "funcs",
        "--match",
        r"main\.add9",
        "--json",
        "--duration",
        "1",
        "--pid",
        &pid_arg,
    ]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = json_lines(&String::from_utf8_lossy(&out.stdout));
    let calls = of_kind(&records, "func_call");
    assert!(
        calls.len() > 10,
        "a second of calls every 10 ms: {}",
        calls.len()
    );
    for c in &calls {
        let args: Vec<u64> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_u64().unwrap())
            .collect();
        let want = args[..9]
            .iter()
            .zip(1u64..)
            .fold(0u64, |sum, (a, k)| sum.wrapping_add(a.wrapping_mul(k)));
        assert_eq!(c["ret"][0].as_u64(), Some(want), "{c}");
    }

    // Without CAP_SYS_PTRACE the process cannot be read: one sentence naming it.
    let out = run_retrying(as_nobody(&["bpf", "perfmon"]).arg(&tracer).args([
        "funcs",
        "--match",
        r"main\.add9",
        "--duration",
        "1",
        "--pid",
        &pid_arg,
    ]));
    let read =
        format!("not allowed to read process {pid} of user 0: the tracer lacks CAP_SYS_PTRACE (");
    let mut needles = vec![read.as_str()];
    needles.extend(HINTS);
    assert_one_line_error(&out, &needles);

    // hang reads memory only: CAP_SYS_PTRACE alone is enough, and without it, it is named.
    let out = run_retrying(
        as_nobody(&["sys_ptrace"])
            .arg(&tracer)
            .args(["hang", "--json", "--pid", &pid_arg]),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let goroutines = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert!(!goroutines.is_empty(), "hang printed no goroutine");
    let out = run_retrying(
        as_nobody(&[])
            .arg(&tracer)
            .args(["hang", "--pid", &pid_arg]),
    );
    assert_one_line_error(&out, &needles);

    // ps lists root's process only with CAP_SYS_PTRACE.
    for (caps, listed) in [(&["sys_ptrace"][..], true), (&[][..], false)] {
        let out = run_retrying(as_nobody(caps).arg(&tracer).args(["ps", "--json"]));
        assert_eq!(out.status.code(), Some(0), "{caps:?}");
        let found = json_lines(&String::from_utf8_lossy(&out.stdout))
            .iter()
            .any(|r| r["pid"] == pid);
        assert_eq!(found, listed, "ps with {caps:?}");
    }
}

#[test]
fn the_traced_command_does_not_inherit_the_tracers_capabilities() {
    if !least_privilege_possible() {
        return;
    }
    let sandbox = Sandbox::new("inherit");
    let tracer = sandbox.tracer();
    let program = sandbox.copy(&gobuild::build_default("funcs", true).unwrap(), "spin");
    // Started again while the exec of the fresh copy meets ETXTBSY (see run_retrying).
    let (_traced, pid) = loop {
        let mut traced = Reaped(
            as_nobody(ALL)
                .arg(&tracer)
                .args(["funcs", "--match", r"main\.add9", "--"])
                .arg(&program)
                .args(["-mode", "spin", "-seconds", "30"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn_retrying()
                .unwrap(),
        );
        let mut found = None;
        let mut ended = false;
        wait_for("the traced command, or the tracer's end", || {
            found = integration_tests::host_pid_of(&program);
            ended = traced.0.try_wait().unwrap().is_some();
            found.is_some() || ended
        });
        if let Some(pid) = found {
            break (traced, pid);
        }
        let mut stderr = String::new();
        std::io::Read::read_to_string(traced.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert!(
            stderr.contains("Text file busy"),
            "the tracer ended: {stderr}"
        );
    };
    // The tracer ends with the command: end the command when the test ends.
    let _command = KillPid(pid);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let caps: Vec<&str> = status
        .lines()
        .filter(|l| {
            l.starts_with("CapPrm:") || l.starts_with("CapEff:") || l.starts_with("CapAmb:")
        })
        .collect();
    assert_eq!(caps.len(), 3, "{status}");
    for line in caps {
        assert!(
            line.ends_with("0000000000000000"),
            "the traced command holds capabilities: {line}"
        );
    }
}

#[test]
fn replay_needs_no_capability() {
    if !least_privilege_possible() {
        return;
    }
    let sandbox = Sandbox::new("replay");
    let tracer = sandbox.tracer();
    let program = sandbox.copy(&gobuild::build_default("funcs", true).unwrap(), "funcs");
    let recording = sandbox.path("run.trace");
    let live = sandbox.path("live.jsonl");
    let out = run_retrying(
        Command::new(&tracer)
            .args(["record", "-o"])
            .arg(&recording)
            .args(["funcs", "--match", r"main\.add9", "--json", "-o"])
            .arg(&live)
            .arg("--")
            .arg(&program)
            .args(["-mode", "basic", "-goroutines", "2", "-calls", "30"]),
    );
    assert_eq!(out.status.code(), Some(0), "record as root");
    std::fs::set_permissions(&recording, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run_retrying(
        as_nobody(&[])
            .arg(&tracer)
            .args(["replay", "--json"])
            .arg(&recording),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed = json_lines(&String::from_utf8_lossy(&out.stdout));
    let live = read_json_lines(&live);
    assert_eq!(of_kind(&live, "func_call").len(), 60);
    assert_eq!(
        replayed, live,
        "replay as nobody prints what the live run wrote"
    );
}

/// In a user namespace of its own the tracer cannot tell what the kernel will accept (only
/// trying shows whether a BPF token delegates the rights), so it does not refuse: the
/// kernel does, and its EPERM is one sentence; `--verbose` adds the kernel's error.
#[test]
fn an_inconclusive_check_leaves_it_to_the_kernel() {
    if !least_privilege_possible() {
        return;
    }
    let unshare = Command::new("unshare")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        unshare || std::env::var_os("CI").is_none(),
        "unshare (util-linux) is needed under CI"
    );
    if !unshare {
        eprintln!("unshare missing: skipped outside CI");
        return;
    }
    let sandbox = Sandbox::new("userns");
    let program = sandbox.copy(&gobuild::build_default("funcs", true).unwrap(), "funcs");
    let truth = sandbox.path("truth.jsonl");
    let userns = |verbose: bool| {
        let mut cmd = Command::new("unshare");
        cmd.args(["--user", "--map-root-user", "--"])
            .arg(tracer_bin());
        if verbose {
            cmd.arg("--verbose");
        }
        cmd.args(["funcs", "--match", r"main\.add9", "--"])
            .arg(&program)
            .arg("-truth")
            .arg(&truth);
        run_retrying(&mut cmd)
    };
    let out = userns(false);
    assert_one_line_error(
        &out,
        &[
            "tracer: not allowed to load eBPF programs: Operation not permitted",
            "a user namespace can refuse eBPF even with CAP_BPF and CAP_PERFMON",
        ],
    );
    assert!(!truth.exists(), "the command ran");
    let out = userns(true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with("tracer: not allowed to load eBPF programs: "),
        "{stderr}"
    );
    assert_eq!(
        lines[1],
        "tracer: caused by: Operation not permitted (os error 1)"
    );
}

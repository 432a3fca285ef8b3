//! PID namespaces (`unshare --pid --fork --mount-proc`, as containers make them): a tracer
//! inside a namespace tracing a program of that namespace by `--pid` (its namespace pid),
//! by `--exe` and as `-- CMD`; and a tracer on the host tracing a program two namespaces
//! deep by its host pid. Every call is compared with the program's own record
//! (tests/go/matrix), exactly.
//!
//! The namespaces share the host's filesystem (only /proc is the namespace's own), so the
//! tracer and the program are the same files inside and out. Each test traces a private
//! copy of the program, so its `--exe` name is unique too.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use integration_tests::SpawnRetrying;
use integration_tests::{
    KillOnDrop, assert_matrix_truth, gobuild, host_pid_of, private_copy, read_json_lines,
    require_root, run_with_timeout, scratch_dir, tracer, tracer_bin, wait_for,
};

const TRACED: &str = r"main\.mx(Work|Leaf|Native)";
const LIMIT: Duration = Duration::from_secs(90);

/// A stripped Go 1.26 build of tests/go/matrix (no cgo), as a private copy.
fn program() -> PathBuf {
    let tc = gobuild::default_toolchain().unwrap();
    let opts = gobuild::BuildOptions {
        stripped: true,
        ..Default::default()
    };
    private_copy(&gobuild::build_with("matrix", &tc, &opts).unwrap())
}

/// `unshare` making a new PID namespace with its own /proc; the namespace dies with it.
fn unshare() -> Command {
    require_root();
    let mut c = Command::new("unshare");
    c.args(["--pid", "--fork", "--mount-proc", "--kill-child"]);
    c
}

/// Runs, inside a new PID namespace, a shell that starts the program held at a gate,
/// prints its namespace pid, starts the tracer on it with `target` (`--pid $p` or
/// `--exe NAME`), opens the gate once the tracer says it is tracing, and waits for both.
fn trace_inside_by(target: &str) {
    let prog = program();
    let dir = scratch_dir("ns");
    let script = r#"
set -u
"$PROG" -truth "$DIR/truth.jsonl" -ready "$DIR/ready" -gate "$DIR/gate" >"$DIR/prog.out" 2>&1 &
p=$!
i=0
while [ ! -e "$DIR/ready" ] && [ $i -lt 2000 ]; do sleep 0.01; i=$((i+1)); done
echo "nspid=$p"
case "$TARGET" in
pid) "$TRACER" funcs --match "$TRACED" --json -o "$DIR/records.jsonl" --pid "$p" 2>"$DIR/tracer.err" & ;;
exe) "$TRACER" funcs --match "$TRACED" --json -o "$DIR/records.jsonl" --exe "$EXE" 2>"$DIR/tracer.err" & ;;
esac
t=$!
i=0
while ! grep -q '^tracer: tracing' "$DIR/tracer.err" 2>/dev/null && kill -0 $t 2>/dev/null && [ $i -lt 3000 ]; do
    sleep 0.01; i=$((i+1))
done
touch "$DIR/gate"
wait $p; echo "prog=$?"
wait $t; echo "tracer=$?"
"#;
    let out = run_with_timeout(
        unshare()
            .args(["sh", "-c", script])
            .env("PROG", &prog)
            .env("DIR", &dir)
            .env("TRACER", tracer_bin())
            .env("TRACED", TRACED)
            .env("TARGET", target)
            .env("EXE", prog.file_name().unwrap()),
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let tracer_err = std::fs::read_to_string(dir.join("tracer.err")).unwrap_or_default();
    let at = format!("tracer inside a PID namespace, by --{target}");
    eprintln!("--- {at}: script output\n{stdout}--- tracer stderr\n{tracer_err}");
    assert!(out.status.success(), "{at}: unshare failed: {}", out.status);
    assert!(stdout.contains("prog=0\n"), "{at}: {stdout}");
    assert!(
        stdout.contains("tracer=0\n"),
        "{at}: {stdout}\n{tracer_err}"
    );
    let nspid: u32 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("nspid="))
        .and_then(|p| p.parse().ok())
        .expect("the script prints the namespace pid");
    let truth = read_json_lines(&dir.join("truth.jsonl"));
    assert_eq!(
        truth[0]["pid"], nspid,
        "{at}: the program sees its namespace pid"
    );
    assert!(nspid < 100, "{at}: pid {nspid} is not a fresh namespace's");
    assert_matrix_truth(&at, &read_json_lines(&dir.join("records.jsonl")), &truth);
}

#[test]
fn inside_a_pid_namespace_by_namespace_pid() {
    trace_inside_by("pid");
}

#[test]
fn inside_a_pid_namespace_by_exe_name() {
    trace_inside_by("exe");
}

#[test]
fn inside_a_pid_namespace_spawning_the_command() {
    let prog = program();
    let dir = scratch_dir("ns-spawn");
    let records = dir.join("records.jsonl");
    let truth = dir.join("truth.jsonl");
    let script = r#"
"$TRACER" funcs --match "$TRACED" --json -o "$DIR/records.jsonl" -- "$PROG" -truth "$DIR/truth.jsonl"
echo "tracer=$?"
"#;
    let out = run_with_timeout(
        unshare()
            .args(["sh", "-c", script])
            .env("PROG", &prog)
            .env("DIR", &dir)
            .env("TRACER", tracer_bin())
            .env("TRACED", TRACED),
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let at = "tracer inside a PID namespace, -- CMD";
    assert!(out.status.success(), "{at}: unshare failed: {}", out.status);
    assert!(
        stdout.contains("matrix: done calls=360 cgo=false"),
        "{at}: {stdout}"
    );
    assert!(stdout.contains("tracer=0\n"), "{at}: {stdout}");
    let truth = read_json_lines(&truth);
    let pid = truth[0]["pid"].as_u64().unwrap();
    assert!(pid < 100, "{at}: pid {pid} is not a fresh namespace's");
    assert_matrix_truth(at, &read_json_lines(&records), &truth);
}

/// `NSpid:` of /proc/PID/status: the pid in each namespace, host first.
fn ns_pids(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn host_tracer_on_a_program_two_namespaces_deep() {
    trace_two_deep(false);
}

/// As the debugging guide's inner dev engine runs: two PID namespaces deep, in a root of
/// its own, as `/usr/local/bin/dagger-engine` (the host sees the file elsewhere).
#[test]
fn host_tracer_on_a_chrooted_engine_two_namespaces_deep() {
    trace_two_deep(true);
}

fn trace_two_deep(chroot: bool) {
    let prog = program();
    let dir = scratch_dir("ns-deep");
    // Paths as the program sees them, and as the host (and this test) sees them.
    let (root, exe, inside) = if chroot {
        let root = dir.join("root");
        let exe = root.join("usr/local/bin/dagger-engine");
        std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
        integration_tests::copy_executable(&prog, &exe);
        (root, exe, PathBuf::from("/"))
    } else {
        (PathBuf::from("/"), prog.clone(), dir.clone())
    };
    let host = |p: &Path| root.join(p.strip_prefix("/").unwrap());
    let (truth, ready, gate) = (
        inside.join("truth.jsonl"),
        inside.join("ready"),
        inside.join("gate"),
    );
    let records = dir.join("records.jsonl");
    let mut inner = unshare();
    inner.args(["unshare", "--pid", "--fork", "--kill-child"]);
    if chroot {
        inner.arg(format!("--root={}", root.display()));
        inner.arg("/usr/local/bin/dagger-engine");
    } else {
        inner.args(["--mount-proc"]).arg(&exe);
    }
    let mut nested = inner
        .arg("-truth")
        .arg(&truth)
        .arg("-ready")
        .arg(&ready)
        .arg("-gate")
        .arg(&gate)
        .stdout(Stdio::null())
        .spawn_retrying()
        .unwrap();
    let (truth, ready, gate) = (host(&truth), host(&ready), host(&gate));
    let guard = KillOnDrop(&mut nested);
    wait_for("the nested program to start", || ready.exists());
    let pid = host_pid_of(&exe).expect("the nested program's host pid");
    let nspids = ns_pids(pid);
    assert_eq!(
        nspids.len(),
        3,
        "host pid {pid} is two PID namespaces deep: NSpid {nspids:?}"
    );

    let err_path = dir.join("tracer.err");
    let mut t = tracer()
        .args(["funcs", "--match", TRACED, "--json", "-o"])
        .arg(&records)
        .args(["--pid", &pid.to_string()])
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn_retrying()
        .unwrap();
    let tracer_err = || std::fs::read_to_string(&err_path).unwrap_or_default();
    wait_for("the tracer to attach", || {
        tracer_err().contains("tracer: tracing") || t.try_wait().unwrap().is_some()
    });
    std::fs::write(&gate, b"").unwrap();

    let start = Instant::now();
    let tracer_status = loop {
        if let Some(s) = t.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > LIMIT {
            let _ = t.kill();
            panic!("the tracer did not stop after its target exited");
        }
        sleep(Duration::from_millis(20));
    };
    let status = guard.0.wait().unwrap();
    eprintln!("--- tracer stderr\n{}", tracer_err());
    let at = if chroot {
        "host tracer, chrooted target two PID namespaces deep"
    } else {
        "host tracer, target two PID namespaces deep"
    };
    assert!(status.success(), "{at}: the nested program: {status}");
    assert!(tracer_status.success(), "{at}: tracer: {tracer_status}");
    let truth = read_json_lines(&truth);
    assert_eq!(truth[0]["pid"], nspids[2], "{at}: the program's own pid");
    assert_matrix_truth(at, &read_json_lines(&records), &truth);
}

//! `tracer hang` against tests/go/hang, a program that forms four known hangs (AB-BA mutex
//! deadlock, RWMutex writer starvation, a channel nobody sends on, a WaitGroup never done)
//! while other goroutines keep running, and writes the addresses and goroutine ids as ground
//! truth plus its own `runtime.Stack(all)` dump on SIGUSR1.
use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::SpawnRetrying;
use integration_tests::{gobuild, json_lines, of_kind, read_json_lines, run, scratch_dir, tracer};
use serde_json::Value;

/// Go versions the hang tests run on (stripped builds), as the issue asks.
const MINORS: [u32; 8] = [19, 21, 22, 23, 24, 25, 26, 27];

/// The hang program, running; killed on drop.
struct Hung {
    child: Child,
    dir: PathBuf,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Drop for Hung {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Hung {
    fn start(binary: &Path, extra: &[&str]) -> Hung {
        let hung = Hung::spawn(binary, extra);
        hung.expect_line("ready");
        hung
    }

    /// Started with `-gate`: its busy goroutines run, no hang has formed yet.
    fn start_gated(binary: &Path) -> Hung {
        let dir = scratch_dir("hang-gate");
        let gate = dir.join("gate");
        let hung = Hung::spawn(binary, &["-gate", gate.to_str().unwrap()]);
        hung.expect_line("waiting");
        hung
    }

    fn open_gate(&self) {
        let arg = self.gate_path();
        std::fs::write(arg, b"go").unwrap();
        self.expect_line("ready");
    }

    fn gate_path(&self) -> PathBuf {
        let args = std::fs::read(format!("/proc/{}/cmdline", self.pid())).unwrap();
        let args: Vec<String> = args
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let i = args
            .iter()
            .position(|a| a == "-gate")
            .expect("started gated");
        PathBuf::from(&args[i + 1])
    }

    fn expect_line(&self, want: &str) {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("hang program did not print {want:?} in 60 s"));
        assert_eq!(line.trim(), want);
    }

    fn spawn(binary: &Path, extra: &[&str]) -> Hung {
        let dir = scratch_dir("hang");
        let mut child = Command::new(binary)
            .arg("-truth")
            .arg(dir.join("truth.jsonl"))
            .arg("-dump")
            .arg(dir.join("dump.txt"))
            .args(extra)
            .stdout(Stdio::piped())
            .spawn_retrying()
            .expect("start hang program");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Hung {
            child,
            dir,
            lines: rx,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One line per blocked goroutine (without the "holds" lines of the AB-BA pair).
    fn truth(&self) -> Vec<Value> {
        self.all_truth()
            .into_iter()
            .filter(|t| t["kind"] != "holds")
            .collect()
    }

    fn all_truth(&self) -> Vec<Value> {
        read_json_lines(&self.dir.join("truth.jsonl"))
    }

    /// The program's own `runtime.Stack(all)`, taken now.
    fn go_dump(&self) -> String {
        let path = self.dir.join("dump.txt");
        let _ = std::fs::remove_file(&path);
        // SAFETY: kill with a valid pid and signal number.
        assert_eq!(unsafe { kill(self.pid() as i32, SIGUSR1) }, 0);
        let start = Instant::now();
        loop {
            if let Ok(s) = std::fs::read_to_string(&path) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no dump after SIGUSR1"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Alive and not stopped (a ptrace stop or SIGSTOP would show as `T`/`t`).
    fn assert_running(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the program exited"
        );
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let state = stat.rsplit_once(") ").unwrap().1.chars().next().unwrap();
        assert!(matches!(state, 'R' | 'S'), "process state {state}");
    }
}

const SIGUSR1: i32 = 10;
unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// One goroutine of a Go dump: state (without the ", N minutes" part) and frame functions.
#[derive(Debug)]
struct DumpG {
    state: String,
    funcs: Vec<String>,
}

fn parse_dump(dump: &str) -> BTreeMap<u64, DumpG> {
    let mut out = BTreeMap::new();
    for block in dump.split("\n\n") {
        let mut lines = block.lines();
        let Some(head) = lines.next().and_then(|h| h.strip_prefix("goroutine ")) else {
            continue;
        };
        let (id, rest) = head.split_once(" [").unwrap();
        let state = rest.split([']', ',']).next().unwrap().to_owned();
        let funcs = lines
            .filter(|l| !l.starts_with('\t') && !l.starts_with("created by"))
            .map(|l| l.rsplit_once('(').map_or(l, |(f, _)| f).to_owned())
            .collect();
        out.insert(id.parse().unwrap(), DumpG { state, funcs });
    }
    out
}

fn snapshot(pid: u32, extra: &[&str]) -> Vec<Value> {
    let out = run(tracer()
        .args(["hang", "--pid", &pid.to_string(), "--json"])
        .args(extra));
    assert!(out.status.success(), "tracer hang failed");
    json_lines(&String::from_utf8_lossy(&out.stdout))
}

/// The first frame Go's default traceback would show: not a runtime-internal function.
fn first_user_frame(g: &Value) -> String {
    g["stack"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["func"].as_str().unwrap())
        .find(|f| !f.starts_with("runtime.") || f[8..].starts_with(char::is_uppercase))
        .unwrap_or("")
        .to_owned()
}

fn check_version(minor: u32) {
    let tc = gobuild::toolchain(minor).unwrap();
    let binary = gobuild::build("hang", &tc, true).unwrap();
    let mut hung = Hung::start(&binary, &[]);
    let truth = hung.truth();
    assert_eq!(truth.len(), 7, "{truth:?}");
    let dump = parse_dump(&hung.go_dump());
    let records = snapshot(hung.pid(), &[]);
    let by_goid: BTreeMap<u64, &Value> = of_kind(&records, "goroutine")
        .into_iter()
        .map(|g| (g["goid"].as_u64().unwrap(), g))
        .collect();
    let v = tc.go_version();

    // Every blocked goroutine: the wait reason Go prints, the kind and address it waits on.
    for t in &truth {
        let goid = t["goid"].as_u64().unwrap();
        let g = by_goid
            .get(&goid)
            .unwrap_or_else(|| panic!("{v}: goroutine {goid} ({}) missing", t["name"]));
        let go = &dump[&goid];
        assert_eq!(g["state"], "waiting", "{v}: {g}");
        assert_eq!(g["wait_reason"], go.state.as_str(), "{v}: {}", t["name"]);
        assert_eq!(g["wait_kind"], t["kind"], "{v}: {}: {g}", t["name"]);
        assert_eq!(g["waiting_on"], t["addr"], "{v}: {}: {g}", t["name"]);
        assert!(
            g["waiting_ns"].is_u64(),
            "{v}: a GC ran, waitsince is set: {g}"
        );
    }

    // The AB-BA cycle, reported as possible (Go records no owner), with exactly its two ids.
    let goid_of = |name: &str| {
        truth.iter().find(|t| t["name"] == name).unwrap()["goid"]
            .as_u64()
            .unwrap()
    };
    let mut abba = vec![goid_of("abba_x"), goid_of("abba_y")];
    abba.sort();
    let deadlocks = of_kind(&records, "deadlock");
    let found: Vec<Vec<u64>> = deadlocks
        .iter()
        .map(|d| {
            let mut ids: Vec<u64> = d["goids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect();
            ids.sort();
            ids
        })
        .collect();
    assert!(
        found.contains(&abba),
        "{v}: deadlocks {found:?}, want {abba:?}"
    );
    assert!(deadlocks.iter().all(|d| d["certain"] == false));

    // Agreement with runtime.Stack(all) for every goroutine blocked at the dump and still
    // there (busy goroutines come and go; the blocked ones are stable): id, state, wait
    // reason, top frame, and the whole stack as Go shows it.
    let mut compared = 0;
    let mut in_syscall = 0;
    for (goid, go) in &dump {
        let stable = go.state.starts_with("sync.")
            || go.state == "semacquire"
            || go.state == "chan receive"
            || go.state == "select"
            || go.state == "syscall";
        if !stable {
            continue;
        }
        let g = by_goid
            .get(goid)
            .unwrap_or_else(|| panic!("{v}: goroutine {goid} of Go's dump missing"));
        let state = g["wait_reason"].as_str().or(g["state"].as_str());
        assert_eq!(state, Some(go.state.as_str()), "{v}: goroutine {goid}");
        assert_eq!(
            first_user_frame(g),
            go.funcs[0],
            "{v}: goroutine {goid}: {g}"
        );
        // The frames Go shows are ours without the runtime's own (Go's traceback hides
        // them; it hides autogenerated wrappers too, and so do we).
        let ours: Vec<&str> = g["stack"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["func"].as_str().unwrap())
            .filter(|f| !f.starts_with("runtime.") || f[8..].starts_with(char::is_uppercase))
            .collect();
        assert_eq!(ours, go.funcs, "{v}: goroutine {goid}: the stack Go shows");
        assert!(g["stack_note"].is_null(), "{v}: goroutine {goid}: {g}");
        compared += 1;
        in_syscall += usize::from(go.funcs.last().is_some_and(|f| f == "main.readForever"));
    }
    assert!(compared >= 8, "{v}: only {compared} goroutines compared");
    assert_eq!(in_syscall, 1, "{v}: the goroutine in read(2) compared");
    hung.assert_running();
    eprintln!("{v}: ok ({compared} goroutines agree with runtime.Stack)");
}

#[test]
fn hang_finds_every_blocked_goroutine_on_stripped_builds() {
    for minor in MINORS {
        check_version(minor);
    }
}

#[test]
fn hang_human_output_and_threshold() {
    let tc = gobuild::default_toolchain().unwrap();
    let binary = gobuild::build("hang", &tc, true).unwrap();
    let mut hung = Hung::start(&binary, &[]);
    let out = run(tracer().args(["hang", "--pid", &hung.pid().to_string()]));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "[sync.Mutex.Lock",
        "[sync.RWMutex.Lock",
        "[sync.RWMutex.RLock",
        "[sync.WaitGroup.Wait",
        "[chan receive",
        "sync.(*Mutex).Lock(...)",
        "main.lockPair()",
        "possible deadlock: goroutine",
    ] {
        assert!(text.contains(want), "{want:?} missing in:\n{text}");
    }
    // A threshold far above the hang's age shows no goroutine.
    let records = snapshot(hung.pid(), &["--threshold", "3600"]);
    assert!(of_kind(&records, "goroutine").is_empty());
    assert_eq!(of_kind(&records, "summary").len(), 1);
    hung.assert_running();
}

#[test]
fn hang_rejects_a_command() {
    let out = run(tracer().args(["hang", "--", "/bin/true"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already running"), "{err}");
}

/// Snapshot time with 10,000 parked goroutines (printed; the README records it).
#[test]
fn hang_snapshot_10000_goroutines() {
    let tc = gobuild::default_toolchain().unwrap();
    let binary = gobuild::build("hang", &tc, true).unwrap();
    let mut hung = Hung::start(&binary, &["-idle", "10000"]);
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let records = snapshot(hung.pid(), &[]);
        let wall = start.elapsed();
        let idle = of_kind(&records, "goroutine")
            .iter()
            .filter(|g| {
                g["stack"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f["func"] == "main.idle")
            })
            .count();
        assert_eq!(idle, 10_000);
        let s = of_kind(&records, "summary")[0];
        times.push((s["snapshot_ns"].as_u64().unwrap(), wall));
    }
    times.sort();
    let (snap_ns, wall) = times[times.len() / 2];
    eprintln!(
        "snapshot of {} goroutines: {:.1} ms reading + symbolizing (median of 5), {:.1} ms for the whole command",
        10_000,
        snap_ns as f64 / 1e6,
        wall.as_secs_f64() * 1e3
    );
    assert!(snap_ns < 2_000_000_000, "snapshot took {snap_ns} ns");
    hung.assert_running();
}

/// Runs `hang --watch --threshold 1` with `extra` on a gated program: attaches, opens the
/// gate once the tracer says it is watching (its probes are in), waits for the tracer to
/// stop (`extra` must give a --duration). Records go to `out`; returns the first stderr line.
fn watch_as_it_forms(hung: &Hung, extra: &[&str], out: &Path) -> String {
    let mut watcher = tracer()
        .args(["hang", "--pid", &hung.pid().to_string()])
        .args(["--watch", "--threshold", "1"])
        .args(extra)
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::piped())
        .spawn_retrying()
        .unwrap();
    let stderr = watcher.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let first = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| !l.starts_with("tracer: attached"))
        .expect("the tracer says it is watching");
    assert!(first.starts_with("tracer: watching pid"), "{first}");
    hung.open_gate();
    let status = watcher.wait().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(status.success(), "{rest:?}");
    first
}

/// Go versions the `--watch` test runs on: the oldest, the last with `sync.(*Mutex)` slow
/// paths, the first with `internal/sync`, and the newest.
const WATCH_MINORS: [u32; 4] = [19, 23, 24, 27];

/// `hang --watch` attached before the hangs form: the AB-BA deadlock is reported as certain,
/// with who holds which lock, and every blocked goroutine is reported once past the
/// threshold with what it waits on. The program keeps running.
fn check_watch(minor: u32) {
    let tc = gobuild::toolchain(minor).unwrap();
    let binary = gobuild::build("hang", &tc, true).unwrap();
    let v = tc.go_version();
    let mut hung = Hung::start_gated(&integration_tests::private_copy(&binary));
    let out_path = scratch_dir("hang-watch").join("watch.jsonl");
    let recording = out_path.with_extension("trace");
    let first = watch_as_it_forms(
        &hung,
        &[
            "--own",
            "main",
            "--json",
            "--duration",
            "8",
            "--record",
            recording.to_str().unwrap(),
        ],
        &out_path,
    );
    assert!(
        first.contains("fast-path Lock/Unlock sites"),
        "{v}: {first}"
    );
    let records = read_json_lines(&out_path);
    // Replayed as nobody, without the process: the same records, deadlock holders too.
    let replay = run(Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(integration_tests::tracer_bin())
        .arg("replay")
        .arg(&recording)
        .args(["hang", "--watch", "--json"]));
    assert_eq!(replay.status.code(), Some(0), "{v}: replay");
    assert_eq!(
        json_lines(&String::from_utf8_lossy(&replay.stdout)),
        records,
        "{v}: replay"
    );

    let all = hung.all_truth();
    let truth = hung.truth();
    let goid_of = |name: &str| {
        all.iter().find(|t| t["name"] == name).unwrap()["goid"]
            .as_u64()
            .unwrap()
    };
    let addr_of = |name: &str| all.iter().find(|t| t["name"] == name).unwrap()["addr"].clone();

    // The deadlock: certain, exactly the pair, each waiting for what the other holds.
    let certain: Vec<&Value> = of_kind(&records, "deadlock")
        .into_iter()
        .filter(|d| d["certain"] == true)
        .collect();
    assert_eq!(certain.len(), 1, "{v}: {records:?}");
    let d = certain[0];
    let goids: Vec<u64> = d["goids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_u64().unwrap())
        .collect();
    let (x, y) = (goid_of("abba_x"), goid_of("abba_y"));
    let mut sorted = goids.clone();
    sorted.sort();
    let mut want = vec![x, y];
    want.sort();
    assert_eq!(sorted, want, "{v}: {d}");
    for (i, g) in goids.iter().enumerate() {
        let name = if *g == x { "abba_x" } else { "abba_y" };
        let other = if *g == x { "abba_y" } else { "abba_x" };
        assert_eq!(d["locks"][i], addr_of(name), "{v}: {name} waits for: {d}");
        let holder = &d["holders"][i];
        assert_eq!(holder["goid"].as_u64(), Some(goid_of(other)), "{v}: {d}");
        assert_eq!(
            holder["lock"],
            addr_of(&format!("{other}_holds")),
            "{v}: {d}"
        );
        assert_eq!(holder["taken_at"]["func"], "main.lockPair", "{v}: {d}");
    }

    // Every blocked goroutine, once, with the address it waits on and a probe-timed start.
    let blocked = of_kind(&records, "goroutine");
    for t in &truth {
        let goid = t["goid"].as_u64().unwrap();
        let mine: Vec<&&Value> = blocked.iter().filter(|g| g["goid"] == goid).collect();
        assert_eq!(
            mine.len(),
            1,
            "{v}: {} reported {} times",
            t["name"],
            mine.len()
        );
        let g = mine[0];
        assert_eq!(g["event"], "blocked", "{v}: {g}");
        assert_eq!(g["wait_start"], "probe", "{v}: {g}");
        assert_eq!(g["wait_kind"], t["kind"], "{v}: {}: {g}", t["name"]);
        assert_eq!(g["waiting_on"], t["addr"], "{v}: {}: {g}", t["name"]);
        assert!(
            g["waiting_ns"].as_u64().unwrap() >= 1_000_000_000,
            "{v}: {g}"
        );
    }
    let summary = of_kind(&records, "summary")[0];
    assert_eq!(summary["lost_events"], 0, "{v}: {summary}");
    hung.assert_running();
    eprintln!("{v}: watch ok");
}

#[test]
fn hang_watch_reports_the_deadlock_as_it_forms() {
    for minor in WATCH_MINORS {
        check_watch(minor);
    }
}

/// Without `--own` no fast path is probed: the same AB-BA deadlock has no recorded owner, so
/// it must come out as possible, never certain (human output, which this also checks).
#[test]
fn hang_watch_without_ownership_never_claims_certainty() {
    let tc = gobuild::newest_toolchain().unwrap();
    let binary = gobuild::build("hang", &tc, true).unwrap();
    let mut hung = Hung::start_gated(&integration_tests::private_copy(&binary));
    let out_path = scratch_dir("hang-watch-noown").join("watch.txt");
    let first = watch_as_it_forms(&hung, &["--duration", "6"], &out_path);
    assert!(first.contains("no fast-path sites"), "{first}");
    let text = std::fs::read_to_string(&out_path).unwrap();
    let truth = hung.truth();
    let goid_of = |name: &str| {
        truth.iter().find(|t| t["name"] == name).unwrap()["goid"]
            .as_u64()
            .unwrap()
    };
    assert!(!text.contains("DEADLOCK"), "{text}");
    let (x, y) = (goid_of("abba_x"), goid_of("abba_y"));
    let possible = text
        .lines()
        .filter(|l| l.starts_with("possible deadlock: "))
        .find(|l| {
            l.contains(&format!("goroutine {x} waits for"))
                && l.contains(&format!("goroutine {y} waits for"))
        });
    assert!(possible.is_some(), "{text}");
    // Each blocked goroutine is reported once past the threshold, Go-dump style.
    for t in &truth {
        let head = format!("goroutine {} [", t["goid"]);
        let n = text
            .lines()
            .filter(|l| l.starts_with(&head) && l.contains("blocked past the threshold"))
            .count();
        assert_eq!(n, 1, "{}: {text}", t["name"]);
    }
    hung.assert_running();
}

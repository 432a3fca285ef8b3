//! Recordings: `tracer record` / `--record` keep a live run's raw events, and `tracer
//! replay` (unprivileged, without the binary) prints exactly what the live run printed,
//! record for record. Damaged and foreign files are one clear sentence, never a panic.
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use integration_tests::{
    ChildGuard, gobuild, of_kind, read_json_lines, run, scratch_dir, tracer, tracer_bin,
};

/// `tracer replay ARGS` as the `nobody` user: replay needs no privilege.
fn replay_unprivileged(args: &[&str]) -> Output {
    run(Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(tracer_bin())
        .arg("replay")
        .args(args))
}

fn stand_in_l4() -> PathBuf {
    let tc = gobuild::default_toolchain().unwrap();
    let built = gobuild::build_tagged("engine-l4", &tc, true, "").unwrap();
    integration_tests::private_copy(&built)
}

/// Records `tracer cache` of the L4 stand-in's mixed scenario; returns the recording, the
/// live records file and the live stderr.
fn record_cache(dir: &Path, json: bool) -> (PathBuf, PathBuf, String) {
    let engine = stand_in_l4();
    let recording = dir.join(if json { "json.trace" } else { "human.trace" });
    let live = dir.join(if json { "live.jsonl" } else { "live.txt" });
    let mut cmd = tracer();
    cmd.args(["record", "-o"]).arg(&recording).arg("cache");
    if json {
        cmd.arg("--json");
    }
    let out = run(cmd.arg("-o").arg(&live).arg("--").arg(&engine).args([
        "-scenario",
        "mixed",
        "-seed",
        "7",
        "-duration",
        "2s",
    ]));
    assert_eq!(out.status.code(), Some(0), "live run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains("tracer: recorded "), "{stderr}");
    (recording, live, stderr)
}

/// `tracer replay REC cache --json`, unprivileged, prints the live run's records, record for
/// record; returns the replay's output.
fn assert_cache_replay_equals(recording: &Path, live_records: &[serde_json::Value]) -> Output {
    let out = replay_unprivileged(&[recording.to_str().unwrap(), "cache", "--json"]);
    assert_eq!(out.status.code(), Some(0), "replay as nobody");
    let replayed = integration_tests::json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(replayed.len(), live_records.len(), "as many records");
    for (i, (a, b)) in live_records.iter().zip(&replayed).enumerate() {
        assert_eq!(a, b, "record {i} differs");
    }
    out
}

/// The human summary block of a run's stderr (without replay's own rate line).
fn summary_block(stderr: &str) -> &str {
    let at = stderr.find("--- cache summary").expect("a summary");
    let block = &stderr[at..];
    match block.find("tracer: replayed ") {
        Some(end) => &block[..end],
        None => block,
    }
}

#[test]
fn a_cache_recording_replays_exactly_what_the_live_run_printed() {
    let dir = scratch_dir("replay-cache");
    let (recording, live, _) = record_cache(&dir, true);
    let live_records = read_json_lines(&live);
    let calls = of_kind(&live_records, "cache_call").len();
    assert!(calls > 500, "the scenario makes many calls: {calls}");
    assert_eq!(of_kind(&live_records, "cache_summary").len(), 1);

    let out = assert_cache_replay_equals(&recording, &live_records);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("tracer: replaying ") && stderr.contains("`tracer cache` of pid"),
        "{stderr}"
    );

    // Human output, lines and summary, likewise.
    let (recording, live, live_stderr) = record_cache(&dir, false);
    let out = replay_unprivileged(&[recording.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let live_text = std::fs::read_to_string(&live).unwrap();
    assert!(live_text.lines().count() > 500);
    assert_eq!(String::from_utf8_lossy(&out.stdout), live_text);
    assert_eq!(
        summary_block(&String::from_utf8_lossy(&out.stderr)),
        summary_block(&live_stderr)
    );
}

/// `--light` reads goroutine exits from the engine's goroutine table while it runs (no
/// exit probe): the recording keeps what was read where it was applied, so the replay ends
/// the same calls at the same points, record for record.
#[test]
fn a_light_recording_replays_the_goroutine_exits_it_read() {
    let dir = scratch_dir("replay-light");
    let tc = gobuild::default_toolchain().unwrap();
    let engine = integration_tests::private_copy(
        &gobuild::build_tagged("engine-l1", &tc, true, "").unwrap(),
    );
    let (recording, live) = (dir.join("light.trace"), dir.join("live.jsonl"));
    let out = run(tracer()
        .args(["record", "-o"])
        .arg(&recording)
        .args(["cache", "--light", "--json", "-o"])
        .arg(&live)
        .arg("--")
        .arg(&engine)
        .args(["-scenario", "mixed", "-seed", "7", "-linger", "600ms"]));
    assert_eq!(out.status.code(), Some(0), "live run");
    let live_records = read_json_lines(&live);
    let summary = of_kind(&live_records, "cache_summary")[0];
    assert!(
        summary["probe_hits"]["goroutine_exits_read"]
            .as_u64()
            .unwrap()
            > 0,
        "{summary}"
    );
    assert!(of_kind(&live_records, "cache_call").len() > 100);

    assert_cache_replay_equals(&recording, &live_records);
}

#[test]
fn a_funcs_recording_replays_exactly_what_the_live_run_printed() {
    let dir = scratch_dir("replay-funcs");
    let program = gobuild::build_default("funcs", true).unwrap();
    let program = integration_tests::private_copy(&program);
    let recording = dir.join("funcs.trace");
    let live = dir.join("live.jsonl");
    let out = run(tracer()
        .args(["funcs", "--match", r"main\.(add9|leaf|recurse)", "--json"])
        .arg("--record")
        .arg(&recording)
        .arg("-o")
        .arg(&live)
        .arg("--")
        .arg(&program)
        .args(["-mode", "basic"]));
    assert_eq!(out.status.code(), Some(0));
    let live_records = read_json_lines(&live);
    assert!(of_kind(&live_records, "func_call").len() >= 400);

    let out = replay_unprivileged(&[recording.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let replayed = integration_tests::json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(replayed, live_records);

    // Asked to replay it as another subcommand: refused, naming what it is.
    let out = replay_unprivileged(&[recording.to_str().unwrap(), "cache"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is a recording of `tracer funcs`, not of `cache`"),
        "{stderr}"
    );
}

/// One line on stderr, exit 1, no panic.
fn assert_one_sentence(out: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with("tracer: ") && last.contains(expected),
        "expected `{expected}` in {stderr}"
    );
}

#[test]
fn damaged_and_foreign_recordings_are_one_clear_sentence() {
    let dir = scratch_dir("replay-damaged");
    let (recording, live, _) = record_cache(&dir, true);
    let whole = std::fs::read(&recording).unwrap();
    let live_calls = of_kind(&read_json_lines(&live), "cache_call").len();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };

    // Cut in half: the calls before the cut are shown, then one sentence.
    let cut = write("cut.trace", &whole[..whole.len() / 2]);
    let out = replay_unprivileged(&[cut.to_str().unwrap(), "--json"]);
    assert_one_sentence(&out, "without its end record");
    let shown = integration_tests::json_lines(&String::from_utf8_lossy(&out.stdout));
    let shown_calls = of_kind(&shown, "cache_call").len();
    assert!(
        shown_calls > 0 && shown_calls < live_calls,
        "{shown_calls} of {live_calls}"
    );
    assert!(of_kind(&shown, "cache_summary").is_empty());

    // A flipped byte in the stream: its checksum says so.
    let mut flipped = whole.clone();
    let at = whole.len() * 3 / 4;
    flipped[at] ^= 0xff;
    let flipped = write("flipped.trace", &flipped);
    assert_one_sentence(
        &replay_unprivileged(&[flipped.to_str().unwrap()]),
        "is damaged after",
    );

    // A format from the future is refused, not guessed at.
    let mut newer = whole.clone();
    newer[8..12].copy_from_slice(&99u32.to_le_bytes());
    let newer = write("newer.trace", &newer);
    assert_one_sentence(
        &replay_unprivileged(&[newer.to_str().unwrap()]),
        "is a recording of format 99, newer than this tracer reads",
    );

    // Not a recording at all, and a header cut short.
    let foreign = write("foreign.trace", b"{\"kind\":\"cache_call\"}\n");
    assert_one_sentence(
        &replay_unprivileged(&[foreign.to_str().unwrap()]),
        "is not a tracer recording",
    );
    let header_cut = write("header.trace", &whole[..40]);
    assert_one_sentence(
        &replay_unprivileged(&[header_cut.to_str().unwrap()]),
        "has a damaged header",
    );
    let missing = dir.join("missing.trace");
    assert_one_sentence(
        &replay_unprivileged(&[missing.to_str().unwrap()]),
        "cannot read",
    );
}

/// `tracer locks` on the L4 stand-in's lock scenario (cache locks named by their offset
/// from the cache the discovery probe found, stacks symbolized): replayed without the
/// binary, record for record, JSON and human.
#[test]
fn a_locks_recording_replays_exactly_what_the_live_run_printed() {
    let dir = scratch_dir("replay-locks");
    let engine = stand_in_l4();
    for json in [true, false] {
        let recording = dir.join(format!("locks-{json}.trace"));
        let live = dir.join(format!("locks-{json}.out"));
        let mut cmd = tracer();
        cmd.args(["record", "-o"]).arg(&recording).arg("locks");
        if json {
            cmd.arg("--json");
        }
        let out = run(cmd
            .arg("-o")
            .arg(&live)
            .arg("--")
            .arg(&engine)
            .args(["-scenario", "locks"]));
        assert_eq!(out.status.code(), Some(0), "live run");
        let live_text = std::fs::read_to_string(&live).unwrap();
        let mut args = vec![recording.to_str().unwrap(), "locks"];
        if json {
            args.push("--json");
        }
        let out = replay_unprivileged(&args);
        assert_eq!(out.status.code(), Some(0), "replay as nobody");
        let replayed = String::from_utf8_lossy(&out.stdout);
        if json {
            let live_records = integration_tests::json_lines(&live_text);
            assert!(
                of_kind(&live_records, "contention").len() >= 6,
                "the scenario plants two waiters on each of three locks"
            );
            assert!(
                live_text.contains("dagql cache egraphMu"),
                "named by offset"
            );
            assert!(live_text.contains("\"func\""), "stacks are symbolized");
            assert_eq!(integration_tests::json_lines(&replayed), live_records);
        } else {
            assert!(live_text.lines().count() >= 6);
            assert_eq!(replayed, live_text);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("had no symbol"), "{stderr}");
    }
}

/// `hang --watch --threshold 0` on tests/go/sched (ping-pong pairs and a contended Mutex:
/// goroutines park and wake all the time, so each memory snapshot confirms some and the
/// wake-ups follow): replayed unprivileged, without the binary or the process, it prints
/// exactly what the live run printed, JSON and human, though the snapshots' results exist
/// only in the recording. A cut recording shows what it holds, then one sentence.
#[test]
fn a_hang_watch_recording_replays_exactly_what_the_live_run_printed() {
    use integration_tests::SpawnRetrying;
    let dir = scratch_dir("replay-hang");
    let program = gobuild::build_default("sched", true).unwrap();
    let program = integration_tests::private_copy(&program);
    let sched = ChildGuard(
        Command::new(&program)
            .args(["-pairs", "8", "-duration", "120s"])
            .stdout(std::process::Stdio::null())
            .spawn_retrying()
            .unwrap(),
    );
    let pid = sched.0.id().to_string();
    for json in [true, false] {
        let recording = dir.join(format!("hang-{json}.trace"));
        let live = dir.join(format!("hang-{json}.out"));
        let mut cmd = tracer();
        // Both ways of asking for a recording.
        if json {
            cmd.args(["record", "-o"]).arg(&recording).arg("hang");
        } else {
            cmd.arg("hang").arg("--record").arg(&recording);
        }
        cmd.args([
            "--pid",
            &pid,
            "--watch",
            "--threshold",
            "0",
            "--duration",
            "3",
        ]);
        if json {
            cmd.arg("--json");
        }
        let out = run(cmd.arg("-o").arg(&live));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "live run: {stderr}");
        assert!(stderr.contains("tracer: recorded "), "{stderr}");
        let live_text = std::fs::read_to_string(&live).unwrap();

        let mut args = vec![recording.to_str().unwrap(), "hang", "--watch"];
        if json {
            args.push("--json");
        }
        let out = replay_unprivileged(&args);
        let replay_stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "replay as nobody: {replay_stderr}"
        );
        let replayed = String::from_utf8_lossy(&out.stdout);
        if json {
            let live_records = integration_tests::json_lines(&live_text);
            let blocked = of_kind(&live_records, "goroutine").len();
            let unblocked = of_kind(&live_records, "unblocked").len();
            assert!(
                blocked >= 5 && unblocked >= 5,
                "{blocked} blocked, {unblocked} unblocked"
            );
            let summary = of_kind(&live_records, "summary")[0];
            assert!(summary["snapshots"].as_u64().unwrap() >= 2, "{summary}");
            let replayed = integration_tests::json_lines(&replayed);
            assert_eq!(replayed.len(), live_records.len(), "as many records");
            for (i, (a, b)) in live_records.iter().zip(&replayed).enumerate() {
                assert_eq!(a, b, "record {i} differs");
            }
        } else {
            assert!(
                live_text.contains("blocked past the threshold"),
                "{live_text}"
            );
            assert!(live_text.contains("runs again after"), "{live_text}");
            assert_eq!(replayed, live_text);
        }
        // The stderr summary line too.
        let summary_line = |s: &str| {
            s.lines()
                .find(|l| l.contains(" reports; lost events: "))
                .map(str::to_owned)
        };
        assert_eq!(summary_line(&replay_stderr), summary_line(&stderr));

        if !json {
            // The same recording as a Perfetto timeline equals the live run's timeline.
            let live_pf = dir.join("hang-live.pftrace");
            let recording_pf = dir.join("hang-pf.trace");
            let out = run(tracer()
                .args(["hang", "--pid", &pid, "--watch", "--threshold", "0"])
                .args(["--duration", "2", "--format", "perfetto", "-o"])
                .arg(&live_pf)
                .arg("--record")
                .arg(&recording_pf));
            assert_eq!(out.status.code(), Some(0), "live timeline");
            let replay_pf = dir.join("hang-replay.pftrace");
            std::fs::File::create(&replay_pf).unwrap();
            std::fs::set_permissions(
                &replay_pf,
                std::os::unix::fs::PermissionsExt::from_mode(0o666),
            )
            .unwrap();
            let out = replay_unprivileged(&[
                recording_pf.to_str().unwrap(),
                "--format",
                "perfetto",
                "-o",
                replay_pf.to_str().unwrap(),
            ]);
            assert_eq!(out.status.code(), Some(0), "replayed timeline");
            let (a, b) = (
                std::fs::read(&live_pf).unwrap(),
                std::fs::read(&replay_pf).unwrap(),
            );
            assert!(a.len() > 100, "a timeline with slices: {} bytes", a.len());
            assert!(a == b, "the replayed timeline differs from the live one");
        }
        if json {
            // Cut: the reports before the cut, in order, then one sentence.
            let whole = std::fs::read(&recording).unwrap();
            let cut = dir.join("hang-cut.trace");
            std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
            let out = replay_unprivileged(&[cut.to_str().unwrap(), "hang", "--json"]);
            assert_one_sentence(&out, "without its end record");
            let shown = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                live_text.starts_with(&shown),
                "a prefix of the live records"
            );
            // Asked as another subcommand, or --watch on another kind: refused by name.
            let out = replay_unprivileged(&[recording.to_str().unwrap(), "locks"]);
            assert_one_sentence(&out, "is a recording of `tracer hang`, not of `locks`");
        }
    }
}

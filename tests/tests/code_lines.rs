//! `tracer cache` on every engine code line a user runs: the stand-ins of L1 (v0.20.x),
//! L3 (v0.21.x) and L4 (v1.0 betas and main, three variants) record what each cache
//! call really did; the tracer's records must match exactly, with no lost events.
use integration_tests::{
    gobuild, of_kind, read_json_lines, run, scratch_dir,
    standins::{
        OWNERSHIP_FIELDS, assert_calls, assert_clean_run, assert_l1_run,
        assert_ownership_line_extras, assert_sessions, bag, paired, returns_read_at, stand_in,
        summary, trace, trace_with,
    },
    tracer,
};

#[test]
fn l1_matches_ground_truth_stripped_and_full() {
    for stripped in [true, false] {
        let bin = stand_in("engine-l1", stripped, "");
        let what = format!("L1 mixed stripped={stripped}");
        let t = trace(&bin, "mixed", &[]);
        assert_l1_run(&t, &what);
        let outcomes = bag(&t.records, "cache_call", &["outcome"]);
        for o in [
            "hit",
            "hit_content",
            "miss",
            "join",
            "uncached",
            "error",
            "recursive",
        ] {
            assert!(outcomes.contains(&format!("\"{o}\"")), "{what}: no {o}");
        }
    }
}

/// L1 in --light: one trap per call at the session layer's entry, the forced no-cache
/// retry and the recursive refusal found in the base call's code; calls, sessions and
/// parents as the engine made them, references not followed.
#[test]
fn l1_light_reads_every_call_from_its_entry() {
    let bin = stand_in("engine-l1", true, "");
    let what = "L1 light mixed";
    let t = trace(&bin, "mixed", &["--light"]);
    assert_clean_run(&t, what, "L1", true);
    assert!(
        !t.stderr.contains("warning"),
        "{what}: a light probe is missing: {}",
        t.stderr
    );
    assert_calls(
        &t,
        what,
        &["digest", "outcome", "session", "parent_digest"],
        true,
    );
    let s = summary(&t.records);
    assert_eq!(s["refs_followed"], false, "{what}: {s}");
    let roles = s["probe_hits"]["by_role"].as_object().unwrap();
    for dropped in ["SessionCall return", "BaseCall", "Release", "Wait"] {
        assert!(
            !roles.contains_key(dropped),
            "{what}: {dropped} probed: {s}"
        );
    }
    // The planted forced retries and recursive refusals were seen on their paths.
    let outcomes = bag(&t.records, "cache_call", &["outcome"]);
    for o in ["uncached", "recursive", "miss", "join", "hit"] {
        assert!(outcomes.contains(&format!("\"{o}\"")), "{what}: no {o}");
    }
    // Joins were read at their call of `wait`, misses from their execution's start.
    assert!(roles.contains_key("LightJoin"), "{what}: {s}");
    // No exit probe: the goroutines that ended were read gone from the goroutine table.
    assert!(!roles.contains_key("GoroutineExit"), "{what}: {s}");
    assert!(
        s["probe_hits"]["goroutine_exits_read"].as_u64().unwrap() > 0,
        "{what}: {s}"
    );
}

/// --light reads goroutine exits from the engine's goroutine table while the engine runs.
/// An engine that exits right after its workload (no -linger) takes its last goroutines'
/// ends with it: those calls stay unfinished with a null outcome, said in a note, and no
/// call gets an outcome other than the engine's.
#[test]
fn light_tails_of_an_exiting_engine_stay_unfinished() {
    let bin = integration_tests::private_copy(&stand_in("engine-l1", true, ""));
    let dir = scratch_dir("light-tails");
    let (records, truth) = (dir.join("records.jsonl"), dir.join("truth.jsonl"));
    let out = run(tracer()
        .args(["cache", "--light", "--json", "-o"])
        .arg(&records)
        .arg("--")
        .arg(&bin)
        .args(["-scenario", "mixed", "-seed", "7", "-truth"])
        .arg(&truth));
    let t = integration_tests::standins::Traced {
        status: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        records: read_json_lines(&records),
        truth: read_json_lines(&truth),
    };
    let what = "L1 light, engine exiting at once";
    assert_eq!(t.status, Some(0), "{what}: {}", t.stderr);
    let mut unfinished = 0;
    for (w, g) in paired(&t, what) {
        if g["status"] == "unfinished" {
            assert!(g["outcome"].is_null(), "{what}: {g}");
            unfinished += 1;
        } else if w["outcome"] != "error" && w["outcome"] != "recursive" {
            let want = if w["outcome"] == "hit_content" {
                "hit"
            } else {
                w["outcome"].as_str().unwrap()
            };
            assert_eq!(g["outcome"], want, "{what}\n truth  {w}\n traced {g}");
        }
    }
    // The main goroutine's last call at least is open when the engine exits.
    assert!(unfinished > 0, "{what}");
    assert!(
        t.stderr.contains("could not be read (the engine exited?)"),
        "{what}: {}",
        t.stderr
    );
    // An engine that exited is not a goroutine table the tracer cannot read.
    assert!(
        !t.stderr
            .contains("could not read the engine's goroutine table"),
        "{what}: {}",
        t.stderr
    );
}

#[test]
fn l3_matches_ground_truth_stripped_and_full() {
    for stripped in [true, false] {
        let bin = stand_in("engine-l3", stripped, "");
        let what = format!("L3 mixed stripped={stripped}");
        let t = trace(&bin, "mixed", &[]);
        assert_clean_run(&t, &what, "L3", false);
        assert_calls(&t, &what, OWNERSHIP_FIELDS, false);
        assert_sessions(&t, &what, true);
        assert_ownership_line_extras(&t, &what);
        // Its caller tests the error right after the call: the return is read there.
        assert_eq!(returns_read_at(&t, &what), "callers", "{what}");
        let routes = bag(&t.records, "cache_call", &["hit_route"]);
        for r in ["recipe", "digest", "structural"] {
            assert!(routes.contains(&format!("\"{r}\"")), "{what}: no {r} route");
        }
    }
}

#[test]
fn l4_variants_match_ground_truth() {
    for (tags, variant) in [
        ("", "main after beta.10"),
        ("l4beta10", "beta.8-10"),
        ("l4beta4", "beta.4-7"),
    ] {
        let bin = stand_in("engine-l4", true, tags);
        let what = format!("L4 {variant} mixed");
        let t = trace(&bin, "mixed", &[]);
        assert_clean_run(&t, &what, &format!("L4 ({variant})"), false);
        let mut fields = OWNERSHIP_FIELDS.to_vec();
        fields.extend(["engine_outcome", "engine_hit_route"]);
        assert_calls(&t, &what, &fields, false);
        assert_sessions(&t, &what, true);
        assert_ownership_line_extras(&t, &what);
        // Two call sites like the engine's: one tests the error after the call (read at
        // that jump), one returns the call's results (read at its own RET).
        assert_eq!(returns_read_at(&t, &what), "callers", "{what}");
        assert!(
            t.stderr.contains(
                "2 call sites (1 on the first jump after the call, 1 on the caller's own RET)"
            ),
            "{what}: {}",
            t.stderr
        );
        let armed = of_kind(&t.records, "cache_call")
            .iter()
            .filter(|c| !c["engine_outcome"].is_null())
            .count();
        if tags == "l4beta4" {
            assert_eq!(armed, 0, "{what}: beta.4-7 has no CacheDecision");
        } else {
            assert!(armed > 0, "{what}: no CacheDecision read");
        }
    }
}

#[test]
fn planted_ownership_anomalies_are_reported_and_nothing_else() {
    for (program, tags) in [("engine-l3", ""), ("engine-l4", "")] {
        let bin = stand_in(program, true, tags);
        let what = format!("{program} anomalies");
        let t = trace(&bin, "anomalies", &[]);
        assert_eq!(t.status, Some(0), "{what}: {}", t.stderr);
        let planted = bag(&t.truth, "anomaly", &["type"]);
        assert_eq!(planted.len(), 3, "{what}: the scenario plants three");
        assert_eq!(
            bag(&t.records, "ownership_anomaly", &["type", "result_id"]),
            bag(&t.truth, "anomaly", &["type", "result_id"]),
            "{what}"
        );
        assert!(t.stderr.contains("OWNERSHIP ANOMALY") || !t.records.is_empty());
    }
}

#[test]
fn light_mode_keeps_outcomes_and_routes() {
    for (program, line) in [("engine-l3", "L3"), ("engine-l4", "L4")] {
        let bin = stand_in(program, true, "");
        let what = format!("{line} light");
        let t = trace(&bin, "mixed", &["--light"]);
        assert_clean_run(&t, &what, line, true);
        assert!(t.stderr.contains("light mode"), "{}", t.stderr);
        assert_calls(
            &t,
            &what,
            &["digest", "outcome", "session", "hit_route"],
            true,
        );
        // References are not followed in --light: unknown (null), said, never zero.
        assert!(
            t.stderr
                .contains("session references and ownership not followed"),
            "{what}: {}",
            t.stderr
        );
        let s = summary(&t.records);
        assert_eq!(s["refs_followed"], false, "{what}: {s}");
        assert!(
            !s["probe_hits"]["by_role"]
                .as_object()
                .unwrap()
                .keys()
                .any(|r| r.starts_with("Ownership")),
            "{what}: ownership probed in --light: {s}"
        );
        let sessions = s["sessions"].as_array().unwrap();
        assert!(!sessions.is_empty(), "{what}: no session");
        for x in sessions {
            assert!(
                x["refs_taken"].is_null() && x["leaked"].is_null(),
                "{what}: {x}"
            );
        }
        let closes = of_kind(&t.records, "session_close");
        assert_eq!(
            closes.len(),
            of_kind(&t.truth, "session_close").len(),
            "{what}: session closes"
        );
        for c in closes {
            assert!(
                c["refs_taken"].is_null() && c["refs_released"].is_null(),
                "{what}: {c}"
            );
        }
    }
}

#[test]
fn an_unknown_variant_is_refused_naming_what_did_not_match() {
    let bin = stand_in("engine-l4", true, "l4unknown");
    let out = run(tracer().args(["cache", "--"]).arg(&bin));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("matches no variant"), "{stderr}");
    assert!(stderr.contains("releaseOngoingCallHandoff"), "{stderr}");
    assert!(stderr.contains("core.recordCacheEvidence"), "{stderr}");
}

#[test]
fn a_shifted_layout_stops_the_trace_instead_of_printing_garbage() {
    let bin = stand_in("engine-l3", true, "shifted");
    let t = trace(&bin, "mixed", &[]);
    assert_ne!(t.status, Some(0), "{}", t.stderr);
    assert!(
        t.stderr.contains("does not match code line L3"),
        "{}",
        t.stderr
    );
    assert!(
        t.stderr.matches("does not match code line").count() == 1,
        "said once: {}",
        t.stderr
    );
}

#[test]
fn demo_runs_a_chosen_line_and_says_where_engines_come_from() {
    let dir = scratch_dir("demo-engines");
    integration_tests::copy_executable(
        &stand_in("engine-l3", true, ""),
        &dir.join("dagger-engine-l3"),
    );
    let out = run(tracer().env("TRACER_DEMO_DIR", &dir).args([
        "demo",
        "--code-line",
        "L3",
        "--seconds",
        "1",
        "--json",
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("code line L3"), "{stderr}");
    let records = integration_tests::json_lines(&String::from_utf8_lossy(&out.stdout));
    assert!(!of_kind(&records, "cache_call").is_empty(), "{stderr}");

    let out = run(tracer().args(["demo", "--engine", "/nonexistent/dagger-engine"]));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cargo xtask demo"), "{stderr}");
}

#[test]
fn the_cache_entry_metric_is_read_from_the_running_engine() {
    // (stand-in, scenario, tracer flags, entries left): L3/L4's anomalies and L2's leak
    // leave results owned; L1's mixed scenario releases every session (0 entries, which
    // must still be read, not null). --light learns L1/L2's cache from the sessions'
    // start and end, not from each call.
    for (program, scenario, flags, left) in [
        ("engine-l3", "anomalies", &[][..], true),
        ("engine-l4", "anomalies", &[][..], true),
        ("engine", "leak", &[][..], true),
        ("engine", "leak", &["--light"][..], true),
        ("engine-l1", "mixed", &[][..], false),
        ("engine-l1", "mixed", &["--light"][..], false),
    ] {
        let what = format!("{program} {scenario} {flags:?}");
        let bin = integration_tests::private_copy(&stand_in(program, true, ""));
        let dir = scratch_dir("metric");
        let records = dir.join("records.jsonl");
        let truth = dir.join("truth.jsonl");
        // The engine idles after its workload (-serve): its Size() is what the workload
        // left while the tracer reads it at the end of --duration. The spawned engine
        // outlives the tracer (--duration): output goes to files, not pipes the engine
        // would hold open.
        let log = dir.join("tracer.log");
        let status = tracer()
            .args(["cache", "--json", "--duration", "4"])
            .args(flags)
            .arg("-o")
            .arg(&records)
            .arg("--")
            .arg(&bin)
            .args(["-scenario", scenario, "-serve", "-truth"])
            .arg(&truth)
            .stdout(std::fs::File::create(dir.join("engine.out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .status()
            .unwrap();
        let records = read_json_lines(&records);
        if let Some(pid) = of_kind(&records, "cache_call")
            .first()
            .and_then(|c| c["pid"].as_i64())
        {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
        let stderr = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(status.success(), "{what}: {stderr}");
        let truth = read_json_lines(&truth);
        let end = of_kind(&truth, "end");
        assert_eq!(end.len(), 1, "{what}: the workload finished");
        let want = &end[0]["cache_entries"];
        assert_eq!(want.as_u64().unwrap() > 0, left, "{what}: entries left");
        assert_eq!(
            summary(&records)["metrics"]["dagger_dagql_cache_entries"],
            *want,
            "{what}: {stderr}"
        );
    }
}

#[test]
fn the_stamped_version_confirms_the_line_or_is_named_when_it_disagrees() {
    let tc = gobuild::default_toolchain().unwrap();
    for (program, version, said) in [
        ("engine-l3", "v0.21.8", "confirmed by its version"),
        ("engine-l4", "v1.0.0-beta.11", "confirmed by its version"),
        (
            "engine-l3",
            "v1.0.0-beta.9",
            "its version names L4 (beta.8-10)",
        ),
    ] {
        let opts = gobuild::BuildOptions {
            stripped: true,
            engine_version: version.to_string(),
            ..Default::default()
        };
        let bin = gobuild::build_with(program, &tc, &opts).unwrap();
        let t = trace(&bin, "mixed", &["--light"]);
        assert_eq!(t.status, Some(0), "{program} {version}: {}", t.stderr);
        let first = t
            .stderr
            .lines()
            .find(|l| l.contains("code line"))
            .unwrap_or_default();
        assert!(first.contains(version), "{first}");
        assert!(first.contains(said), "{first}");
    }
}

#[test]
fn returns_of_calls_begun_before_attaching_are_counted_not_silent() {
    use integration_tests::SpawnRetrying;
    let bin = integration_tests::private_copy(&stand_in("engine-l4", true, ""));
    let dir = scratch_dir("kernel-failures");
    let mut engine = std::process::Command::new(&bin)
        .args([
            "-scenario",
            "highrate",
            "-sessions",
            "1",
            "-duration",
            "20s",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn_retrying()
        .unwrap();
    // Calls in flight while the RET probes are attached and the entries not yet have no
    // entry registers at their RET. Whether one straddles that gap depends on the
    // machine's load, so attach up to five times; each attach must report any it saw.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut seen = Vec::new();
    for attempt in 0..5 {
        let records = dir.join(format!("records-{attempt}.jsonl"));
        let out = run(tracer()
            .args(["cache", "--json", "--duration", "0.5", "--pid"])
            .arg(engine.id().to_string())
            .arg("-o")
            .arg(&records));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        let records = read_json_lines(&records);
        let missing = summary(&records)["kernel_failures"]["entry_missing"]
            .as_u64()
            .unwrap();
        assert_eq!(
            missing > 0,
            stderr.contains("returns without entry registers"),
            "said in the summary exactly when non-zero: {stderr}"
        );
        seen.push(missing);
        if missing > 0 {
            break;
        }
    }
    let _ = engine.kill();
    let _ = engine.wait();
    assert!(seen.iter().any(|&m| m > 0), "counts per attach: {seen:?}");
}

/// Returns are read at the call sites the binary's code shows; a call through an
/// interface has none. Such calls are counted, marked `entry_only` and given no outcome
/// their path does not prove (never a hit); every other call stays exact.
#[test]
fn calls_through_an_interface_are_counted_and_never_guessed() {
    let bin = stand_in("engine-l4", true, "");
    let what = "L4 mixed -via-interface";
    let t = trace_with(&bin, "mixed", &[], &["-via-interface"]);
    assert_eq!(t.status, Some(0), "{what}: {}", t.stderr);
    let s = summary(&t.records);
    assert_eq!(s["returns_read_at"], "callers", "{what}: {s}");
    let via_interface = of_kind(&t.truth, "call")
        .iter()
        .filter(|c| c["iface"] == true)
        .count() as u64;
    assert!(via_interface > 0, "{what}: no call through the interface");
    assert_eq!(
        s["calls_with_unread_return"].as_u64(),
        Some(via_interface),
        "{what}: {s}"
    );
    assert!(
        t.stderr.contains("calls whose return no probe read"),
        "{what}: {}",
        t.stderr
    );
    let (mut unknown_hits, mut exact) = (0, 0);
    for (want, got) in paired(&t, what) {
        if want["iface"] == true {
            assert_eq!(got["status"], "entry_only", "{what}: {got} for {want}");
            assert_ne!(got["outcome"], "hit", "{what}: a guessed hit: {got}");
            if want["outcome"] == "hit" {
                assert!(got["outcome"].is_null(), "{what}: {got} for {want}");
                unknown_hits += 1;
            }
        } else {
            assert_eq!(got["status"], "returned", "{what}: {got}");
            assert_eq!(got["outcome"], want["outcome"], "{what}: {got} for {want}");
            exact += 1;
        }
    }
    assert!(
        unknown_hits > 0 && exact > 0,
        "{what}: {unknown_hits} {exact}"
    );

    // With the returns read at the RETs, calls through the interface are read too.
    let what = "L4 mixed -via-interface --returns-at-ret";
    let t = trace_with(&bin, "mixed", &["--returns-at-ret"], &["-via-interface"]);
    assert_eq!(t.status, Some(0), "{what}: {}", t.stderr);
    assert_eq!(returns_read_at(&t, what), "ret", "{what}");
    for (want, got) in paired(&t, what) {
        assert_eq!(got["status"], "returned", "{what}: {got}");
        assert_eq!(got["outcome"], want["outcome"], "{what}: {got} for {want}");
    }
}

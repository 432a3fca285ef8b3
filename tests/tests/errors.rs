//! Inputs a user gets wrong: one clear line on stderr and a non-zero exit each.
use std::path::Path;

use integration_tests::{gobuild, run, scratch_dir, tracer};

fn assert_one_line_error(out: &std::process::Output, needle: &str) {
    assert!(!out.status.success(), "must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<_> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one error line expected, got {stderr:?}");
    assert!(lines[0].starts_with("tracer: "), "{stderr}");
    assert!(
        lines[0].contains(needle),
        "expected {needle:?} in {stderr:?}"
    );
}

#[test]
fn non_go_binary() {
    let out = run(tracer().args(["inspect", "/bin/true"]));
    assert_one_line_error(&out, "is not a Go binary");
    let out = run(tracer().args(["funcs", "--match", "main\\.main", "--", "/bin/true"]));
    assert_one_line_error(&out, "is not a Go binary");
}

#[test]
fn not_an_executable_at_all() {
    let dir = scratch_dir("errors");
    let text = dir.join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    let out = run(tracer().arg("inspect").arg(&text));
    assert_one_line_error(&out, "not an ELF");
}

#[test]
fn nonexistent_pid() {
    let out = run(tracer().args(["funcs", "--match", "main\\.main", "--pid", "3999999"]));
    assert_one_line_error(&out, "no process with pid 3999999");
}

#[test]
fn regex_matching_nothing() {
    let bin = gobuild::build_default("funcs", true).unwrap();
    let out = run(tracer()
        .args(["funcs", "--match", r"main\.doesNotExist", "--"])
        .arg(&bin));
    assert_one_line_error(&out, "matches `main\\.doesNotExist`");
    // A part of a name: the hint says the pattern is anchored, and what would match.
    let out = run(tracer().args(["funcs", "--match", "add9", "--"]).arg(&bin));
    assert_one_line_error(&out, "must match the whole name");
    assert_one_line_error(&out, "`.*add9.*` matches 1");
    let out = run(tracer()
        .args(["funcs", "--match", "main\\.(", "--"])
        .arg(&bin));
    assert_one_line_error(&out, "not a valid regex");
}

/// A copy of a real Go binary whose .go.buildinfo claims a Go version we do not support.
fn with_go_version(bin: &Path, from: &str, to: &str) -> std::path::PathBuf {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(bin).unwrap();
    let mut replaced = 0;
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from.as_bytes() {
            bytes[i..i + to.len()].copy_from_slice(to.as_bytes());
            replaced += 1;
        }
        i += 1;
    }
    assert!(replaced > 0, "version string present");
    let out = scratch_dir("errors").join("old-go");
    std::fs::write(&out, bytes).unwrap();
    out
}

#[test]
fn go_version_outside_the_table() {
    let tc = gobuild::default_toolchain().unwrap();
    let bin = gobuild::build("funcs", &tc, true).unwrap();
    let version = tc.go_version();
    let old = format!("go1.17{}", &version["go1.26".len()..]);
    let patched = with_go_version(&bin, &version, &old);
    let out = run(tracer().arg("inspect").arg(&patched));
    assert_one_line_error(&out, "go1.17");
    assert!(String::from_utf8_lossy(&out.stderr).contains("supported"));
}

#[test]
fn missing_command() {
    let out = run(tracer().args(["funcs", "--match", "x", "--", "/no/such/program"]));
    assert_one_line_error(&out, "not found");
}

#[test]
fn locks_and_watch_errors() {
    let out = run(tracer().args(["locks", "--", "/bin/true"]));
    assert_one_line_error(&out, "is not a Go binary");
    let out = run(tracer().args(["hang", "--watch", "--pid", "3999999"]));
    assert_one_line_error(&out, "no process with pid 3999999");
    // --own only means something with --watch; clap says so and exits 2.
    let out = run(tracer().args(["hang", "--own", "main", "--pid", "1"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--watch"));
}

/// `-o` into a directory that does not exist: refused before any eBPF is loaded or any
/// command started (no `tracing` line, the command never ran), in every subcommand with -o.
#[test]
fn output_into_a_missing_directory() {
    let dir = scratch_dir("errors");
    let missing = dir.join("no-such-dir").join("records.jsonl");
    let expected = format!(
        "cannot write records to {}: No such file or directory (hint: create the directory first)",
        missing.display()
    );
    let funcs = gobuild::build_default("funcs", true).unwrap();
    let locks = gobuild::build_default("locks", true).unwrap();
    let engine = gobuild::build_default("engine", true).unwrap();
    let truth = dir.join("truth.jsonl");
    let cases: [(&str, Vec<&str>, &Path); 3] = [
        ("funcs", vec!["--match", r"main\.add9"], &funcs),
        ("locks", vec![], &locks),
        ("cache", vec![], &engine),
    ];
    for (sub, extra, bin) in cases {
        let started = std::time::Instant::now();
        let out = run(tracer()
            .arg(sub)
            .args(extra)
            .arg("-o")
            .arg(&missing)
            .arg("--")
            .arg(bin)
            .arg("-truth")
            .arg(&truth));
        assert_one_line_error(&out, &expected);
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim_end(),
            format!("tracer: {expected}"),
            "{sub}"
        );
        assert!(!truth.exists(), "{sub}: the command must not have run");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{sub}: {:?}",
            started.elapsed()
        );
    }
}

/// `--duration` must be a positive, finite number of seconds: checked while parsing the
/// arguments, one line each, in every subcommand that has it.
#[test]
fn durations_that_are_not_positive() {
    let cases: [&[&str]; 4] = [
        &["funcs", "--match", "x", "--pid", "1"],
        &["cache", "--pid", "1"],
        &["locks", "--pid", "1"],
        &["hang", "--watch", "--pid", "1"],
    ];
    for args in cases {
        for bad in ["0", "-1", "nan", "inf", "0.0"] {
            let out = run(tracer().args(args).args(["--duration", bad]));
            assert_one_line_error(&out, "--duration");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("above 0"), "{args:?} {bad}: {stderr}");
            assert!(stderr.contains("(hint: "), "{args:?} {bad}: {stderr}");
            assert_eq!(out.status.code(), Some(2), "{args:?} {bad}");
        }
        let out = run(tracer().args(args).args(["--duration", "soon"]));
        assert_one_line_error(&out, "is not a number of seconds");
    }
}

/// Without privileges (user nobody, no capabilities): one line saying what is missing,
/// with the hint.
#[test]
fn without_privileges() {
    let bin = gobuild::build_default("funcs", true).unwrap();
    // A copy nobody can read and run, in a directory nobody can enter.
    let dir = std::env::temp_dir().join(format!("tracer-nopriv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("funcs");
    integration_tests::copy_executable(&bin, &copy);
    use std::os::unix::fs::PermissionsExt;
    for p in [&dir, &copy] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = run(std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(integration_tests::tracer_bin())
        .args(["funcs", "--match", r"main\.add9", "--"])
        .arg(&copy));
    let _ = std::fs::remove_dir_all(&dir);
    assert_one_line_error(&out, "not allowed to load eBPF programs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("hint: run as root"), "{stderr}");
    // Named by the check made before loading (tests/tests/privileges.rs has the rest).
    assert!(
        stderr.contains("the tracer lacks CAP_BPF and CAP_PERFMON"),
        "{stderr}"
    );
}

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

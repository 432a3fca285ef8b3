//! `tracer inspect` against the Go standard library's own reading of the same
//! binaries (tests/go/oracle: debug/gosym, debug/buildinfo, debug/dwarf), on
//! stripped and unstripped builds of every Go version installed.
use std::collections::HashMap;

use integration_tests::{gobuild, run, tracer};
use serde_json::Value;

fn inspect(binary: &std::path::Path, pattern: Option<&str>) -> Value {
    let mut cmd = tracer();
    cmd.arg("inspect").arg(binary).arg("--json");
    if let Some(p) = pattern {
        cmd.args(["--match", p]);
    }
    let out = run(&mut cmd);
    assert!(out.status.success(), "inspect {} failed", binary.display());
    serde_json::from_slice(&out.stdout).expect("inspect --json prints one JSON object")
}

#[test]
fn binary_facts_match_the_go_standard_library_on_every_version() {
    let toolchains = gobuild::toolchains();
    assert!(
        toolchains.len() >= 8,
        "expected Go 1.19 and 1.21..1.27, found {toolchains:?}"
    );
    for tc in &toolchains {
        let debug = gobuild::build("funcs", tc, false).unwrap();
        let stripped = gobuild::build("funcs", tc, true).unwrap();
        let dwarf_truth = gobuild::run_oracle(&debug, false).unwrap();
        let dwarf_goid = dwarf_truth["goid_offset"]
            .as_u64()
            .expect("DWARF goid offset of the unstripped build");
        for (binary, is_stripped) in [(&debug, false), (&stripped, true)] {
            let truth = gobuild::run_oracle(binary, true).unwrap();
            let got = inspect(binary, Some(r"main\..*"));
            let at = format!("go {} stripped={is_stripped}", tc.version);
            assert_eq!(got["go_version"], truth["go_version"], "{at}");
            assert_eq!(got["stripped"], is_stripped, "{at}");
            assert_eq!(got["main_path"], truth["path"], "{at}");
            assert_eq!(
                got["functions"].as_u64().unwrap() as usize,
                truth["functions"].as_array().unwrap().len(),
                "{at}"
            );
            // The stripped build uses the per-version table; it must equal DWARF.
            assert_eq!(
                got["goid_offset"].as_u64().unwrap(),
                dwarf_goid,
                "{at}: goid offset vs DWARF"
            );
            assert_eq!(
                got["goid_offset_source"],
                if is_stripped { "table" } else { "dwarf" },
                "{at}"
            );

            let oracle_funcs: HashMap<&str, &Value> = truth["functions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| (f["name"].as_str().unwrap(), f))
                .collect();
            let matches = got["matches"].as_array().unwrap();
            assert!(matches.len() >= 6, "{at}: main.* functions");
            for m in matches {
                let name = m["name"].as_str().unwrap();
                let want = oracle_funcs
                    .get(name)
                    .unwrap_or_else(|| panic!("{at}: {name} unknown to debug/gosym"));
                assert_eq!(m["entry"], want["entry"], "{at} {name} entry");
                assert_eq!(m["end"], want["end"], "{at} {name} end");
                assert_eq!(m["file"], want["file"], "{at} {name} file");
                assert_eq!(m["line"], want["line"], "{at} {name} line");
            }
        }
    }
}

#[test]
fn probe_plans_follow_the_prologue_shapes() {
    for tc in gobuild::toolchains() {
        let bin = gobuild::build("funcs", &tc, true).unwrap();
        let got = inspect(&bin, Some(r"main\.(add9|leaf|recurse|mayPanic)"));
        let plan = |name: &str| -> Value {
            got["matches"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["name"] == name)
                .unwrap_or_else(|| panic!("{name} missing"))["probe"]
                .clone()
        };
        let at = format!("go {}", tc.version);
        // Small, medium (LEAQ) and big frames all get an emulated entry probe. From Go
        // 1.21 that is the frame-pointer push after the check; Go 1.19 allocates the frame
        // first (`sub rsp, N`, single-stepped), so the probe takes the check's own jump.
        let (kind, first_insn) = if tc.minor() >= 21 {
            ("after_stack_check", "push rbp")
        } else {
            ("stack_check_jump", "jbe ")
        };
        for framed in ["main.add9", "main.recurse", "main.mayPanic"] {
            let p = plan(framed);
            assert_eq!(p["entry_kind"], kind, "{at} {framed}");
            let insn = p["entry_insn"].as_str().unwrap();
            assert!(insn.starts_with(first_insn), "{at} {framed}: {insn}");
            assert!(
                !p["rets"].as_array().unwrap().is_empty(),
                "{at} {framed} RETs"
            );
            assert!(p["entry_file_offset"].as_u64().is_some(), "{at} {framed}");
        }
        let leaf = plan("main.leaf");
        assert_eq!(leaf["entry_kind"], "no_stack_check", "{at}");
        assert_eq!(leaf["rets"].as_array().unwrap().len(), 1, "{at} leaf RETs");
    }
}

#[test]
fn human_inspect_names_version_and_probe_points() {
    let bin = gobuild::build_default("funcs", true).unwrap();
    let out = run(tracer()
        .arg("inspect")
        .arg(&bin)
        .args(["--match", r"main\.add9"]));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("go version   go1.26"), "{text}");
    assert!(text.contains("stripped     yes"), "{text}");
    assert!(text.contains("after the stack-growth check"), "{text}");
    assert!(text.contains("RET probes"), "{text}");
}

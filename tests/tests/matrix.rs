//! The build matrix: `tests/go/matrix` built every way users build Go programs, with
//! every toolchain of tests/go/toolchains.txt: executable or PIE, without or with cgo
//! (the program then really calls C), plus `-race` on Go 1.26 and 1.27 and external
//! linking (of a program that does not call C) on Go 1.26; each stripped and full.
//!
//! Per cell, one test:
//! - `tracer inspect` of the stripped build (and of the full one) against the full build's
//!   own ELF symbol table (`go tool nm` of the same toolchain): every function the tracer
//!   lists has exactly the entry addresses the linker gave that name;
//! - `tracer funcs` of `main.mx(Work|Leaf|Native)` over a short run of the stripped and of
//!   the full build (a private copy each): every call on its goroutine, in order, with its
//!   argument and result, equal to what the program recorded itself.
//!
//! Builds are cached under target/go-programs (see `gobuild`); cells are independent tests
//! and run in parallel.
use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    time::Duration,
};

use integration_tests::SpawnRetrying;
use integration_tests::{
    assert_matrix_truth,
    gobuild::{self, BuildOptions, GoToolchain},
    private_copy, read_json_lines, run_with_timeout, scratch_dir, tracer,
};
use serde_json::Value;

/// The traced functions of tests/go/matrix.
const TRACED: &str = r"main\.mx(Work|Leaf|Native)";

/// A tracer run must end long before this.
const LIMIT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy)]
enum Link {
    /// No cgo at all (`CGO_ENABLED=0`).
    NoCgo,
    /// `CGO_ENABLED=1`, the program calls C (so the go command links externally).
    Cgo,
    /// `-race` (cgo, the program calls C).
    Race,
    /// `CGO_ENABLED=1 -ldflags=-linkmode=external`, the program does not call C (`nocgo`
    /// build tag): external linking on its own.
    External,
}

fn options(pie: bool, link: Link) -> BuildOptions {
    BuildOptions {
        cgo: !matches!(link, Link::NoCgo),
        pie,
        race: matches!(link, Link::Race),
        external_link: matches!(link, Link::External),
        tags: if matches!(link, Link::External) {
            "nocgo".into()
        } else {
            String::new()
        },
        ..BuildOptions::default()
    }
}

/// Whether a build with `opts` calls C.
fn calls_c(opts: &BuildOptions) -> bool {
    opts.cgo_enabled() && !opts.tags.contains("nocgo")
}

fn inspect(binary: &Path) -> Value {
    let out = run_with_timeout(
        tracer()
            .arg("inspect")
            .arg(binary)
            .args(["--json", "--match", ".*"]),
        LIMIT,
    );
    assert!(
        out.status.success(),
        "inspect {} failed: {}",
        binary.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("inspect --json prints one JSON object")
}

/// The value of a build setting in inspect's report (`[[key, value], ...]`).
fn setting<'a>(report: &'a Value, key: &str) -> Option<&'a str> {
    report["settings"]
        .as_array()?
        .iter()
        .find(|kv| kv[0] == key)
        .and_then(|kv| kv[1].as_str())
}

/// (a) Every function `tracer inspect` lists in `binary` has the entry addresses the full
/// build's symbol table gives its name, and the build is what `opts` asked for.
fn check_inspect(
    at: &str,
    tc: &GoToolchain,
    binary: &Path,
    opts: &BuildOptions,
    symbols: &HashMap<String, Vec<u64>>,
) {
    let got = inspect(binary);
    assert_eq!(got["go_version"], tc.go_version(), "{at}");
    assert_eq!(
        got["wrapper_func_id"],
        wrapper_func_id_in_source(tc),
        "{at}: the wrapper funcID (the last of the runtime's FuncID enumeration)"
    );
    assert_eq!(got["stripped"], opts.stripped, "{at}");
    let cgo = if opts.cgo_enabled() { "1" } else { "0" };
    assert_eq!(setting(&got, "CGO_ENABLED"), Some(cgo), "{at}: CGO_ENABLED");
    assert_eq!(is_pie(binary), opts.pie, "{at}: ELF type");
    if opts.pie && tc.minor() >= 21 {
        // Go 1.19 does not record -buildmode in its build info.
        assert_eq!(setting(&got, "-buildmode"), Some("pie"), "{at}: -buildmode");
    }
    if opts.race {
        assert_eq!(setting(&got, "-race"), Some("true"), "{at}: -race");
    }
    if opts.external_link {
        let ld = setting(&got, "-ldflags").unwrap_or("");
        assert!(ld.contains("-linkmode=external"), "{at}: -ldflags {ld:?}");
    }

    let matches = got["matches"].as_array().expect("matches");
    assert_eq!(
        matches.len() as u64,
        got["functions"].as_u64().unwrap(),
        "{at}: `.*` matches every function"
    );
    let mut entries: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for m in matches {
        entries
            .entry(m["name"].as_str().unwrap())
            .or_default()
            .push(m["entry"].as_u64().unwrap());
    }
    for f in ["main.main", "main.mxWork", "main.mxLeaf", "main.mxNative"] {
        assert!(entries.contains_key(f), "{at}: {f} not listed");
    }
    let mut wrong = Vec::new();
    for (name, got_entries) in &mut entries {
        got_entries.sort_unstable();
        let want = symbols
            .get(&gobuild::symtab_name(name))
            .or_else(|| abbreviated(name, symbols))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if got_entries.as_slice() != want {
            wrong.push(format!(
                "{name}: tracer {} symtab {}",
                hexes(got_entries),
                hexes(want)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{at}: {} of {} function names have other entry addresses than the symbol table, e.g.\n{}",
        wrong.len(),
        entries.len(),
        wrong[..wrong.len().min(8)].join("\n")
    );
    for m in matches
        .iter()
        .filter(|m| m["name"].as_str().unwrap().starts_with("main.mx"))
    {
        assert!(
            m["error"].is_null() && m["probe"].is_object(),
            "{at}: no probe plan for {}: {}",
            m["name"],
            m["error"]
        );
    }
}

/// The position of the wrapper funcID in the toolchain's own source: the constant
/// enumeration in internal/abi/symtab.go (Go 1.21+) or runtime/symtab.go (earlier).
fn wrapper_func_id_in_source(tc: &GoToolchain) -> u64 {
    let src = tc.goroot().expect("GOROOT").join("src");
    for (file, first, wrapper) in [
        (
            "internal/abi/symtab.go",
            "FuncIDNormal FuncID = iota",
            "FuncIDWrapper",
        ),
        (
            "runtime/symtab.go",
            "funcID_normal funcID = iota",
            "funcID_wrapper",
        ),
    ] {
        let Ok(text) = std::fs::read_to_string(src.join(file)) else {
            continue;
        };
        let Some(start) = text.find(first) else {
            continue;
        };
        let names: Vec<&str> = text[start..]
            .lines()
            .map(|l| l.split("//").next().unwrap().trim())
            .take_while(|l| *l != ")")
            .filter(|l| !l.is_empty())
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        let at = names.iter().position(|n| *n == wrapper);
        return at.unwrap_or_else(|| panic!("{wrapper} not in {file}: {names:?}")) as u64;
    }
    panic!("no FuncID enumeration in {}", src.display())
}

/// Go 1.19's pclntab abbreviates array lengths in generated names
/// (`type..eq.[...]internal/cpu.option`); the symbol table spells them out (`[15]`).
fn abbreviated<'a>(name: &str, symbols: &'a HashMap<String, Vec<u64>>) -> Option<&'a Vec<u64>> {
    if !name.contains("[...]") {
        return None;
    }
    let name = gobuild::symtab_name(name);
    let mut found = symbols.iter().filter(|(k, _)| {
        let mut spelled = String::new();
        let mut rest = k.as_str();
        while let Some(open) = rest.find('[') {
            spelled.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 && after[digits..].starts_with(']') {
                spelled.push_str("[...]");
                rest = &after[digits + 1..];
            } else {
                spelled.push('[');
                rest = after;
            }
        }
        spelled.push_str(rest);
        spelled == name
    });
    let one = found.next()?;
    found.next().is_none().then_some(one.1)
}

/// Whether `binary` is a position-independent executable (ELF type ET_DYN).
fn is_pie(binary: &Path) -> bool {
    let bytes = std::fs::read(binary).unwrap();
    u16::from_le_bytes([bytes[16], bytes[17]]) == 3
}

fn hexes(v: &[u64]) -> String {
    let h: Vec<_> = v.iter().map(|a| format!("{a:#x}")).collect();
    format!("[{}]", h.join(", "))
}

/// (b) `tracer funcs` over a short run of a private copy of `binary`.
fn check_funcs(at: &str, binary: &Path, opts: &BuildOptions) {
    let copy = private_copy(binary);
    let dir = scratch_dir("matrix");
    let records = dir.join("records.jsonl");
    let truth = dir.join("truth.jsonl");
    let out = run_with_timeout(
        tracer()
            .args(["funcs", "--match", TRACED, "--json", "-o"])
            .arg(&records)
            .arg("--")
            .arg(&copy)
            .args(["-goroutines", "3", "-calls", "30", "-truth"])
            .arg(&truth),
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{at}: tracer funcs: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim(),
        format!("matrix: done calls=270 cgo={}", calls_c(opts)),
        "{at}: the program's own output"
    );
    let truth = read_json_lines(&truth);
    assert_eq!(truth[0]["cgo"], calls_c(opts), "{at}");
    assert_matrix_truth(at, &read_json_lines(&records), &truth);
}

fn check_cell(minor: u32, pie: bool, link: Link) {
    let tc = gobuild::toolchain(minor).unwrap();
    let opts = options(pie, link);
    let full_opts = opts.with_stripped(false);
    let stripped_opts = opts.with_stripped(true);
    let full = gobuild::build_with("matrix", &tc, &full_opts).unwrap();
    let stripped = gobuild::build_with("matrix", &tc, &stripped_opts).unwrap();
    let symbols = gobuild::text_symbols(&tc, &full).unwrap();
    let name = |o: &BuildOptions| {
        gobuild::output_path_with("matrix", &tc, o)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    for (bin, o) in [(&stripped, &stripped_opts), (&full, &full_opts)] {
        let at = name(o);
        check_inspect(&at, &tc, bin, o, &symbols);
        check_funcs(&at, bin, o);
    }
}

/// One test per cell, named `go<minor>_<exe|pie>_<nocgo|cgo|race|extlink>`.
macro_rules! cells {
    ($($name:ident: $minor:literal, $pie:literal, $link:ident;)*) => {
        $(
            #[test]
            fn $name() {
                check_cell($minor, $pie, Link::$link);
            }
        )*
        /// The minor versions the cells above cover.
        const COVERED: &[u32] = &[$($minor),*];
    };
}

cells! {
    go119_exe_nocgo: 19, false, NoCgo;
    go119_exe_cgo: 19, false, Cgo;
    go119_pie_nocgo: 19, true, NoCgo;
    go119_pie_cgo: 19, true, Cgo;
    go121_exe_nocgo: 21, false, NoCgo;
    go121_exe_cgo: 21, false, Cgo;
    go121_pie_nocgo: 21, true, NoCgo;
    go121_pie_cgo: 21, true, Cgo;
    go122_exe_nocgo: 22, false, NoCgo;
    go122_exe_cgo: 22, false, Cgo;
    go122_pie_nocgo: 22, true, NoCgo;
    go122_pie_cgo: 22, true, Cgo;
    go123_exe_nocgo: 23, false, NoCgo;
    go123_exe_cgo: 23, false, Cgo;
    go123_pie_nocgo: 23, true, NoCgo;
    go123_pie_cgo: 23, true, Cgo;
    go124_exe_nocgo: 24, false, NoCgo;
    go124_exe_cgo: 24, false, Cgo;
    go124_pie_nocgo: 24, true, NoCgo;
    go124_pie_cgo: 24, true, Cgo;
    go125_exe_nocgo: 25, false, NoCgo;
    go125_exe_cgo: 25, false, Cgo;
    go125_pie_nocgo: 25, true, NoCgo;
    go125_pie_cgo: 25, true, Cgo;
    go126_exe_nocgo: 26, false, NoCgo;
    go126_exe_cgo: 26, false, Cgo;
    go126_pie_nocgo: 26, true, NoCgo;
    go126_pie_cgo: 26, true, Cgo;
    go126_exe_race: 26, false, Race;
    go126_exe_extlink: 26, false, External;
    go127_exe_nocgo: 27, false, NoCgo;
    go127_exe_cgo: 27, false, Cgo;
    go127_pie_nocgo: 27, true, NoCgo;
    go127_pie_cgo: 27, true, Cgo;
    go127_exe_race: 27, false, Race;
}

/// Every toolchain the project installs (tests/go/toolchains.txt) has its cells, and is
/// installed here.
#[test]
fn every_listed_toolchain_has_cells() {
    let listed = std::fs::read_to_string(gobuild::program_dir("toolchains.txt")).unwrap();
    let installed: Vec<String> = gobuild::toolchains()
        .into_iter()
        .map(|t| t.version)
        .collect();
    for v in listed
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let minor: u32 = v
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| panic!("odd version {v:?} in toolchains.txt"));
        assert!(COVERED.contains(&minor), "Go {v} has no matrix cells");
        assert!(
            installed
                .iter()
                .any(|i| i == v || i.starts_with(&format!("{v}."))),
            "Go {v} listed but not installed (found {installed:?})"
        );
    }
}

/// A wide `--match` on Go 1.26+ takes in functions the kernel refuses to probe (the
/// AVX-512 `expandAVX512_*` kernels of the garbage collector start with `vmovdqu64`; the
/// linker's `go:*` marker symbols are int3 padding): attached to a running process (where
/// the kernel says so; with `-- CMD` it installs nothing at exec, silently), the trace
/// still runs, says on stderr which functions it skipped, and traces the rest exactly.
fn wide_match_completes(minor: u32) {
    use std::process::{Command, Stdio};
    let tc = gobuild::toolchain(minor).unwrap();
    let opts = BuildOptions {
        stripped: true,
        ..BuildOptions::default()
    };
    let bin = private_copy(&gobuild::build_with("matrix", &tc, &opts).unwrap());
    let at = format!("go {} wide match", tc.version);
    let pattern = r"main\.mx(Work|Leaf|Native)|internal/runtime/gc/scan\..*|(internal/runtime/gc/scan\.)?expandAVX512.*|go:.*";
    let listed = inspect_matching(&bin, pattern);
    let names: Vec<&str> = listed["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().any(|n| n.contains("expandAVX512")),
        "{at}: the binary has no AVX-512 kernels to skip: {names:?}"
    );

    let dir = scratch_dir("wide");
    let records = dir.join("records.jsonl");
    let truth = dir.join("truth.jsonl");
    let (ready, gate, err_path) = (dir.join("ready"), dir.join("gate"), dir.join("tracer.err"));
    let mut prog = Command::new(&bin)
        .args(["-goroutines", "2", "-calls", "20", "-truth"])
        .arg(&truth)
        .arg("-ready")
        .arg(&ready)
        .arg("-gate")
        .arg(&gate)
        .stdout(Stdio::null())
        .spawn_retrying()
        .unwrap();
    let waited = |what: &str, cond: &mut dyn FnMut() -> bool| {
        let start = std::time::Instant::now();
        while !cond() {
            assert!(
                start.elapsed() < LIMIT,
                "{at}: timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    waited("the program to start", &mut || ready.exists());
    let mut t = tracer()
        .args(["funcs", "--match", pattern, "--json", "-o"])
        .arg(&records)
        .args(["--pid", &prog.id().to_string()])
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn_retrying()
        .unwrap();
    let stderr = || std::fs::read_to_string(&err_path).unwrap_or_default();
    waited("the tracer to attach", &mut || {
        stderr().contains("tracer: tracing") || t.try_wait().unwrap().is_some()
    });
    std::fs::write(&gate, b"").unwrap();
    assert!(prog.wait().unwrap().success(), "{at}: the program failed");
    let mut status = None;
    waited("the tracer to stop", &mut || {
        status = t.try_wait().unwrap();
        status.is_some()
    });
    let stderr = stderr();
    eprintln!("--- tracer stderr\n{stderr}");
    assert_eq!(status.unwrap().code(), Some(0), "{at}: {stderr}");
    let skipped: Vec<&str> = stderr.lines().filter(|l| l.contains("skipped")).collect();
    assert!(
        skipped.iter().any(|l| l.contains("expandAVX512")),
        "{at}: no stderr line says which functions were skipped:\n{stderr}"
    );
    // Only the program's own functions are compared (the runtime's may run too), so the
    // summary's call count is the program's.
    let truth = read_json_lines(&truth);
    let total = truth.last().unwrap()["total"].as_u64().unwrap();
    let mut records: Vec<Value> = read_json_lines(&records)
        .into_iter()
        .filter(|r| {
            r["kind"] != "func_call" || r["func"].as_str().unwrap_or("").starts_with("main.mx")
        })
        .collect();
    for r in records.iter_mut().filter(|r| r["kind"] == "summary") {
        r["calls"] = total.into();
    }
    assert_matrix_truth(&at, &records, &truth);
}

fn inspect_matching(binary: &Path, pattern: &str) -> Value {
    let out = run_with_timeout(
        tracer()
            .arg("inspect")
            .arg(binary)
            .args(["--json", "--match", pattern]),
        LIMIT,
    );
    assert!(out.status.success(), "inspect {} failed", binary.display());
    serde_json::from_slice(&out.stdout).expect("inspect --json prints one JSON object")
}

#[test]
fn go126_wide_match_skips_unprobeable_functions() {
    wide_match_completes(26);
}

#[test]
fn go127_wide_match_skips_unprobeable_functions() {
    wide_match_completes(27);
}

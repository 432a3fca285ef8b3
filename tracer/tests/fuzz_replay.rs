//! Fuzz smoke for the normal test run: replays the committed fuzz seeds and every crash the
//! fuzzer found (`fuzz/seeds/<target>`, `fuzz/regressions/<target>`) through the very entry
//! points the cargo-fuzz targets call (`fuzz/src/harness.rs`), without cargo-fuzz. The
//! structure-aware targets need real Go binaries as bases: those `cargo xtask fuzz` put in
//! `fuzz/bases`, or else the test programs in `target/go-programs` (the integration tests,
//! which run first, build them); without any, their inputs are skipped (said on stderr),
//! except under CI=true, where that is a failure.
#[path = "../../fuzz/src/harness.rs"]
mod harness;
#[path = "../../fuzz/src/seeds.rs"]
mod seeds;

use std::path::{Path, PathBuf};

use harness::Base;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every committed input of a target: seeds and regressions.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for kind in ["seeds", "regressions"] {
        let dir = root().join("fuzz").join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let data = std::fs::read(&p).unwrap();
            out.push((p, data));
        }
    }
    out
}

/// The same bases, in the same order, as the fuzz targets use (see `cargo xtask fuzz`).
fn bases() -> Vec<Base> {
    let dir = harness::bases_dir();
    let bases = harness::load_bases(&dir);
    if !bases.is_empty() {
        return bases;
    }
    let programs = root().join("target/go-programs");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&programs)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.retain(|p| {
        let name = p.file_name().unwrap().to_string_lossy();
        name.starts_with("funcs-go")
            && (name.ends_with("-stripped") || name == "funcs-go1.26.6-debug")
    });
    paths.sort();
    paths.iter().filter_map(|p| Base::load(p)).collect()
}

/// No bases: said on stderr, and a failure under CI (where the integration tests built them).
fn no_bases(target: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{target}: no base Go binaries in fuzz/bases or target/go-programs"
    );
    eprintln!("{target}: no base Go binaries (cargo xtask fuzz builds them): skipped");
}

fn replay(target: &str, run: impl Fn(&[u8])) -> usize {
    let all = inputs(target);
    for (path, data) in &all {
        eprintln!("replay {target}: {}", path.display());
        run(data);
    }
    all.len()
}

#[test]
fn recording_inputs() {
    assert!(
        replay("recording", harness::recording) > 0,
        "no committed recording seeds"
    );
}

#[test]
fn event_inputs() {
    assert!(
        replay("event", harness::event) > 0,
        "no committed event seeds"
    );
}

#[test]
fn gobin_bytes_inputs() {
    assert!(replay("gobin_bytes", harness::gobin_bytes) > 0);
}

#[test]
fn gobin_patch_inputs() {
    let bases = bases();
    if bases.is_empty() {
        no_bases("gobin_patch");
        return;
    }
    replay("gobin_patch", |d| harness::gobin_patch(&bases, d));
    // The unpatched bases through the raw-bytes entry point as well.
    for b in &bases {
        harness::gobin_bytes(&b.data);
    }
}

#[test]
fn walker_inputs() {
    let bases = bases();
    if bases.is_empty() {
        no_bases("walker");
        return;
    }
    replay("walker", |d| harness::walker(&bases, d));
}

#[test]
fn pclntab_inputs() {
    assert!(replay("pclntab", harness::pclntab) > 0);
}

#[test]
fn buildinfo_inputs() {
    assert!(replay("buildinfo", harness::buildinfo) > 0);
}

#[test]
fn code_inputs() {
    assert!(replay("code", harness::code) > 0);
}

#[test]
fn dwarf_inputs() {
    assert!(replay("dwarf", harness::dwarf) > 0);
}

/// The bases' real sections, whole, through the per-parser entry points (the committed
/// seeds are cut down).
#[test]
fn real_sections() {
    let bases = bases();
    if bases.is_empty() {
        no_bases("real sections");
        return;
    }
    for b in &bases {
        let Some(bin) = &b.bin else { continue };
        let parts = seeds::Parts::new(bin, &b.data).unwrap();
        eprintln!("real sections: {}", b.name);
        harness::pclntab(&seeds::pclntab_input(parts.pclntab, &[]));
        harness::buildinfo(parts.buildinfo);
        for (_, code) in seeds::code_seeds(&parts) {
            harness::code(&code);
        }
    }
}

/// The seed generator's small binaries and cut-down tables answer like the real binaries
/// they come from: same functions (by name and length), source lines, inline frames, probe
/// plans and mutex sites at the same offsets, same build info and `g` offsets.
#[test]
fn derived_seeds_read_like_the_real_binaries() {
    use tracer::gobin::{GoBinary, parts::PclnTable};
    let bases = bases();
    if bases.is_empty() {
        no_bases("derived seeds");
        return;
    }
    let main = regex::Regex::new("^main$").unwrap();
    for b in &bases {
        let Some(real) = &b.bin else { continue };
        eprintln!("derived seeds: {}", b.name);
        let p = seeds::Parts::new(real, &b.data).unwrap();
        let debug = b.name.ends_with("-debug");
        let mini = GoBinary::from_bytes(Path::new("mini"), seeds::mini_binary(&p, debug).unwrap())
            .unwrap_or_else(|e| panic!("{}: the small binary does not parse: {e}", b.name));
        assert_eq!(mini.build_info(), real.build_info());
        assert_eq!(mini.g_offsets().0, real.g_offsets().0);
        assert_eq!(mini.has_dwarf(), debug);
        assert!(mini.dwarf_problem().is_none(), "{:?}", mini.dwarf_problem());
        assert!(mini.runtime_layout().is_ok(), "{}", b.name);
        let shrunk = p.shrink(seeds::WANTED, p.header_text_start()).unwrap();
        let table = PclnTable::parse(&shrunk.tab).unwrap();
        let text = match table.text_start() {
            0 => harness::TEXT_BASE,
            t => t,
        };
        let cut = table.functions(text).unwrap();
        assert_eq!(cut.len(), mini.functions().len());
        let mut inlined = 0;
        for (m, c) in mini.functions().iter().zip(&cut) {
            let r = real.functions().iter().find(|r| r.name == m.name).unwrap();
            assert_eq!((&c.name, c.end - c.entry), (&r.name, r.end - r.entry));
            assert_eq!(m.end - m.entry, r.end - r.entry, "{}", m.name);
            for off in 0..r.end - r.entry {
                let frames = real.frames_at(r, r.entry + off);
                inlined += frames.len() - 1;
                assert_eq!(
                    mini.frames_at(m, m.entry + off),
                    frames,
                    "{} +{off}",
                    m.name
                );
                assert_eq!(
                    table.frames_at(c, c.entry + off, &shrunk.funcdata),
                    frames,
                    "{} +{off}",
                    m.name
                );
            }
            let rel = |plan: tracer::gobin::ProbePlan, entry: u64| {
                let rets: Vec<u64> = plan.rets.iter().map(|r| r - entry).collect();
                (plan.entry - entry, plan.entry_kind, rets)
            };
            assert_eq!(
                rel(mini.probe_plan(m).unwrap(), m.entry),
                rel(real.probe_plan(r).unwrap(), r.entry),
                "{}",
                m.name
            );
        }
        assert!(inlined > 0, "{}: no inlined frame kept", b.name);
        let sites = |bin: &GoBinary| -> Vec<(String, tracer::gobin::SiteKind)> {
            bin.mutex_sites(&main)
                .into_iter()
                .map(|s| (s.function, s.kind))
                .collect()
        };
        let kept: Vec<_> = sites(real)
            .into_iter()
            .filter(|(f, _)| seeds::WANTED.contains(&f.as_str()))
            .collect();
        assert!(!kept.is_empty(), "{}: no mutex site kept", b.name);
        assert_eq!(sites(&mini), kept, "{}", b.name);
    }
}

/// Regenerates the seeds derived from the bases (`fuzz/seeds/{walker,pclntab,buildinfo,
/// code,dwarf,gobin_bytes}`): `cargo test -p tracer --test fuzz_replay -- --ignored
/// write_derived_seeds`.
#[test]
#[ignore = "a generator, not a check: rewrites the derived seeds from the bases on demand"]
fn write_derived_seeds() {
    let bases = bases();
    assert!(!bases.is_empty(), "no bases");
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = root().join("fuzz/seeds").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        let name = name.replace(['/', '*', '(', ')'], "_");
        std::fs::write(dir.join(name), data).unwrap();
    };
    for (i, b) in bases.iter().enumerate() {
        if let Some(seed) = harness::walker_seed(&bases, i as u8) {
            write("walker", &format!("{i:02}-{}", b.name), &seed);
        }
        let Some(bin) = &b.bin else { continue };
        let p = seeds::Parts::new(bin, &b.data).unwrap();
        let version = bin.go_version();
        write("pclntab", version, &seeds::pclntab_seed(&p).unwrap());
        write("buildinfo", version, p.buildinfo);
        for (name, code) in seeds::code_seeds(&p) {
            write("code", &format!("{version}-{name}"), &code);
        }
        let (abbrev, strs, info) = seeds::dwarf_sections(bin.g_offsets().0);
        write("dwarf", version, &seeds::dwarf_input(&abbrev, &strs, &info));
        let debug = b.name.ends_with("-debug");
        let mini = seeds::mini_binary(&p, debug).unwrap();
        write("gobin_bytes", &format!("mini-{}", b.name), &mini);
    }
    write(
        "buildinfo",
        "pointer-format-go1.16",
        &seeds::buildinfo_pointer_format("go1.16.15", ""),
    );
}

/// Inputs on which the fuzzer found the walker hanging (`fuzz/known-hangs/walker`): each
/// must finish within seconds. A sudog whose `waitlink` points back into its own list, with
/// no channel set (`c == 0`), looped forever in `Reader::wait_of` while its loop was
/// bounded by the channels found; it is now bounded by the steps taken.
#[test]
fn walker_known_hangs() {
    let dir = root().join("fuzz/known-hangs/walker");
    let bases = std::sync::Arc::new(bases());
    if bases.is_empty() {
        no_bases("walker (known hangs)");
        return;
    }
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    paths.sort();
    for p in paths {
        let data = std::fs::read(&p).unwrap();
        let b = bases.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            harness::walker(&b, &data);
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_secs(10)).is_ok(),
            "the walker did not finish within 10 s on {}",
            p.display()
        );
    }
}

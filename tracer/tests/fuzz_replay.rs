//! Fuzz smoke for the normal test run: replays the committed fuzz seeds and every crash the
//! fuzzer found (`fuzz/seeds/<target>`, `fuzz/regressions/<target>`) through the very entry
//! points the cargo-fuzz targets call (`fuzz/src/harness.rs`), without cargo-fuzz. The
//! structure-aware targets need real Go binaries as bases: those `cargo xtask fuzz` put in
//! `fuzz/bases`, or else the test programs in `target/go-programs` (the integration tests,
//! which run first, build them); without any, their inputs are skipped (said on stderr),
//! except under CI=true, where that is a failure.
#[path = "../../fuzz/src/harness.rs"]
mod harness;

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

/// Regenerates `fuzz/seeds/walker` from the bases: `cargo test -p tracer --test fuzz_replay
/// -- --ignored write_walker_seeds`.
#[test]
#[ignore = "a generator, not a check: rewrites fuzz/seeds/walker from the bases on demand"]
fn write_walker_seeds() {
    let bases = bases();
    let dir = root().join("fuzz/seeds/walker");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, b) in bases.iter().enumerate() {
        if let Some(seed) = harness::walker_seed(&bases, i as u8) {
            std::fs::write(dir.join(format!("{i:02}-{}", b.name)), seed).unwrap();
        }
    }
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

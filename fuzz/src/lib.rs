//! The fuzz targets' shared entry points (see `harness.rs`).
#[path = "harness.rs"]
pub mod harness;
#[path = "seeds.rs"]
pub mod seeds;

use std::sync::OnceLock;

/// The structure-aware targets' bases, loaded once per fuzzing process.
pub fn bases() -> &'static [harness::Base] {
    static BASES: OnceLock<Vec<harness::Base>> = OnceLock::new();
    BASES.get_or_init(|| {
        let dir = harness::bases_dir();
        let bases = harness::load_bases(&dir);
        assert!(
            !bases.is_empty(),
            "no base Go binaries in {} (run `cargo xtask fuzz`, or set TRACER_FUZZ_BASES)",
            dir.display()
        );
        bases
    })
}

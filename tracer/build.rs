//! Builds the eBPF object (tracer-ebpf) with aya-build so that a plain
//! `cargo build --release` produces a complete `tracer` binary.
//!
//! With AYA_BUILD_SKIP=1 (clippy, docs, machines without bpf-linker) an empty
//! object is embedded instead; the tracer then refuses to load it with a clear error.
use std::{env, fs, path::PathBuf};

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .expect("tracer sits inside the workspace");
    let ebpf_dir = workspace.join("tracer-ebpf");
    let common_dir = workspace.join("tracer-common");
    println!("cargo:rerun-if-changed={}", common_dir.display());

    let out = PathBuf::from(env::var("OUT_DIR")?).join("tracer");
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
        fs::write(&out, [])?;
        return Ok(());
    }
    let root_dir = ebpf_dir.to_str().expect("utf-8 workspace path");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "tracer-ebpf",
            root_dir,
            no_default_features: false,
            features: &[],
        }],
        aya_build::Toolchain::default(),
    )
}

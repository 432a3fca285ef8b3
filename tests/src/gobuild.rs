//! Building the Go test programs under `tests/go/` with the Go toolchains installed on
//! this machine.
//!
//! Toolchains: Go 1.19 at `/usr/lib/go-1.19/bin/go` and every `$TRACER_GO_DIR/<version>/go/bin/go`
//! (`TRACER_GO_DIR` defaults to `$HOME/.cache/go-tracer/go`). Versions come from the
//! toolchain's `VERSION` file (falling back to `go env GOVERSION`).
//!
//! Outputs: `<workspace>/target/go-programs/<program>-go<version>-<stripped|debug>`, built with
//! `CGO_ENABLED=0 GOTOOLCHAIN=local GOPROXY=off -buildvcs=false`, a per-version
//! `GOCACHE=<workspace>/target/go-cache/<version>`, and `-ldflags=-s -w` when stripped
//! (no `-trimpath`, like the real engine). A build is skipped when the output is newer
//! than every file under the program directory; builds go to a temporary name and are
//! renamed into place, so concurrent test threads and processes are safe.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

/// The default toolchain's minor version (Go 1.26.x).
pub const DEFAULT_MINOR: u32 = 26;

/// Go 1.19 as installed by Debian.
const DEBIAN_GO_119: &str = "/usr/lib/go-1.19/bin/go";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoToolchain {
    /// "1.26.6" (no "go" prefix).
    pub version: String,
    /// Path of the `go` command.
    pub go: PathBuf,
}

impl GoToolchain {
    /// `(major, minor, patch)`, missing parts as 0.
    pub fn version_tuple(&self) -> (u32, u32, u32) {
        parse_version(&self.version).unwrap_or((0, 0, 0))
    }

    pub fn minor(&self) -> u32 {
        self.version_tuple().1
    }

    /// "go1.26.6", as `runtime.Version()` and `.go.buildinfo` spell it.
    pub fn go_version(&self) -> String {
        format!("go{}", self.version)
    }

    /// The GOROOT (two levels above `bin/go`).
    pub fn goroot(&self) -> Option<&Path> {
        self.go.parent()?.parent()
    }
}

fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let v = v.trim().trim_start_matches("go");
    let mut it = v.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    // "1.21rc2" style suffixes are not expected; treat a missing/odd patch as 0.
    let patch = it
        .next()
        .map(|p| {
            p.chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>()
        })
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    Some((major, minor, patch))
}

/// Directory holding the downloaded toolchains (`$TRACER_GO_DIR`, default
/// `$HOME/.cache/go-tracer/go`).
pub fn tracer_go_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TRACER_GO_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/go-tracer/go")
}

/// Version of the toolchain whose `go` binary is `go`, e.g. "1.26.6".
fn toolchain_version(go: &Path) -> Option<String> {
    let goroot = go.parent()?.parent()?;
    let from_file = std::fs::read_to_string(goroot.join("VERSION"))
        .ok()
        .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
        .filter(|l| l.starts_with("go") && parse_version(l).is_some());
    let v = match from_file {
        Some(v) => v,
        None => {
            let out = Command::new(go)
                .args(["env", "GOVERSION"])
                .env("GOTOOLCHAIN", "local")
                .output()
                .ok()?;
            if !out.status.success() {
                return None;
            }
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        }
    };
    parse_version(&v)?;
    Some(v.trim_start_matches("go").to_string())
}

/// Every installed toolchain, sorted by version (oldest first).
pub fn toolchains() -> Vec<GoToolchain> {
    let mut gos: Vec<PathBuf> = Vec::new();
    let deb = PathBuf::from(DEBIAN_GO_119);
    if deb.is_file() {
        gos.push(deb);
    }
    if let Ok(rd) = std::fs::read_dir(tracer_go_dir()) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if parse_version(&name).is_none() {
                continue;
            }
            let go = e.path().join("go/bin/go");
            if go.is_file() {
                gos.push(go);
            }
        }
    }
    let mut tcs: Vec<GoToolchain> = gos
        .into_iter()
        .filter_map(|go| toolchain_version(&go).map(|version| GoToolchain { version, go }))
        .collect();
    tcs.sort_by_key(|t| t.version_tuple());
    tcs.dedup_by(|a, b| a.version == b.version);
    tcs
}

/// The newest installed Go 1.`minor`.x.
pub fn toolchain(minor: u32) -> Result<GoToolchain> {
    let all = toolchains();
    all.iter()
        .rfind(|t| t.version_tuple().0 == 1 && t.minor() == minor)
        .cloned()
        .with_context(|| {
            format!(
                "Go 1.{minor} toolchain not installed (looked in {DEBIAN_GO_119} and {}/<version>/go/bin/go); found: [{}]",
                tracer_go_dir().display(),
                all.iter().map(|t| t.version.as_str()).collect::<Vec<_>>().join(", ")
            )
        })
}

/// The default toolchain for building test programs: Go 1.26.x.
pub fn default_toolchain() -> Result<GoToolchain> {
    toolchain(DEFAULT_MINOR)
}

/// The newest installed toolchain (used to build the oracle, which must read every format).
pub fn newest_toolchain() -> Result<GoToolchain> {
    toolchains().pop().context("no Go toolchain installed")
}

/// The cargo workspace root (parent of the `tests` crate).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `tests/go/<program>`.
pub fn program_dir(program: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("go")
        .join(program)
}

/// `<workspace>/target/go-programs`.
pub fn output_dir() -> PathBuf {
    workspace_root().join("target").join("go-programs")
}

/// Where `build(program, tc, stripped)` puts its output.
pub fn output_path(program: &str, tc: &GoToolchain, stripped: bool) -> PathBuf {
    let kind = if stripped { "stripped" } else { "debug" };
    output_dir().join(format!("{program}-go{}-{kind}", tc.version))
}

/// Newest modification time of any file under `dir` (recursively).
fn newest_mtime(dir: &Path) -> Result<SystemTime> {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))?;
        for e in rd {
            let e = e?;
            let md = std::fs::metadata(e.path())?;
            if md.is_dir() {
                stack.push(e.path());
            } else if let Ok(m) = md.modified() {
                newest = newest.max(m);
            }
        }
    }
    Ok(newest)
}

/// Builds `tests/go/<program>` with `tc` and returns the binary's path. Skips the build when
/// the output exists and is newer than every file of the program.
pub fn build(program: &str, tc: &GoToolchain, stripped: bool) -> Result<PathBuf> {
    build_tagged(program, tc, stripped, "")
}

/// The package to build: the program directory itself, or its only `cmd/<name>`
/// (a multi-package module laid out like a real repository, e.g. the stand-in engine).
fn main_package(src: &Path) -> Result<String> {
    if src.join("main.go").is_file() {
        return Ok(".".into());
    }
    let cmds: Vec<_> = std::fs::read_dir(src.join("cmd"))
        .with_context(|| format!("{} has neither main.go nor cmd/", src.display()))?
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    match cmds.as_slice() {
        [one] => Ok(format!("./cmd/{}", one.file_name().to_string_lossy())),
        _ => bail!(
            "{} must have exactly one directory under cmd/",
            src.display()
        ),
    }
}

/// Like [`build`], with Go build tags (comma-separated; "" for none). Tagged builds
/// get their own output name.
pub fn build_tagged(
    program: &str,
    tc: &GoToolchain,
    stripped: bool,
    tags: &str,
) -> Result<PathBuf> {
    let src = program_dir(program);
    if !src.join("go.mod").is_file() {
        bail!("no Go program at {} (missing go.mod)", src.display());
    }
    let mut out = output_path(program, tc, stripped);
    if !tags.is_empty() {
        out.set_file_name(format!(
            "{}-{}",
            out.file_name().unwrap().to_string_lossy(),
            tags.replace(',', "-")
        ));
    }
    let package = main_package(&src)?;
    let src_mtime = newest_mtime(&src)?;
    if let Ok(m) = std::fs::metadata(&out).and_then(|m| m.modified())
        && m >= src_mtime
    {
        return Ok(out);
    }

    let dir = output_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let cache = workspace_root()
        .join("target")
        .join("go-cache")
        .join(&tc.version);
    std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;

    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{}",
        out.file_name().unwrap().to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));

    let mut cmd = Command::new(&tc.go);
    cmd.current_dir(&src).arg("build").arg("-buildvcs=false");
    if stripped {
        cmd.arg("-ldflags=-s -w");
    }
    if !tags.is_empty() {
        cmd.arg(format!("-tags={tags}"));
    }
    cmd.arg("-o").arg(&tmp).arg(&package);
    for var in [
        "GOFLAGS",
        "GOROOT",
        "GOPATH",
        "GOOS",
        "GOARCH",
        "GOAMD64",
        "GOEXPERIMENT",
        "GOWORK",
        "GO111MODULE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("CGO_ENABLED", "0")
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOWORK", "off")
        .env("GO111MODULE", "on")
        .env("GOENV", "off")
        .env("GOCACHE", &cache);
    let output = cmd
        .output()
        .with_context(|| format!("running {}", tc.go.display()))?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&tmp);
        bail!(
            "go build of {program} with go{} ({}) failed: {}\n{}{}",
            tc.version,
            tc.go.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
    }
    std::fs::rename(&tmp, &out).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!("renaming {} to {}", tmp.display(), out.display())
    })?;
    Ok(out)
}

/// Builds `tests/go/<program>` with the default toolchain.
pub fn build_default(program: &str, stripped: bool) -> Result<PathBuf> {
    build(program, &default_toolchain()?, stripped)
}

/// Builds the oracle (`tests/go/oracle`) with the newest toolchain.
pub fn build_oracle() -> Result<PathBuf> {
    build("oracle", &newest_toolchain()?, false)
}

/// Runs the oracle on `binary` (with `-funcs=false` unless `functions`) and parses its JSON.
pub fn run_oracle(binary: &Path, functions: bool) -> Result<serde_json::Value> {
    let oracle = build_oracle()?;
    let mut cmd = Command::new(&oracle);
    if !functions {
        cmd.arg("-funcs=false");
    }
    let out = cmd
        .arg(binary)
        .output()
        .with_context(|| format!("running {}", oracle.display()))?;
    if !out.status.success() {
        bail!(
            "oracle {} failed: {}\n{}",
            binary.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("parsing oracle output")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROGRAMS: [&str; 3] = ["funcs", "bench", "oracle"];

    fn run(bin: &Path, args: &[&str]) -> std::process::Output {
        let out = Command::new(bin).args(args).output().expect("run program");
        assert!(
            out.status.success(),
            "{} {args:?}: {}\n{}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn read_truth(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad truth line {l:?}: {e}"))
            })
            .collect()
    }

    #[test]
    fn toolchains_are_found() {
        let tcs = toolchains();
        assert!(!tcs.is_empty(), "no Go toolchain found");
        let d = default_toolchain().unwrap();
        assert_eq!(d.minor(), DEFAULT_MINOR);
        for w in tcs.windows(2) {
            assert!(w[0].version_tuple() < w[1].version_tuple());
        }
    }

    /// Builds every program with every toolchain, stripped and not, runs funcs and bench
    /// quickly and checks the oracle on each binary.
    #[test]
    fn toolchains_build_all_programs() {
        let oracle = build_oracle().unwrap();
        let tmp = std::env::temp_dir().join(format!("gobuild-test-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        for tc in toolchains() {
            for stripped in [true, false] {
                for p in PROGRAMS {
                    let bin = build(p, &tc, stripped).unwrap();
                    let o = Command::new(&oracle)
                        .arg("-funcs=false")
                        .arg(&bin)
                        .output()
                        .unwrap();
                    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                    assert_eq!(v["go_version"], tc.go_version(), "{}", bin.display());
                    assert_eq!(v["stripped"], stripped);
                    assert_eq!(v["has_dwarf"], !stripped);
                    assert_eq!(v["goid_offset"].is_u64(), !stripped, "{}", bin.display());
                }
                let funcs = build("funcs", &tc, stripped).unwrap();
                let o = Command::new(&oracle)
                    .args(["-match", "^main\\."])
                    .arg(&funcs)
                    .output()
                    .unwrap();
                let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                let names: Vec<&str> = v["functions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["name"].as_str().unwrap())
                    .collect();
                for f in [
                    "main.add9",
                    "main.leaf",
                    "main.recurse",
                    "main.mayPanic",
                    "main.catcher",
                ] {
                    assert!(names.contains(&f), "{f} missing in {}", funcs.display());
                }

                let truth = tmp.join(format!("truth-{}-{stripped}", tc.version));
                let out = run(
                    &funcs,
                    &["-mode", "basic", "-truth", truth.to_str().unwrap()],
                );
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout),
                    "funcs: done calls=440\n"
                );
                let recs = read_truth(&truth);
                assert_eq!(recs.len(), 442);
                assert_eq!(recs[0]["kind"], "start");
                assert_eq!(recs[441]["kind"], "end");
                assert_eq!(recs[441]["calls"]["main.add9"], 400);
                assert_eq!(recs[441]["calls"]["main.leaf"], 40);

                let out = run(
                    &funcs,
                    &[
                        "-mode",
                        "stress",
                        "-depth",
                        "300",
                        "-truth",
                        truth.to_str().unwrap(),
                    ],
                );
                let recs = read_truth(&truth);
                let end = recs.last().unwrap();
                assert_eq!(end["kind"], "end");
                let total = end["total"].as_u64().unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout),
                    format!("funcs: done calls={total}\n")
                );
                assert_eq!(end["calls"]["main.recurse"], 4 * 2 * 301);
                assert_eq!(end["calls"]["main.catcher"], 40);
                // per round: catcher(3 + r%5) unwinds n+1 mayPanic frames, shield(2 + r%4) too
                let unwound: u64 = (0..10u64).map(|r| (3 + r % 5 + 1) + (2 + r % 4 + 1)).sum();
                assert_eq!(end["unwound"]["main.mayPanic"], 4 * unwound);

                let out = run(
                    &funcs,
                    &[
                        "-mode",
                        "spin",
                        "-seconds",
                        "0.2",
                        "-interval",
                        "1ms",
                        "-truth",
                        truth.to_str().unwrap(),
                    ],
                );
                let recs = read_truth(&truth);
                assert_eq!(recs.last().unwrap()["kind"], "end");
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout),
                    format!("funcs: done calls={}\n", recs.len() - 2)
                );

                let bench = build("bench", &tc, stripped).unwrap();
                let out = run(&bench, &["-n", "1000"]);
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(v["calls"], 1000);
                assert_eq!(v["total_calls"], 2000);
            }
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }
}

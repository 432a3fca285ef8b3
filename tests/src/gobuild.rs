//! Building the Go test programs under `tests/go/` with the Go toolchains installed on
//! this machine.
//!
//! Toolchains: Go 1.19 at `/usr/lib/go-1.19/bin/go` and every `$TRACER_GO_DIR/<version>/go/bin/go`
//! (`TRACER_GO_DIR` defaults to `$HOME/.cache/go-tracer/go`). Versions come from the
//! toolchain's `VERSION` file (falling back to `go env GOVERSION`).
//!
//! Outputs: `<workspace>/target/go-programs/<program>-go<version>-<stripped|debug>`, built with
//! `CGO_ENABLED=0 GOTOOLCHAIN=local GOPROXY=off -buildvcs=false`, a per-version
//! `GOCACHE=$TRACER_GO_DIR/gocache/<version>`, and `-ldflags=-s -w` when stripped
//! (no `-trimpath`, like the real engine). A build is skipped when the output is newer
//! than every file under the program directory; builds go to a temporary name and are
//! renamed into place, so concurrent test threads and processes are safe.
//!
//! [`build_with`] takes [`BuildOptions`]: cgo (`CGO_ENABLED=1`, needs gcc), PIE
//! (`-buildmode=pie`), `-race` (implies cgo), external linking (`-ldflags=-linkmode=external`,
//! implies cgo), build tags, stripped or not. Each option that differs from the default build
//! adds a suffix to the output name (`-cgo`, `-pie`, `-race`, `-extlink`, then the tags), so
//! the default build keeps its old name and every configuration has its own file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
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
    build_with(
        program,
        tc,
        &BuildOptions {
            stripped,
            tags: tags.to_string(),
            ..BuildOptions::default()
        },
    )
}

/// How to build a Go program. The default is what [`build`] does: `CGO_ENABLED=0`, a
/// plain executable, internal linking, not stripped, no tags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct BuildOptions {
    /// `CGO_ENABLED=1` (gcc). Whether the program then calls C is up to its build tags.
    pub cgo: bool,
    /// `-buildmode=pie`.
    pub pie: bool,
    /// `-race` (implies cgo).
    pub race: bool,
    /// `-ldflags=-linkmode=external` (implies cgo: the host linker links runtime/cgo).
    pub external_link: bool,
    /// `-ldflags=-s -w`: no symbol table, no DWARF.
    pub stripped: bool,
    /// Go build tags, comma-separated ("" for none).
    pub tags: String,
    /// `-X github.com/dagger/dagger/engine.Version=...`, as the engine's release build
    /// stamps it ("" for none).
    pub engine_version: String,
}

impl BuildOptions {
    /// Whether the build runs with `CGO_ENABLED=1`.
    pub fn cgo_enabled(&self) -> bool {
        self.cgo || self.race || self.external_link
    }

    /// The same options, stripped or not.
    pub fn with_stripped(&self, stripped: bool) -> BuildOptions {
        BuildOptions {
            stripped,
            ..self.clone()
        }
    }

    /// The output name's suffix after `-<stripped|debug>`: "" for the default build.
    pub fn suffix(&self) -> String {
        let mut s = String::new();
        if self.cgo_enabled() {
            s.push_str("-cgo");
        }
        if self.pie {
            s.push_str("-pie");
        }
        if self.race {
            s.push_str("-race");
        }
        if self.external_link {
            s.push_str("-extlink");
        }
        if !self.tags.is_empty() {
            s.push('-');
            s.push_str(&self.tags.replace(',', "-"));
        }
        if !self.engine_version.is_empty() {
            s.push_str("-version-");
            s.push_str(&self.engine_version);
        }
        s
    }

    /// `-ldflags=...` for these options, if any.
    fn ldflags(&self) -> Option<String> {
        let mut flags = Vec::new();
        if self.stripped {
            flags.push("-s -w".to_string());
        }
        if self.external_link {
            flags.push("-linkmode=external".to_string());
        }
        if !self.engine_version.is_empty() {
            flags.push(format!(
                "-X github.com/dagger/dagger/engine.Version={}",
                self.engine_version
            ));
        }
        (!flags.is_empty()).then(|| format!("-ldflags={}", flags.join(" ")))
    }
}

/// Where `build_with(program, tc, opts)` puts its output.
pub fn output_path_with(program: &str, tc: &GoToolchain, opts: &BuildOptions) -> PathBuf {
    let mut out = output_path(program, tc, opts.stripped);
    let suffix = opts.suffix();
    if !suffix.is_empty() {
        out.set_file_name(format!(
            "{}{suffix}",
            out.file_name().unwrap().to_string_lossy()
        ));
    }
    out
}

/// One lock per output file: test threads that need the same build wait for the one
/// that builds it instead of building it again. (Other processes are safe through the
/// temporary name and rename, at worst building twice.)
fn output_lock(out: &Path) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    locks.entry(out.to_path_buf()).or_default().clone()
}

/// Builds `tests/go/<program>` with `tc` and `opts` and returns the binary's path. Skips
/// the build when the output exists and is newer than every file of the program.
pub fn build_with(program: &str, tc: &GoToolchain, opts: &BuildOptions) -> Result<PathBuf> {
    let src = program_dir(program);
    if !src.join("go.mod").is_file() {
        bail!("no Go program at {} (missing go.mod)", src.display());
    }
    let out = output_path_with(program, tc, opts);
    let package = main_package(&src)?;
    let lock = output_lock(&out);
    let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
    let src_mtime = newest_mtime(&src)?;
    if let Ok(m) = std::fs::metadata(&out).and_then(|m| m.modified())
        && m >= src_mtime
    {
        return Ok(out);
    }

    let dir = output_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Beside the toolchains, not in target/: compiled standard-library packages (a minute
    // or more per toolchain and build mode) survive a fresh clone on the same machine.
    // Go's build cache is keyed by content and safe to share between processes.
    let cache = tracer_go_dir().join("gocache").join(&tc.version);
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
    if let Some(ldflags) = opts.ldflags() {
        cmd.arg(ldflags);
    }
    if opts.pie {
        cmd.arg("-buildmode=pie");
    }
    if opts.race {
        cmd.arg("-race");
    }
    if !opts.tags.is_empty() {
        cmd.arg(format!("-tags={}", opts.tags));
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
        "CGO_CFLAGS",
        "CGO_LDFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let cgo = if opts.cgo_enabled() { "1" } else { "0" };
    cmd.env("CGO_ENABLED", cgo)
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
            "go build of {program} with go{} ({}) and {opts:?} failed: {}\n{}{}",
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

/// A function name as the ELF symbol table spells it: the linker writes Go's middle dot
/// (`type:.eq.T·7`) as a plain dot there.
pub fn symtab_name(name: &str) -> String {
    name.replace('·', ".")
}

/// The text symbols of an unstripped binary's ELF symbol table, as `go tool nm` of `tc`
/// prints them: name to addresses (sorted). Go names ABI0 functions `<name>.abi0` there
/// (the pclntab does not); the suffix is removed, so one name can have two addresses, as
/// in the pclntab. Names are keyed by [`symtab_name`].
pub fn text_symbols(tc: &GoToolchain, binary: &Path) -> Result<HashMap<String, Vec<u64>>> {
    let out = Command::new(&tc.go)
        .args(["tool", "nm"])
        .arg(binary)
        .env("GOTOOLCHAIN", "local")
        .env("GOENV", "off")
        .output()
        .with_context(|| format!("running {} tool nm", tc.go.display()))?;
    if !out.status.success() {
        bail!(
            "go tool nm {} failed: {}\n{}",
            binary.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut syms: HashMap<String, Vec<u64>> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "  49b720 T main.mxNative"; names may hold spaces ("go.shape.interface {}"),
        // undefined symbols have no address.
        let Some((addr, rest)) = line.trim_start().split_once(' ') else {
            continue;
        };
        let Some((kind, name)) = rest.split_once(' ') else {
            continue;
        };
        if !matches!(kind, "T" | "t") {
            continue;
        }
        let Ok(addr) = u64::from_str_radix(addr, 16) else {
            continue;
        };
        let name = name.strip_suffix(".abi0").unwrap_or(name);
        syms.entry(symtab_name(name)).or_default().push(addr);
    }
    if syms.is_empty() {
        bail!("go tool nm found no text symbol in {}", binary.display());
    }
    for addrs in syms.values_mut() {
        addrs.sort_unstable();
    }
    Ok(syms)
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

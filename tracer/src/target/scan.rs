//! Every Go process the tracer can see (`tracer ps`): process facts from /proc, binary facts
//! read once per executable file (device and inode), Dagger engines and their role.
use std::{
    collections::HashMap,
    fs::File,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    rc::Rc,
};

use procfs::ProcError;

use super::{EngineFlags, Process, Role, all_processes};
use crate::gobin::{GoBinError, GoBinary};

/// The module of the Dagger repository, engine and CLI alike.
const DAGGER_MODULE: &str = "github.com/dagger/dagger";
/// The CLI's main package; it shares the module but is not an engine.
const DAGGER_CLI_PACKAGE: &str = "github.com/dagger/dagger/cmd/dagger";

/// What one Go executable file is, independent of the processes running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryFacts {
    /// e.g. `go1.26.6`.
    pub go_version: String,
    /// `None` when the binary could not be analysed (see `problem`).
    pub stripped: Option<bool>,
    /// A Dagger engine: the `github.com/dagger/dagger` module (other than its CLI), or
    /// functions under it.
    pub dagger_engine: bool,
    /// The engine code line (`L1`..`L4`) when the function table shows one.
    pub code_line: Option<&'static str>,
    /// The engine version stamped at build time, if any.
    pub engine_version: Option<String>,
    /// Why the tracer cannot trace this Go binary (e.g. an unsupported Go version).
    pub problem: Option<String>,
}

/// A Go process and what it runs.
#[derive(Debug, Clone)]
pub struct GoProcess {
    pub process: Process,
    pub binary: Rc<BinaryFacts>,
    pub flags: EngineFlags,
    pub role: Option<Role>,
}

/// The result of a scan of /proc.
#[derive(Debug, Default)]
pub struct Scan {
    /// By pid.
    pub processes: Vec<GoProcess>,
    /// Processes whose executable could not be read (permissions).
    pub unreadable: usize,
    /// Distinct executable files examined (for the cost of a scan).
    pub files_read: usize,
}

/// What a file turned out to be.
#[derive(Clone)]
enum FileKind {
    Go(Rc<BinaryFacts>),
    NotGo,
    Unreadable,
}

/// Lists every Go process visible in /proc. Non-Go processes, kernel threads and processes
/// that exit meanwhile are skipped; processes whose executable cannot be read are counted.
pub fn scan_go_processes() -> Scan {
    let me = std::process::id();
    let mut scan = Scan::default();
    let mut files: HashMap<(u64, u64), FileKind> = HashMap::new();
    for dir in all_processes() {
        let pid = dir.pid() as u32;
        if pid == me {
            continue;
        }
        let exe_link = match dir.exe() {
            Ok(link) => link,
            // Kernel threads and zombies have no executable; gone is gone.
            Err(ProcError::NotFound(_)) => continue,
            Err(_) => {
                scan.unreadable += 1;
                continue;
            }
        };
        let exe = PathBuf::from(format!("/proc/{pid}/exe"));
        let meta = match std::fs::metadata(&exe) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => {
                scan.unreadable += 1;
                continue;
            }
        };
        let kind = files
            .entry((meta.dev(), meta.ino()))
            .or_insert_with(|| {
                scan.files_read += 1;
                examine(&exe)
            })
            .clone();
        let binary = match kind {
            FileKind::Go(facts) => facts,
            FileKind::NotGo => continue,
            FileKind::Unreadable => {
                scan.unreadable += 1;
                continue;
            }
        };
        let process = Process::describe(&dir, pid, exe_link);
        let flags = process.engine_flags();
        let role = flags.role(binary.dagger_engine);
        scan.processes.push(GoProcess {
            process,
            binary,
            flags,
            role,
        });
    }
    scan.processes.sort_by_key(|p| p.process.pid);
    scan
}

fn examine(exe: &Path) -> FileKind {
    match surely_not_go(exe) {
        Ok(true) => return FileKind::NotGo,
        Ok(false) => {}
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return FileKind::Unreadable,
        Err(_) => return FileKind::NotGo,
    }
    match GoBinary::open(exe) {
        Ok(binary) => FileKind::Go(Rc::new(binary_facts(&binary))),
        Err(GoBinError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            FileKind::Unreadable
        }
        Err(GoBinError::Io { .. } | GoBinError::NotElf { .. } | GoBinError::NotGo { .. }) => {
            FileKind::NotGo
        }
        // A Go binary the tracer cannot analyse is still a Go process: list it, and why.
        Err(e) => FileKind::Go(Rc::new(BinaryFacts {
            go_version: match &e {
                GoBinError::UnsupportedGoVersion { version, .. } => version.clone(),
                _ => String::new(),
            },
            stripped: None,
            dagger_engine: false,
            code_line: None,
            engine_version: None,
            problem: Some(e.to_string()),
        })),
    }
}

/// Reads only the ELF headers: a file with section headers but none of the Go toolchain's
/// own sections is not a Go binary, and is not read whole. Files that are not ELF at all are
/// not Go either; anything unusual is left to `GoBinary::open`.
fn surely_not_go(path: &Path) -> std::io::Result<bool> {
    use object::{Object, ObjectSection};
    let file = File::open(path)?;
    let data = object::ReadCache::new(file);
    let magic = object::ReadRef::read_bytes_at(&data, 0, 4).unwrap_or_default();
    if magic != b"\x7fELF" {
        return Ok(true);
    }
    let Ok(elf) = object::File::parse(&data) else {
        return Ok(false);
    };
    let mut sections = elf.sections().peekable();
    if sections.peek().is_none() {
        return Ok(false);
    }
    Ok(!sections.any(|s| {
        s.name()
            .is_ok_and(|n| n.contains("gopclntab") || n.contains(".go."))
    }))
}

fn binary_facts(binary: &GoBinary) -> BinaryFacts {
    let info = binary.build_info();
    let dagger_engine = if info.main.path == DAGGER_MODULE {
        info.path != DAGGER_CLI_PACKAGE
    } else {
        binary
            .functions()
            .iter()
            .any(|f| f.name.starts_with("github.com/dagger/dagger/"))
    };
    let code_line = dagger_engine.then(|| code_line(binary)).flatten();
    BinaryFacts {
        go_version: binary.go_version().to_string(),
        stripped: Some(binary.stripped()),
        dagger_engine,
        code_line,
        engine_version: dagger_engine
            .then(|| crate::profiles::engine_version(binary))
            .flatten(),
        problem: None,
    }
}

/// The code line the profile detection names, supported or not.
fn code_line(binary: &GoBinary) -> Option<&'static str> {
    use crate::profiles::{ProfileError, detect};
    match detect(binary) {
        Ok(profile) => Some(profile.id),
        Err(
            ProfileError::UnknownVariant { id, .. } | ProfileError::MissingFunctions { id, .. },
        ) => Some(id),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_go_files_are_recognised_from_their_headers() {
        // This test binary is Rust: ELF with section headers and no Go sections.
        let me = std::env::current_exe().unwrap();
        assert!(surely_not_go(&me).unwrap());
        // Not ELF at all.
        assert!(surely_not_go(Path::new("/proc/self/status")).unwrap());
        assert!(matches!(examine(&me), FileKind::NotGo));
    }
}

//! Engine code lines as data: which functions to probe, where, and what each probe
//! reads. Adding a code line is adding a profile; the kernel programs and the
//! attach code stay the same.
mod dagger_l2;

use tracer_common::{
    CAPTURE_BYTES, CaptureSpec, MAX_DEREFS, ProbeSpec, capture_base, capture_kind,
};

use crate::gobin::GoBinary;

/// The dagql package prefix every engine symbol starts with.
pub const DAGGER: &str = "github.com/dagger/dagger/";

/// What a probe means to the cache model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// `(*SessionCache).GetOrInitCall`: one cache call as the session sees it.
    SessionCall,
    /// The base cache's `GetOrInitCall`.
    CacheCall,
    /// `lookupCacheForID`: returns hit in CL.
    Lookup,
    /// The content-digest fallback line inside the lookup.
    ContentFallback,
    /// `wait` entry: which call site (join or fresh execution) and the ongoing call.
    Wait,
    /// The goroutine that runs `fn` for an ongoing call.
    Exec,
    /// `(*sharedResult).release` entry.
    Release,
    /// `(*SessionCache).ReleaseAndClose`: releases of a closing session.
    ReleaseAndClose,
    /// TTL metadata: `db.(*Queries).SelectCall` (read) and `SetExpiration` (write).
    DbRead,
    DbWrite,
    /// Sessions: created (with its id and SessionCache) and removed.
    InitSession,
    RemoveSession,
    /// filesync change cache.
    ChangeGetOrInit,
    ChangeWait,
    ChangeRelease,
    VerifyChange,
}

/// Where a probe goes in its function.
#[derive(Clone, Copy, Debug)]
pub enum At {
    /// Entry and every RET: a call with a duration and results.
    Call,
    /// Entry only, as a point event (no frame).
    EntryPoint,
    /// The first instruction of a source line, as a point event.
    Line {
        file_suffix: &'static str,
        line: u32,
    },
}

/// Placeholder offset for `g.parentGoid`, which moves between Go versions: the
/// planner substitutes the target's offset (or drops the capture before Go 1.21).
pub const G_PARENT_GOID: i32 = i32::MIN;

/// A named value to read at a hit.
#[derive(Clone, Copy, Debug)]
pub struct Cap {
    pub name: &'static str,
    pub spec: CaptureSpec,
}

const fn derefs(offsets: &[i32]) -> ([i32; MAX_DEREFS], u8) {
    let mut out = [0; MAX_DEREFS];
    let mut i = 0;
    while i < offsets.len() {
        out[i] = offsets[i];
        i += 1;
    }
    (out, offsets.len() as u8)
}

/// The word reached from register `reg` through `offsets` (`*(v + off)` each step).
pub const fn word(name: &'static str, reg: u8, offsets: &[i32]) -> Cap {
    let (derefs, nderefs) = derefs(offsets);
    Cap {
        name,
        spec: CaptureSpec {
            base: capture_base::REG,
            reg,
            kind: capture_kind::WORD,
            nderefs,
            string_offset: 0,
            derefs,
        },
    }
}

/// The Go string whose header is at `string_offset` past the value reached from `reg`.
pub const fn string(name: &'static str, reg: u8, offsets: &[i32], string_offset: i32) -> Cap {
    let (derefs, nderefs) = derefs(offsets);
    Cap {
        name,
        spec: CaptureSpec {
            base: capture_base::REG,
            reg,
            kind: capture_kind::STRING,
            nderefs,
            string_offset,
            derefs,
        },
    }
}

/// A Go string passed in registers `reg` (pointer) and `reg + 1` (length).
pub const fn string_regs(name: &'static str, reg: u8) -> Cap {
    Cap {
        name,
        spec: CaptureSpec {
            base: capture_base::REG,
            reg,
            kind: capture_kind::STRING_REGS,
            nderefs: 0,
            string_offset: 0,
            derefs: [0; MAX_DEREFS],
        },
    }
}

/// Like the constructor it wraps, but from the register as it was at the call's entry.
pub const fn at_entry(mut cap: Cap) -> Cap {
    cap.spec.base = capture_base::ENTRY_REG;
    cap
}

/// One probe of a profile.
#[derive(Clone, Copy, Debug)]
pub struct ProbeDef {
    pub role: Role,
    /// In light mode, only the entry of this call is probed (its RETs are the
    /// expensive part and the model can do without them).
    pub light_entry_only: bool,
    /// Full Go name without the `github.com/dagger/dagger/` prefix.
    pub func: &'static str,
    pub at: At,
    pub entry: &'static [Cap],
    pub ret: &'static [Cap],
}

impl ProbeDef {
    pub fn full_name(&self) -> String {
        format!("{DAGGER}{}", self.func)
    }

    fn spec(caps: &[Cap], save_entry: bool, use_entry: bool) -> Option<ProbeSpec> {
        if caps.is_empty() && !save_entry {
            return None;
        }
        let mut spec = ProbeSpec {
            save_entry: save_entry as u8,
            use_entry: use_entry as u8,
            ncaptures: caps.len() as u8,
            ..ProbeSpec::default()
        };
        for (slot, cap) in spec.captures.iter_mut().zip(caps) {
            *slot = cap.spec;
        }
        Some(spec)
    }

    /// The kernel-side spec of the entry (or point) probe, if it reads anything.
    /// `parent_goid` is the target's `g.parentGoid` offset, if it has one.
    pub fn entry_spec(&self, parent_goid: Option<u64>) -> Option<ProbeSpec> {
        let mut spec = Self::spec(self.entry, self.uses_entry_regs(), false)?;
        for c in spec.captures.iter_mut().take(spec.ncaptures as usize) {
            let n = c.nderefs as usize;
            if let Some(off) = c.derefs[..n].iter_mut().find(|o| **o == G_PARENT_GOID) {
                match parent_goid {
                    Some(p) => *off = p as i32,
                    // No such field: the capture reads nothing (ok stays 0).
                    None => c.base = 0,
                }
            }
        }
        Some(spec)
    }

    /// The kernel-side spec of the RET probes, if they read anything.
    pub fn ret_spec(&self) -> Option<ProbeSpec> {
        Self::spec(self.ret, false, self.uses_entry_regs())
    }

    fn uses_entry_regs(&self) -> bool {
        self.ret
            .iter()
            .any(|c| c.spec.base == capture_base::ENTRY_REG)
    }

    /// Index of a named capture of the entry (or point) probe.
    pub fn entry_cap(&self, name: &str) -> Option<usize> {
        self.entry.iter().position(|c| c.name == name)
    }

    pub fn ret_cap(&self, name: &str) -> Option<usize> {
        self.ret.iter().position(|c| c.name == name)
    }
}

/// A call site that tells two paths apart by where a function was called from.
#[derive(Clone, Copy, Debug)]
pub struct Site {
    pub file_suffix: &'static str,
    pub line: u32,
}

/// An engine code line.
pub struct Profile {
    pub id: &'static str,
    pub description: &'static str,
    pub probes: &'static [ProbeDef],
    /// `wait` called from here joins another call's execution...
    pub join_site: Site,
    /// ...and from here waits for the execution it just started.
    pub fresh_site: Site,
    pub change_join_site: Site,
    pub change_new_site: Site,
    /// Error text of a recursive call.
    pub recursive_error: &'static str,
    /// Fields the metrics read from the `cache` struct: map pointers whose first word
    /// is the element count (ongoing calls, result terms, ongoing/completed arbitrary).
    pub cache_entry_maps: &'static [u64],
    /// The engine's own locks, recognised by who waits on them.
    pub locks: &'static [LockName],
}

/// A lock of the engine, named by the method that waits on it: the first frame of a
/// waiting (or blocked) stack outside the runtime and the sync package.
#[derive(Clone, Copy, Debug)]
pub struct LockName {
    /// Function-name prefix after the module path, e.g. `dagql.(*cache).`.
    pub waiter_prefix: &'static str,
    /// A `sync.RWMutex` (the stack passes through `sync.(*RWMutex)` methods) or a Mutex.
    pub rwmutex: bool,
    pub name: &'static str,
}

impl Profile {
    /// The engine's name for the lock a stack waits on. `funcs` are the stack's function
    /// names, innermost first.
    pub fn lock_name<'a>(&self, funcs: impl IntoIterator<Item = &'a str>) -> Option<&'static str> {
        let mut rwmutex = false;
        for f in funcs {
            if f.starts_with("sync.(*RWMutex).") {
                rwmutex = true;
                continue;
            }
            if f.starts_with("runtime.")
                || f.starts_with("internal/sync.")
                || f.starts_with("sync.(*Mutex).")
                || f.starts_with("sync.runtime_")
            {
                continue;
            }
            // Another sync primitive (Once, WaitGroup, Cond) owns this lock, not the engine.
            let user = f.strip_prefix(DAGGER)?;
            return self
                .locks
                .iter()
                .find(|l| l.rwmutex == rwmutex && user.starts_with(l.waiter_prefix))
                .map(|l| l.name);
        }
        None
    }
}

/// A code line we can recognise, supported or not.
struct CodeLine {
    id: &'static str,
    description: &'static str,
    /// All of these present identifies the code line.
    markers: &'static [&'static str],
    profile: Option<&'static Profile>,
}

const CODE_LINES: &[CodeLine] = &[
    CodeLine {
        id: "L4",
        description: "main HEAD (getOrInitCallInner, CacheDecision)",
        markers: &["dagql.(*Cache).getOrInitCallInner"],
        profile: None,
    },
    CodeLine {
        id: "L3",
        description: "v0.21+ (aa719a10d5: exported *Cache, no SessionCache)",
        markers: &["dagql.(*Cache).getOrInitCall"],
        profile: None,
    },
    CodeLine {
        id: "L2",
        description: "egraph branch (5c5fa454fe: e-graph lookups, callsMu/egraphMu)",
        markers: &[
            "dagql.(*cache).GetOrInitCall",
            "dagql.(*cache).indexWaitResultInEgraphLocked",
        ],
        profile: Some(&dagger_l2::PROFILE),
    },
    CodeLine {
        id: "L1",
        description: "v0.20.x and older (single cache mutex, completedCalls maps)",
        markers: &[
            "dagql.(*SessionCache).GetOrInitCall",
            "dagql.(*cache).GetOrInitCall",
        ],
        profile: None,
    },
];

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(
        "{path} is not a Dagger engine: it has no dagql cache functions (hint: point at the dagger-engine process or binary)"
    )]
    NotAnEngine { path: String },
    #[error(
        "{path} is a Dagger engine of code line {id} ({description}), which `tracer cache` does not support yet; supported: L2"
    )]
    Unsupported {
        path: String,
        id: &'static str,
        description: &'static str,
    },
    #[error(
        "{path} looks like engine code line {id}, but functions the profile probes are missing: {missing} (hint: this build differs from the profile; check `tracer inspect {path} --match 'github.com/dagger/dagger/dagql.*'`)"
    )]
    MissingFunctions {
        path: String,
        id: &'static str,
        missing: String,
    },
    #[error(
        "{path}: source line {file}:{line} of {func} has no code (hint: this build differs from the profile)"
    )]
    MissingLine {
        path: String,
        func: String,
        file: &'static str,
        line: u32,
    },
}

/// Recognises the engine's code line and returns its profile, or says clearly
/// why not.
pub fn detect(binary: &GoBinary) -> Result<&'static Profile, ProfileError> {
    let path = binary.path().display().to_string();
    let has = |f: &str| {
        binary
            .functions()
            .iter()
            .any(|x| x.name.strip_prefix(DAGGER) == Some(f))
    };
    let line = CODE_LINES
        .iter()
        .find(|l| l.markers.iter().all(|m| has(m)))
        .ok_or(ProfileError::NotAnEngine { path: path.clone() })?;
    let profile = line.profile.ok_or(ProfileError::Unsupported {
        path: path.clone(),
        id: line.id,
        description: line.description,
    })?;
    let missing: Vec<&str> = profile
        .probes
        .iter()
        .map(|p| p.func)
        .filter(|f| !has(f))
        .collect();
    if !missing.is_empty() {
        return Err(ProfileError::MissingFunctions {
            path,
            id: profile.id,
            missing: missing.join(", "),
        });
    }
    Ok(profile)
}

/// The L2 profile, for unit tests of the models that consume it.
#[cfg(test)]
pub fn detect_for_tests() -> &'static Profile {
    &dagger_l2::PROFILE
}

/// The engine version stamped by the build (`-X ...engine.Version=...`), if any.
pub fn engine_version(binary: &GoBinary) -> Option<String> {
    let ldflags = binary.build_info().setting("-ldflags")?;
    let at = ldflags.find("engine.Version=")? + "engine.Version=".len();
    let rest = ldflags[at..].trim_start_matches(['\'', '"']);
    let end = rest.find(['\'', '"', ' ']).unwrap_or(rest.len());
    Some(rest[..end].to_string()).filter(|v| !v.is_empty())
}

const _: () = assert!(
    CAPTURE_BYTES >= 21,
    "call digests (xxh3: + 16 hex) must fit"
);

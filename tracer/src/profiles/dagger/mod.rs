//! The Dagger engine's dagql cache, one module per code line. Each line gives its
//! probes (names, registers, offsets, lines: its fact sheet made code) and a decoder
//! from raw probe hits to the typed events of `model::cache_events`.
//!
//! | line | releases | module |
//! |---|---|---|
//! | L1 | v0.20.x | `l1` |
//! | L2 | egraph branch 5c5fa454fe (no release) | `l2` |
//! | L3 | v0.21.x, v1.0.0-beta.1..3 | `l3` (decoder shared with L4: `ownership`) |
//! | L4 | v1.0.0-beta.4+, main | `l4` (variants beta.4-7, beta.8-10, post-beta.10) |
pub(crate) mod code;
mod filesync;
mod l1;
mod l2;
mod l3;
mod l4;
mod ownership;
mod session_cache;

use std::ops::Range;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use tracer_common::Capture;

use super::ProbeDef;
use crate::{
    gobin::GoBinary,
    model::{
        cache_events::{CacheEvent, CallError, Text},
        calls::{CallRecord, Captures, Tracked},
    },
    probes::plan::line_ranges,
};

/// The module path every engine symbol starts with.
pub const DAGGER: &str = "github.com/dagger/dagger/";

/// What a probe means to its line's decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// `lookupCacheForRequest` entry (`--explain`): field, self digest, input and
    /// argument counts.
    ExplainLookup,
    /// `lookupCacheForRequestLocked` entry (`--explain`): first input, argument names.
    ExplainLocked,
    /// `lookupMatchForCallLocked` entry (`--explain`): second input, argument values.
    ExplainMatch,
    /// L1/L2 `(*SessionCache).GetOrInitCall`: one cache call as the session sees it.
    SessionCall,
    /// L1/L2 base cache `(*cache).GetOrInitCall`.
    BaseCall,
    /// L3/L4 `(*Cache).GetOrInitCall`: one cache call.
    Call,
    /// L2 `lookupCacheForID`: returns hit in CL.
    Lookup,
    /// L2: the content-digest fallback line inside the lookup.
    ContentFallback,
    /// L3/L4 `appendDigestResultsLocked`: a digest index consulted (the first one of a
    /// lookup is the recipe digest).
    DigestIndex,
    /// L3/L4 `appendTermSetResultsLocked`: the structural (term) index consulted.
    TermIndex,
    /// L3/L4 the calls of `appendDigestResultsLocked` for a request's extra digests
    /// (after its recipe digest's lookup found nothing).
    ExtraDigest,
    /// L3/L4 `--light`: a cache call, from the call of `lookupCacheForRequest` in the
    /// call's body (session, recipe digest): its frame is the call's from there on.
    LightCall,
    /// L3/L4 `--light`: an uncached call, from the call of its `fn` (DoNotCache path).
    LightUncached,
    /// L3/L4 `--light`: a call refused as recursive (`return nil, ErrCacheRecursiveCall`).
    LightRecursive,
    /// L3/L4 `ensurePersistedHitValueLoaded`: a lookup hit, with its result.
    Hit,
    /// `wait`: a caller waits for an execution.
    Wait,
    /// L1/L2 `--light`: the call of `wait` where a caller joins an execution; a first
    /// caller's miss is then read from its execution's start (see `plan`).
    LightJoin,
    /// The goroutine that runs `fn` for an execution.
    Exec,
    /// L1/L2 `(*sharedResult).release`.
    Release,
    /// L1/L2 `(*SessionCache).ReleaseAndClose`.
    ReleaseAndClose,
    /// L1/L2 TTL metadata: `db.(*Queries).SelectCall` (read) and `SetExpiration` (write).
    DbRead,
    DbWrite,
    /// Sessions: created and removed by the server.
    InitSession,
    RemoveSession,
    /// L3/L4 `trackSessionResult`: a session tracks a result.
    TrackSession,
    /// L3/L4 ownership counts and collection.
    OwnershipUp,
    OwnershipDown,
    Collect,
    Persist,
    /// L3/L4 engine-internal contexts of ownership changes (publication).
    Publish,
    /// L3/L4 `ReleaseSession`.
    ReleaseSession,
    /// L3/L4 ID loading: `lookupCallRequest`, `lookupCacheForDigests`.
    LoadRequest,
    LoadDigests,
    /// The arbitrary-value cache.
    Arbitrary,
    ArbitraryWait,
    /// filesync change cache.
    ChangeGetOrInit,
    ChangeWait,
    ChangeRelease,
    VerifyChange,
}

/// What the records lose when an optional probe found by its code (`code::Site`) is not
/// in the build.
pub fn site_loss(role: Role) -> Option<&'static str> {
    match role {
        Role::ExtraDigest => Some("hit_route is null unless structural"),
        Role::LightUncached => Some("--light does not see uncached calls"),
        Role::LightRecursive => Some("--light does not see calls refused as recursive"),
        _ => None,
    }
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

/// The engine-wide cache's locks at their offsets in the cache object: named exactly by
/// address once the cache's address is known (engine-l3-l4.md §5, engine-internals.md §4).
#[derive(Clone, Copy, Debug)]
pub struct CacheLocks {
    /// Cache methods (after the module path) whose receiver, RAX at entry, is the cache;
    /// one hit of any of them tells its address.
    pub receiver_of: &'static [&'static str],
    pub locks: &'static [LockAt],
}

/// One lock field of the cache.
#[derive(Clone, Copy, Debug)]
pub struct LockAt {
    pub offset: u64,
    /// A `sync.RWMutex` (its writer mutex and both semaphores are its words) or a Mutex
    /// (state and semaphore).
    pub rwmutex: bool,
    pub name: &'static str,
}

impl LockAt {
    /// Bytes from the lock's address that hold its state and semaphores: Mutex state +0,
    /// sema +4; RWMutex w (+0, +4), writerSem +8, readerSem +12 (Go 1.19 to 1.27).
    fn words(&self) -> u64 {
        if self.rwmutex { 16 } else { 8 }
    }
}

/// Which rule named a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamedBy {
    /// Its address is a field of the cache whose address a probe read.
    Offset,
    /// The engine method that waits on it (the fallback).
    Waiter,
}

impl NamedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            NamedBy::Offset => "offset",
            NamedBy::Waiter => "waiter",
        }
    }
}

/// What a decoder is built from.
pub struct DecoderSetup<'a> {
    /// Where the call sites the decoder tells apart lie (the binary live, the
    /// recording's facts in replay).
    pub sites: &'a dyn LineSites,
    pub profile: &'static Profile,
    /// Role of each probe id (None: not attached).
    pub roles: Vec<Option<Role>>,
    pub light: bool,
    /// Where `GetOrInitCall`'s returns are read in its callers: the return addresses
    /// (link-time) of the calls whose return is probed. None: read at its RETs.
    pub call_return_sites: Option<&'a [u64]>,
}

/// Turns one line's raw probe hits into cache events.
pub trait Decoder: Send {
    fn decode(&mut self, t: &Tracked, out: &mut Vec<CacheEvent>) -> Result<(), LayoutError>;
    /// The engine's cache object, once a probe has seen it (for the entry-count metric).
    fn cache_pointer(&self) -> Option<u64>;
    /// Calls whose memoized recipe digest differed from their lookup's, of those checked
    /// (a rare difference is reported, a systematic one stops the trace).
    fn digest_mismatches(&self) -> (u64, u64) {
        (0, 0)
    }
    /// The target's load bias (non-zero for a PIE), to compare the return addresses it
    /// reads with the binary's call sites; set before the first hit is decoded.
    fn set_load_bias(&mut self, bias: u64);
    /// Cache calls made from a place whose return no probe reads.
    fn unread_returns(&self) -> u64 {
        0
    }
    /// Open frames it keeps facts of (for the summary's state sizes).
    fn open_frames(&self) -> usize;
}

/// An engine code line (and variant), as the tracer reads it.
pub struct Profile {
    pub id: &'static str,
    pub variant: &'static str,
    pub description: &'static str,
    pub probes: Vec<ProbeDef>,
    /// Fields `Size()` sums (`dagger_dagql_cache_entries`): offsets in the cache struct of
    /// map pointers whose first word is the element count.
    pub cache_entry_maps: EntryMaps,
    /// The engine's own locks, recognised by who waits on them (the fallback).
    pub locks: &'static [LockName],
    /// The cache's locks by offset, where the line's sheet gives them.
    pub cache_locks: Option<CacheLocks>,
    /// Whether every cached call's lookup result is seen (else a call that neither
    /// waited nor failed counts as a hit).
    pub sees_lookups: fn(light: bool) -> bool,
    pub decoder: fn(&DecoderSetup) -> anyhow::Result<Box<dyn Decoder>>,
}

/// Where `Size()`'s maps are in the cache struct.
#[derive(Clone, Copy)]
pub enum EntryMaps {
    Fixed(&'static [u64]),
    /// Builds that the functions cannot tell apart differ here: the engine version
    /// decides, and without one the metric is unknown.
    ByVersion(fn(Option<&str>) -> Option<&'static [u64]>),
}

impl Profile {
    /// The map offsets `Size()` sums for an engine of `version`, if they are known.
    pub fn entry_maps(&self, version: Option<&str>) -> Option<&'static [u64]> {
        match self.cache_entry_maps {
            EntryMaps::Fixed(m) => Some(m),
            EntryMaps::ByVersion(f) => f(version),
        }
    }

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

    /// The engine's name for the lock or semaphore at `addr`, and the rule that gave it:
    /// by its offset in the cache at `cache` when that is known and `addr` is one of the
    /// cache's lock words, else by the waiting stack `funcs` (innermost first).
    pub fn name_lock<'a>(
        &self,
        cache: Option<u64>,
        addr: u64,
        funcs: impl IntoIterator<Item = &'a str>,
    ) -> Option<(&'static str, NamedBy)> {
        if let Some(name) = self.lock_at(cache, addr) {
            return Some((name, NamedBy::Offset));
        }
        self.lock_name(funcs).map(|n| (n, NamedBy::Waiter))
    }

    /// Full names of the methods whose receiver is the cache (for a discovery probe).
    pub fn cache_receivers(&self) -> Vec<String> {
        self.cache_locks
            .iter()
            .flat_map(|c| c.receiver_of)
            .map(|f| format!("{DAGGER}{f}"))
            .collect()
    }

    /// The cache lock one of whose words is at `addr`.
    pub fn lock_at(&self, cache: Option<u64>, addr: u64) -> Option<&'static str> {
        let off = addr.checked_sub(cache?)?;
        self.cache_locks?
            .locks
            .iter()
            .find(|l| (l.offset..l.offset + l.words()).contains(&off) && off % 4 == 0)
            .map(|l| l.name)
    }

    /// "L4 (beta.8-10)".
    pub fn name(&self) -> String {
        format!("{} ({})", self.id, self.variant)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(
        "{path} is not a Dagger engine: it has no dagql cache functions (hint: point at the dagger-engine process or binary)"
    )]
    NotAnEngine { path: String },
    #[error(
        "{path} looks like a Dagger engine of code line {id}, but it matches no variant the tracer knows: {mismatch}; refusing to read it with guessed offsets (hint: check `tracer inspect {path} --match 'github.com/dagger/dagger/.*'` and report the engine version)"
    )]
    UnknownVariant {
        path: String,
        id: &'static str,
        mismatch: String,
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
        file: String,
        line: u32,
    },
    #[error(
        "{path}: cannot find {what} in {func}: {why} (hint: this build differs from the profile)"
    )]
    MissingSite {
        path: String,
        func: String,
        what: String,
        why: String,
    },
}

/// What was read does not fit the layout the profile assumes: the build differs.
#[derive(Debug, thiserror::Error)]
#[error(
    "the engine's memory does not match code line {line}: {what} read {value}; stopping rather than printing wrong data (hint: this engine build differs from the profile; report its version and `tracer inspect` output)"
)]
pub struct LayoutError {
    pub line: String,
    pub what: &'static str,
    pub value: String,
}

/// Picks a line's profile (its variant) given which functions the binary has, or
/// says what matched no known variant.
type SelectVariant = fn(&dyn Fn(&str) -> bool) -> Result<Profile, String>;

struct CodeLine {
    id: &'static str,
    /// All present: this line (or family; the line module then picks the variant).
    markers: &'static [&'static str],
    /// Any present: not this line.
    absent: &'static [&'static str],
    select: SelectVariant,
}

/// Tested in order: the first whose markers are all present (and none of its
/// `absent` ones) is the line (engine-l3-l4.md §8, engine-l1.md §5.1).
const CODE_LINES: &[CodeLine] = &[
    CodeLine {
        id: "L2",
        markers: &[
            "dagql.(*cache).GetOrInitCall",
            "dagql.(*cache).indexWaitResultInEgraphLocked",
        ],
        absent: &[],
        select: |_| Ok(l2::profile()),
    },
    CodeLine {
        id: "L1",
        markers: &[
            "dagql.(*SessionCache).GetOrInitCall",
            "dagql.(*resultList).add",
        ],
        absent: &[],
        select: |_| Ok(l1::profile()),
    },
    CodeLine {
        id: "L4",
        markers: &["dagql.(*Cache).getOrInitCallInner"],
        absent: &[],
        select: l4::select,
    },
    CodeLine {
        id: "L3",
        markers: &["dagql.(*Cache).getOrInitCall.func1"],
        absent: &["dagql.(*Cache).getOrInitCallInner", "engine/wcprof.BeginOp"],
        select: |_| Ok(l3::profile()),
    },
];

/// Recognises the engine's code line and variant and returns its profile, or says
/// clearly why not. Profiles live for the whole run.
pub fn detect(binary: &GoBinary) -> Result<&'static Profile, ProfileError> {
    let path = binary.path().display().to_string();
    let names: std::collections::HashSet<&str> = binary
        .functions()
        .iter()
        .filter_map(|f| f.name.strip_prefix(DAGGER))
        .collect();
    let has = |f: &str| names.contains(f);
    let line = CODE_LINES
        .iter()
        .find(|l| l.markers.iter().all(|m| has(m)) && !l.absent.iter().any(|m| has(m)))
        .ok_or(ProfileError::NotAnEngine { path: path.clone() })?;
    let profile = (line.select)(&has).map_err(|mismatch| ProfileError::UnknownVariant {
        path: path.clone(),
        id: line.id,
        mismatch,
    })?;
    let missing: Vec<&str> = profile
        .probes
        .iter()
        .filter(|p| !p.optional && !has(p.func))
        .map(|p| p.func)
        .collect();
    if !missing.is_empty() {
        return Err(ProfileError::MissingFunctions {
            path,
            id: profile.id,
            missing: missing.join(", "),
        });
    }
    Ok(Box::leak(Box::new(profile)))
}

/// The profile of a code line and variant by name (a recording's), without a binary.
pub fn by_name(id: &str, variant: &str) -> Option<&'static Profile> {
    let every = [l1::profile(), l2::profile(), l3::profile()]
        .into_iter()
        .chain(l4::variants());
    let found = every
        .into_iter()
        .find(|p| p.id == id && p.variant == variant)?;
    Some(Box::leak(Box::new(found)))
}

/// The L2 profile, for unit tests of the models that consume it.
#[cfg(test)]
pub fn l2_for_tests() -> &'static Profile {
    Box::leak(Box::new(l2::profile()))
}

/// The engine version stamped by the build (`-X ...engine.Version=...`), if any.
pub fn engine_version(binary: &GoBinary) -> Option<String> {
    let ldflags = binary.build_info().setting("-ldflags")?;
    let at = ldflags.find("engine.Version=")? + "engine.Version=".len();
    let rest = ldflags[at..].trim_start_matches(['\'', '"']);
    let end = rest.find(['\'', '"', ' ']).unwrap_or(rest.len());
    Some(rest[..end].to_string()).filter(|v| !v.is_empty())
}

/// The code line (and L4 variant) a release version carries, from the release table
/// (engine-l3-l4.md §1): used to confirm what the symbols say.
pub fn line_of_version(version: &str) -> Option<(&'static str, Option<&'static str>)> {
    let v = version.trim_start_matches('v');
    if v.starts_with("0.20.") {
        return Some(("L1", None));
    }
    if v.starts_with("0.21.") {
        return Some(("L3", None));
    }
    let beta: u32 = v
        .strip_prefix("1.0.0-beta.")?
        .split(['.', '-', '+'])
        .next()?
        .parse()
        .ok()?;
    Some(match beta {
        1..=3 => ("L3", None),
        4..=7 => ("L4", Some(l4::BETA4)),
        8..=10 => ("L4", Some(l4::BETA10)),
        _ => ("L4", Some(l4::HEAD)),
    })
}

// ---- helpers shared by the decoders ----

/// A captured string, if it was read and looks like text. Error messages are read
/// as "the first field of the error value"; for error types without a message field
/// (e.g. context.DeadlineExceeded) that is not text, and we report nothing.
fn text(c: Option<&Capture>) -> Option<String> {
    let bytes = c?.text()?;
    let s = std::str::from_utf8(bytes)
        .ok()
        .filter(|s| !s.is_empty() && !has_control(s))?;
    Some(if c?.truncated() {
        format!("{s}...")
    } else {
        s.to_string()
    })
}

/// Whether `s` holds a control character; ASCII (digests, session ids) byte by byte.
fn has_control(s: &str) -> bool {
    if s.is_ascii() {
        s.bytes().any(|b| b.is_ascii_control())
    } else {
        s.chars().any(char::is_control)
    }
}

fn cap(caps: &Captures, i: Option<usize>) -> Option<&Capture> {
    caps.as_ref()?.get(i?)
}

fn word(caps: &Captures, i: Option<usize>) -> Option<u64> {
    cap(caps, i).and_then(Capture::word)
}

/// Where a probe of `role` puts the capture `name` (at its RETs if `ret`), resolved once
/// when a decoder is built.
fn slot(p: &Profile, role: Role, name: &str, ret: bool) -> Option<usize> {
    let def = p.probes.iter().find(|d| d.role == role)?;
    if ret {
        def.ret_cap(name)
    } else {
        def.entry_cap(name)
    }
}

/// The message of an error whose dynamic value starts with its text (errors.New,
/// fmt.Errorf): the interface's data pointer is in `reg`.
const fn error_text(name: &'static str, reg: u8) -> super::Cap {
    super::string(name, reg, &[], 0)
}

/// The error a call returned (an error interface in RCX,RDI), if any, its text read
/// from capture `slot` of the RET.
fn call_error(rec: &CallRecord, slot: Option<usize>, recursive_text: &str) -> Option<CallError> {
    let ret = rec.ret?;
    (ret[2] != 0).then(|| {
        let text = text(cap(&rec.ret_captures, slot));
        let recursive = text.as_deref() == Some(recursive_text);
        CallError { text, recursive }
    })
}

/// Where the code of a source line lies inside a function: what decoders need of the
/// binary, so that a recording can carry it.
pub trait LineSites {
    /// The code ranges of `file:line` inside `func` (module-relative name): none if the
    /// build lacks the function, an error if it has it without that line.
    fn line_sites(&self, func: &str, file: &str, line: u32) -> anyhow::Result<Vec<Range<u64>>>;
}

impl LineSites for GoBinary {
    fn line_sites(&self, func: &str, file: &str, line: u32) -> anyhow::Result<Vec<Range<u64>>> {
        let name = format!("{DAGGER}{func}");
        let Some(f) = self.functions().iter().find(|f| f.name == name) else {
            return Ok(Vec::new());
        };
        let ranges = line_ranges(self, f, file, line);
        if ranges.is_empty() {
            return Err(ProfileError::MissingLine {
                path: self.path().display().to_string(),
                func: name,
                file: file.to_string(),
                line,
            }
            .into());
        }
        Ok(ranges)
    }
}

/// One answer of [`LineSites`], as a recording keeps it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SiteFact {
    pub func: String,
    pub file: String,
    pub line: u32,
    pub ranges: Vec<Range<u64>>,
}

/// Answers from another source, noted as they are given (what a recording keeps).
pub struct NotedSites<'a> {
    inner: &'a dyn LineSites,
    noted: std::cell::RefCell<Vec<SiteFact>>,
}

impl<'a> NotedSites<'a> {
    pub fn new(inner: &'a dyn LineSites) -> NotedSites<'a> {
        NotedSites {
            inner,
            noted: Default::default(),
        }
    }

    pub fn into_facts(self) -> Vec<SiteFact> {
        self.noted.into_inner()
    }
}

impl LineSites for NotedSites<'_> {
    fn line_sites(&self, func: &str, file: &str, line: u32) -> anyhow::Result<Vec<Range<u64>>> {
        let ranges = self.inner.line_sites(func, file, line)?;
        let mut noted = self.noted.borrow_mut();
        if !noted
            .iter()
            .any(|f| f.func == func && f.file == file && f.line == line)
        {
            noted.push(SiteFact {
                func: func.to_string(),
                file: file.to_string(),
                line,
                ranges: ranges.clone(),
            });
        }
        Ok(ranges)
    }
}

/// Answers from a recording's facts.
impl LineSites for Vec<SiteFact> {
    fn line_sites(&self, func: &str, file: &str, line: u32) -> anyhow::Result<Vec<Range<u64>>> {
        self.iter()
            .find(|f| f.func == func && f.file == file && f.line == line)
            .map(|f| f.ranges.clone())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the recording does not say where {func} ({file}:{line}) lies (hint: replay it with the tracer version that made it)"
                )
            })
    }
}

/// The code ranges of each `(line, site)` of `file` inside `func`, labelled.
fn call_sites<S: Copy>(
    source: &dyn LineSites,
    func: &str,
    file: &'static str,
    lines: [(u32, S); 2],
) -> anyhow::Result<Vec<(Range<u64>, S)>> {
    let mut sites = Vec::new();
    for (line, site) in lines {
        let ranges = source.line_sites(func, file, line)?;
        sites.extend(ranges.into_iter().map(|r| (r, site)));
    }
    Ok(sites)
}

/// Which call site (link-time addresses) a return address read in a process loaded at
/// `bias` lies in.
fn site_of<S: Copy>(
    sites: &[(Range<u64>, S)],
    bias: u64,
    return_address: Option<u64>,
) -> Option<S> {
    let pc = return_address?.checked_sub(bias)?.checked_sub(1)?;
    sites.iter().find(|(r, _)| r.contains(&pc)).map(|(_, s)| *s)
}

/// Plausibility of what was read: an engine digest is `<algorithm>:<hex>`.
fn check_digest(line: &str, what: &'static str, d: &str) -> Result<(), LayoutError> {
    // A digest longer than a capture arrives cut, marked "...": its prefix must still fit.
    let (body, cut) = match d.strip_suffix("...") {
        Some(prefix) => (prefix, true),
        None => (d, false),
    };
    let ok = body.split_once(':').is_some_and(|(alg, hex)| {
        !alg.is_empty()
            && alg.len() <= 16
            && alg
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && (cut || hex.len() >= 16)
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if ok {
        Ok(())
    } else {
        Err(LayoutError {
            line: line.to_string(),
            what,
            value: format!("{d:?}, which is not a digest"),
        })
    }
}

/// Digests, session ids and the engine's words already read, by their captured bytes.
/// Most cache calls repeat a digest and a session seen before: each is checked and copied
/// once, then shared. Bounded: a table that fills up is emptied and starts again. A kept
/// text is the captured bytes themselves, so it is its own key: a lookup reads the table
/// and the text, no copy of the bytes beside it.
#[derive(Default)]
struct Texts {
    digests: HashSet<Text>,
    sessions: HashSet<Text>,
    words: HashSet<Text>,
}

/// Texts each table of [`Texts`] keeps (about a megabyte at most).
const MAX_TEXTS: usize = 8192;

impl Texts {
    /// A captured digest: None when empty or unreadable, an error when it is not one.
    fn digest(
        &mut self,
        line: &str,
        what: &'static str,
        c: Option<&Capture>,
    ) -> Result<Option<Text>, LayoutError> {
        Self::shared(&mut self.digests, c, |c| match text(Some(c)) {
            Some(d) => check_digest(line, what, &d).map(|()| d),
            None => Err(LayoutError {
                line: line.to_string(),
                what,
                value: format!("{} bytes that are not text", c.nbytes),
            }),
        })
    }

    /// A session id, which must be printable text.
    fn session(&mut self, line: &str, c: Option<&Capture>) -> Result<Option<Text>, LayoutError> {
        Self::shared(&mut self.sessions, c, |c| {
            let printable = c
                .text()
                .is_some_and(|b| b.iter().all(|b| b.is_ascii_graphic()));
            match text(Some(c)) {
                Some(id) if printable => Ok(id),
                _ => Err(LayoutError {
                    line: line.to_string(),
                    what: "a session id",
                    value: format!("{} bytes that are not printable", c.nbytes),
                }),
            }
        })
    }

    /// One string of a captured pair (the engine's own words), if it is text.
    fn word(&mut self, bytes: &[u8]) -> Option<Text> {
        let s = std::str::from_utf8(bytes).ok()?;
        if let Some(t) = self.words.get(s) {
            return Some(t.clone());
        }
        if s.is_empty() || has_control(s) {
            return None;
        }
        let t = Text::from(s);
        Self::keep(&mut self.words, &t);
        Some(t)
    }

    fn keep(table: &mut HashSet<Text>, t: &Text) {
        if table.len() >= MAX_TEXTS {
            table.clear();
        }
        table.insert(t.clone());
    }

    /// The text of capture `c` from `table`, or read by `read` (and kept when whole: a
    /// cut one, marked "...", is read again each time).
    fn shared(
        table: &mut HashSet<Text>,
        c: Option<&Capture>,
        read: impl FnOnce(&Capture) -> Result<String, LayoutError>,
    ) -> Result<Option<Text>, LayoutError> {
        let Some(c) = c else { return Ok(None) };
        let Some(bytes) = c.text().filter(|b| !b.is_empty()) else {
            return Ok(None);
        };
        let whole = !c.truncated();
        // Bytes that are not UTF-8 were never kept: `read` says what they are.
        if whole
            && let Ok(s) = std::str::from_utf8(bytes)
            && let Some(t) = table.get(s)
        {
            return Ok(Some(t.clone()));
        }
        let t = Text::from(read(c)?);
        // Whole, the text is the bytes (`text` adds "..." only to a cut one).
        if whole {
            Self::keep(table, &t);
        }
        Ok(Some(t))
    }
}

/// A count the engine keeps must be in a sane range.
fn count_of(line: &str, what: &'static str, v: Option<u64>) -> Result<Option<i64>, LayoutError> {
    let Some(v) = v else { return Ok(None) };
    let v = v as i64;
    if (-(1 << 20)..(1 << 32)).contains(&v) {
        Ok(Some(v))
    } else {
        Err(LayoutError {
            line: line.to_string(),
            what,
            value: format!("{v}, out of range for a count"),
        })
    }
}

/// Parent links of open frames, for finding the frame of a kind around a hit.
struct Frames<K> {
    open: HashMap<u64, (K, Option<u64>)>,
}

impl<K> Default for Frames<K> {
    fn default() -> Self {
        Frames {
            open: HashMap::default(),
        }
    }
}

impl<K: Clone> Frames<K> {
    fn insert(&mut self, frame: u64, kind: K, parent: Option<u64>) {
        self.open.insert(frame, (kind, parent));
    }
    fn remove(&mut self, frame: u64) -> Option<K> {
        self.open.remove(&frame).map(|(k, _)| k)
    }
    fn get(&self, frame: u64) -> Option<&K> {
        self.open.get(&frame).map(|(k, _)| k)
    }
    fn get_mut(&mut self, frame: u64) -> Option<&mut K> {
        self.open.get_mut(&frame).map(|(k, _)| k)
    }
    fn len(&self) -> usize {
        self.open.len()
    }
    /// The innermost frame from `frame` outward (itself included) that `pick` accepts.
    fn find(&self, mut frame: Option<u64>, pick: impl Fn(&K) -> bool) -> Option<u64> {
        let mut steps = 0;
        while let Some(f) = frame {
            let (k, parent) = self.open.get(&f)?;
            if pick(k) {
                return Some(f);
            }
            frame = *parent;
            steps += 1;
            if steps > 4096 {
                return None;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_name_their_lines() {
        assert_eq!(line_of_version("v0.20.8"), Some(("L1", None)));
        assert_eq!(line_of_version("v0.21.8"), Some(("L3", None)));
        assert_eq!(line_of_version("v1.0.0-beta.2"), Some(("L3", None)));
        assert_eq!(
            line_of_version("v1.0.0-beta.7"),
            Some(("L4", Some(l4::BETA4)))
        );
        assert_eq!(
            line_of_version("v1.0.0-beta.10"),
            Some(("L4", Some(l4::BETA10)))
        );
        assert_eq!(
            line_of_version("v1.0.0-beta.11"),
            Some(("L4", Some(l4::HEAD)))
        );
        assert_eq!(line_of_version("dev"), None);
    }

    #[test]
    fn cache_locks_are_named_by_every_word_at_their_offset() {
        let p = l3::profile();
        let c = 0xc000_1000;
        let at = |off: u64| p.lock_at(Some(c), c + off);
        for (off, want) in [
            (0, Some("dagql cache callsMu")),
            (4, Some("dagql cache callsMu")),
            (8, Some("dagql cache sessionMu")),
            (12, Some("dagql cache sessionMu")),
            (16, Some("dagql cache egraphMu")),
            (24, Some("dagql cache egraphMu")),
            (28, Some("dagql cache egraphMu")),
            (2, None),
            (32, None),
        ] {
            assert_eq!(at(off), want, "c+{off}");
        }
        assert_eq!(p.lock_at(None, c), None);
        assert_eq!(p.lock_at(Some(c), c - 8), None);
        // Without the cache's address, the waiting method names it (the fallback).
        let stack = [
            "internal/sync.(*Mutex).lockSlow",
            "github.com/dagger/dagger/dagql.(*Cache).trackSessionResult",
        ];
        assert_eq!(
            p.name_lock(None, c + 8, stack),
            Some(("dagql cache sessionMu", NamedBy::Waiter))
        );
        assert_eq!(
            p.name_lock(Some(c), c, stack),
            Some(("dagql cache callsMu", NamedBy::Offset))
        );
    }

    #[test]
    fn digests_are_checked() {
        assert!(check_digest("L3", "d", "xxh3:0123456789abcdef").is_ok());
        assert!(check_digest("L3", "d", "sha256:0123456789abcdef0123").is_ok());
        assert!(check_digest("L3", "d", "\u{1}garbage").is_err());
        assert!(check_digest("L3", "d", "xxh3:short").is_err());
        assert!(check_digest("L3", "d", "sha256:0123456789abcdef...").is_ok());
        assert!(check_digest("L3", "d", "not a digest at all...").is_err());
    }

    /// A capture of `s`, whose full length was `len`.
    fn captured(s: &str, len: u64) -> Capture {
        let mut c = Capture {
            value: len,
            ok: 1,
            nbytes: s.len() as u32,
            bytes: [0; tracer_common::CAPTURE_BYTES],
        };
        c.bytes[..s.len()].copy_from_slice(s.as_bytes());
        c
    }

    #[test]
    fn texts_are_checked_once_and_shared() {
        let mut texts = Texts::default();
        let d = captured("xxh3:0123456789abcdef", 21);
        let a = texts.digest("L4", "d", Some(&d)).unwrap().unwrap();
        let b = texts.digest("L4", "d", Some(&d)).unwrap().unwrap();
        assert_eq!(&*a, "xxh3:0123456789abcdef");
        assert!(Text::ptr_eq(&a, &b), "the second read shares the first");
        // A cut digest is marked, and read again each time (its bytes are not all of it).
        let cut = captured("xxh3:0123", 100);
        let c1 = texts.digest("L4", "d", Some(&cut)).unwrap().unwrap();
        let c2 = texts.digest("L4", "d", Some(&cut)).unwrap().unwrap();
        assert_eq!(&*c1, "xxh3:0123...");
        assert!(!Text::ptr_eq(&c1, &c2));
        // What is not a digest is an error every time, never kept.
        let bad = captured("not a digest", 12);
        assert!(texts.digest("L4", "d", Some(&bad)).is_err());
        assert!(texts.digest("L4", "d", Some(&bad)).is_err());
        // Each kind keeps its own rule: a digest's bytes are no session id, and back.
        let s = captured("sess-1", 6);
        assert_eq!(
            texts.session("L4", Some(&s)).unwrap().as_deref(),
            Some("sess-1")
        );
        assert!(texts.digest("L4", "d", Some(&s)).is_err());
        assert!(texts.session("L4", Some(&captured("sess 1", 6))).is_err());
        // Unread or empty: unknown.
        let unread = Capture { ok: 0, ..d };
        assert_eq!(texts.digest("L4", "d", Some(&unread)).unwrap(), None);
        assert_eq!(texts.session("L4", Some(&captured("", 0))).unwrap(), None);
        assert_eq!(texts.word(b"executed").as_deref(), Some("executed"));
        assert_eq!(texts.word(b"\x01"), None);
        // Bounded: the table never holds more than its bound.
        for i in 0..MAX_TEXTS + 10 {
            let d = captured(&format!("xxh3:{i:016x}"), 21);
            assert!(texts.digest("L4", "d", Some(&d)).unwrap().is_some());
            assert!(texts.digests.len() <= MAX_TEXTS);
        }
    }
}

/// Which cache calls return where no probe reads them: when the returns are read in the
/// callers, a call entered from any other return address (through an interface, a
/// function value) is one.
#[derive(Default)]
pub struct ReturnCheck {
    /// Return addresses (link-time) whose calls' returns are probed; None: returns are
    /// read at the callee's RETs, which see every call.
    sites: Option<rustc_hash::FxHashSet<u64>>,
    unread: u64,
}

impl ReturnCheck {
    pub fn new(sites: Option<&[u64]>) -> ReturnCheck {
        ReturnCheck {
            sites: sites.map(|s| s.iter().copied().collect()),
            unread: 0,
        }
    }

    /// Whether the call entered with `return_address` on the stack (a process address;
    /// `bias` the load bias) returns unread; counted.
    pub fn unread(&mut self, return_address: Option<u64>, bias: u64) -> bool {
        let (Some(sites), Some(at)) = (&self.sites, return_address) else {
            return false;
        };
        let unread = !sites.contains(&at.wrapping_sub(bias));
        self.unread += unread as u64;
        unread
    }

    /// Calls counted as returning unread.
    pub fn count(&self) -> u64 {
        self.unread
    }
}

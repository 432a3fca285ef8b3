//! Engine code lines as data: which functions to probe, where, what each probe
//! reads, and a decoder that turns the raw hits into typed cache events. Adding a
//! code line is adding a profile under `dagger/`; the kernel programs, the attach
//! code and the cache model stay the same.
pub mod dagger;

use tracer_common::{
    CAPTURE_BYTES, CaptureSpec, MAX_DEREFS, ProbeKind, ProbeSpec, capture_base, capture_kind,
};

use crate::{
    gobin::{EntryKind, GoBinary},
    probes::plan::{AttachPoint, PlanSet},
};
pub use dagger::{
    CacheLocks, DAGGER, Decoder, DecoderSetup, LayoutError, LineSites, LockAt, LockName, NamedBy,
    NotedSites, Profile, ProfileError, Role, SiteFact, detect, engine_version,
};

/// Where a probe goes in its function.
#[derive(Clone, Copy, Debug)]
pub enum At {
    /// Entry and every RET: a call with a duration and results.
    Call,
    /// Entry only, as a call frame whose end is proven by the goroutine's later events
    /// (it gives the probes inside it a context at the cost of one emulated trap).
    Frame,
    /// Entry only, as a point event (no frame).
    EntryPoint,
    /// The first instruction of a source line, as a point event.
    Line {
        file_suffix: &'static str,
        line: u32,
    },
    /// Entry only, as a point event, when the kernel emulates the entry's instruction;
    /// else (a frameless leaf, whose first instruction is single-stepped) at every direct
    /// call of the function from the functions of this package (module-relative prefix,
    /// e.g. `dagql.`), with the same registers.
    EntryOrCallers { package: &'static str },
    /// Places in the function's code found by what they are (`dagger::code`): as point
    /// events, or with `frame` as entries of a call frame whose depth is the function
    /// body's (its end proven like an entry-only frame's, by the goroutine's next event
    /// at the same depth or shallower; calls the function makes from there nest in it).
    Site {
        site: dagger::code::Site,
        frame: bool,
    },
}

/// How `tracer cache` runs: what it attaches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mode {
    /// `--light`: no RET probes where the entry suffices, some probes dropped.
    pub light: bool,
    /// `--explain`: also read each call's identity parts at its lookup.
    pub explain: bool,
    /// `--returns-at-ret`: returns at RETs, never in the callers.
    pub returns_at_ret: bool,
}

/// What `--light` keeps of a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Light {
    /// Everything.
    Keep,
    /// The entry only (its RETs are the expensive part).
    EntryOnly,
    /// Nothing.
    Drop,
    /// Only in light mode (what it reads the default mode reads elsewhere).
    Only,
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

/// Two adjacent Go strings ([`capture_kind::STRING_PAIR`]) whose headers start at
/// `string_offset` past the value reached from `reg`.
pub const fn string_pair(name: &'static str, reg: u8, offsets: &[i32], string_offset: i32) -> Cap {
    let mut cap = string(name, reg, offsets, string_offset);
    cap.spec.kind = capture_kind::STRING_PAIR;
    cap
}

/// Two adjacent words at `offset` past the value reached from `reg`
/// ([`capture_kind::WORD_PAIR`]).
pub const fn word_pair(name: &'static str, reg: u8, offsets: &[i32], offset: i32) -> Cap {
    let mut cap = string(name, reg, offsets, offset);
    cap.spec.kind = capture_kind::WORD_PAIR;
    cap
}

/// A [`string`] withheld when the byte at `guard` past the value before the last step
/// is set (an argument's `IsSensitive`): a secret never leaves the target.
pub const fn guarded_string(
    name: &'static str,
    reg: u8,
    offsets: &[i32],
    guard: i32,
    string_offset: i32,
) -> Cap {
    assert!(!offsets.is_empty() && offsets.len() < MAX_DEREFS);
    let mut cap = string(name, reg, offsets, string_offset);
    cap.spec.kind = capture_kind::GUARDED_STRING;
    cap.spec.derefs[MAX_DEREFS - 1] = guard;
    cap
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
#[derive(Clone, Debug)]
pub struct ProbeDef {
    pub role: Role,
    pub light: Light,
    /// Full Go name without the `github.com/dagger/dagger/` prefix.
    pub func: &'static str,
    pub at: At,
    pub entry: Vec<Cap>,
    pub ret: Vec<Cap>,
    /// A build may lack it (e.g. inlined): the feature it serves is then off, and
    /// the first line says so.
    pub optional: bool,
    /// Attached only with `--explain` (it reads a call's identity parts).
    pub explain_only: bool,
    /// For an [`At::Call`]: read its returns in its callers (emulated jumps) rather than
    /// at its `RET`s (single-stepped) when every call site allows it; the registers
    /// (capture numbers) its results are in, which must survive until there.
    pub results_in: Option<&'static [u8]>,
    /// How many of the entry captures (the first ones) `--light` and the default mode
    /// read: the rest serve what that mode does not report, and each costs a read per hit.
    pub light_entry: Option<usize>,
    pub default_entry: Option<usize>,
}

impl ProbeDef {
    pub fn new(role: Role, func: &'static str, at: At) -> ProbeDef {
        ProbeDef {
            role,
            light: Light::Keep,
            func,
            at,
            entry: Vec::new(),
            ret: Vec::new(),
            optional: false,
            explain_only: false,
            results_in: None,
            light_entry: None,
            default_entry: None,
        }
    }

    /// Read returns in the callers where every call site allows it (see `results_in`).
    pub fn returns_at_callers(mut self, results_in: &'static [u8]) -> ProbeDef {
        self.results_in = Some(results_in);
        self
    }

    /// The registers that must hold their value from the callee's `RET` to where its
    /// return is read: the results, and any register a RET capture starts from.
    fn registers_read_at_return(&self) -> Vec<iced_x86::Register> {
        let mut regs: Vec<u8> = self.results_in.unwrap_or_default().to_vec();
        for c in self.ret.iter().filter(|c| c.spec.base == capture_base::REG) {
            regs.push(c.spec.reg);
            if c.spec.kind == capture_kind::STRING_REGS {
                regs.push(c.spec.reg + 1);
            }
        }
        regs.into_iter().filter_map(abi_register).collect()
    }

    pub fn entry(mut self, caps: &[Cap]) -> ProbeDef {
        self.entry = caps.to_vec();
        self
    }

    pub fn ret(mut self, caps: &[Cap]) -> ProbeDef {
        self.ret = caps.to_vec();
        self
    }

    pub fn light(mut self, light: Light) -> ProbeDef {
        self.light = light;
        self
    }

    /// `--light` reads only the first `n` entry captures.
    pub fn light_entry(mut self, n: usize) -> ProbeDef {
        self.light_entry = Some(n);
        self
    }

    /// The default mode reads only the first `n` entry captures (the rest serve `--light`).
    pub fn default_entry(mut self, n: usize) -> ProbeDef {
        self.default_entry = Some(n);
        self
    }

    pub fn optional(mut self) -> ProbeDef {
        self.optional = true;
        self
    }

    /// Only with `--explain`; optional, as explaining is an extra.
    pub fn explain_only(mut self) -> ProbeDef {
        self.explain_only = true;
        self.optional = true;
        self
    }

    /// Whether a run in this mode attaches it.
    pub fn wanted(&self, mode: Mode) -> bool {
        let light = match self.light {
            Light::Drop => !mode.light,
            Light::Only => mode.light,
            Light::Keep | Light::EntryOnly => true,
        };
        light && (mode.explain || !self.explain_only)
    }

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
    pub fn entry_spec(&self, parent_goid: Option<u64>, light: bool) -> Option<ProbeSpec> {
        let read = if light {
            self.light_entry
        } else {
            self.default_entry
        };
        let caps = &self.entry[..read.unwrap_or(usize::MAX).min(self.entry.len())];
        let mut spec = Self::spec(caps, self.uses_entry_regs(), false)?;
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
        Self::spec(&self.ret, false, self.uses_entry_regs())
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

/// A capture register number as the disassembler names it (the ABI integer registers,
/// RSP, RDX, R14 and the rest, in `tracer_common::REG_*` order).
fn abi_register(reg: u8) -> Option<iced_x86::Register> {
    use iced_x86::Register::*;
    const ORDER: [iced_x86::Register; 16] = [
        RAX, RBX, RCX, RDI, RSI, R8, R9, R10, R11, RSP, RDX, R14, RBP, R12, R13, R15,
    ];
    ORDER.get(reg as usize).copied()
}

/// The probes of `profile` as attached: probe id = index into the profile's probes.
/// Returns the plan and, per probe id, the role (None: not attached, e.g. an optional
/// function this build lacks, or dropped by `--light`).
pub fn plan(
    binary: &GoBinary,
    profile: &Profile,
    mode: Mode,
) -> anyhow::Result<(PlanSet, Vec<Option<Role>>)> {
    let light = mode.light;
    let mut plan = PlanSet::default();
    let mut roles = Vec::new();
    let parent_goid = binary.g_offsets().0.parent_goid;
    let leaders_from_exec = light && leaders_from_exec(binary, profile, parent_goid);
    if light && !leaders_from_exec && profile.probes.iter().any(|d| d.role == Role::LightJoin) {
        plan.notes.push(
            "--light probes `wait` on this build (it lacks g.parentGoid, Go 1.21+, or the \
             join's call of `wait`): one trap more per miss"
                .into(),
        );
    }
    let mut at_callers = Vec::new();
    for (id, def) in profile.probes.iter().enumerate() {
        let id = id as u32;
        let name = def.full_name();
        let keep = def.wanted(mode)
            && match def.role {
                Role::Wait if light => !leaders_from_exec,
                Role::LightJoin => leaders_from_exec,
                _ => true,
            };
        let f = binary.functions().iter().find(|f| f.name == name);
        let Some(f) = f.filter(|_| keep) else {
            if keep
                && matches!(def.at, At::Site { .. })
                && let Some(loss) = dagger::site_loss(def.role)
            {
                eprintln!("tracer: warning: {name} is not in this build (inlined?): {loss}");
            }
            if keep && !def.optional {
                return Err(ProfileError::MissingFunctions {
                    path: binary.path().display().to_string(),
                    id: profile.id,
                    missing: def.func.to_string(),
                }
                .into());
            }
            roles.push(None);
            continue;
        };
        match def.at {
            At::Call
                if def.results_in.is_some()
                    && !mode.returns_at_ret
                    && !(light && def.light == Light::EntryOnly) =>
            {
                // Placed once every other probe is, so a return site is known to be free.
                at_callers.push((id, def, f));
                plan.spec(id, ProbeKind::FuncEntry, def.entry_spec(parent_goid, light));
                plan.spec(id, ProbeKind::FuncReturn, def.ret_spec());
            }
            At::Call | At::Frame => {
                let entry_only =
                    matches!(def.at, At::Frame) || (light && def.light == Light::EntryOnly);
                plan.add_call(binary, f, id, entry_only)?;
                plan.spec(id, ProbeKind::FuncEntry, def.entry_spec(parent_goid, light));
                if !entry_only {
                    plan.spec(id, ProbeKind::FuncReturn, def.ret_spec());
                }
            }
            At::EntryPoint => {
                plan.add_entry_point(binary, f, id)?;
                plan.spec(id, ProbeKind::Point, def.entry_spec(parent_goid, light));
            }
            At::Line { file_suffix, line } => {
                if plan.add_line_points(binary, f, file_suffix, line, id)? == 0 {
                    return Err(ProfileError::MissingLine {
                        path: binary.path().display().to_string(),
                        func: name,
                        file: file_suffix.to_string(),
                        line,
                    }
                    .into());
                }
                plan.spec(id, ProbeKind::Point, def.entry_spec(parent_goid, light));
            }
            At::EntryOrCallers { package } => {
                let entry = binary.probe_plan(f)?;
                let emulated = entry.entry_kind != EntryKind::NoStackCheck
                    || entry.entry_insn.starts_with("push");
                if emulated {
                    plan.add_entry_point(binary, f, id)?;
                } else {
                    let prefix = format!("{}{package}", dagger::DAGGER);
                    let pcs = dagger::code::callers(binary, f, &prefix).map_err(|why| {
                        ProfileError::MissingSite {
                            path: binary.path().display().to_string(),
                            func: name.clone(),
                            what: format!("the calls of it from {prefix}*"),
                            why,
                        }
                    })?;
                    for pc in pcs {
                        plan.add_point(binary, pc, id)?;
                    }
                }
                plan.spec(id, ProbeKind::Point, def.entry_spec(parent_goid, light));
            }
            At::Site { site, frame } => {
                let pcs = match dagger::code::find(binary, f, site) {
                    Ok(pcs) => pcs,
                    Err(why) if def.optional => {
                        if let Some(loss) = dagger::site_loss(def.role) {
                            eprintln!(
                                "tracer: warning: cannot find {} in {name} ({why}): {loss}",
                                site.describe()
                            );
                        }
                        roles.push(None);
                        continue;
                    }
                    Err(why) => {
                        return Err(ProfileError::MissingSite {
                            path: binary.path().display().to_string(),
                            func: name,
                            what: site.describe(),
                            why,
                        }
                        .into());
                    }
                };
                let kind = if frame {
                    ProbeKind::FuncEntry
                } else {
                    ProbeKind::Point
                };
                for pc in pcs {
                    plan.points.push(site_point(binary, pc, kind, id)?);
                }
                plan.spec(id, kind, def.entry_spec(parent_goid, light));
            }
        }
        roles.push(Some(def.role));
    }
    // --light reads goroutine exits from the engine's goroutine table instead (one trap
    // less per execution goroutine; see cli/goroutine_exits.rs).
    if !light {
        plan.add_goexit(binary)?;
    }
    for (id, def, f) in at_callers {
        add_returns_at_callers(binary, &mut plan, id, def, f)?;
    }
    Ok((plan, roles))
}

/// `--light` on L1/L2: whether `wait` can go unprobed (one trap less per miss). A joiner
/// is then read at its call of `wait` (`Role::LightJoin`), and a first caller's miss from
/// its execution's start, whose goroutine names its creator in `g.parentGoid` (Go 1.21+).
/// Without that field or that call site, `wait` is probed as by default.
fn leaders_from_exec(binary: &GoBinary, profile: &Profile, parent_goid: Option<u64>) -> bool {
    let join_site_found = |def: &ProbeDef| {
        let At::Site { site, .. } = def.at else {
            return false;
        };
        let name = def.full_name();
        binary
            .functions()
            .iter()
            .find(|f| f.name == name)
            .is_some_and(|f| dagger::code::find(binary, f, site).is_ok())
    };
    parent_goid.is_some()
        && profile
            .probes
            .iter()
            .any(|def| def.role == Role::LightJoin && join_site_found(def))
}

/// Entry, and returns read at the callers' first jump after each call; where a call
/// site does not allow it, at the function's `RET`s, and a note says why.
fn add_returns_at_callers(
    binary: &GoBinary,
    plan: &mut PlanSet,
    id: u32,
    def: &ProbeDef,
    f: &crate::gobin::Function,
) -> anyhow::Result<()> {
    let sites = crate::gobin::return_sites(binary, f, &def.registers_read_at_return());
    let refused = match sites {
        Ok(sites) => match plan.add_call_returning_at(binary, f, id, &sites) {
            Ok(()) => return Ok(()),
            Err(e) => e.to_string(),
        },
        Err(why) => why,
    };
    plan.notes.push(format!(
        "the returns of {} are read at its RET instructions (about 8 us more per call here than at its callers): {refused}",
        f.name
    ));
    plan.add_call(binary, f, id, false)
}

/// An attach point of `kind` at an instruction inside a function (not its entry).
fn site_point(
    binary: &GoBinary,
    vaddr: u64,
    kind: ProbeKind,
    probe_id: u32,
) -> anyhow::Result<AttachPoint> {
    let f = binary
        .function_at(vaddr)
        .ok_or_else(|| anyhow::anyhow!("address {vaddr:#x} is in no function of the binary"))?;
    let expect = binary
        .probe_site(f, vaddr)
        .map_err(|reason| anyhow::anyhow!("cannot probe {} at {vaddr:#x}: {reason}", f.name))?
        .to_vec();
    let file_offset = binary.file_offset(vaddr).ok_or_else(|| {
        anyhow::anyhow!("address {vaddr:#x} is not in a loaded segment of the binary")
    })?;
    Ok(AttachPoint {
        file_offset,
        kind,
        probe_id,
        at_stack_check: false,
        expect,
        depth_adjust: 0,
    })
}

const _: () = assert!(
    CAPTURE_BYTES >= 21,
    "call digests (xxh3: + 16 hex) must fit"
);

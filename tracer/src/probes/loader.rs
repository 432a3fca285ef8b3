use std::{num::NonZeroU32, path::Path};

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    programs::{
        UProbe,
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope},
    },
};
use tracer_common::{LOST_EVENTS_SLOT, ProbeKind, ProbeSpec, cookie, names, spec_key};

/// The eBPF object built by tracer/build.rs.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer"));

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "this tracer was built without its eBPF object (AYA_BUILD_SKIP was set); rebuild it with `cargo build --release`"
    )]
    NoObject,
    #[error(
        "not allowed to load eBPF programs: {0} (hint: run as root, or grant CAP_BPF and CAP_PERFMON)"
    )]
    NotPermitted(String),
    #[error("could not load the eBPF programs: {0}")]
    Load(String),
    #[error("could not attach a uprobe at file offset {offset:#x} of {path}: {reason}")]
    Attach {
        path: String,
        offset: u64,
        reason: String,
    },
}

pub struct LoadOptions {
    /// Offset of `goid` in `runtime.g` for the target's Go version.
    pub goid_offset: u64,
    /// Host pid of the one process to trace (0 = any process mapping the file).
    pub target_tgid: u32,
    /// Ring buffer size in bytes (power of two, page multiple).
    pub ring_bytes: u32,
}

/// The loaded programs and every uprobe attached so far. Dropping it detaches all.
pub struct AttachedProbes {
    ebpf: Ebpf,
    attached: usize,
}

fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn is_permission_error(text: &str) -> bool {
    text.contains("Operation not permitted") || text.contains("Permission denied")
}

impl AttachedProbes {
    pub fn load(options: &LoadOptions) -> Result<AttachedProbes, ProbeError> {
        if EBPF_OBJECT.is_empty() {
            return Err(ProbeError::NoObject);
        }
        raise_fd_limit();
        let mut ebpf = EbpfLoader::new()
            .override_global(names::GOID_OFFSET_GLOBAL, &options.goid_offset, true)
            .override_global(names::TARGET_TGID_GLOBAL, &options.target_tgid, true)
            .map_max_entries(names::EVENTS_MAP, options.ring_bytes)
            .load(EBPF_OBJECT)
            .map_err(|e| classify(describe(&e)))?;
        for name in [names::ENTRY_PROGRAM, names::RETURN_PROGRAM] {
            let program: &mut UProbe = ebpf
                .program_mut(name)
                .ok_or_else(|| ProbeError::Load(format!("program {name} missing from the object")))?
                .try_into()
                .map_err(|e| ProbeError::Load(describe(&e)))?;
            program.load().map_err(|e| classify(describe(&e)))?;
        }
        Ok(AttachedProbes { ebpf, attached: 0 })
    }

    /// Stores what probe `probe_id` of `kind` reads at each hit (attach it with `has_spec`).
    pub fn set_spec(
        &mut self,
        probe_id: u32,
        kind: ProbeKind,
        spec: &ProbeSpec,
    ) -> Result<(), ProbeError> {
        let map = self
            .ebpf
            .map_mut(names::PROBE_SPECS_MAP)
            .ok_or_else(|| ProbeError::Load("probe spec map missing".into()))?;
        let mut specs: HashMap<_, u32, ProbeSpec> =
            HashMap::try_from(map).map_err(|e| ProbeError::Load(describe(&e)))?;
        specs
            .insert(spec_key(probe_id, kind as u32), *spec, 0)
            .map_err(|e| ProbeError::Load(describe(&e)))
    }

    /// Attaches the program for `kind` at `file_offset` in `binary`, limited to
    /// process `pid` when given. The cookie carries `probe_id`, `kind` and whether
    /// the probe has a spec.
    pub fn attach(
        &mut self,
        binary: &Path,
        file_offset: u64,
        kind: ProbeKind,
        probe_id: u32,
        has_spec: bool,
        pid: Option<NonZeroU32>,
    ) -> Result<(), ProbeError> {
        let program_name = match kind {
            ProbeKind::FuncEntry | ProbeKind::GoroutineExit | ProbeKind::Point => {
                names::ENTRY_PROGRAM
            }
            ProbeKind::FuncReturn => names::RETURN_PROGRAM,
        };
        let program: &mut UProbe = self
            .ebpf
            .program_mut(program_name)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| ProbeError::Load(format!("program {program_name} missing")))?;
        let scope = pid.map_or(UProbeScope::AllProcesses, UProbeScope::OneProcess);
        let point = UProbeAttachPoint {
            location: UProbeAttachLocation::AbsoluteOffset(file_offset),
            cookie: Some(cookie(probe_id, kind, has_spec)),
        };
        program.attach(point, binary, scope).map_err(|e| {
            let reason = describe(&e);
            if is_permission_error(&reason) {
                ProbeError::NotPermitted(reason)
            } else {
                ProbeError::Attach {
                    path: binary.display().to_string(),
                    offset: file_offset,
                    reason,
                }
            }
        })?;
        self.attached += 1;
        Ok(())
    }

    pub fn attached(&self) -> usize {
        self.attached
    }

    /// Takes the ring buffer for reading; call once.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, ProbeError> {
        let map = self
            .ebpf
            .take_map(names::EVENTS_MAP)
            .ok_or_else(|| ProbeError::Load("ring buffer map missing".into()))?;
        RingBuf::try_from(map).map_err(|e| ProbeError::Load(describe(&e)))
    }

    /// Events the kernel side could not queue because the ring buffer was full.
    pub fn lost_events(&self) -> Result<u64, ProbeError> {
        let map = self
            .ebpf
            .map(names::LOST_EVENTS_MAP)
            .ok_or_else(|| ProbeError::Load("lost-events map missing".into()))?;
        let counts: PerCpuArray<_, u64> =
            PerCpuArray::try_from(map).map_err(|e| ProbeError::Load(describe(&e)))?;
        let per_cpu = counts
            .get(&LOST_EVENTS_SLOT, 0)
            .map_err(|e| ProbeError::Load(describe(&e)))?;
        Ok(per_cpu.iter().sum())
    }
}

fn classify(text: String) -> ProbeError {
    if is_permission_error(&text) {
        ProbeError::NotPermitted(text)
    } else {
        ProbeError::Load(text)
    }
}

/// Each uprobe holds a perf event fd; a broad match can need thousands.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointer to an rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

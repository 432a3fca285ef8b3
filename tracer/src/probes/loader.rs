use std::{
    path::Path,
    time::{Duration, Instant},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray, RingBuf},
};
use tracer_common::{MAX_SPECS, ProbeSpec, counter, names};

use super::{
    ProbeError,
    error::{classify, not_permitted},
    multi::{MultiLink, MultiProgram},
};

/// The eBPF object built by tracer/build.rs.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer"));

pub struct LoadOptions {
    /// Offset of `goid` in `runtime.g` for the target's Go version.
    pub goid_offset: u64,
    /// Ring buffer size in bytes (power of two, page multiple).
    pub ring_bytes: u32,
}

/// One offset to attach at, and the cookie its hits carry.
#[derive(Clone, Copy, Debug)]
pub struct Offset {
    pub file_offset: u64,
    pub cookie: u64,
}

/// An offset the kernel refused, and its error.
#[derive(Clone, Debug)]
pub struct Refused {
    pub offset: Offset,
    pub reason: String,
}

/// The loaded program and every link attached so far. Dropping it detaches all.
pub struct AttachedProbes {
    ebpf: Ebpf,
    program: MultiProgram,
    links: Vec<MultiLink>,
    /// Links of discovery probes, which are wanted only until their first hit: the
    /// caller takes them ([`AttachedProbes::take_discovery`]) and drops them then.
    discovery: Vec<MultiLink>,
    /// Time spent in the kernel attaching, over every batch.
    pub attach_time: Duration,
    /// Probes left out because the kernel refused them: (probe id, file offset, reason).
    pub refused: Vec<(u32, u64, String)>,
}

impl AttachedProbes {
    pub fn load(options: &LoadOptions) -> Result<AttachedProbes, ProbeError> {
        if EBPF_OBJECT.is_empty() {
            return Err(ProbeError::NoObject);
        }
        super::features::check()?;
        // aya creates the maps (and loads BTF) here; the programs are loaded below.
        let ebpf = EbpfLoader::new()
            .override_global(names::GOID_OFFSET_GLOBAL, &options.goid_offset, true)
            .map_max_entries(names::EVENTS_MAP, options.ring_bytes)
            .load(EBPF_OBJECT)
            .map_err(|e| classify("create the eBPF maps", e))?;
        let program = MultiProgram::load(EBPF_OBJECT, &ebpf, names::PROBE_PROGRAM)?;
        Ok(AttachedProbes {
            ebpf,
            program,
            links: Vec::new(),
            discovery: Vec::new(),
            attach_time: Duration::ZERO,
            refused: Vec::new(),
        })
    }

    /// Stores in spec slot `slot` what the probes whose cookie names it read at each hit.
    pub fn set_spec(&mut self, slot: u32, spec: &ProbeSpec) -> Result<(), ProbeError> {
        if slot >= MAX_SPECS {
            return Err(ProbeError::TooManySpecs);
        }
        let name = names::PROBE_SPECS_MAP;
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or(ProbeError::MapMissing(name))?;
        let map_error = |source| ProbeError::Map { name, source };
        let mut specs: Array<_, ProbeSpec> = Array::try_from(map).map_err(map_error)?;
        let spec = ProbeSpec {
            present: 1,
            ..*spec
        };
        specs.set(slot, spec, 0).map_err(map_error)
    }

    /// Attaches `offsets` of `binary` in process `pid` (as this tracer's PID namespace
    /// numbers it) with one link. If the kernel refuses the batch, the batch is split
    /// until each refused offset is found; the others stay attached. Returns the refused.
    pub fn attach_batch(
        &mut self,
        binary: &Path,
        offsets: &[Offset],
        pid: u32,
    ) -> Result<Vec<Refused>, ProbeError> {
        let started = Instant::now();
        let mut refused = Vec::new();
        let result = self.attach_split(binary, offsets, pid, &mut refused);
        self.attach_time += started.elapsed();
        result.map(|()| refused)
    }

    fn attach_split(
        &mut self,
        binary: &Path,
        offsets: &[Offset],
        pid: u32,
        refused: &mut Vec<Refused>,
    ) -> Result<(), ProbeError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let files: Vec<u64> = offsets.iter().map(|o| o.file_offset).collect();
        let cookies: Vec<u64> = offsets.iter().map(|o| o.cookie).collect();
        match self.program.attach(binary, &files, &cookies, pid) {
            Ok(link) => {
                self.links.push(link);
                Ok(())
            }
            Err(e) => match e.raw_os_error() {
                Some(libc::EPERM | libc::EACCES) => Err(not_permitted("attach uprobes", e)),
                Some(libc::ESRCH) => Err(ProbeError::ProcessGone(pid)),
                Some(libc::ENOENT) if !binary.exists() => Err(ProbeError::FileGone {
                    path: binary.display().to_string(),
                    source: e,
                }),
                _ if offsets.len() == 1 => {
                    refused.push(Refused {
                        offset: offsets[0],
                        reason: explain_refusal(&e),
                    });
                    Ok(())
                }
                // One offset refused (EINVAL, ENOTSUPP), or more than one link takes
                // (E2BIG): halves, until every refused offset stands alone.
                _ => {
                    let (a, b) = offsets.split_at(offsets.len() / 2);
                    self.attach_split(binary, a, pid, refused)?;
                    self.attach_split(binary, b, pid, refused)
                }
            },
        }
    }

    /// Like [`attach_batch`](Self::attach_batch), into links of their own that the caller
    /// takes with [`take_discovery`](Self::take_discovery).
    pub fn attach_discovery(
        &mut self,
        binary: &Path,
        offsets: &[Offset],
        pid: u32,
    ) -> Result<Vec<Refused>, ProbeError> {
        let before = self.links.len();
        let refused = self.attach_batch(binary, offsets, pid)?;
        let added = self.links.split_off(before);
        self.discovery.extend(added);
        Ok(refused)
    }

    /// The discovery links: dropping them detaches those probes.
    pub fn take_discovery(&mut self) -> Vec<MultiLink> {
        std::mem::take(&mut self.discovery)
    }

    /// Offsets attached so far.
    pub fn attached(&self) -> usize {
        self.links.iter().map(|l| l.offsets).sum()
    }

    /// Detaches everything (one close per link); returns how many offsets and how long.
    pub fn detach_all(&mut self) -> (usize, Duration) {
        let count = self.attached();
        let started = Instant::now();
        self.links.clear();
        self.discovery.clear();
        (count, started.elapsed())
    }

    /// Takes the ring buffer for reading; call once.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, ProbeError> {
        let name = names::EVENTS_MAP;
        let map = self
            .ebpf
            .take_map(name)
            .ok_or(ProbeError::MapMissing(name))?;
        RingBuf::try_from(map).map_err(|source| ProbeError::Map { name, source })
    }

    /// Events the kernel side could not queue because the ring buffer was full.
    pub fn lost_events(&self) -> Result<u64, ProbeError> {
        self.counter(counter::LOST_EVENTS)
    }

    /// What else the kernel side could not do (see `tracer_common::counter`).
    pub fn kernel_failures(&self) -> Result<KernelFailures, ProbeError> {
        Ok(KernelFailures {
            entry_save_failed: self.counter(counter::ENTRY_SAVE_FAILED)?,
            entry_missing: self.counter(counter::ENTRY_MISSING)?,
            spec_missing: self.counter(counter::SPEC_MISSING)?,
        })
    }

    fn counter(&self, slot: u32) -> Result<u64, ProbeError> {
        let name = names::COUNTERS_MAP;
        let map = self.ebpf.map(name).ok_or(ProbeError::MapMissing(name))?;
        let map_error = |source| ProbeError::Map { name, source };
        let counts: PerCpuArray<_, u64> = PerCpuArray::try_from(map).map_err(map_error)?;
        let per_cpu = counts.get(&slot, 0).map_err(map_error)?;
        Ok(per_cpu.iter().sum())
    }
}

/// Kernel-side failures of one trace, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KernelFailures {
    /// Entry registers a RET probe needs could not be stored.
    pub entry_save_failed: u64,
    /// RET probes that found no entry registers (the call began before attaching, or
    /// they were evicted).
    pub entry_missing: u64,
    /// Probes whose capture spec was not found.
    pub spec_missing: u64,
}

impl KernelFailures {
    /// One human sentence, when anything failed.
    pub fn describe(&self) -> Option<String> {
        (*self != KernelFailures::default()).then(|| {
            format!(
                "kernel side: {} entry-register saves failed, {} returns without entry registers (calls begun before attach, or evicted), {} probes without their capture spec",
                self.entry_save_failed, self.entry_missing, self.spec_missing
            )
        })
    }
}

/// What a refused offset's error means for a user.
fn explain_refusal(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        // ENOTSUPP (524): arch/x86 uprobes cannot single-step or emulate the instruction.
        Some(524) => "the kernel cannot probe the instruction there (error 524)".into(),
        Some(libc::EINVAL) => "the kernel says the offset is invalid (EINVAL)".into(),
        Some(libc::ENOEXEC) => "the kernel cannot decode the instruction there".into(),
        _ => e.to_string(),
    }
}

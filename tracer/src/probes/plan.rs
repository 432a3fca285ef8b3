//! From "probe this function / this line" to attach points (file offsets, kinds,
//! probe ids) and the specs of what each reads.
use std::{os::unix::fs::FileExt, path::Path, time::Duration};

use anyhow::Context;
use tracer_common::{ProbeKind, ProbeSpec, cookie, cookie_at_stack_check, with_depth_adjust};

use super::{AttachedProbes, ProbeError, loader::Offset};
use crate::gobin::{EntryKind, Function, GoBinary, ProbePlan, ReturnSite};

/// The function whose entry means "this goroutine is exiting".
pub const GOEXIT_FUNC: &str = "runtime.goexit1";
pub const GOEXIT_PROBE_ID: u32 = 0x00ff_ffff;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachPoint {
    pub file_offset: u64,
    pub kind: ProbeKind,
    pub probe_id: u32,
    /// On a stack-check jump: hits that will take the jump are dropped in the kernel.
    pub at_stack_check: bool,
    /// The instruction's bytes as analysed; checked against the file before attaching.
    pub expect: Vec<u8>,
    /// Bytes added to the hit's stack depth: a return read in the caller reports its
    /// callee's entry depth (see `tracer_common::COOKIE_DEPTH_ADJUST_SHIFT`).
    pub depth_adjust: u64,
}

/// An instruction the kernel would refuse, or an address that is not an instruction of
/// the function the analysis means: never probed.
#[derive(Debug, thiserror::Error)]
#[error("cannot probe {function} at {vaddr:#x}: {reason}")]
pub struct Unprobeable {
    pub function: String,
    pub vaddr: u64,
    pub reason: String,
}

/// What attaching did: how many offsets, which the kernel refused (when allowed), how long.
#[derive(Debug, Default)]
pub struct AttachReport {
    pub attached: usize,
    /// (probe id, file offset, reason) of every probe left out.
    pub refused: Vec<(u32, u64, String)>,
    pub elapsed: Duration,
}

/// Every uprobe to attach and every spec to load before attaching.
#[derive(Default)]
pub struct PlanSet {
    pub points: Vec<AttachPoint>,
    /// Entry points wanted only until their first hit, attached in links of their own
    /// (see [`AttachedProbes::take_discovery`]).
    pub discovery: Vec<AttachPoint>,
    pub specs: Vec<(u32, ProbeKind, ProbeSpec)>,
    /// Probe ids whose returns are read in their callers, with the sites.
    pub caller_returns: Vec<(u32, Vec<ReturnSite>)>,
    /// What a user should know of how the plan was made (one sentence each).
    pub notes: Vec<String>,
}

fn make_point(
    binary: &GoBinary,
    vaddr: u64,
    kind: ProbeKind,
    probe_id: u32,
    at_stack_check: bool,
) -> anyhow::Result<AttachPoint> {
    let f = binary
        .function_at(vaddr)
        .with_context(|| format!("address {vaddr:#x} is in no function of the binary"))?;
    let expect = binary
        .probe_site(f, vaddr)
        .map_err(|reason| Unprobeable {
            function: f.name.clone(),
            vaddr,
            reason,
        })?
        .to_vec();
    let file_offset = binary
        .file_offset(vaddr)
        .with_context(|| format!("address {vaddr:#x} is not in a loaded segment of the binary"))?;
    Ok(AttachPoint {
        file_offset,
        kind,
        probe_id,
        at_stack_check,
        expect,
        depth_adjust: 0,
    })
}

fn entry_point(
    binary: &GoBinary,
    plan: &ProbePlan,
    kind: ProbeKind,
    probe_id: u32,
) -> anyhow::Result<AttachPoint> {
    let at_jump = plan.entry_kind == EntryKind::StackCheckJump;
    make_point(binary, plan.entry, kind, probe_id, at_jump)
}

impl PlanSet {
    /// Entry (after the stack check, or on its jump), plus every RET unless `entry_only`.
    /// All or nothing: if any address cannot be probed, nothing is added and the error
    /// is an [`Unprobeable`] the caller may skip.
    pub fn add_call(
        &mut self,
        binary: &GoBinary,
        f: &Function,
        probe_id: u32,
        entry_only: bool,
    ) -> anyhow::Result<()> {
        let plan = binary.probe_plan(f)?;
        let mut points = vec![entry_point(binary, &plan, ProbeKind::FuncEntry, probe_id)?];
        if !entry_only {
            for ret in &plan.rets {
                points.push(make_point(
                    binary,
                    *ret,
                    ProbeKind::FuncReturn,
                    probe_id,
                    false,
                )?);
            }
        }
        self.points.extend(points);
        Ok(())
    }

    /// Entry, and the call's returns read in its callers at `sites` (see
    /// [`crate::gobin::return_sites`]) instead of at its `RET`s. All or nothing, like
    /// [`Self::add_call`]; a site another probe already uses is refused.
    pub fn add_call_returning_at(
        &mut self,
        binary: &GoBinary,
        f: &Function,
        probe_id: u32,
        sites: &[ReturnSite],
    ) -> anyhow::Result<()> {
        let plan = binary.probe_plan(f)?;
        let mut points = vec![entry_point(binary, &plan, ProbeKind::FuncEntry, probe_id)?];
        for site in sites {
            let mut point = make_point(
                binary,
                site.probe_at,
                ProbeKind::FuncReturn,
                probe_id,
                false,
            )?;
            point.depth_adjust = site.depth_adjust;
            points.push(point);
        }
        let taken = |p: &AttachPoint| {
            self.points
                .iter()
                .chain(&self.discovery)
                .chain(&points[..1])
                .any(|q| q.file_offset == p.file_offset)
        };
        if let Some(p) = points[1..].iter().find(|p| taken(p)) {
            anyhow::bail!(
                "the return site at file offset {:#x} carries another probe",
                p.file_offset
            );
        }
        self.points.extend(points);
        self.caller_returns.push((probe_id, sites.to_vec()));
        Ok(())
    }

    /// A point event at any instruction (link-time address `vaddr`).
    pub fn add_point(
        &mut self,
        binary: &GoBinary,
        vaddr: u64,
        probe_id: u32,
    ) -> anyhow::Result<()> {
        let point = make_point(binary, vaddr, ProbeKind::Point, probe_id, false)?;
        self.points.push(point);
        Ok(())
    }

    /// A point event at the function's entry (after the stack check).
    pub fn add_entry_point(
        &mut self,
        binary: &GoBinary,
        f: &Function,
        probe_id: u32,
    ) -> anyhow::Result<()> {
        let plan = binary.probe_plan(f)?;
        let point = entry_point(binary, &plan, ProbeKind::Point, probe_id)?;
        self.points.push(point);
        Ok(())
    }

    /// A discovery point at the function's entry (after the stack check): attached in a
    /// link of its own that the caller drops after its first hit.
    pub fn add_discovery_point(
        &mut self,
        binary: &GoBinary,
        f: &Function,
        probe_id: u32,
    ) -> anyhow::Result<()> {
        let plan = binary.probe_plan(f)?;
        let point = entry_point(binary, &plan, ProbeKind::Point, probe_id)?;
        self.discovery.push(point);
        Ok(())
    }

    /// Point events at the start of every code range of `file:line` inside `f`.
    /// Returns how many were found (0 means the line has no code here).
    pub fn add_line_points(
        &mut self,
        binary: &GoBinary,
        f: &Function,
        file_suffix: &str,
        line: u32,
        probe_id: u32,
    ) -> anyhow::Result<usize> {
        let starts = line_starts(binary, f, file_suffix, line);
        for pc in &starts {
            self.add_point(binary, *pc, probe_id)?;
        }
        Ok(starts.len())
    }

    /// `runtime.goexit1`: closes the frames of exiting goroutines.
    pub fn add_goexit(&mut self, binary: &GoBinary) -> anyhow::Result<()> {
        let goexit = binary
            .functions()
            .iter()
            .find(|f| f.name == GOEXIT_FUNC)
            .with_context(|| format!("{GOEXIT_FUNC} not found in {}", binary.path().display()))?;
        let plan = binary.probe_plan(goexit)?;
        let point = entry_point(binary, &plan, ProbeKind::GoroutineExit, GOEXIT_PROBE_ID)?;
        self.points.push(point);
        Ok(())
    }

    pub fn spec(&mut self, probe_id: u32, kind: ProbeKind, spec: Option<ProbeSpec>) {
        if let Some(spec) = spec {
            self.specs.push((probe_id, kind, spec));
        }
    }

    /// Loads the specs, checks every instruction against the file about to be probed,
    /// then attaches: RET probes first, then entries and points, so that a call whose
    /// entry is seen always has its returns probed. With `skip_refused`, probes the
    /// kernel refuses are left out (with every other probe of the same probe id) and
    /// listed in the report; without it, the first refusal is the error.
    pub fn attach(
        &self,
        probes: &mut AttachedProbes,
        binary: &Path,
        pid: u32,
        skip_refused: bool,
    ) -> Result<AttachReport, ProbeError> {
        for (slot, (_, _, spec)) in self.specs.iter().enumerate() {
            probes.set_spec(slot as u32, spec)?;
        }
        self.check_bytes(binary)?;
        let mut report = AttachReport::default();
        let mut left_out: std::collections::HashSet<u32> = Default::default();
        // At most two passes: the second runs only without the probes the first found
        // refused (a refused RET must take its function's entry with it).
        for _pass in 0..2 {
            let (returns, others): (Vec<&AttachPoint>, Vec<&AttachPoint>) = self
                .points
                .iter()
                .filter(|p| !left_out.contains(&p.probe_id))
                .partition(|p| p.kind == ProbeKind::FuncReturn);
            let mut refused = Vec::new();
            for batch in [returns, others] {
                let offsets: Vec<Offset> = batch.iter().map(|p| self.offset(p)).collect();
                for r in probes.attach_batch(binary, &offsets, pid)? {
                    let point = batch
                        .iter()
                        .find(|p| p.file_offset == r.offset.file_offset)
                        .expect("a refused offset is one we asked for");
                    if !skip_refused {
                        return Err(ProbeError::Attach {
                            path: binary.display().to_string(),
                            offset: r.offset.file_offset,
                            reason: r.reason,
                        });
                    }
                    refused.push((point.probe_id, point.file_offset, r.reason));
                }
            }
            if refused.is_empty() {
                break;
            }
            probes.detach_all();
            left_out.extend(refused.iter().map(|r| r.0));
            report.refused.extend(refused);
        }
        let offsets: Vec<Offset> = self.discovery.iter().map(|p| self.offset(p)).collect();
        if let Some(r) = probes
            .attach_discovery(binary, &offsets, pid)?
            .into_iter()
            .next()
        {
            return Err(ProbeError::Attach {
                path: binary.display().to_string(),
                offset: r.offset.file_offset,
                reason: r.reason,
            });
        }
        report.attached = probes.attached() + self.discovery.len();
        report.elapsed = probes.attach_time;
        Ok(report)
    }

    fn offset(&self, p: &AttachPoint) -> Offset {
        // The last spec given for a probe counts.
        let slot = self
            .specs
            .iter()
            .rposition(|(id, kind, _)| *id == p.probe_id && *kind == p.kind)
            .map(|i| i as u32);
        let cookie = if p.at_stack_check {
            cookie_at_stack_check(p.probe_id, p.kind, slot)
        } else {
            cookie(p.probe_id, p.kind, slot)
        };
        let cookie = with_depth_adjust(cookie, p.depth_adjust);
        Offset {
            file_offset: p.file_offset,
            cookie,
        }
    }

    /// The file about to be probed must hold, at every offset, the instruction the
    /// analysis decoded: a binary replaced on disk since, or a wrong offset, is refused
    /// before any breakpoint is written.
    fn check_bytes(&self, binary: &Path) -> Result<(), ProbeError> {
        let file = std::fs::File::open(binary).map_err(|source| ProbeError::FileUnreadable {
            path: binary.display().to_string(),
            source,
        })?;
        let mut buf = [0u8; 16];
        for p in self.points.iter().chain(&self.discovery) {
            let got = &mut buf[..p.expect.len().min(16)];
            let same = file.read_exact_at(got, p.file_offset).is_ok() && got == &p.expect[..];
            if !same {
                return Err(ProbeError::Attach {
                    path: binary.display().to_string(),
                    offset: p.file_offset,
                    reason: "the file does not hold the instruction the analysis decoded there (was the binary replaced since it was read?)".into(),
                });
            }
        }
        Ok(())
    }
}

/// First PCs of the line-table ranges of `file:line` in `f`. Line-table ranges begin
/// on instruction boundaries, so each is a valid probe address.
fn line_starts(binary: &GoBinary, f: &Function, file_suffix: &str, line: u32) -> Vec<u64> {
    line_ranges(binary, f, file_suffix, line)
        .into_iter()
        .map(|r| r.start)
        .collect()
}

/// The PC ranges of `file:line`'s code inside `f`.
pub fn line_ranges(
    binary: &GoBinary,
    f: &Function,
    file_suffix: &str,
    line: u32,
) -> Vec<std::ops::Range<u64>> {
    let mut ranges: Vec<std::ops::Range<u64>> = Vec::new();
    let mut inside = false;
    for pc in f.entry..f.end {
        let here = binary
            .source_line(f, pc)
            .is_some_and(|l| l.line == line && l.file.ends_with(file_suffix));
        match (here, inside, ranges.last_mut()) {
            (true, true, Some(r)) => r.end = pc + 1,
            (true, _, _) => ranges.push(pc..pc + 1),
            _ => {}
        }
        inside = here;
    }
    ranges
}

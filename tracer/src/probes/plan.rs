//! From "probe this function / this line" to attach points (file offsets, kinds,
//! probe ids) and the specs of what each reads.
use std::{num::NonZeroU32, path::Path};

use anyhow::Context;
use tracer_common::{ProbeKind, ProbeSpec};

use super::{AttachedProbes, ProbeError};
use crate::gobin::{Function, GoBinary};

/// The function whose entry means "this goroutine is exiting".
pub const GOEXIT_FUNC: &str = "runtime.goexit1";
pub const GOEXIT_PROBE_ID: u32 = 0x00ff_ffff;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttachPoint {
    pub file_offset: u64,
    pub kind: ProbeKind,
    pub probe_id: u32,
}

/// Every uprobe to attach and every spec to load before attaching.
#[derive(Default)]
pub struct PlanSet {
    pub points: Vec<AttachPoint>,
    pub specs: Vec<(u32, ProbeKind, ProbeSpec)>,
}

impl PlanSet {
    fn point(
        &mut self,
        binary: &GoBinary,
        vaddr: u64,
        kind: ProbeKind,
        probe_id: u32,
    ) -> anyhow::Result<()> {
        let file_offset = binary.file_offset(vaddr).with_context(|| {
            format!("address {vaddr:#x} is not in a loaded segment of the binary")
        })?;
        self.points.push(AttachPoint {
            file_offset,
            kind,
            probe_id,
        });
        Ok(())
    }

    /// Entry after the stack check, plus every RET unless `entry_only`.
    pub fn add_call(
        &mut self,
        binary: &GoBinary,
        f: &Function,
        probe_id: u32,
        entry_only: bool,
    ) -> anyhow::Result<()> {
        let plan = binary.probe_plan(f)?;
        self.point(binary, plan.entry, ProbeKind::FuncEntry, probe_id)?;
        if !entry_only {
            for ret in &plan.rets {
                self.point(binary, *ret, ProbeKind::FuncReturn, probe_id)?;
            }
        }
        Ok(())
    }

    /// A point event at any instruction (link-time address `vaddr`).
    pub fn add_point(
        &mut self,
        binary: &GoBinary,
        vaddr: u64,
        probe_id: u32,
    ) -> anyhow::Result<()> {
        self.point(binary, vaddr, ProbeKind::Point, probe_id)
    }

    /// A point event at the function's entry (after the stack check).
    pub fn add_entry_point(
        &mut self,
        binary: &GoBinary,
        f: &Function,
        probe_id: u32,
    ) -> anyhow::Result<()> {
        let plan = binary.probe_plan(f)?;
        self.point(binary, plan.entry, ProbeKind::Point, probe_id)
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
            self.point(binary, *pc, ProbeKind::Point, probe_id)?;
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
        self.point(
            binary,
            plan.entry,
            ProbeKind::GoroutineExit,
            GOEXIT_PROBE_ID,
        )
    }

    pub fn spec(&mut self, probe_id: u32, kind: ProbeKind, spec: Option<ProbeSpec>) {
        if let Some(spec) = spec {
            self.specs.push((probe_id, kind, spec));
        }
    }

    /// Loads the specs, then attaches every point.
    pub fn attach(
        &self,
        probes: &mut AttachedProbes,
        binary: &Path,
        pid: Option<NonZeroU32>,
    ) -> Result<(), ProbeError> {
        for (id, kind, spec) in &self.specs {
            probes.set_spec(*id, *kind, spec)?;
        }
        for p in &self.points {
            let has_spec = self
                .specs
                .iter()
                .any(|(id, kind, _)| *id == p.probe_id && *kind == p.kind);
            probes.attach(binary, p.file_offset, p.kind, p.probe_id, has_spec, pid)?;
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

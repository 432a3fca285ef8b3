//! Entry points shared by the fuzz targets (`fuzz/fuzz_targets/*`) and by the replay test
//! (`tracer/tests/fuzz_replay.rs`), so that CI replays committed inputs through exactly the
//! code the fuzzer runs. Every function takes untrusted bytes and must never panic, hang or
//! allocate without bound, whatever they contain.
//!
//! This file is included with `#[path]` in both places: it uses only the `tracer` crate,
//! `object` and std.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tracer::gobin::{GoBinary, parts};
use tracer::model::goroutines::{Mem, Reader, group};
use tracer::probes::Event;

/// Functions of one binary exercised per input (probe plans disassemble; keep it bounded).
pub const MAX_FUNCTIONS: usize = 12;
/// Where the fake goroutine heap lives in the walker target's address space.
pub const HEAP: u64 = 0x00c0_0000_0000;
/// The text base of a `pclntab` input whose header has none (Go 1.26+, PIE).
pub const TEXT_BASE: u64 = 0x40_1000;
/// Where the `code` target loads its code, chosen by the input's first byte: the usual text
/// base, zero, and near the top of the address space (where address arithmetic overflows).
pub const CODE_ENTRIES: [u64; 4] = [TEXT_BASE, 0, u64::MAX - 0xfff, 0x7fff_ffff_f000];
/// PCs looked up per function in the `pclntab` target (spread over its code; each lookup
/// walks the line tables from the start).
pub const PCS_PER_FUNCTION: u64 = 8;
/// Instructions of the `code` target checked for the kernel's refusal.
pub const MAX_SITES: usize = 64;
/// The DWARF sections the `dwarf` target reads, in the order of its input.
pub const DWARF_SECTIONS: [&str; 4] = [
    ".debug_abbrev",
    ".debug_str",
    ".debug_line_str",
    ".debug_info",
];

/// Decodes a ring-buffer record and touches every part of the result.
pub fn event(data: &[u8]) {
    if let Some(ev) = Event::from_bytes(data) {
        for i in 0..=tracer_common::MAX_CAPTURES {
            if let Some(c) = ev.capture(i) {
                std::hint::black_box(c);
            }
        }
        std::hint::black_box(ev.stack.len());
        std::hint::black_box(format!("{ev:?}"));
    }
}

/// Reads bytes as a recording, item by item, decoding each ring record as replay does.
pub fn recording(data: &[u8]) {
    let Ok(mut rec) =
        tracer::recording::RecordingReader::from_bytes(Path::new("fuzz-input"), data.to_vec())
    else {
        return;
    };
    std::hint::black_box(format!("{:?}", rec.header));
    // Every item consumes bytes of the input, so this ends; the bound is a backstop.
    for _ in 0..1_000_000 {
        match rec.next_item() {
            Ok(tracer::recording::Item::RingRecord(bytes)) => event(bytes),
            Ok(tracer::recording::Item::LiveFact(json)) => {
                let _ =
                    std::hint::black_box(tracer::model::watch_facts::WatchFact::from_json(json));
            }
            Ok(tracer::recording::Item::End(end)) => {
                std::hint::black_box(end);
                return;
            }
            Err(e) => {
                std::hint::black_box(e.to_string());
                return;
            }
        }
    }
}

/// A `.gopclntab` on its own. Input: the table's length (u32 LE), the table, then the
/// FUNCDATA area that inline-tree offsets point into. Lists the functions (text base from
/// the header, else [`TEXT_BASE`]) and, on up to [`MAX_FUNCTIONS`] of them, source lines and
/// inline frames at PCs spread over the function, and the stack-pointer table.
pub fn pclntab(input: &[u8]) {
    let Some((tab, funcdata)) = split_len(input) else {
        return;
    };
    let Ok(table) = parts::PclnTable::parse(tab) else {
        return;
    };
    let text = match table.text_start() {
        0 => TEXT_BASE,
        t => t,
    };
    let Ok(funcs) = table.functions(text) else {
        return;
    };
    let step = (funcs.len() / MAX_FUNCTIONS).max(1);
    for f in funcs.iter().step_by(step).take(MAX_FUNCTIONS) {
        let span = f.end - f.entry;
        // Frames carry the source line of each PC too.
        std::hint::black_box(table.source_line(f, f.entry));
        for k in 0..=PCS_PER_FUNCTION {
            let pc = f.entry + span / PCS_PER_FUNCTION * k;
            std::hint::black_box(table.frames_at(f, pc, funcdata));
        }
        std::hint::black_box(table.sp_change_pcs(f));
    }
}

/// The first `u32 LE` length's worth of bytes after it, and the rest.
fn split_len(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(input.get(..4)?.try_into().ok()?) as usize;
    let rest = &input[4..];
    Some(rest.split_at(len.min(rest.len())))
}

/// A `.go.buildinfo` section. Addresses of the pre-1.18 pointer format are read as offsets
/// into the input itself (there is no ELF file to map them).
pub fn buildinfo(input: &[u8]) {
    std::hint::black_box(parts::build_info_plausible(input));
    let read = |addr: u64, len: u64| {
        let start = usize::try_from(addr).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        Some(input.get(start..end)?.to_vec())
    };
    if let Ok(info) = parts::parse_build_info(input, &read) {
        std::hint::black_box(tracer::gobin::parse_go_version(&info.go_version));
        std::hint::black_box((info.setting("GOARCH"), info.deps.len(), format!("{info:?}")));
    }
}

/// One function's machine code: the entry-probe and RET search, instruction boundaries,
/// the kernel's refusals at each, Mutex Lock and Unlock sites, and the runtime-global
/// search. Input: an entry selector (into [`CODE_ENTRIES`]), then the code.
pub fn code(input: &[u8]) {
    let Some((&which, code)) = input.split_first() else {
        return;
    };
    let entry = CODE_ENTRIES[usize::from(which) % CODE_ENTRIES.len()];
    std::hint::black_box(parts::probe_plan(code, entry).ok());
    let starts = parts::instruction_starts(code, entry);
    for &(ip, _) in starts.iter().take(MAX_SITES) {
        let at = ip.wrapping_sub(entry) as usize;
        std::hint::black_box(parts::kernel_refusal(&code[at.min(code.len())..], ip));
    }
    for method in ["sync.(*Mutex).Lock", "sync.(*Mutex).Unlock"] {
        std::hint::black_box(parts::mutex_sites("fuzz", code, entry, |_| {
            Some(method.to_owned())
        }));
    }
    std::hint::black_box(parts::runtime_globals(code, entry));
}

/// DWARF sections searched for the runtime's `g` offsets. Input: each of
/// [`DWARF_SECTIONS`] but the last as a u32 LE length and its bytes, then `.debug_info`.
pub fn dwarf(input: &[u8]) {
    let mut rest = input;
    let mut sections: Vec<&[u8]> = Vec::new();
    for _ in 0..DWARF_SECTIONS.len() - 1 {
        let Some((s, r)) = split_len(rest) else {
            return;
        };
        sections.push(s);
        rest = r;
    }
    sections.push(rest);
    std::hint::black_box(
        parts::dwarf_g_offsets(|name| {
            let i = DWARF_SECTIONS.iter().position(|&n| n == name)?;
            sections.get(i).copied()
        })
        .ok(),
    );
}

/// Parses a whole file as a Go binary and, if it parses, exercises its tables.
pub fn gobin_bytes(data: &[u8]) {
    if let Ok(bin) = GoBinary::from_bytes(Path::new("fuzz-input"), data.to_vec()) {
        exercise(&bin, data);
    }
}

/// Queries a parsed binary the way the tracer does: lookups, source lines, inline frames,
/// probe plans (prologue and RET discovery), build info and the runtime layout. `sel`
/// chooses which functions and PCs (bounded to [`MAX_FUNCTIONS`]).
pub fn exercise(bin: &GoBinary, sel: &[u8]) {
    let info = bin.build_info();
    std::hint::black_box((&info.go_version, &info.path, &info.main, info.deps.len()));
    std::hint::black_box(info.setting("GOARCH"));
    std::hint::black_box((bin.go_version(), bin.stripped(), bin.has_dwarf()));
    std::hint::black_box((bin.dwarf_problem(), bin.goid_offset(), bin.g_offsets()));
    std::hint::black_box(bin.lowest_load_vaddr());
    let funcs = bin.functions();
    if funcs.is_empty() {
        return;
    }
    // First, last, and functions picked by the input's bytes.
    let mut picks = vec![0, funcs.len() - 1];
    picks.extend(
        sel.chunks(4).take(MAX_FUNCTIONS - 2).map(|c| {
            u32::from_le_bytes([c[0], *c.get(1).unwrap_or(&0), 0, 0]) as usize % funcs.len()
        }),
    );
    for (k, &i) in picks.iter().enumerate() {
        let f = &funcs[i];
        let span = f.end.saturating_sub(f.entry).max(1);
        let delta = sel.get(k * 4 + 2).copied().unwrap_or(0) as u64 % span;
        for pc in [
            f.entry,
            f.entry.wrapping_add(delta),
            f.end.wrapping_sub(1),
            f.end,
        ] {
            std::hint::black_box(bin.function_at(pc).map(|g| g.index));
            std::hint::black_box(bin.source_line(f, pc));
            std::hint::black_box(bin.frames_at(f, pc));
            std::hint::black_box(bin.file_offset(pc));
            std::hint::black_box(bin.probe_site(f, pc).map(<[u8]>::len).ok());
        }
        std::hint::black_box(bin.probe_plan(f).ok().map(|p| (p.entry, p.rets.len())));
    }
    std::hint::black_box(bin.runtime_layout().ok().map(|l| (l.allgs, l.semtable)));
    std::hint::black_box(bin.sync_functions());
    // The program's own functions and the sync package's out-of-line methods, as
    // `tracer locks` searches them.
    static MAIN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let main = MAIN.get_or_init(|| regex::Regex::new("^main$").expect("a valid pattern"));
    std::hint::black_box(bin.mutex_sites(main).len());
}

/// A real Go binary used as the base of the structure-aware targets, with the file ranges
/// of the sections worth mutating.
pub struct Base {
    pub name: String,
    pub data: Vec<u8>,
    /// `.gopclntab`, `.go.buildinfo`, the ELF header and section table, the whole file.
    pub regions: [std::ops::Range<usize>; 4],
    /// The base itself, parsed (for the walker).
    pub bin: Option<GoBinary>,
}

impl Base {
    pub fn load(path: &Path) -> Option<Base> {
        use object::{Object, ObjectSection};
        let data = std::fs::read(path).ok()?;
        let file = object::File::parse(&*data).ok()?;
        let range = |name: &str| {
            file.section_by_name(name)
                .and_then(|s| s.file_range())
                .map(|(o, l)| o as usize..(o + l) as usize)
                .unwrap_or(0..0)
        };
        let header = 0..data.len().min(64);
        let regions = [
            range(".gopclntab"),
            range(".go.buildinfo"),
            header,
            0..data.len(),
        ];
        let bin = GoBinary::from_bytes(path, data.clone()).ok();
        Some(Base {
            name: path.file_name()?.to_string_lossy().into_owned(),
            data,
            regions,
            bin,
        })
    }
}

/// The bases in `dir` (every regular file), sorted by name so an input's base index is stable.
pub fn load_bases(dir: &Path) -> Vec<Base> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths.iter().filter_map(|p| Base::load(p)).collect()
}

/// Structure-aware binary fuzzing. Input: base index, region (0 `.gopclntab`,
/// 1 `.go.buildinfo`, 2 ELF header, 3 whole file), then patches `offset: u32 LE` (taken
/// modulo the region's length), `len: u8`, `len` bytes written over the base there.
pub fn gobin_patch(bases: &[Base], input: &[u8]) {
    let Some(data) = patched(bases, input) else {
        return;
    };
    if let Ok(bin) = GoBinary::from_bytes(Path::new("fuzz-patched"), data) {
        exercise(&bin, input);
    }
}

/// The base with the input's patches applied (`None` without bases or a header).
pub fn patched(bases: &[Base], input: &[u8]) -> Option<Vec<u8>> {
    let (&which, rest) = input.split_first()?;
    let (&region, mut rest) = rest.split_first()?;
    if bases.is_empty() {
        return None;
    }
    let base = &bases[which as usize % bases.len()];
    let mut data = base.data.clone();
    let r = base.regions[region as usize % 4].clone();
    if r.is_empty() {
        return Some(data);
    }
    while rest.len() >= 5 {
        let off = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize % r.len();
        let len = rest[4] as usize;
        rest = &rest[5..];
        let n = len.min(rest.len()).min(r.len() - off);
        let at = r.start + off;
        data[at..at + n].copy_from_slice(&rest[..n]);
        rest = &rest[len.min(rest.len())..];
    }
    Some(data)
}

/// Fake target memory for the goroutine walker: the 24-byte `runtime.allgs` slice header
/// at its link-time address, and the rest of the input as a heap at [`HEAP`], also seen at
/// `runtime.semtable` (so the semaphore treap walker reads fuzzed roots). Anything else
/// fails to read, like an unmapped page.
pub struct FakeMem<'a> {
    pub allgs: u64,
    pub header: &'a [u8],
    pub semtable: Option<u64>,
    pub heap: &'a [u8],
}

impl Mem for FakeMem<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let from = |start: u64, bytes: &[u8], buf: &mut [u8]| -> bool {
            let Some(off) = addr.checked_sub(start) else {
                return false;
            };
            let Some(end) = off.checked_add(buf.len() as u64) else {
                return false;
            };
            if end > bytes.len() as u64 {
                return false;
            }
            buf.copy_from_slice(&bytes[off as usize..end as usize]);
            true
        };
        if from(self.allgs, self.header, buf)
            || from(HEAP, self.heap, buf)
            || self.semtable.is_some_and(|s| from(s, self.heap, buf))
        {
            Ok(())
        } else {
            Err(std::io::Error::other("unmapped in the fake target"))
        }
    }
}

/// Goroutine walker over fuzzed memory. Input: base index, 24 bytes of `allgs` header,
/// then the heap. Walks every goroutine, the semaphore tree and the deadlock analysis,
/// then groups stacks as `tracer hang` does.
pub fn walker(bases: &[Base], input: &[u8]) {
    let Some((&which, rest)) = input.split_first() else {
        return;
    };
    let usable: Vec<&GoBinary> = bases.iter().filter_map(|b| b.bin.as_ref()).collect();
    if usable.is_empty() || rest.len() < 24 {
        return;
    }
    let bin = usable[which as usize % usable.len()];
    let Ok(mut reader) = Reader::new(bin, 0) else {
        return;
    };
    let mem = FakeMem {
        allgs: reader.layout().allgs,
        header: &rest[..24],
        semtable: reader.layout().semtable,
        heap: &rest[24..],
    };
    if let Ok(snap) = reader.snapshot(&mem, 1_000_000_000_000) {
        let all: Vec<_> = snap.goroutines.iter().collect();
        for g in &all {
            std::hint::black_box((g.state(), g.status_name(), g.blocked()));
        }
        std::hint::black_box(group(&all).len());
        std::hint::black_box((snap.holders.len(), snap.deadlocks.len()));
    }
}

/// A plausible walker input for base `which`: two goroutines in the heap, parked, with
/// a frame-pointer chain, a saved PC inside a real function and a semaphore root.
pub fn walker_seed(bases: &[Base], which: u8) -> Option<Vec<u8>> {
    let usable: Vec<&GoBinary> = bases.iter().filter_map(|b| b.bin.as_ref()).collect();
    let bin = *usable.get(which as usize % usable.len().max(1))?;
    let (o, _) = bin.g_offsets();
    let funcs = bin.functions();
    let pc = funcs.get(funcs.len() / 2)?.entry + 1;
    let mut heap = vec![0u8; 4096];
    let put = |heap: &mut Vec<u8>, at: u64, v: u64| {
        heap[at as usize..at as usize + 8].copy_from_slice(&v.to_le_bytes());
    };
    // allgs backing array at 0x0, g records at 0x100 and 0x600, stack at 0xb00..0xf00.
    let gs = [0x100u64, 0x600];
    for (k, &g) in gs.iter().enumerate() {
        put(&mut heap, 8 * k as u64, HEAP + g);
        put(&mut heap, g + o.goid, k as u64 + 1);
        put(&mut heap, g + o.stack_lo, HEAP + 0xb00);
        put(&mut heap, g + o.stack_hi, HEAP + 0xf00);
        put(&mut heap, g + o.sched_sp, HEAP + 0xc00);
        put(&mut heap, g + o.sched_bp, HEAP + 0xc40);
        put(&mut heap, g + o.sched_pc, pc);
        put(&mut heap, g + o.gopc, pc);
        put(&mut heap, g + o.startpc, funcs[0].entry);
        heap[(g + o.atomicstatus) as usize] = 4; // _Gwaiting
        heap[(g + o.waitreason) as usize] = 2 + k as u8;
    }
    // Frame chain: [bp] = next bp, [bp+8] = return address.
    put(&mut heap, 0xc40, HEAP + 0xc80);
    put(&mut heap, 0xc48, pc + 4);
    put(&mut heap, 0xc80, 0);
    put(&mut heap, 0xc88, pc + 8);
    let mut input = vec![which];
    input.extend_from_slice(&HEAP.to_le_bytes());
    input.extend_from_slice(&2u64.to_le_bytes());
    input.extend_from_slice(&2u64.to_le_bytes());
    input.extend_from_slice(&heap);
    Some(input)
}

/// Where the structure-aware targets find their bases: `$TRACER_FUZZ_BASES`, or the
/// directory `cargo xtask fuzz` fills (`fuzz/bases`).
pub fn bases_dir() -> PathBuf {
    std::env::var_os("TRACER_FUZZ_BASES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/bases")))
}

//! Seeds for the per-parser targets and small whole binaries, derived from the real Go
//! binaries in `fuzz/bases`: a `.gopclntab` cut down to a dozen functions with their own
//! line tables and inline trees, the real `.go.buildinfo`, real function code, DWARF
//! holding the real `g` offsets, and ELF files assembling those parts that
//! `GoBinary::from_bytes` reads like the binary they came from, in 20 KB instead of 2 MB.
//!
//! Written by `cargo test -p tracer --test fuzz_replay -- --ignored write_derived_seeds`
//! into `fuzz/seeds/<target>`. Like `harness.rs`, included with `#[path]` by the fuzz crate
//! and the replay test; uses only `tracer`, `object` and std.
#![allow(dead_code)]

use std::collections::HashMap;

use object::{Object, ObjectSegment};
use tracer::gobin::{GOffsets, GoBinary, parse_go_version, parts};

/// The pcHeader: magic, two pads, quantum, pointer size, then eight words.
const PCLN_HEADER: usize = 72;
/// Fields of `_func` (runtime/runtime2.go), the same in both formats: entryOff, nameOff,
/// the pcsp, pcfile and pcln table offsets, npcdata, cuOffset.
const FUNC_NAME: usize = 4;
const FUNC_TABLES: [usize; 3] = [16, 20, 24];
const FUNC_NPCDATA: usize = 28;
const FUNC_CU: usize = 32;
/// PCDATA table 2 gives the inline tree index at a PC; FUNCDATA 3 is the tree.
const PCDATA_INLINE_INDEX: usize = 2;
const FUNCDATA_INLINE_TREE: usize = 3;
/// Where the small binaries are linked (file offset + this = address).
pub const MINI_BASE: u64 = 0x40_0000;
/// Functions worth keeping when they exist: the program's own (inlined Mutex.Lock in
/// `main.newRecorder`, defer and recover, nine arguments), what the runtime-layout search
/// disassembles, the sync slow paths and the out-of-line Mutex methods.
pub const WANTED: &[&str] = &[
    "main.leaf",
    "main.add9",
    "main.newRecorder",
    "main.mayPanic",
    "main.catcher",
    "main.recurse",
    "main.curGoid",
    "runtime.forEachG",
    "runtime.semacquire1",
    "runtime.gopark",
    "sync.(*Mutex).Lock",
    "sync.(*Mutex).Unlock",
    "internal/sync.(*Mutex).Lock",
    "internal/sync.(*Mutex).Unlock",
    "internal/sync.(*Mutex).lockSlow",
    "sync.(*Mutex).lockSlow",
];

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn cstr(b: &[u8], at: usize) -> Option<&[u8]> {
    let rest = b.get(at..)?;
    Some(&rest[..rest.iter().position(|&c| c == 0)?])
}

fn uvarint(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &c) in b.get(at..)?.iter().take(10).enumerate() {
        v |= u64::from(c & 0x7f) << (7 * i);
        if c & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// A real `.gopclntab`, read just enough to copy parts of it.
struct Table<'t> {
    tab: &'t [u8],
    /// `_func`'s fixed part: 44 bytes from Go 1.20 (magic 0xfffffff1), 40 before.
    fixed: usize,
    nfunc: usize,
    funcname: usize,
    cutab: usize,
    filetab: usize,
    pctab: usize,
    pcln: usize,
}

impl<'t> Table<'t> {
    fn new(tab: &'t [u8]) -> Option<Table<'t>> {
        let word = |i: usize| u64_at(tab, 8 + 8 * i).and_then(|v| usize::try_from(v).ok());
        Some(Table {
            tab,
            fixed: if u32_at(tab, 0)? == 0xffff_fff1 {
                44
            } else {
                40
            },
            nfunc: word(0)?,
            funcname: word(3)?,
            cutab: word(4)?,
            filetab: word(5)?,
            pctab: word(6)?,
            pcln: word(7)?,
        })
    }

    fn entry_off(&self, i: usize) -> Option<u32> {
        u32_at(self.tab, self.pcln + 8 * i)
    }

    fn record(&self, i: usize) -> Option<usize> {
        Some(self.pcln + u32_at(self.tab, self.pcln + 8 * i + 4)? as usize)
    }

    fn name(&self, i: usize) -> Option<&'t [u8]> {
        cstr(
            self.tab,
            self.funcname + u32_at(self.tab, self.record(i)? + 4)? as usize,
        )
    }

    /// The functab index of each named function present, in functab order.
    fn find(&self, names: &[&str]) -> Vec<usize> {
        (0..self.nfunc)
            .filter(|&i| {
                self.name(i)
                    .is_some_and(|n| names.iter().any(|w| w.as_bytes() == n))
            })
            .collect()
    }

    /// The bytes of the pc-value table at `off` of pctab, and the values it takes.
    fn pc_table(&self, off: u32) -> Option<(&'t [u8], Vec<i64>)> {
        let start = self.pctab + off as usize;
        let (mut p, mut value, mut values) = (start, -1i64, Vec::new());
        loop {
            let (uv, n) = uvarint(self.tab, p)?;
            p += n;
            if uv == 0 && !values.is_empty() {
                return Some((&self.tab[start..p], values));
            }
            value += ((uv >> 1) as i64) ^ -((uv & 1) as i64);
            values.push(value);
            p += uvarint(self.tab, p)?.1;
        }
    }
}

/// A cut-down `.gopclntab` and the FUNCDATA area its inline trees point into.
pub struct Shrunk {
    pub tab: Vec<u8>,
    pub funcdata: Vec<u8>,
    /// Per kept function: its functab index in the real table, new entry offset, length.
    pub funcs: Vec<(usize, u32, u32)>,
}

/// Copies functions `picks` (functab indices, ascending) of the real table `tab` into a new
/// table laid out as the linker does: their names, line tables, compilation-unit file
/// lists and inline trees (read through `tree(offset, len)` from the real FUNCDATA area),
/// entries made contiguous from offset 0, the header's text base set to `text_start`.
pub fn shrink_pclntab(
    tab: &[u8],
    picks: &[usize],
    text_start: u64,
    tree: impl Fn(u32, usize) -> Option<Vec<u8>>,
) -> Option<Shrunk> {
    let t = Table::new(tab)?;
    let go120 = t.fixed == 44;
    let (entry_size, name_at) = if go120 { (16, 4) } else { (20, 12) };
    let mut names: Vec<u8> = Vec::new();
    let mut name_offs: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut name_off = |n: &[u8]| -> u32 {
        *name_offs.entry(n.to_vec()).or_insert_with(|| {
            let at = names.len() as u32;
            names.extend_from_slice(n);
            names.push(0);
            at
        })
    };
    let mut files: Vec<u8> = Vec::new();
    let mut file_offs: HashMap<u32, u32> = HashMap::new();
    let mut cutab: Vec<u32> = Vec::new();
    // Offset 0 of pctab means "no table": real tables start after a zero byte.
    let mut pctab: Vec<u8> = vec![0];
    let mut pc_offs: HashMap<u32, u32> = HashMap::new();
    let mut funcdata: Vec<u8> = Vec::new();
    let mut records: Vec<Vec<u8>> = Vec::new();
    let mut funcs = Vec::new();
    let mut entry = 0u32;
    for &i in picks {
        let rec = t.record(i)?;
        let npcdata = u32_at(tab, rec + FUNC_NPCDATA)? as usize;
        let nfuncdata = *tab.get(rec + t.fixed - 1)? as usize;
        let mut r = tab
            .get(rec..rec + t.fixed + 4 * (npcdata + nfuncdata))?
            .to_vec();
        let len = t.entry_off(i + 1)?.checked_sub(t.entry_off(i)?)?;
        put32(&mut r, 0, entry);
        put32(&mut r, FUNC_NAME, name_off(t.name(i)?));
        let mut copy_table = |off: u32| -> Option<(u32, Vec<i64>)> {
            if off == 0 {
                return Some((0, Vec::new()));
            }
            let (bytes, values) = t.pc_table(off)?;
            let new = *pc_offs.entry(off).or_insert_with(|| {
                let at = pctab.len() as u32;
                pctab.extend_from_slice(bytes);
                at
            });
            Some((new, values))
        };
        // pcsp, pcfile, pcln, then the pcdata tables; the values of pcfile (file indices)
        // and of PCDATA 2 (inline tree indices) say how much of the unit's file list and
        // of the inline tree to copy.
        let pcdata = |j: usize| t.fixed + 4 * j;
        let mut file_values = Vec::new();
        let mut inline_values = Vec::new();
        for at in FUNC_TABLES.into_iter().chain((0..npcdata).map(pcdata)) {
            let (new, values) = copy_table(u32_at(&r, at)?)?;
            put32(&mut r, at, new);
            if at == FUNC_TABLES[1] {
                file_values = values;
            } else if at == pcdata(PCDATA_INLINE_INDEX) {
                inline_values = values;
            }
        }
        let cu = u32_at(&r, FUNC_CU)? as usize;
        let nfiles = file_values.iter().copied().max().unwrap_or(-1) + 1;
        put32(&mut r, FUNC_CU, cutab.len() as u32);
        for k in 0..nfiles.max(0) as usize {
            let old = u32_at(tab, t.cutab + 4 * (cu + k))?;
            cutab.push(if old == u32::MAX {
                old
            } else {
                let name = cstr(tab, t.filetab + old as usize)?;
                *file_offs.entry(old).or_insert_with(|| {
                    let at = files.len() as u32;
                    files.extend_from_slice(name);
                    files.push(0);
                    at
                })
            });
        }
        // FUNCDATA: only the inline tree is kept, with its names moved over.
        let fd = t.fixed + 4 * npcdata;
        let entries = inline_values.iter().copied().max().unwrap_or(-1) + 1;
        for k in 0..nfuncdata {
            let old = u32_at(&r, fd + 4 * k)?;
            let new = if k == FUNCDATA_INLINE_TREE && old != u32::MAX && entries > 0 {
                let mut bytes = tree(old, entries as usize * entry_size)?;
                for e in bytes.chunks_exact_mut(entry_size) {
                    let n = cstr(tab, t.funcname + u32_at(e, name_at)? as usize)?;
                    put32(e, name_at, name_off(n));
                }
                let at = funcdata.len() as u32;
                funcdata.extend_from_slice(&bytes);
                at
            } else {
                u32::MAX
            };
            put32(&mut r, fd + 4 * k, new);
        }
        funcs.push((i, entry, len));
        entry = entry.checked_add(len)?;
        records.push(r);
    }

    // Header, funcnametab, cutab, filetab, pctab, then functab and the records.
    let mut out = tab.get(..8)?.to_vec();
    out.resize(PCLN_HEADER, 0);
    let funcname = out.len();
    out.extend_from_slice(&names);
    let cu_at = out.len();
    out.extend(cutab.iter().flat_map(|v| v.to_le_bytes()));
    let filetab = out.len();
    out.extend_from_slice(&files);
    let pctab_at = out.len();
    out.extend_from_slice(&pctab);
    let pcln = out.len();
    let mut rec_at = 8 * (records.len() + 1);
    for (r, &(_, e, _)) in records.iter().zip(&funcs) {
        out.extend(e.to_le_bytes());
        out.extend((rec_at as u32).to_le_bytes());
        rec_at += r.len();
    }
    out.extend(entry.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    for r in &records {
        out.extend_from_slice(r);
    }
    let words = [
        records.len() as u64,
        file_offs.len() as u64,
        text_start,
        funcname as u64,
        cu_at as u64,
        filetab as u64,
        pctab_at as u64,
        pcln as u64,
    ];
    for (k, w) in words.into_iter().enumerate() {
        put64(&mut out, 8 + 8 * k, w);
    }
    Some(Shrunk {
        tab: out,
        funcdata,
        funcs,
    })
}

/// One real binary's parts, as the seeds need them.
pub struct Parts<'b> {
    pub bin: &'b GoBinary,
    pub data: &'b [u8],
    pub pclntab: &'b [u8],
    pub buildinfo: &'b [u8],
    /// `(vaddr, file offset, file size)` of each segment, to read link-time addresses.
    segments: Vec<(u64, u64, u64)>,
}

impl<'b> Parts<'b> {
    pub fn new(bin: &'b GoBinary, data: &'b [u8]) -> Option<Parts<'b>> {
        use object::ObjectSection;
        let file = object::File::parse(data).ok()?;
        let section = |name: &str| -> Option<&'b [u8]> {
            let (off, len) = file.section_by_name(name)?.file_range()?;
            data.get(off as usize..(off + len) as usize)
        };
        Some(Parts {
            bin,
            data,
            pclntab: section(".gopclntab")?,
            buildinfo: section(".go.buildinfo")?,
            segments: file
                .segments()
                .map(|s| {
                    let (off, len) = s.file_range();
                    (s.address(), off, len)
                })
                .collect(),
        })
    }

    /// `len` bytes at link-time address `vaddr`.
    pub fn at(&self, vaddr: u64, len: usize) -> Option<&'b [u8]> {
        self.segments.iter().find_map(|&(va, off, size)| {
            let rel = vaddr.checked_sub(va)?;
            (rel.checked_add(len as u64)? <= size).then(|| {
                self.data
                    .get((off + rel) as usize..(off + rel) as usize + len)
            })?
        })
    }

    pub fn minor(&self) -> u32 {
        parse_go_version(self.bin.go_version()).map_or(0, |v| v.1)
    }

    /// The pclntab cut down to the functions named `names`, with the header's text base
    /// `text_start` (the real one, or zero where the real table has zero).
    pub fn shrink(&self, names: &[&str], text_start: u64) -> Option<Shrunk> {
        let t = Table::new(self.pclntab)?;
        let gofunc = self.bin.gofunc();
        shrink_pclntab(self.pclntab, &t.find(names), text_start, |off, len| {
            Some(self.at(gofunc?.checked_add(u64::from(off))?, len)?.to_vec())
        })
    }

    /// The real text base stored in the pclntab header (zero from Go 1.26 on).
    pub fn header_text_start(&self) -> u64 {
        u64_at(self.pclntab, 24).unwrap_or(0)
    }
}

/// Input of the `pclntab` target: the table's length (u32 LE), the table, the FUNCDATA area.
pub fn pclntab_input(tab: &[u8], funcdata: &[u8]) -> Vec<u8> {
    let mut out = (tab.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(tab);
    out.extend_from_slice(funcdata);
    out
}

/// Input of the `pclntab` target for a real binary: its kept functions' table and trees.
pub fn pclntab_seed(p: &Parts) -> Option<Vec<u8>> {
    let s = p.shrink(WANTED, p.header_text_start())?;
    Some(pclntab_input(&s.tab, &s.funcdata))
}

/// Inputs of the `code` target: entry selector 0 (0x401000), then each kept function's code.
pub fn code_seeds(p: &Parts) -> Vec<(String, Vec<u8>)> {
    p.bin
        .functions()
        .iter()
        .filter(|f| WANTED.contains(&f.name.as_str()))
        .filter_map(|f| {
            let mut input = vec![0u8];
            input.extend_from_slice(p.bin.code(f)?);
            Some((f.name.clone(), input))
        })
        .collect()
}

/// The `.go.buildinfo` of Go 1.13-1.17, which points at string headers instead of holding
/// the strings, laid out so that the `buildinfo` target (which reads addresses as offsets
/// into its input) follows the pointers.
pub fn buildinfo_pointer_format(version: &str, modinfo: &str) -> Vec<u8> {
    let mut out = b"\xff Go buildinf:".to_vec();
    out.extend_from_slice(&[8, 0]);
    // Pointers to the two string headers (at 32 and 48), the headers, then the strings.
    out.resize(64, 0);
    let (v_at, m_at) = (64u64, 64 + version.len() as u64);
    for (at, v) in [
        (16, 32),
        (24, 48),
        (32, v_at),
        (40, version.len() as u64),
        (48, m_at),
        (56, modinfo.len() as u64),
    ] {
        put64(&mut out, at, v);
    }
    out.extend_from_slice(version.as_bytes());
    out.extend_from_slice(modinfo.as_bytes());
    out
}

/// Minimal DWARF 4 (`.debug_abbrev`, `.debug_info`) describing `runtime.g`, `runtime.m`,
/// `runtime.gobuf` and `runtime.stack` with the member offsets `o` (those of a real
/// binary), names inline (DW_FORM_string) as Go writes them, and one in `.debug_str`.
pub fn dwarf_sections(o: &GOffsets) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    const DW_TAG_COMPILE_UNIT: u8 = 0x11;
    const DW_TAG_STRUCTURE_TYPE: u8 = 0x13;
    const DW_TAG_MEMBER: u8 = 0x0d;
    const DW_AT_NAME: u8 = 0x03;
    const DW_AT_BYTE_SIZE: u8 = 0x0b;
    const DW_AT_DATA_MEMBER_LOCATION: u8 = 0x38;
    const DW_FORM_STRING: u8 = 0x08;
    const DW_FORM_STRP: u8 = 0x0e;
    const DW_FORM_UDATA: u8 = 0x0f;
    // Abbreviations: 1 unit, 2 struct, 3 member, 4 member named through .debug_str.
    let abbrev = vec![
        1,
        DW_TAG_COMPILE_UNIT,
        1,
        DW_AT_NAME,
        DW_FORM_STRING,
        0,
        0,
        2,
        DW_TAG_STRUCTURE_TYPE,
        1,
        DW_AT_NAME,
        DW_FORM_STRING,
        DW_AT_BYTE_SIZE,
        DW_FORM_UDATA,
        0,
        0,
        3,
        DW_TAG_MEMBER,
        0,
        DW_AT_NAME,
        DW_FORM_STRING,
        DW_AT_DATA_MEMBER_LOCATION,
        DW_FORM_UDATA,
        0,
        0,
        4,
        DW_TAG_MEMBER,
        0,
        DW_AT_NAME,
        DW_FORM_STRP,
        DW_AT_DATA_MEMBER_LOCATION,
        DW_FORM_UDATA,
        0,
        0,
        0,
    ];
    let strs = b"goid\0".to_vec();
    fn uleb(out: &mut Vec<u8>, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }
    let mut dies = Vec::new();
    dies.push(1);
    string(&mut dies, "runtime");
    // gobuf at g.sched with sp first; stack at g.stack = 0.
    let sched = o.sched_sp;
    let mut members = vec![
        ("stack", 0),
        ("m", o.m),
        ("sched", sched),
        ("atomicstatus", o.atomicstatus),
        ("waitreason", o.waitreason),
        ("gopc", o.gopc),
        ("startpc", o.startpc),
    ];
    if let Some(p) = o.parent_goid {
        members.push(("parentGoid", p));
    }
    let structs: [(&str, Vec<(&str, u64)>); 4] = [
        (
            "runtime.stack",
            vec![("lo", o.stack_lo), ("hi", o.stack_hi)],
        ),
        (
            "runtime.gobuf",
            vec![
                ("sp", 0),
                ("pc", o.sched_pc.wrapping_sub(sched)),
                ("bp", o.sched_bp.wrapping_sub(sched)),
            ],
        ),
        ("runtime.m", vec![("curg", o.m_curg)]),
        ("runtime.g", members),
    ];
    for (name, fields) in structs {
        dies.push(2);
        string(&mut dies, name);
        uleb(&mut dies, 512);
        if name == "runtime.g" {
            dies.push(4);
            dies.extend(0u32.to_le_bytes()); // "goid" in .debug_str
            uleb(&mut dies, o.goid);
        }
        for (field, off) in fields {
            dies.push(3);
            string(&mut dies, field);
            uleb(&mut dies, off);
        }
        dies.push(0);
    }
    dies.push(0);
    let mut info = Vec::new();
    info.extend(((2 + 4 + 1 + dies.len()) as u32).to_le_bytes());
    info.extend(4u16.to_le_bytes());
    info.extend(0u32.to_le_bytes());
    info.push(8);
    info.extend_from_slice(&dies);
    (abbrev, strs, info)
}

/// Input of the `dwarf` target (`harness::DWARF_SECTIONS` in order): `.debug_abbrev`,
/// `.debug_str` and an empty `.debug_line_str`, each as a u32 LE length and its bytes, then
/// `.debug_info`.
pub fn dwarf_input(abbrev: &[u8], strs: &[u8], info: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in [abbrev, strs, &[]] {
        out.extend((s.len() as u32).to_le_bytes());
        out.extend_from_slice(s);
    }
    out.extend_from_slice(info);
    out
}

/// A small ELF executable that `GoBinary::from_bytes` reads like the real binary `p`: the
/// kept functions' code in `.text`, their cut-down `.gopclntab`, the real `.go.buildinfo`,
/// inline trees in `.rodata`, a `runtime.firstmoduledata` in `.noptrdata` holding the
/// text base, `minpc` and `gofunc`, and, with `dwarf`, DWARF with the real `g` offsets.
pub fn mini_binary(p: &Parts, dwarf: bool) -> Option<Vec<u8>> {
    const EHDR: usize = 64;
    const PHDR: usize = 56;
    const SHDR: usize = 64;
    let align = |out: &mut Vec<u8>, to: usize| out.resize(out.len().div_ceil(to) * to, 0);
    let (minpc_at, text_at, gofunc_at) = parts::moduledata_offsets(p.minor())?;

    let mut out = vec![0u8; EHDR + 3 * PHDR];
    align(&mut out, 64);
    let text_off = out.len();
    let text = MINI_BASE + text_off as u64;
    // A zero text base in the real header stays zero: the module data must give it.
    let header_text = if p.header_text_start() == 0 { 0 } else { text };
    let shrunk = p.shrink(WANTED, header_text)?;
    let functions = p.bin.functions();
    for &(i, entry, len) in &shrunk.funcs {
        // Functab order is entry order, which is `functions()` order.
        let code = p.bin.code(functions.get(i)?)?;
        out.resize(text_off + entry as usize, 0xcc);
        out.extend_from_slice(code.get(..len as usize)?);
    }
    let text_end = out.len();

    align(&mut out, 32);
    let pcln_off = out.len();
    out.extend_from_slice(&shrunk.tab);
    align(&mut out, 16);
    let bi_off = out.len();
    out.extend_from_slice(p.buildinfo);
    align(&mut out, 8);
    let rodata_off = out.len();
    out.extend_from_slice(&shrunk.funcdata);
    let ro_end = out.len();

    align(&mut out, 8);
    let md_off = out.len();
    out.resize(md_off + gofunc_at.max(text_at) as usize + 8, 0);
    put64(&mut out, md_off, MINI_BASE + pcln_off as u64);
    put64(
        &mut out,
        md_off + minpc_at as usize,
        text + shrunk.funcs.first().map_or(0, |f| u64::from(f.1)),
    );
    put64(&mut out, md_off + text_at as usize, text);
    put64(
        &mut out,
        md_off + gofunc_at as usize,
        MINI_BASE + rodata_off as u64,
    );
    let md_end = out.len();

    // Sections: (name, type, flags, offset, size).
    let mut sections: Vec<(&str, u32, u64, usize, usize)> = vec![
        ("", 0, 0, 0, 0),
        (".text", 1, 6, text_off, text_end - text_off),
        (".gopclntab", 1, 2, pcln_off, shrunk.tab.len()),
        (".go.buildinfo", 1, 3, bi_off, p.buildinfo.len()),
        (".rodata", 1, 2, rodata_off, ro_end - rodata_off),
        (".noptrdata", 1, 3, md_off, md_end - md_off),
    ];
    if dwarf {
        let (o, _) = p.bin.g_offsets();
        let (abbrev, strs, info) = dwarf_sections(o);
        for (name, bytes) in [
            (".debug_abbrev", abbrev),
            (".debug_str", strs),
            (".debug_info", info),
        ] {
            sections.push((name, 1, 0, out.len(), bytes.len()));
            out.extend_from_slice(&bytes);
        }
    }
    let mut shstrtab = vec![0u8];
    let mut name_offs = Vec::new();
    for (name, ..) in &sections {
        name_offs.push(if name.is_empty() {
            0
        } else {
            let at = shstrtab.len();
            shstrtab.extend_from_slice(name.as_bytes());
            shstrtab.push(0);
            at
        });
    }
    name_offs.push(shstrtab.len());
    shstrtab.extend_from_slice(b".shstrtab\0");
    sections.push((".shstrtab", 3, 0, out.len(), shstrtab.len()));
    out.extend_from_slice(&shstrtab);
    align(&mut out, 8);
    let shoff = out.len();
    for (k, &(_, sh_type, flags, off, size)) in sections.iter().enumerate() {
        let mut sh = [0u8; SHDR];
        put32(&mut sh, 0, name_offs[k] as u32);
        put32(&mut sh, 4, sh_type);
        put64(&mut sh, 8, flags);
        let loaded = flags & 2 != 0;
        put64(&mut sh, 16, if loaded { MINI_BASE + off as u64 } else { 0 });
        put64(&mut sh, 24, off as u64);
        put64(&mut sh, 32, size as u64);
        put64(&mut sh, 48, 1);
        out.extend_from_slice(&sh);
    }

    // ELF header: 64-bit, little-endian, executable, x86-64.
    out[..16].copy_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    out[16..18].copy_from_slice(&2u16.to_le_bytes());
    out[18..20].copy_from_slice(&62u16.to_le_bytes());
    put32(&mut out, 20, 1);
    put64(&mut out, 24, text);
    put64(&mut out, 32, EHDR as u64);
    put64(&mut out, 40, shoff as u64);
    for (at, v) in [
        (52, EHDR),
        (54, PHDR),
        (56, 3),
        (58, SHDR),
        (60, sections.len()),
        (62, sections.len() - 1),
    ] {
        out[at..at + 2].copy_from_slice(&(v as u16).to_le_bytes());
    }
    // PT_LOAD: text (R+X) from the file start, read-only data, then the module data (RW).
    for (k, (flags, start, end)) in [
        (5u32, 0, text_end),
        (4, pcln_off, ro_end),
        (6, md_off, md_end),
    ]
    .into_iter()
    .enumerate()
    {
        let at = EHDR + k * PHDR;
        put32(&mut out, at, 1);
        put32(&mut out, at + 4, flags);
        put64(&mut out, at + 8, start as u64);
        put64(&mut out, at + 16, MINI_BASE + start as u64);
        put64(&mut out, at + 24, MINI_BASE + start as u64);
        put64(&mut out, at + 32, (end - start) as u64);
        put64(&mut out, at + 40, (end - start) as u64);
        put64(&mut out, at + 48, 4096);
    }
    Some(out)
}

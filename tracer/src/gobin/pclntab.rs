//! `.gopclntab`: the runtime's function table. It survives stripping and gives every
//! function's name, address range and line tables.
//!
//! Layout (Go 1.18+, runtime/symtab.go `pcHeader`): magic u32, two zero bytes, minLC
//! (instruction quantum), ptrSize, then eight pointer-sized words: nfunc, nfiles, textStart,
//! and the offsets (from the header) of funcnametab, cutab, filetab, pctab and pclntab.
//! pclntab starts with the functab: nfunc+1 pairs of u32 (entry offset from textStart,
//! offset of the `_func` record from pclntab); the last pair's entry is the end of text.

use super::Function;
use super::bytes::{cstr_at, to_usize, u32_at, u64_at, uvarint_at};

/// Go 1.18 and 1.19.
pub(crate) const MAGIC_118: u32 = 0xffff_fff0;
/// Go 1.20 and later (`_func` gained `startLine`; the fields we read did not move).
pub(crate) const MAGIC_120: u32 = 0xffff_fff1;

const HEADER_LEN: usize = 8 + 8 * 8;

// Offsets inside `_func` (runtime2.go), identical in the 1.18 and 1.20 layouts.
const FUNC_ENTRY_OFF: usize = 0;
const FUNC_NAME_OFF: usize = 4;
const FUNC_PCSP: usize = 16;
const FUNC_PCFILE: usize = 20;
const FUNC_PCLN: usize = 24;
const FUNC_NPCDATA: usize = 28;
const FUNC_CU_OFFSET: usize = 32;
/// Length of `_func`'s fixed part (pcdata offsets follow, then funcdata offsets): 1.18 ends
/// with funcID, flag, pad, nfuncdata at 36..40; 1.20 inserts `startLine` before them.
const FUNC_FIXED_118: usize = 40;
const FUNC_FIXED_120: usize = 44;

#[derive(Debug, Clone)]
pub(crate) struct Header {
    /// Go 1.20+ layout (`_func.startLine`, 16-byte inline tree entries).
    pub go120: bool,
    quantum: u64,
    nfunc: usize,
    /// As stored; zero in PIE binaries, whose text address is only known through relocations.
    pub text_start: u64,
    funcname: usize,
    cutab: usize,
    filetab: usize,
    pctab: usize,
    pcln: usize,
}

/// Why a header was rejected: a magic we don't know, or a plain inconsistency.
pub(crate) enum HeaderError {
    Magic(u32),
    Bad(String),
}

pub(crate) fn parse_header(tab: &[u8]) -> Result<Header, HeaderError> {
    let bad = |what: &str| HeaderError::Bad(format!(".gopclntab header: {what}"));
    let magic = u32_at(tab, 0).ok_or_else(|| bad("truncated"))?;
    if magic != MAGIC_118 && magic != MAGIC_120 {
        return Err(HeaderError::Magic(magic));
    }
    if tab.len() < HEADER_LEN || tab[4] != 0 || tab[5] != 0 || tab[7] != 8 {
        return Err(bad("not a 64-bit little-endian table"));
    }
    let word = |i: usize| u64_at(tab, 8 + 8 * i).and_then(to_usize);
    let (Some(nfunc), Some(funcname), Some(cutab), Some(filetab), Some(pctab), Some(pcln)) =
        (word(0), word(3), word(4), word(5), word(6), word(7))
    else {
        return Err(bad("offsets out of range"));
    };
    let header = Header {
        go120: magic == MAGIC_120,
        quantum: u64::from(tab[6]),
        nfunc,
        text_start: u64_at(tab, 24).unwrap_or(0),
        funcname,
        cutab,
        filetab,
        pctab,
        pcln,
    };
    let functab_end = nfunc
        .checked_add(1)
        .and_then(|n| n.checked_mul(8))
        .and_then(|n| n.checked_add(pcln));
    if [funcname, cutab, filetab, pctab, pcln]
        .iter()
        .any(|&o| o < HEADER_LEN || o >= tab.len())
        || functab_end.is_none_or(|end| end > tab.len())
        || header.quantum == 0
    {
        return Err(bad("offsets point outside the table"));
    }
    Ok(header)
}

impl Header {
    /// The functab entry offset of function `i` (i == nfunc gives the end of the last one).
    fn entry_off(&self, tab: &[u8], i: usize) -> Option<u32> {
        u32_at(tab, self.pcln + i * 8)
    }

    fn func_record(&self, tab: &[u8], i: usize) -> Option<usize> {
        let off = to_usize(u64::from(u32_at(tab, self.pcln + i * 8 + 4)?))?;
        self.pcln.checked_add(off)
    }

    /// The entry offset of the first function: PIE text-start recovery checks against it.
    pub fn first_entry_off(&self, tab: &[u8]) -> Option<u32> {
        self.entry_off(tab, 0)
    }

    /// Every function, in functab order (sorted by entry, which we verify).
    pub fn functions(&self, tab: &[u8], text_start: u64) -> Result<Vec<Function>, String> {
        let mut out = Vec::with_capacity(self.nfunc);
        for i in 0..self.nfunc {
            let corrupt = |what: &str| format!(".gopclntab function #{i}: {what}");
            let (Some(start), Some(end), Some(rec)) = (
                self.entry_off(tab, i),
                self.entry_off(tab, i + 1),
                self.func_record(tab, i),
            ) else {
                return Err(corrupt("functab out of bounds"));
            };
            if u32_at(tab, rec + FUNC_ENTRY_OFF) != Some(start) || end < start {
                return Err(corrupt("functab and _func disagree"));
            }
            let name_off = u32_at(tab, rec + FUNC_NAME_OFF).ok_or_else(|| corrupt("truncated"))?;
            let name = self
                .funcname
                .checked_add(name_off as usize)
                .and_then(|at| cstr_at(tab, at))
                .ok_or_else(|| corrupt("bad name offset"))?;
            let (Some(entry), Some(end)) = (
                text_start.checked_add(u64::from(start)),
                text_start.checked_add(u64::from(end)),
            ) else {
                return Err(corrupt("address overflow"));
            };
            out.push(Function {
                name: name.to_owned(),
                entry,
                end,
                index: i,
                record: rec,
            });
        }
        Ok(out)
    }

    /// (file, line) at `pc` inside `f`, from its pcfile and pcln tables.
    pub fn source_line(&self, tab: &[u8], f: &Function, pc: u64) -> Option<(String, u32)> {
        let pcfile = u32_at(tab, f.record + FUNC_PCFILE)?;
        let pcln = u32_at(tab, f.record + FUNC_PCLN)?;
        let cu = u32_at(tab, f.record + FUNC_CU_OFFSET)?;
        let file_index = self.pc_value(tab, pcfile, f.entry, pc)?;
        let line = self.pc_value(tab, pcln, f.entry, pc)?;
        let cu_slot = u64::from(cu).checked_add(u64::try_from(file_index).ok()?)?;
        let file_off = u32_at(
            tab,
            self.cutab.checked_add(to_usize(cu_slot)?.checked_mul(4)?)?,
        )?;
        if file_off == u32::MAX {
            return None;
        }
        let file = cstr_at(tab, self.filetab.checked_add(file_off as usize)?)?;
        Some((file.to_owned(), u32::try_from(line).ok()?))
    }

    fn func_fixed(&self) -> usize {
        if self.go120 {
            FUNC_FIXED_120
        } else {
            FUNC_FIXED_118
        }
    }

    /// Value of PCDATA table `index` at `pc` in `f` (-1 where the table has no entry).
    pub fn pcdata_value(&self, tab: &[u8], f: &Function, index: u32, pc: u64) -> Option<i32> {
        let npcdata = u32_at(tab, f.record + FUNC_NPCDATA)?;
        if index >= npcdata {
            return None;
        }
        let off = u32_at(tab, f.record + self.func_fixed() + 4 * index as usize)?;
        self.pc_value(tab, off, f.entry, pc)
    }

    /// Offset (from `moduledata.gofunc`) of FUNCDATA `index` of `f`, if it has one.
    pub fn funcdata_offset(&self, tab: &[u8], f: &Function, index: u8) -> Option<u32> {
        let fixed = self.func_fixed();
        let nfuncdata = *tab.get(f.record + fixed - 1)?;
        if index >= nfuncdata {
            return None;
        }
        let npcdata = u32_at(tab, f.record + FUNC_NPCDATA)? as usize;
        let at = f.record + fixed + 4 * npcdata + 4 * usize::from(index);
        u32_at(tab, at).filter(|&v| v != u32::MAX)
    }

    /// `f`'s funcID (`_func.funcID`): the runtime's class of special functions, the
    /// highest of which marks autogenerated wrappers.
    pub fn func_id(&self, tab: &[u8], f: &Function) -> Option<u8> {
        // funcID follows cuOffset in 1.18; 1.20 put startLine (4 bytes) between them.
        let at = f.record + FUNC_CU_OFFSET + if self.go120 { 8 } else { 4 };
        tab.get(at).copied()
    }

    /// A function name by its offset in funcnametab (inline tree entries refer to names so).
    pub fn name_at<'t>(&self, tab: &'t [u8], nameoff: u32) -> Option<&'t str> {
        cstr_at(tab, self.funcname.checked_add(nameoff as usize)?)
    }

    /// The PCs inside `f` where its stack-pointer delta (the pcsp table) changes: the
    /// compiler's own record of where its SP-moving instructions end, so each must be an
    /// instruction boundary of the code as we decode it. Empty for frameless functions.
    pub fn sp_change_pcs(&self, tab: &[u8], f: &Function) -> Option<Vec<u64>> {
        let table = u32_at(tab, f.record + FUNC_PCSP)?;
        if table == 0 {
            return Some(Vec::new());
        }
        let mut p = self.pctab.checked_add(table as usize)?;
        let mut pc = f.entry;
        let mut out = Vec::new();
        let mut first = true;
        // Bounded: a table has at most one pair per byte of code.
        for _ in 0..=(f.end - f.entry) {
            let (uv, n) = uvarint_at(tab, p)?;
            if uv == 0 && !first {
                return Some(out);
            }
            p += n;
            let (pc_delta, n) = uvarint_at(tab, p)?;
            p += n;
            if !first && pc < f.end {
                out.push(pc);
            }
            first = false;
            pc = pc.checked_add(pc_delta.checked_mul(self.quantum)?)?;
        }
        None
    }

    /// `f`'s stack-pointer delta at `pc` (runtime.funcspdelta).
    pub fn sp_delta(&self, tab: &[u8], f: &Function, pc: u64) -> Option<i32> {
        let table = u32_at(tab, f.record + FUNC_PCSP)?;
        self.pc_value(tab, table, f.entry, pc)
    }

    /// Evaluates a pc-value table (runtime.pcvalue): a sequence of (zig-zag value delta,
    /// pc delta / quantum) varint pairs, starting from value -1 at the function entry.
    fn pc_value(&self, tab: &[u8], table: u32, entry: u64, target: u64) -> Option<i32> {
        if table == 0 {
            return None;
        }
        let mut p = self.pctab.checked_add(table as usize)?;
        let mut value: i32 = -1;
        let mut pc = entry;
        let mut first = true;
        loop {
            let (uv, n) = uvarint_at(tab, p)?;
            if uv == 0 && !first {
                return None;
            }
            first = false;
            p += n;
            let delta = ((uv >> 1) as i64) ^ -((uv & 1) as i64);
            value = value.wrapping_add(delta as i32);
            let (pc_delta, n) = uvarint_at(tab, p)?;
            p += n;
            pc = pc.checked_add(pc_delta.checked_mul(self.quantum)?)?;
            if target < pc {
                return Some(value);
            }
        }
    }
}

//! The parsers inside [`GoBinary`](super::GoBinary), each on its own bytes: a `.gopclntab`,
//! a `.go.buildinfo`, one function's machine code, DWARF sections. The fuzz targets
//! (`fuzz/`) call these, because parsing a whole 2 MB binary per input allows tens of inputs
//! a second and the parts alone thousands; `GoBinary` runs the same code.

use std::borrow::Cow;

use super::pclntab::{self, Header, HeaderError};
use super::{
    BuildInfo, Function, GOffsets, InlineFrame, MutexSite, ProbePlan, SourceLine, buildinfo,
    disasm, dwarf, inline, moduledata, runtime, sync_sites,
};

/// A `.gopclntab` section's bytes (Go 1.18-1.19 or 1.20+ format) and its parsed header.
pub struct PclnTable<'t> {
    tab: &'t [u8],
    header: Header,
}

impl<'t> PclnTable<'t> {
    pub fn parse(tab: &'t [u8]) -> Result<PclnTable<'t>, String> {
        match pclntab::parse_header(tab) {
            Ok(header) => Ok(PclnTable { tab, header }),
            Err(HeaderError::Magic(m)) => Err(format!("unknown .gopclntab magic {m:#010x}")),
            Err(HeaderError::Bad(what)) => Err(what),
        }
    }

    /// The text base stored in the header: zero in PIE binaries and from Go 1.26 on.
    pub fn text_start(&self) -> u64 {
        self.header.text_start
    }

    /// Every function, with entry offsets taken from `text_start`.
    pub fn functions(&self, text_start: u64) -> Result<Vec<Function>, String> {
        self.header.functions(self.tab, text_start)
    }

    /// File and line at `pc` in `f`, a function of this table.
    pub fn source_line(&self, f: &Function, pc: u64) -> Option<SourceLine> {
        if pc < f.entry || pc >= f.end {
            return None;
        }
        let (file, line) = self.header.source_line(self.tab, f, pc)?;
        Some(SourceLine { file, line })
    }

    /// Where `f`'s stack-pointer delta changes (what probe plans check decoding against).
    pub fn sp_change_pcs(&self, f: &Function) -> Option<Vec<u64>> {
        self.header.sp_change_pcs(self.tab, f)
    }

    /// The logical frames at `pc` in `f`, innermost first, with inline trees read from
    /// `funcdata`: the bytes at `moduledata.gofunc`, which FUNCDATA offsets start from.
    pub fn frames_at(&self, f: &Function, pc: u64, funcdata: &[u8]) -> Vec<InlineFrame> {
        let tree = self
            .header
            .funcdata_offset(self.tab, f, inline::FUNCDATA_INL_TREE);
        // No wrapper funcID: these bytes are not a whole build to find it in.
        inline::frames(&self.header, self.tab, f, pc, None, |ix| {
            let (size, _, _) = inline::entry_layout(self.header.go120);
            let at = u64::from(tree?).checked_add(ix.checked_mul(size)?)?;
            let at = usize::try_from(at).ok()?;
            let bytes = funcdata.get(at..at.checked_add(size as usize)?)?;
            inline::inlined_call(&self.header, bytes)
        })
    }
}

/// Parses a `.go.buildinfo` section. `read_vaddr(addr, len)` resolves the pointers of the
/// pre-1.18 format.
pub fn parse_build_info(
    section: &[u8],
    read_vaddr: &dyn Fn(u64, u64) -> Option<Vec<u8>>,
) -> Result<BuildInfo, String> {
    buildinfo::parse(section, read_vaddr)
}

/// Whether `data` starts like a `.go.buildinfo` (the scan of files without section headers).
pub fn build_info_plausible(data: &[u8]) -> bool {
    buildinfo::plausible(data)
}

/// Entry and RET probe addresses for a function whose code is `code`, loaded at `entry`.
pub fn probe_plan(code: &[u8], entry: u64) -> Result<ProbePlan, String> {
    disasm::plan(code, entry)
}

/// Start address and length of every instruction of `code` decoded from `entry`.
pub fn instruction_starts(code: &[u8], entry: u64) -> Vec<(u64, usize)> {
    disasm::instruction_starts(code, entry)
}

/// Why the kernel would refuse a uprobe on the instruction at the start of `code`.
pub fn kernel_refusal(code: &[u8], ip: u64) -> Option<String> {
    disasm::kernel_refusal(code, ip)
}

/// The mutex sites in one function's code, with `inner_func(pc)` naming the innermost
/// logical function at a PC (what the inline tree says in a real binary).
pub fn mutex_sites(
    function: &str,
    code: &[u8],
    entry: u64,
    inner_func: impl Fn(u64) -> Option<String>,
) -> Vec<MutexSite> {
    sync_sites::sites_in(function, code, entry, inner_func)
}

/// What the runtime-global search finds in one function's code: the `allgs` slice load
/// (as in `runtime.forEachG`) and the most frequent LEA target (as `runtime.semtable` is in
/// `runtime.semacquire1`).
pub fn runtime_globals(code: &[u8], entry: u64) -> (Option<u64>, Option<u64>) {
    use iced_x86::Mnemonic;
    let movs = runtime::rip_operands(code, entry, |m| m == Mnemonic::Mov);
    let leas = runtime::rip_operands(code, entry, |m| m == Mnemonic::Lea);
    (runtime::slice_load(&movs), runtime::most_frequent(&leas))
}

/// The runtime's `g` offsets from DWARF sections given by name (`.debug_info`,
/// `.debug_abbrev`, `.debug_str`, ...; empty when absent), as for an unstripped binary.
pub fn dwarf_g_offsets<'d>(
    section: impl Fn(&str) -> Option<&'d [u8]>,
) -> Result<Option<GOffsets>, String> {
    dwarf::g_offsets_from(|name| Ok(Cow::Borrowed(section(name).unwrap_or_default())))
}

/// Offsets in `runtime.moduledata` of `minpc`, `text` and `gofunc` for Go 1.`minor`: what
/// a synthetic binary must hold to be read like a real one (the fuzz seeds build some).
pub fn moduledata_offsets(minor: u32) -> Option<(u64, u64, u64)> {
    let gofunc = runtime::moduledata_gofunc(minor)?;
    Some((moduledata::MINPC, moduledata::TEXT, gofunc))
}

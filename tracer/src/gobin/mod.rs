//! Reading Go executables (linux/amd64, usually stripped) for uprobe placement: functions and
//! line tables from `.gopclntab`, the Go version and module info from `.go.buildinfo`,
//! probe addresses from disassembly, and runtime struct offsets from DWARF or a
//! per-version table. Nothing here relies on `.symtab`, which `-ldflags "-s -w"` removes.

mod buildinfo;
mod bytes;
mod disasm;
mod dwarf;
mod elf;
mod inline;
mod moduledata;
pub mod parts;
mod pclntab;
mod runtime;
mod sync_sites;
mod versions;

#[cfg(test)]
mod tests;

use std::ops::Range;
use std::path::{Path, PathBuf};

pub use buildinfo::{BuildInfo, Module};
pub use disasm::{EntryKind, ProbePlan};
pub use inline::InlineFrame;
pub use runtime::{
    G_SCAN_BIT, RuntimeLayout, SEMAROOT_TREAP, SEMTAB_SIZE, SEMTAB_STRIDE, SudogOffsets,
    status_is_dead, status_name,
};
pub use sync_sites::{CasResult, MutexSite, SiteAddress, SiteKind, SyncFunctions, package_of};
pub use versions::{GOffsets, SUPPORTED_GO, parse_go_version};

use bytes::to_usize;
use elf::{ElfInfo, ElfProblem};

/// One function of `.gopclntab`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// Full Go name, e.g. `main.(*T).M`, `net/http.(*Server).Serve`, `main.main.func1`.
    pub name: String,
    /// Virtual address of the first instruction.
    pub entry: u64,
    /// Virtual address just past the function (the next function's entry; includes padding).
    pub end: u64,
    /// Position in [`GoBinary::functions`] (and in the functab).
    pub index: usize,
    /// Offset of the function's `_func` record inside the pclntab.
    record: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLine {
    pub file: String,
    pub line: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSource {
    /// Read from the binary's own DWARF.
    Dwarf,
    /// From the built-in per-Go-version table (stripped binaries).
    Table,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoidOffset {
    /// Offset of `goid` in the runtime's `g` struct (read it at `R14 + offset`).
    pub offset: u64,
    pub source: OffsetSource,
}

#[derive(Debug, thiserror::Error)]
pub enum GoBinError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not an ELF executable; only Linux Go binaries can be traced", path.display())]
    NotElf { path: PathBuf },
    #[error("{} is not a linux/amd64 binary ({found}); only amd64 is supported", path.display())]
    NotAmd64 { path: PathBuf, found: String },
    #[error("{} is not a Go binary (no .gopclntab / .go.buildinfo section)", path.display())]
    NotGo { path: PathBuf },
    #[error(
        "{} has no Go build information (.go.buildinfo), so it predates go1.13; supported: go1.{} through go1.{}",
        path.display(), SUPPORTED_GO.0, SUPPORTED_GO.1
    )]
    NoBuildInfo { path: PathBuf },
    #[error(
        "{} was built with {version}; supported: go1.{} through go1.{}",
        path.display(), SUPPORTED_GO.0, SUPPORTED_GO.1
    )]
    UnsupportedGoVersion { path: PathBuf, version: String },
    #[error(
        "{} has a function table of an unknown format (.gopclntab magic {magic:#010x}); supported: go1.{} through go1.{}",
        path.display(), SUPPORTED_GO.0, SUPPORTED_GO.1
    )]
    UnsupportedPclntab { path: PathBuf, magic: u32 },
    #[error("{} looks like a damaged or unusual Go binary ({what}); check that the file is complete", path.display())]
    Corrupt { path: PathBuf, what: String },
}

/// The descriptor of the first ELF note in `bytes` (namesz, descsz, type, name padded
/// to 4, descriptor), if it is all there.
fn note_desc(bytes: &[u8]) -> Option<&[u8]> {
    let word = |at: usize| {
        let b = bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes(b.try_into().ok()?) as usize)
    };
    let (namesz, descsz) = (word(0)?, word(4)?);
    let start = 12usize.checked_add(namesz.checked_add(3)? & !3)?;
    bytes.get(start..start.checked_add(descsz)?)
}

/// A Go executable, read into memory and indexed.
pub struct GoBinary {
    path: PathBuf,
    data: Vec<u8>,
    elf: ElfInfo,
    build_info: BuildInfo,
    /// File range of the pclntab.
    pclntab: Range<usize>,
    header: pclntab::Header,
    functions: Vec<Function>,
    g_offsets: GOffsets,
    offsets_source: OffsetSource,
    dwarf_problem: Option<String>,
    /// Address of `runtime.firstmoduledata`, found on first use.
    moduledata: std::sync::OnceLock<Option<u64>>,
    /// `moduledata.gofunc`, found on first use.
    gofunc: std::sync::OnceLock<Option<u64>>,
}

impl GoBinary {
    pub fn open(path: &Path) -> Result<GoBinary, GoBinError> {
        let data = std::fs::read(path).map_err(|source| GoBinError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(path, data)
    }

    /// Parses a binary already in memory; `path` is used in error messages only.
    pub fn from_bytes(path: &Path, data: Vec<u8>) -> Result<GoBinary, GoBinError> {
        let path = path.to_owned();
        let corrupt = |what: String| GoBinError::Corrupt {
            path: path.clone(),
            what,
        };
        let (file, elf) = elf::parse(&data).map_err(|p| match p {
            ElfProblem::NotElf => GoBinError::NotElf { path: path.clone() },
            ElfProblem::NotAmd64(found) => GoBinError::NotAmd64 {
                path: path.clone(),
                found,
            },
            ElfProblem::Malformed(what) => corrupt(what),
        })?;

        let buildinfo_bytes = elf
            .section_data(&data, ".go.buildinfo")
            .map(|(_, b)| b)
            .or_else(|| scan_buildinfo(&data));
        let pcln_location = locate_pclntab(&data, &elf);
        let Some(buildinfo_bytes) = buildinfo_bytes else {
            return Err(match pcln_location {
                Some(_) => GoBinError::NoBuildInfo { path },
                None => GoBinError::NotGo { path },
            });
        };
        let read_vaddr = |addr: u64, len: u64| elf.read_vaddr(&data, addr, len).map(<[u8]>::to_vec);
        let build_info = buildinfo::parse(buildinfo_bytes, &read_vaddr).map_err(corrupt)?;
        let unsupported = || GoBinError::UnsupportedGoVersion {
            path: path.clone(),
            version: build_info.go_version.clone(),
        };
        let version = parse_go_version(&build_info.go_version).ok_or_else(unsupported)?;
        if !versions::is_supported(version) {
            return Err(unsupported());
        }

        let pclntab = match pcln_location {
            Some(PclnLocation::Found(range)) => range,
            Some(PclnLocation::BadMagic(magic)) => {
                return Err(GoBinError::UnsupportedPclntab { path, magic });
            }
            None => {
                return Err(corrupt(
                    "no .gopclntab section and no function table found in the file".into(),
                ));
            }
        };
        let tab = &data[pclntab.clone()];
        let header = match pclntab::parse_header(tab) {
            Ok(h) => h,
            Err(pclntab::HeaderError::Magic(magic)) => {
                return Err(GoBinError::UnsupportedPclntab { path, magic });
            }
            Err(pclntab::HeaderError::Bad(what)) => return Err(corrupt(what)),
        };
        // Functab entries are offsets from `runtime.text`. Go 1.18-1.25 also store it in
        // the pclntab header (zero in PIE, where only a relocation carries it); Go 1.26
        // stopped. It is not the `.text` section start when the external linker put C code
        // first (cgo, `-race`), so that is never assumed: the module data says it.
        let tab_vaddr = elf.vaddr_of_offset(pclntab.start as u64);
        let first_off = header.first_entry_off(tab).map(u64::from);
        let found = match (header.text_start, tab_vaddr, first_off) {
            (0, Some(tab_vaddr), Some(first_off)) => {
                moduledata::find(&data, &elf, tab_vaddr, first_off)
            }
            _ => None,
        };
        let text_start = match (header.text_start, &found) {
            (0, Some(md)) => md.text,
            (0, None) => {
                return Err(corrupt(
                    "the module data giving the text base (runtime.text) was not found, so no function address can be trusted".into(),
                ));
            }
            (stored, _) => stored,
        };
        let mut functions = header.functions(tab, text_start).map_err(corrupt)?;
        if !functions.is_sorted_by_key(|f| f.entry) {
            functions.sort_by_key(|f| f.entry);
            for (i, f) in functions.iter_mut().enumerate() {
                f.index = i;
            }
        }

        // DWARF is authoritative when present; the table covers stripped binaries.
        let from_dwarf = if elf.has_dwarf {
            dwarf::g_offsets(&file)
        } else {
            Ok(None)
        };
        let (g_offsets, offsets_source, dwarf_problem) = match from_dwarf {
            Ok(Some(o)) => (o, OffsetSource::Dwarf, None),
            other => {
                let problem = match other {
                    Err(e) => Some(e),
                    _ if elf.has_dwarf => Some("runtime.g not found in DWARF".to_owned()),
                    _ => None,
                };
                let table = versions::g_offsets_for(version.1).ok_or_else(unsupported)?;
                (table, OffsetSource::Table, problem)
            }
        };
        drop(file);

        Ok(GoBinary {
            path,
            data,
            elf,
            build_info,
            pclntab,
            header,
            functions,
            g_offsets,
            offsets_source,
            dwarf_problem,
            // Found already when the header had no text base; otherwise on first use.
            moduledata: match found {
                Some(md) => std::sync::OnceLock::from(Some(md.addr)),
                None => Default::default(),
            },
            gofunc: Default::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The Go version that built the binary, e.g. `go1.26.6`.
    pub fn go_version(&self) -> &str {
        &self.build_info.go_version
    }

    /// The Go build ID (`.note.go.buildid`), else the GNU build ID in hex: what tells
    /// two builds apart, e.g. in a recording's header.
    pub fn build_id(&self) -> Option<String> {
        let note = |name: &str| {
            let (_, bytes) = self.elf.section_data(&self.data, name)?;
            note_desc(bytes)
        };
        if let Some(desc) = note(".note.go.buildid") {
            return std::str::from_utf8(desc).ok().map(str::to_owned);
        }
        let desc = note(".note.gnu.build-id")?;
        Some(desc.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn build_info(&self) -> &BuildInfo {
        &self.build_info
    }

    /// True when the binary has neither a symbol table nor DWARF (`-ldflags "-s -w"`).
    pub fn stripped(&self) -> bool {
        !self.elf.has_symtab && !self.elf.has_dwarf
    }

    pub fn has_dwarf(&self) -> bool {
        self.elf.has_dwarf
    }

    /// Why DWARF was present but not used for the runtime offsets, if it was not.
    pub fn dwarf_problem(&self) -> Option<&str> {
        self.dwarf_problem.as_deref()
    }

    pub fn goid_offset(&self) -> GoidOffset {
        GoidOffset {
            offset: self.g_offsets.goid,
            source: self.offsets_source,
        }
    }

    /// Offsets of `g` / `m` fields (for goroutine walkers), and where they came from.
    pub fn g_offsets(&self) -> (&GOffsets, OffsetSource) {
        (&self.g_offsets, self.offsets_source)
    }

    /// Every function of `.gopclntab`, sorted by entry address.
    pub fn functions(&self) -> &[Function] {
        &self.functions
    }

    /// Functions whose full name matches `re` (unanchored unless the pattern anchors).
    pub fn find_functions(&self, re: &regex::Regex) -> Vec<&Function> {
        self.functions
            .iter()
            .filter(|f| re.is_match(&f.name))
            .collect()
    }

    /// The function containing `pc`.
    pub fn function_at(&self, pc: u64) -> Option<&Function> {
        let i = self.functions.partition_point(|f| f.entry <= pc);
        let f = self.functions.get(i.checked_sub(1)?)?;
        (pc < f.end).then_some(f)
    }

    /// Source file and line of `pc` in `f` (the outermost function; inlining is ignored).
    pub fn source_line(&self, f: &Function, pc: u64) -> Option<SourceLine> {
        if !self.owns(f) || pc < f.entry || pc >= f.end {
            return None;
        }
        let (file, line) = self
            .header
            .source_line(&self.data[self.pclntab.clone()], f, pc)?;
        Some(SourceLine { file, line })
    }

    /// Lowest PT_LOAD address (0 for PIE), to relate link-time addresses to the process's.
    pub fn lowest_load_vaddr(&self) -> u64 {
        self.elf.loads.iter().map(|l| l.vaddr).min().unwrap_or(0)
    }

    /// File offset of a virtual address (what uprobes attach by).
    pub fn file_offset(&self, vaddr: u64) -> Option<u64> {
        self.elf.file_offset(vaddr)
    }

    /// Entry and return probe addresses for `f`, from disassembling its body.
    pub fn probe_plan(&self, f: &Function) -> Result<ProbePlan, GoBinError> {
        let corrupt = |what: String| GoBinError::Corrupt {
            path: self.path.clone(),
            what: format!("function {}: {what}", f.name),
        };
        if !self.owns(f) {
            return Err(corrupt("not a function of this binary".into()));
        }
        let code = self
            .elf
            .read_vaddr(&self.data, f.entry, f.end - f.entry)
            .ok_or_else(|| corrupt("its code is not in the file".into()))?;
        self.check_decoding(f, code).map_err(corrupt)?;
        disasm::plan(code, f.entry).map_err(|e| corrupt(e.to_owned()))
    }

    /// Proves that decoding `f` from its entry agrees with the compiler: every PC where
    /// the function's stack-pointer delta changes (its pcsp table) must start an
    /// instruction of our decoding. A wrong text base or entry fails this, so no probe is
    /// planned on a misaligned instruction stream.
    fn check_decoding(&self, f: &Function, code: &[u8]) -> Result<(), String> {
        let tab = &self.data[self.pclntab.clone()];
        let changes = self
            .header
            .sp_change_pcs(tab, f)
            .ok_or("its stack-pointer table is unreadable")?;
        if changes.is_empty() {
            return Ok(());
        }
        let starts = disasm::instruction_starts(code, f.entry);
        match changes
            .iter()
            .find(|&&pc| starts.binary_search_by_key(&pc, |&(ip, _)| ip).is_err())
        {
            Some(pc) => Err(format!(
                "decoding from its entry {:#x} does not reach {pc:#x}, where its stack-pointer table says an instruction starts; refusing to probe it",
                f.entry
            )),
            None => Ok(()),
        }
    }

    /// The bytes of the instruction at `vaddr` of `f`, if a probe may go there: `vaddr`
    /// starts an instruction of `f` decoded from its entry, and the kernel accepts uprobes
    /// on that instruction. Otherwise why not.
    pub fn probe_site(&self, f: &Function, vaddr: u64) -> Result<&[u8], String> {
        let boundary = || format!("{vaddr:#x} is not an instruction boundary of {}", f.name);
        if !self.owns(f) || vaddr < f.entry || vaddr >= f.end {
            return Err(boundary());
        }
        let code = self
            .elf
            .read_vaddr(&self.data, f.entry, f.end - f.entry)
            .ok_or_else(boundary)?;
        let starts = disasm::instruction_starts(code, f.entry);
        let i = starts
            .binary_search_by_key(&vaddr, |&(ip, _)| ip)
            .map_err(|_| boundary())?;
        let at = to_usize(vaddr - f.entry).ok_or_else(boundary)?;
        let bytes = code.get(at..at + starts[i].1).ok_or_else(boundary)?;
        match disasm::kernel_refusal(bytes, vaddr) {
            Some(reason) => Err(reason),
            None => Ok(bytes),
        }
    }

    fn owns(&self, f: &Function) -> bool {
        self.functions.get(f.index) == Some(f)
    }
}

enum PclnLocation {
    Found(Range<usize>),
    BadMagic(u32),
}

/// The `.gopclntab` section, or (for links that merged it into another section, e.g.
/// .data.rel.ro) the first place in the file holding a valid pcHeader.
fn locate_pclntab(data: &[u8], elf: &ElfInfo) -> Option<PclnLocation> {
    if let Some((s, bytes)) = elf.section_data(data, ".gopclntab") {
        let start = to_usize(s.file?.0)?;
        return Some(match pclntab::parse_header(bytes) {
            Err(pclntab::HeaderError::Magic(m)) => PclnLocation::BadMagic(m),
            _ => PclnLocation::Found(start..start + bytes.len()),
        });
    }
    for magic in [pclntab::MAGIC_120, pclntab::MAGIC_118] {
        let mut pattern = magic.to_le_bytes().to_vec();
        pattern.extend_from_slice(&[0, 0, 1, 8]); // pads, quantum 1, pointer size 8
        let mut from = 0;
        while let Some(pos) = find(&data[from..], &pattern) {
            let start = from + pos;
            if pclntab::parse_header(&data[start..]).is_ok() {
                return Some(PclnLocation::Found(start..data.len()));
            }
            from = start + 1;
        }
    }
    None
}

/// Go's linker aligns .go.buildinfo to 16; look for a plausible header there when the
/// section header is gone.
fn scan_buildinfo(data: &[u8]) -> Option<&[u8]> {
    (0..data.len())
        .step_by(16)
        .map(|i| &data[i..])
        .find(|candidate| buildinfo::plausible(candidate))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

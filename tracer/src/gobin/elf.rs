//! The parts of the ELF container the rest of the module needs: sections by name, PT_LOAD
//! segments for address ↔ file-offset mapping, and dynamic relocations (PIE binaries leave
//! some addresses as zero in the file and only record them as R_X86_64_RELATIVE addends).

use object::elf;
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader, SectionHeader};
use object::{Endianness, Object, ObjectSection};

use super::bytes::{to_usize, u64_at};

#[derive(Debug, Clone)]
pub(crate) struct Section {
    pub name: String,
    /// File range, `None` for SHT_NOBITS sections (.bss).
    pub file: Option<(u64, u64)>,
    pub sh_type: u32,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    pub vaddr: u64,
    pub offset: u64,
    pub filesz: u64,
}

#[derive(Debug)]
pub(crate) struct ElfInfo {
    pub sections: Vec<Section>,
    pub loads: Vec<Load>,
    pub has_symtab: bool,
    pub has_dwarf: bool,
}

/// Why an ELF file cannot be used; mapped to `GoBinError` by the caller, which knows the path.
pub(crate) enum ElfProblem {
    NotElf,
    NotAmd64(String),
    Malformed(String),
}

pub(crate) fn parse(data: &[u8]) -> Result<(ElfFile64<'_, Endianness>, ElfInfo), ElfProblem> {
    match object::FileKind::parse(data) {
        Ok(object::FileKind::Elf64) => {}
        Ok(object::FileKind::Elf32) => return Err(ElfProblem::NotAmd64("32-bit ELF".into())),
        _ => return Err(ElfProblem::NotElf),
    }
    let file = ElfFile64::<Endianness>::parse(data)
        .map_err(|e| ElfProblem::Malformed(format!("ELF headers: {e}")))?;
    let endian = file.endian();
    let machine = file.elf_header().e_machine(endian);
    if machine != elf::EM_X86_64 || !file.is_little_endian() {
        return Err(ElfProblem::NotAmd64(format!("ELF machine {machine}")));
    }

    let loads = file
        .elf_program_headers()
        .iter()
        .filter(|ph| ph.p_type(endian) == elf::PT_LOAD)
        .map(|ph| Load {
            vaddr: ph.p_vaddr(endian),
            offset: ph.p_offset(endian),
            filesz: ph.p_filesz(endian),
        })
        .collect();

    let sections: Vec<Section> = file
        .sections()
        .map(|s| Section {
            name: s.name().unwrap_or("").to_owned(),
            file: s.file_range(),
            sh_type: s.elf_section_header().sh_type(endian),
        })
        .collect();
    let has_symtab = sections
        .iter()
        .any(|s| s.sh_type == elf::SHT_SYMTAB && s.file.is_some_and(|(_, size)| size > 0));
    let has_dwarf = sections
        .iter()
        .any(|s| s.name == ".debug_info" || s.name == ".zdebug_info");
    Ok((
        file,
        ElfInfo {
            sections,
            loads,
            has_symtab,
            has_dwarf,
        },
    ))
}

impl ElfInfo {
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The bytes of a section that has file contents.
    pub fn section_data<'d>(&self, data: &'d [u8], name: &str) -> Option<(&Section, &'d [u8])> {
        let s = self.section(name)?;
        let (off, size) = s.file?;
        let bytes = data.get(to_usize(off)?..to_usize(off.checked_add(size)?)?)?;
        Some((s, bytes))
    }

    /// File offset of a virtual address, via the PT_LOAD segment that maps it from the file.
    pub fn file_offset(&self, vaddr: u64) -> Option<u64> {
        self.loads.iter().find_map(|l| {
            let rel = vaddr.checked_sub(l.vaddr)?;
            (rel < l.filesz).then(|| l.offset.checked_add(rel))?
        })
    }

    /// Inverse of [`Self::file_offset`].
    pub fn vaddr_of_offset(&self, offset: u64) -> Option<u64> {
        self.loads.iter().find_map(|l| {
            let rel = offset.checked_sub(l.offset)?;
            (rel < l.filesz).then(|| l.vaddr.checked_add(rel))?
        })
    }

    /// `len` bytes at a virtual address, all inside one segment's file contents.
    pub fn read_vaddr<'d>(&self, data: &'d [u8], vaddr: u64, len: u64) -> Option<&'d [u8]> {
        let start = self.file_offset(vaddr)?;
        let end = start.checked_add(len)?;
        // The last byte must map through the same segment, i.e. be contiguous in the file.
        if len > 0 && self.file_offset(vaddr.checked_add(len - 1)?)? != end - 1 {
            return None;
        }
        data.get(to_usize(start)?..to_usize(end)?)
    }

    /// All R_X86_64_RELATIVE relocations as (address, addend), from every SHT_RELA section.
    pub fn relative_relocs(&self, data: &[u8]) -> Vec<(u64, u64)> {
        const RELA_SIZE: usize = 24;
        let mut out = Vec::new();
        for s in self.sections.iter().filter(|s| s.sh_type == elf::SHT_RELA) {
            let Some((off, size)) = s.file else { continue };
            let (Some(off), Some(size)) = (to_usize(off), to_usize(size)) else {
                continue;
            };
            let Some(table) = data.get(off..off.saturating_add(size)) else {
                continue;
            };
            for entry in table.chunks_exact(RELA_SIZE) {
                let (Some(r_offset), Some(r_info), Some(r_addend)) =
                    (u64_at(entry, 0), u64_at(entry, 8), u64_at(entry, 16))
                else {
                    continue;
                };
                if r_info & 0xffff_ffff == u64::from(elf::R_X86_64_RELATIVE) {
                    out.push((r_offset, r_addend));
                }
            }
        }
        out
    }
}

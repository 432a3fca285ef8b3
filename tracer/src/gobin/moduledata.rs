//! `runtime.firstmoduledata`: the runtime's own record of the module, which holds the text
//! base (`runtime.text`) and the base of FUNCDATA offsets (`gofunc`). Stripped binaries
//! have no symbol for it: it is the linked word that points at the pclntab header and
//! whose `text` plus the first function's offset equals its `minpc`.
use std::collections::HashMap;

use super::bytes::{to_usize, u64_at};
use super::elf::ElfInfo;

/// Offsets of `minpc` and `text` in runtime.moduledata (after the pcHeader pointer, six
/// slices and findfunctab): unchanged from Go 1.16 through 1.27.
pub(crate) const MINPC: u64 = 160;
pub(crate) const TEXT: u64 = 176;

#[derive(Clone, Copy)]
pub(crate) struct ModuleData {
    /// Address of `runtime.firstmoduledata`.
    pub addr: u64,
    /// `runtime.text`: the address functab entry offsets are relative to.
    pub text: u64,
}

/// Finds the module data for the pclntab at `tab_vaddr` whose first function sits at
/// `first_off` from the text base. Every loaded word is a candidate (section headers may
/// be stripped too), and for PIE every relocation whose addend is the table.
pub(crate) fn find(
    data: &[u8],
    elf: &ElfInfo,
    tab_vaddr: u64,
    first_off: u64,
) -> Option<ModuleData> {
    #[cfg(fuzzing)]
    return unchanged_file::find(data, elf, tab_vaddr, first_off);
    #[cfg(not(fuzzing))]
    search(data, elf, tab_vaddr, first_off)
}

fn search(data: &[u8], elf: &ElfInfo, tab_vaddr: u64, first_off: u64) -> Option<ModuleData> {
    let relocs: HashMap<u64, u64> = elf.relative_relocs(data).into_iter().collect();
    let word_at = |at: u64| in_file(data, elf, at).or_else(|| relocs.get(&at).copied());
    let mut candidates: Vec<u64> = Vec::new();
    // memmem rather than a compare per word: a 100 MB binary has 12 million words. Each
    // search resumes one byte after the last match, so overlapping matches are all seen.
    let finder = memchr::memmem::Finder::new(&tab_vaddr.to_le_bytes()).into_owned();
    for load in &elf.loads {
        let (Some(start), Some(len)) = (to_usize(load.offset), to_usize(load.filesz)) else {
            continue;
        };
        let Some(bytes) = data.get(start..start.saturating_add(len)) else {
            continue;
        };
        let mut from = 0;
        while let Some(pos) = bytes.get(from..).and_then(|rest| finder.find(rest)) {
            let at = from + pos;
            if let Some(addr) = load.vaddr.checked_add(at as u64)
                && addr % 8 == 0
            {
                candidates.push(addr);
            }
            from = at + 1;
        }
    }
    candidates.extend(
        relocs
            .iter()
            .filter(|&(_, &addend)| addend == tab_vaddr)
            .map(|(&at, _)| at),
    );
    candidates.into_iter().find_map(|addr| {
        let text = word_at(addr.checked_add(TEXT)?)?;
        let minpc = word_at(addr.checked_add(MINPC)?)?;
        (text.checked_add(first_off)? == minpc).then_some(ModuleData { addr, text })
    })
}

/// Fuzzing builds only: `gobin_patch` searches every input's whole file twice (parsing,
/// then the runtime layout), and most patches leave the file as a recent input had it
/// (a no-op patch, or the same bytes again). The answer is a function of the file's bytes
/// and the two values sought (`ElfInfo` is parsed from the same bytes), so for a file
/// identical to one of the last few searched, that search's answer is reused.
#[cfg(fuzzing)]
mod unchanged_file {
    use std::sync::Mutex;

    use super::*;

    /// Files kept with their answers, most recently used first (one per base and a few).
    const KEPT: usize = 12;
    type Kept = (Vec<u8>, u64, u64, Option<ModuleData>);
    static RECENT: Mutex<Vec<Kept>> = Mutex::new(Vec::new());

    pub(super) fn find(
        data: &[u8],
        elf: &ElfInfo,
        tab_vaddr: u64,
        first_off: u64,
    ) -> Option<ModuleData> {
        let mut recent = RECENT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = recent
            .iter()
            .position(|k| (k.1, k.2) == (tab_vaddr, first_off) && k.0 == data)
        {
            let hit = recent.remove(i);
            let answer = hit.3;
            recent.insert(0, hit);
            return answer;
        }
        let answer = search(data, elf, tab_vaddr, first_off);
        recent.insert(0, (data.to_vec(), tab_vaddr, first_off, answer));
        recent.truncate(KEPT);
        answer
    }
}

/// A pointer-sized word as linked: read from the file, or for PIE binaries (which store
/// zero there) from its R_X86_64_RELATIVE addend.
pub(crate) fn linked_word(data: &[u8], elf: &ElfInfo, at: u64) -> Option<u64> {
    in_file(data, elf, at).or_else(|| {
        elf.relative_relocs(data)
            .into_iter()
            .find(|&(a, _)| a == at)
            .map(|(_, addend)| addend)
    })
}

fn in_file(data: &[u8], elf: &ElfInfo, at: u64) -> Option<u64> {
    elf.read_vaddr(data, at, 8)
        .and_then(|b| u64_at(b, 0))
        .filter(|&v| v != 0)
}

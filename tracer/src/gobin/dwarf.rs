//! Runtime struct offsets from DWARF, for unstripped binaries: the authoritative source,
//! and what the per-version table in `versions.rs` is checked against.

use std::borrow::Cow;
use std::collections::HashMap;

use object::read::elf::ElfFile64;
use object::{Endianness, Object, ObjectSection};

use super::versions::GOffsets;

/// Struct types whose members we need, as Go names them in DWARF.
const STRUCTS: [&str; 4] = ["runtime.g", "runtime.m", "runtime.gobuf", "runtime.stack"];

/// Member offsets of the [`STRUCTS`], keyed by struct then member name.
type Members = HashMap<&'static str, HashMap<String, u64>>;

/// Reads the offsets; `Ok(None)` when a struct or field is missing from the DWARF.
pub(crate) fn g_offsets(file: &ElfFile64<'_, Endianness>) -> Result<Option<GOffsets>, String> {
    #[cfg(fuzzing)]
    return unchanged_dwarf::g_offsets(file, read_g_offsets);
    #[cfg(not(fuzzing))]
    read_g_offsets(file)
}

fn read_g_offsets(file: &ElfFile64<'_, Endianness>) -> Result<Option<GOffsets>, String> {
    // Go compresses DWARF (SHF_COMPRESSED, zlib); object inflates it.
    g_offsets_from(|name| match file.section_by_name(name) {
        Some(s) => {
            plausible_size(&s).map_err(|e| format!("cannot read {name}: {e}"))?;
            #[cfg(fuzzing)]
            let data = unchanged_dwarf::uncompressed_data(&s);
            #[cfg(not(fuzzing))]
            let data = s.uncompressed_data();
            data.map_err(|e| format!("cannot read {name}: {e}"))
        }
        None => Ok(Cow::Borrowed(&[])),
    })
}

/// The most a compressor packs into one byte: DEFLATE's longest match (258 bytes) per
/// quarter byte, about 1,032 to 1; DWARF compresses 3 to 10 to 1.
const MAX_RATIO: u64 = 1032;
/// Far above any DWARF section of a real Go server (tens of MiB for the largest).
const MAX_SECTION_BYTES: u64 = 512 << 20;

/// Refuses a compressed section whose stated size no compressor could produce from its
/// bytes, before anything is allocated for it: the size is read from the file, and a
/// damaged one (the fuzzer found 4 GB) would otherwise be allocated and zeroed whole.
fn plausible_size(s: &object::read::elf::ElfSection64<'_, '_, Endianness>) -> Result<(), String> {
    let c = s.compressed_data().map_err(|e| e.to_string())?;
    if c.format == object::CompressionFormat::None {
        return Ok(());
    }
    let stated = c.uncompressed_size;
    let most = (c.data.len() as u64)
        .saturating_mul(MAX_RATIO)
        .saturating_add(4096);
    if stated > most || stated > MAX_SECTION_BYTES {
        return Err(format!(
            "it says it inflates to {stated} bytes from {} (at most {} is possible)",
            c.data.len(),
            most.min(MAX_SECTION_BYTES)
        ));
    }
    Ok(())
}

/// Fuzzing builds only: the fuzzer patches real binaries (`gobin_patch`), most often
/// outside their DWARF, whose inflating and walking then cost more than everything else.
/// The answer for DWARF sections identical to those of one of the last few calls (names,
/// compression and bytes, as `object` hands them to `read_g_offsets`) is that call's
/// answer: the unpatched base's stays among them while patched ones come and go.
#[cfg(fuzzing)]
mod unchanged_dwarf {
    use std::sync::Mutex;

    use super::*;

    /// Every DWARF section's name, compression format, size and raw bytes, in table order.
    fn key(file: &ElfFile64<'_, Endianness>) -> Option<Vec<u8>> {
        let mut key = Vec::new();
        for s in file.sections() {
            let name = s.name_bytes().ok()?;
            if !(name.starts_with(b".debug") || name.starts_with(b".zdebug")) {
                continue;
            }
            let c = s.compressed_data().ok()?;
            key.extend_from_slice(name);
            key.push(0);
            key.extend_from_slice(format!("{:?}", c.format).as_bytes());
            key.extend_from_slice(&c.uncompressed_size.to_le_bytes());
            key.extend_from_slice(&(c.data.len() as u64).to_le_bytes());
            key.extend_from_slice(c.data);
        }
        Some(key)
    }

    type Answer = Result<Option<GOffsets>, String>;
    /// Answers kept, most recently used first.
    const KEPT: usize = 4;
    static RECENT: Mutex<Vec<(Vec<u8>, Answer)>> = Mutex::new(Vec::new());

    /// Inflated sections kept (a Go binary has about ten DWARF sections).
    const SECTIONS_KEPT: usize = 16;
    type Inflated = (Vec<u8>, std::sync::Arc<Vec<u8>>);
    static INFLATED: Mutex<Vec<Inflated>> = Mutex::new(Vec::new());

    /// `s.uncompressed_data()`, reusing the inflated bytes of an identical compressed
    /// section (format, size and bytes): a patch in one section leaves the others whole.
    pub(super) fn uncompressed_data<'d>(
        s: &object::read::elf::ElfSection64<'d, '_, Endianness>,
    ) -> object::Result<Cow<'d, [u8]>> {
        let c = s.compressed_data()?;
        if c.format == object::CompressionFormat::None {
            return s.uncompressed_data();
        }
        let mut key = format!("{:?}", c.format).into_bytes();
        key.extend_from_slice(&c.uncompressed_size.to_le_bytes());
        key.extend_from_slice(c.data);
        let mut kept = INFLATED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = kept.iter().position(|(k, _)| *k == key) {
            let hit = kept.remove(i);
            let bytes = hit.1.to_vec();
            kept.insert(0, hit);
            return Ok(Cow::Owned(bytes));
        }
        let bytes = s.uncompressed_data()?.into_owned();
        kept.insert(0, (key, std::sync::Arc::new(bytes.clone())));
        kept.truncate(SECTIONS_KEPT);
        Ok(Cow::Owned(bytes))
    }

    pub(super) fn g_offsets(
        file: &ElfFile64<'_, Endianness>,
        read: impl Fn(&ElfFile64<'_, Endianness>) -> Answer,
    ) -> Answer {
        let Some(key) = key(file) else {
            return read(file);
        };
        let mut recent = RECENT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = recent.iter().position(|(k, _)| *k == key) {
            let hit = recent.remove(i);
            let answer = hit.1.clone();
            recent.insert(0, hit);
            return answer;
        }
        let answer = read(file);
        recent.insert(0, (key, answer.clone()));
        recent.truncate(KEPT);
        answer
    }
}

/// The same from the DWARF sections `section(name)` gives (empty when absent).
pub(crate) fn g_offsets_from<'d>(
    section: impl Fn(&str) -> Result<Cow<'d, [u8]>, String>,
) -> Result<Option<GOffsets>, String> {
    let members = struct_members(section)?;
    let get = |s: &str, m: &str| members.get(s).and_then(|f| f.get(m)).copied();
    let g = |m: &str| get("runtime.g", m);
    let offsets = (|| {
        let sched = g("sched")?;
        let stack = g("stack")?;
        Some(GOffsets {
            goid: g("goid")?,
            stack_lo: stack + get("runtime.stack", "lo")?,
            stack_hi: stack + get("runtime.stack", "hi")?,
            m: g("m")?,
            sched_sp: sched + get("runtime.gobuf", "sp")?,
            sched_pc: sched + get("runtime.gobuf", "pc")?,
            sched_bp: sched + get("runtime.gobuf", "bp")?,
            atomicstatus: g("atomicstatus")?,
            waitreason: g("waitreason")?,
            gopc: g("gopc")?,
            startpc: g("startpc")?,
            parent_goid: g("parentGoid"),
            m_curg: get("runtime.m", "curg")?,
        })
    })();
    Ok(offsets)
}

fn struct_members<'d>(
    section: impl Fn(&str) -> Result<Cow<'d, [u8]>, String>,
) -> Result<Members, String> {
    let sections = gimli::DwarfSections::load(|id| section(id.name()))?;
    let dwarf = sections.borrow(|s| gimli::EndianSlice::new(s, gimli::LittleEndian));
    let err = |e: gimli::Error| format!("DWARF: {e}");

    let mut found = Members::new();
    let mut units = dwarf.units();
    while let Some(header) = units.next().map_err(err)? {
        let unit = dwarf.unit(header).map_err(err)?;
        let mut cursor = unit.entries();
        // The struct whose members we are reading, and its depth in the DIE tree.
        let mut current: Option<(&'static str, isize)> = None;
        while let Some(entry) = cursor.next_dfs().map_err(err)? {
            let depth = entry.depth();
            if current.is_some_and(|(_, d)| depth <= d) {
                current = None;
            }
            let name = || -> Option<String> {
                let v = entry.attr_value(gimli::DW_AT_name)?;
                let s = dwarf.attr_string(&unit, v).ok()?;
                Some(String::from_utf8_lossy(s.slice()).into_owned())
            };
            match entry.tag() {
                gimli::DW_TAG_structure_type if current.is_none() => {
                    let Some(n) = name() else { continue };
                    if let Some(&s) = STRUCTS.iter().find(|&&s| s == n)
                        && !found.contains_key(s)
                    {
                        found.insert(s, HashMap::new());
                        current = Some((s, depth));
                    }
                }
                gimli::DW_TAG_member => {
                    let Some((s, d)) = current else { continue };
                    let loc = entry
                        .attr(gimli::DW_AT_data_member_location)
                        .and_then(|a| a.udata_value());
                    if let (true, Some(n), Some(loc)) = (depth == d + 1, name(), loc) {
                        found.entry(s).or_default().insert(n, loc);
                    }
                }
                _ => {}
            }
        }
        if found.len() == STRUCTS.len() {
            break;
        }
    }
    Ok(found)
}

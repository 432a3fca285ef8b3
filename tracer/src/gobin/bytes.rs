//! Bounds-checked little-endian reads. Every parser in this module goes through these so that
//! a truncated or corrupt binary yields `None` (turned into an error) instead of a panic.

pub(crate) fn u32_at(data: &[u8], off: usize) -> Option<u32> {
    let b = data.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

pub(crate) fn u64_at(data: &[u8], off: usize) -> Option<u64> {
    let b = data.get(off..off.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

/// A NUL-terminated string starting at `off`.
pub(crate) fn cstr_at(data: &[u8], off: usize) -> Option<&str> {
    let rest = data.get(off..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&rest[..len]).ok()
}

/// Go's `encoding/binary.Uvarint`: returns the value and the number of bytes read.
pub(crate) fn uvarint_at(data: &[u8], off: usize) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in data.get(off..)?.iter().take(10).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Converts a 64-bit value read from the file into an index, failing on 32-bit overflow.
pub(crate) fn to_usize(v: u64) -> Option<usize> {
    usize::try_from(v).ok()
}

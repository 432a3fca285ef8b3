//! Ring records kept as their difference from the previous record of their kind (format 5).
//!
//! Consecutive records of one probe differ in a few 8-byte words (the time, the goroutine,
//! some registers and captured values) and repeat the rest (headers, zeroed string bytes).
//! LZ4 found those repeats too, but as a dozen short matches per record, each a sequence
//! the reader decodes one by one: most of a replay's block decoding. So the recorder
//! keeps, per block, the last record of each kind (header, kind and probe id) in a slot,
//! and writes a record either whole with its slot (`kept`) or as the slot, a mask of the
//! words that changed and how each changed, in as few bytes as it takes (`delta`). The
//! reader keeps the same slots and rebuilds each record in place: a few words written
//! instead of a dozen LZ4 sequences decoded. Slots start empty at every block, so a block
//! is read on its own (as the end record is).

use std::collections::HashMap;

/// Words in a record a slot holds at most: one bit each in a delta's mask.
const MAX_WORDS: usize = 64;
const MAX_BYTES: usize = MAX_WORDS * 8;
/// Slots per block; records of further kinds are written plain.
const SLOTS: usize = 256;
/// A delta's slot byte and mask.
const DELTA_HEAD: usize = 1 + 8;

/// The last record of each slot, as the writer and the reader both see it.
struct Slots {
    records: Vec<[u8; MAX_BYTES]>,
    /// Each record's length; 0: the slot is empty.
    lens: Vec<u16>,
}

impl Slots {
    fn new() -> Slots {
        Slots {
            records: vec![[0; MAX_BYTES]; SLOTS],
            lens: vec![0; SLOTS],
        }
    }

    fn clear(&mut self) {
        self.lens.fill(0);
    }

    fn record(&self, slot: usize) -> &[u8] {
        &self.records[slot][..usize::from(self.lens[slot])]
    }

    fn keep(&mut self, slot: usize, record: &[u8]) {
        self.records[slot][..record.len()].copy_from_slice(record);
        self.lens[slot] = record.len() as u16;
    }
}

fn word(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().expect("8 bytes"))
}

/// Whether a record can be kept in a slot: whole words, at most [`MAX_WORDS`].
fn fits(record: &[u8]) -> bool {
    !record.is_empty() && record.len() <= MAX_BYTES && record.len().is_multiple_of(8)
}

/// How the writer stores one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// As it is (a record no slot can hold).
    Plain,
    /// Whole, with the slot it now fills.
    Kept,
    /// As its difference from its slot's record.
    Delta,
}

/// The writer's side: the slots and which kind of record is in which.
pub struct Encoder {
    slots: Slots,
    /// A record's first 16 bytes (header, kind, probe id) and length, to its slot.
    kinds: HashMap<([u8; 16], usize), u8>,
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder {
            slots: Slots::new(),
            kinds: HashMap::new(),
        }
    }

    /// A new block begins: nothing is kept.
    pub fn clear(&mut self) {
        self.slots.clear();
        self.kinds.clear();
    }

    /// Writes what stands for `record` in the block into `out` (emptied first) and says how.
    pub fn encode(&mut self, record: &[u8], out: &mut Vec<u8>) -> Stored {
        out.clear();
        let Some(key) = record
            .first_chunk::<16>()
            .filter(|_| fits(record))
            .map(|head| (*head, record.len()))
        else {
            out.extend_from_slice(record);
            return Stored::Plain;
        };
        let next = self.kinds.len();
        let slot = match self.kinds.get(&key) {
            Some(&slot) => usize::from(slot),
            None if next < SLOTS => {
                self.kinds.insert(key, next as u8);
                out.push(next as u8);
                out.extend_from_slice(record);
                self.slots.keep(next, record);
                return Stored::Kept;
            }
            None => {
                out.extend_from_slice(record);
                return Stored::Plain;
            }
        };
        out.push(slot as u8);
        out.extend_from_slice(&[0; 8]);
        let mut mask = 0u64;
        let previous = &mut self.slots.records[slot][..record.len()];
        for (i, (new, old)) in record
            .chunks_exact(8)
            .zip(previous.chunks_exact_mut(8))
            .enumerate()
        {
            let change = word(new) ^ word(old);
            if change != 0 {
                mask |= 1 << i;
                let n = 8 - change.leading_zeros() as usize / 8;
                out.push(n as u8);
                out.extend_from_slice(&change.to_le_bytes()[..n]);
                old.copy_from_slice(new);
            }
        }
        out[1..DELTA_HEAD].copy_from_slice(&mask.to_le_bytes());
        Stored::Delta
    }
}

/// The reader's side: the slots, rebuilt from the items of one block.
pub struct Decoder {
    slots: Slots,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            slots: Slots::new(),
        }
    }

    /// A new block begins: nothing is kept.
    pub fn clear(&mut self) {
        self.slots.clear();
    }

    /// A `kept` item: the slot byte, then the record, which fills the slot.
    pub fn kept(&mut self, item: &[u8]) -> Result<&[u8], String> {
        let Some((&slot, record)) = item.split_first().filter(|(_, r)| fits(r)) else {
            return Err(format!("a kept record of {} bytes", item.len()));
        };
        let slot = usize::from(slot);
        self.slots.keep(slot, record);
        Ok(self.slots.record(slot))
    }

    /// A `delta` item: the slot byte, the mask of changed words (u64 LE, bit i for word i),
    /// then for each changed word in order how it changed: a count n (1 to 8) and the low n
    /// bytes (LE) of the old word XOR the new (the bytes above are the same). The slot's
    /// record becomes the one rebuilt.
    pub fn delta(&mut self, item: &[u8]) -> Result<&[u8], String> {
        let Some(head) = item.first_chunk::<DELTA_HEAD>() else {
            return Err("a record's difference without its mask".into());
        };
        let slot = usize::from(head[0]);
        let mut mask = u64::from_le_bytes(head[1..].try_into().expect("8 bytes"));
        let len = usize::from(self.slots.lens[slot]);
        if len == 0 {
            return Err(format!(
                "a record's difference from slot {slot}, which is empty"
            ));
        }
        // A difference that does not fit empties the slot (what was changed before it is no
        // record): a later difference from it is an error too, never a misread.
        self.slots.lens[slot] = 0;
        let misfit = || format!("a record's difference that does not fit its {len}-byte record");
        if mask.checked_shr((len / 8) as u32).unwrap_or(0) != 0 {
            return Err(misfit());
        }
        let record = &mut self.slots.records[slot];
        let mut at = DELTA_HEAD;
        while mask != 0 {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let Some(&n) = item.get(at) else {
                return Err(misfit());
            };
            let n = usize::from(n);
            let end = at + 1 + n;
            if n.wrapping_sub(1) >= 8 || end > item.len() {
                return Err(misfit());
            }
            // The eight bytes that end with the change's (there are always eight: the head
            // is nine), shifted down to its n.
            let change = word(&item[end - 8..end]) >> (64 - 8 * n);
            at = end;
            let old = &mut record[(i % MAX_WORDS) * 8..][..8];
            old.copy_from_slice(&(word(old) ^ change).to_le_bytes());
        }
        if at != item.len() {
            return Err(misfit());
        }
        self.slots.lens[slot] = len as u16;
        Ok(self.slots.record(slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records of a few kinds, each word changing now and then.
    fn records() -> Vec<Vec<u8>> {
        (0..3000u64)
            .map(|i| {
                let kind = i % 5;
                let words = [15, 63, 48, 64, 2][kind as usize];
                (0..words)
                    .flat_map(|w: u64| {
                        let v = match w {
                            0 | 1 => kind,
                            w if (i + w) % 7 == 0 => i * w,
                            w => w,
                        };
                        v.to_le_bytes()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn records_come_back_from_their_differences() {
        let (mut enc, mut dec) = (Encoder::new(), Decoder::new());
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for (i, r) in records().iter().enumerate() {
            if i == 1500 {
                enc.clear();
                dec.clear();
            }
            let stored = enc.encode(r, &mut out);
            seen.push(stored);
            let back = match stored {
                Stored::Plain => out.clone(),
                Stored::Kept => dec.kept(&out).unwrap().to_vec(),
                Stored::Delta => {
                    assert!(out.len() < r.len() / 2 + DELTA_HEAD, "{i}");
                    dec.delta(&out).unwrap().to_vec()
                }
            };
            assert_eq!(&back, r, "{i}");
        }
        assert!(seen.contains(&Stored::Delta));
        // Not whole words, or too long: plain.
        assert_eq!(enc.encode(&[1; 20], &mut out), Stored::Plain);
        assert_eq!(enc.encode(&[1; 520], &mut out), Stored::Plain);
        assert_eq!(out, [1; 520]);
    }

    #[test]
    fn a_difference_that_does_not_fit_is_an_error() {
        let mut dec = Decoder::new();
        // The slot, the mask, then each change as its count and bytes.
        let delta = |slot: u8, mask: u64, changes: &[&[u8]]| {
            let mut d = vec![slot];
            d.extend_from_slice(&mask.to_le_bytes());
            for c in changes {
                d.push(c.len() as u8);
                d.extend_from_slice(c);
            }
            d
        };
        // An empty slot; a short item.
        assert!(dec.delta(&delta(3, 1, &[&[1]])).is_err());
        assert!(dec.delta(&[3, 1]).is_err());
        let mut kept = vec![3];
        kept.extend_from_slice(&[9; 16]);
        assert_eq!(dec.kept(&kept).unwrap(), &[9; 16]);
        // A word past the record; a mask and changes that disagree; a count of 0 or 9.
        for bad in [
            delta(3, 0b100, &[&[1]]),
            delta(3, 0b11, &[&[1]]),
            delta(3, 0b10, &[&[1], &[1]]),
            delta(3, 0b10, &[&[]]),
            delta(3, 0b10, &[&[1; 9]]),
        ] {
            assert!(dec.delta(&bad).is_err());
            // It emptied the slot: what it changed before failing is no record.
            assert!(dec.delta(&delta(3, 0b10, &[&[1]])).is_err());
            dec.kept(&kept).unwrap();
        }
        // The change's bytes are XORed into the word's lowest.
        let mut want = [9; 16];
        want[8] = 9 ^ 0x0e;
        want[9] = 9 ^ 0x01;
        assert_eq!(dec.delta(&delta(3, 0b10, &[&[0x0e, 0x01]])).unwrap(), &want);
        // A full mask on a 64-word record; a kept record of no whole words.
        let mut long = vec![4];
        long.extend_from_slice(&[1; MAX_BYTES]);
        dec.kept(&long).unwrap();
        let changes = [&[6u8; 8][..]; MAX_WORDS];
        assert_eq!(
            dec.delta(&delta(4, u64::MAX, &changes)).unwrap(),
            &[7; MAX_BYTES]
        );
        assert!(dec.kept(&[4; 10]).is_err());
        assert!(dec.kept(&[4]).is_err());
        dec.clear();
        assert!(dec.delta(&delta(3, 0b10, &[&[1]])).is_err());
    }
}

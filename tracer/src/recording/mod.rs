//! Recordings: what a live trace saw, kept so it can be read again offline.
//!
//! A file is the magic `GOTRACE\n`, the format version (u32 LE), the header's length
//! (u32 LE) and the header as JSON: what was traced and the facts the decoders need, so
//! replay needs neither the binary nor root. Then blocks, each its raw length, its
//! compressed length and the CRC-32 of its compressed bytes (u32 LE each), then an LZ4
//! block holding whole items. An item is a tag byte, a u32 LE length and its bytes: the
//! ring's records as the kernel delivered them, but with the bytes no reader looks at
//! zeroed (`tracer_common::zero_unread`: the ring's leftovers past a captured string or a
//! stack's frames, a capture record's copy of the registers); facts the live run learnt from outside its event stream (`hang
//! --watch`'s memory snapshots; each rise of the kernel's lost-event count in `cache` and
//! `funcs`), at the point it applied them; and last what only the live run could know
//! (lost events, the engine's memory at the end). Since format 5 most ring records are
//! kept as their difference from the previous record of their kind in the block (`delta`).
//! Replay feeds the records to the same decoders and models as the live run, straight from
//! each block.
mod delta;

use std::{
    fs::File,
    io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{
    probes::KernelFailures,
    profiles::{Role, SiteFact},
};

pub const MAGIC: [u8; 8] = *b"GOTRACE\n";
/// Bumped whenever a reader of the previous version would misread the file. Format 1
/// (one LZ4 frame, a development format of 2026-12-02) is refused by name. Format 3 added
/// live facts and `hang` jobs; format 4, `cache` facts (the cache's size over time,
/// goroutines' functions) and lost-event facts in `cache` and `funcs` recordings (a format 3
/// reader would call them damage); format 5, ring records kept as their difference from the
/// previous one of their kind (`delta`). A format 2, 3 or 4 file is a format 5 file without
/// them, and is read.
pub const FORMAT_VERSION: u32 = 5;
/// The oldest format this tracer reads.
pub const OLDEST_READ_VERSION: u32 = 2;

/// Item tags inside the compressed stream.
const TAG_RING_RECORD: u8 = 1;
const TAG_END: u8 = 2;
/// A fact of the live run (format 3), as JSON.
const TAG_LIVE_FACT: u8 = 3;
/// A ring record with the slot it fills, and one as its difference from its slot's record
/// (format 5, see [`delta`]).
const TAG_RING_KEPT: u8 = 4;
const TAG_RING_DELTA: u8 = 5;
/// Bounds on what a damaged file can make the reader allocate.
const MAX_HEADER_BYTES: usize = 256 << 20;
const MAX_BLOCK_BYTES: usize = 16 << 20;
/// A block is written once this much is buffered, or when it is a second old: a killed
/// tracer, or a cut file, loses at most that. As differences (format 5) a cache record
/// takes about 55 bytes, so this is about 1,200 of them (256 KiB of format 4 held about
/// 580); a larger block gains little (its first record of each kind is kept whole).
const BLOCK_BYTES: usize = 64 << 10;
const BLOCK_AGE: std::time::Duration = std::time::Duration::from_secs(1);

/// What was traced, and how to read it again.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Header {
    pub tracer_version: String,
    /// `uname -r` of the machine that recorded.
    pub kernel: String,
    /// Layout version of the ring records (`tracer_common::EVENT_LAYOUT_VERSION`).
    pub event_layout_version: u16,
    /// CLOCK_MONOTONIC (the events' clock) and the wall clock at the start, to place
    /// event times in real time.
    pub clock: ClockBase,
    pub target: TargetFacts,
    pub job: Job,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ClockBase {
    pub monotonic_ns: u64,
    pub unix_ns: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TargetFacts {
    /// The pid as the tracer saw it.
    pub pid: u32,
    pub exe: String,
    pub build_id: Option<String>,
    pub go_version: String,
}

/// The subcommand that recorded, with what its pipeline is built from.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "subcommand", rename_all = "snake_case")]
pub enum Job {
    Funcs(FuncsJob),
    Cache(CacheJob),
    Locks(LocksJob),
    /// `hang --watch` (format 3).
    Hang(HangJob),
}

impl Job {
    pub fn subcommand(&self) -> &'static str {
        match self {
            Job::Funcs(_) => "funcs",
            Job::Cache(_) => "cache",
            Job::Locks(_) => "locks",
            Job::Hang(_) => "hang",
        }
    }
}

/// `hang --watch`: what its decoder and reports need besides the events and the facts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HangJob {
    pub threshold_ns: u64,
    /// `--own`, as given.
    pub own: Option<String>,
    /// The target's load bias, read before attaching.
    pub bias: u64,
    /// The probed fast-path Lock/Unlock sites, by probe index, each with the source place
    /// that took a lock there.
    pub sites: Vec<crate::model::watch_facts::SiteFact>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LocksJob {
    /// The engine's code line and variant when the target is one (its locks' names).
    pub line: Option<(String, String)>,
    /// Waiting stacks per lock in the summary (`--top`).
    pub top: usize,
    /// CLOCK_MONOTONIC when tracing began: human lines are times since then.
    pub since_ns: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FuncsJob {
    pub pattern: String,
    pub entry_only: bool,
    /// Function names by probe id.
    pub functions: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CacheJob {
    /// Code line and variant (`profiles::dagger::by_name`).
    pub line: String,
    pub variant: String,
    /// The first line's engine description, e.g. "dagger engine v0.21.8, code line L3 ...".
    pub engine: String,
    pub light: bool,
    #[serde(default)]
    pub explain: bool,
    /// Role of each probe id (None: not attached).
    pub roles: Vec<Option<Role>>,
    /// The call sites the decoder tells apart.
    pub sites: Vec<SiteFact>,
    /// Return addresses (link-time) of the `GetOrInitCall` calls whose returns were read
    /// in the caller; absent when they were read at its RETs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_return_sites: Option<Vec<u64>>,
}

/// What only the live run knew, written when it ended.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct End {
    pub lost_events: u64,
    pub kernel_failures: KernelFailures,
    pub tracer_cpu_ns: u64,
    /// The engine's cache size read from its memory at the end (cache).
    pub cache_entries: Option<u64>,
    /// The target's load bias (non-zero for a PIE), read live at the first hit (cache).
    #[serde(default)]
    pub load_bias: Option<u64>,
    /// Every PC the live run symbolized (locks, hang): replay has no binary.
    #[serde(default)]
    pub symbols: Vec<crate::model::goroutines::SymbolFact>,
    /// CLOCK_MONOTONIC when tracing stopped (hang: where open timeline slices end).
    #[serde(default)]
    pub stopped_ns: Option<u64>,
}

/// A recording that cannot be read, in one sentence.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot read {}: {}", path.display(), crate::output::os_error_text(source))]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a tracer recording (hint: make one with `tracer record -o FILE cache ...` or `--record FILE`)", path.display())]
    NotARecording { path: PathBuf },
    #[error("{} is a recording of format {found}, newer than this tracer reads (format {FORMAT_VERSION}) (hint: replay it with the tracer version that made it, or a newer one)", path.display())]
    NewerFormat { path: PathBuf, found: u32 },
    #[error("{} was recorded by tracer {tracer} with ring records of layout {found}; this tracer reads layout {known} (hint: replay it with tracer {tracer})", path.display())]
    EventLayout {
        path: PathBuf,
        tracer: String,
        found: u16,
        known: u16,
    },
    #[error("{} is a recording of format {found}, an older format this tracer no longer reads (hint: replay it with the tracer version that made it)", path.display())]
    OlderFormat { path: PathBuf, found: u32 },
    #[error("{} has a damaged header: {why}", path.display())]
    BadHeader { path: PathBuf, why: String },
    #[error("{} ends after {events} events without its end record (was the tracer stopped before it could finish the recording?)", path.display())]
    Truncated { path: PathBuf, events: u64 },
    #[error("{} is damaged after {events} events: {why}", path.display())]
    Damaged {
        path: PathBuf,
        events: u64,
        why: String,
    },
}

/// A recording being written: the header first, then every ring record, then the end.
pub struct Recorder {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    /// Items not yet written, and when the first of them came.
    block: Vec<u8>,
    block_since: Option<std::time::Instant>,
    compressed: Vec<u8>,
    /// Each record's kind's previous record in this block, and what stands for the record
    /// being written.
    delta: delta::Encoder,
    record: Vec<u8>,
    stored: Vec<u8>,
    /// Whether records are written as differences (a format 4 file is written without, in
    /// tests).
    deltas: bool,
    pub events: u64,
    /// The first write error: recording stops there, tracing goes on, and the end says so.
    failed: Option<io::Error>,
}

/// A recording's file, opened before anything is attached (a bad path costs nothing).
pub struct PendingRecording {
    path: PathBuf,
    file: File,
}

impl PendingRecording {
    pub fn create(path: &Path) -> anyhow::Result<PendingRecording> {
        let file = File::create(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot write the recording {}: {} (hint: {})",
                path.display(),
                crate::output::os_error_text(&e),
                crate::output::path_hint(&e)
            )
        })?;
        Ok(PendingRecording {
            path: path.to_owned(),
            file,
        })
    }

    /// Writes the header; ring records follow.
    pub fn start(self, header: &Header) -> anyhow::Result<Recorder> {
        let mut out = BufWriter::with_capacity(1 << 20, self.file);
        let json = serde_json::to_vec(header)?;
        let written = out
            .write_all(&MAGIC)
            .and_then(|()| out.write_all(&FORMAT_VERSION.to_le_bytes()))
            .and_then(|()| out.write_all(&(json.len() as u32).to_le_bytes()))
            .and_then(|()| out.write_all(&json));
        written.map_err(|e| {
            anyhow::anyhow!(
                "cannot write the recording {}: {}",
                self.path.display(),
                crate::output::os_error_text(&e)
            )
        })?;
        Ok(Recorder {
            path: self.path,
            out: Some(out),
            block: Vec::with_capacity(BLOCK_BYTES + 4096),
            block_since: None,
            compressed: Vec::new(),
            delta: delta::Encoder::new(),
            record: Vec::new(),
            stored: Vec::new(),
            deltas: true,
            events: 0,
            failed: None,
        })
    }
}

impl Recorder {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one ring record as delivered, but for the bytes no reader looks at.
    pub fn ring_record(&mut self, bytes: &[u8]) {
        self.events += 1;
        if self.out.is_none() {
            return;
        }
        if !self.deltas {
            self.item_then(TAG_RING_RECORD, bytes, tracer_common::zero_unread);
            return;
        }
        // The record's own copy, zeroed, then what stands for it in the block.
        self.record.clear();
        self.record.extend_from_slice(bytes);
        tracer_common::zero_unread(&mut self.record);
        let tag = match self.delta.encode(&self.record, &mut self.stored) {
            delta::Stored::Plain => TAG_RING_RECORD,
            delta::Stored::Kept => TAG_RING_KEPT,
            delta::Stored::Delta => TAG_RING_DELTA,
        };
        let stored = std::mem::take(&mut self.stored);
        self.item(tag, &stored);
        self.stored = stored;
    }

    /// Writes ring records whole, as format 4 did (tests of reading format 4).
    #[cfg(test)]
    fn without_deltas(mut self) -> Recorder {
        self.deltas = false;
        self
    }

    /// Appends a fact the live run applied here, between the records around it.
    pub fn live_fact(&mut self, json: &[u8]) {
        self.item(TAG_LIVE_FACT, json);
    }

    fn item(&mut self, tag: u8, bytes: &[u8]) {
        self.item_then(tag, bytes, |_| {});
    }

    /// Appends an item, then lets `edit` change its copy in the block before the block may
    /// be compressed.
    fn item_then(&mut self, tag: u8, bytes: &[u8], edit: impl FnOnce(&mut [u8])) {
        if self.out.is_none() {
            return;
        }
        self.block.push(tag);
        self.block
            .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        let at = self.block.len();
        self.block.extend_from_slice(bytes);
        edit(&mut self.block[at..]);
        self.block_since.get_or_insert_with(std::time::Instant::now);
        if self.block.len() >= BLOCK_BYTES {
            self.write_block();
        }
    }

    /// Writes what is buffered if it has waited long enough (called between drains).
    pub fn write_if_old(&mut self) {
        if self.block_since.is_some_and(|t| t.elapsed() >= BLOCK_AGE) {
            self.write_block();
            if let Some(out) = self.out.as_mut()
                && let Err(e) = out.flush()
            {
                self.fail(e);
            }
        }
    }

    fn write_block(&mut self) {
        self.block_since = None;
        let Some(out) = self.out.as_mut() else {
            return;
        };
        if self.block.is_empty() {
            return;
        }
        self.compressed.resize(
            lz4_flex::block::get_maximum_output_size(self.block.len()),
            0,
        );
        // The next block is read on its own: its records refer to none of this one.
        self.delta.clear();
        let written = lz4_flex::block::compress_into(&self.block, &mut self.compressed)
            .map_err(io::Error::other)
            .and_then(|n| {
                let bytes = &self.compressed[..n];
                out.write_all(&(self.block.len() as u32).to_le_bytes())?;
                out.write_all(&(n as u32).to_le_bytes())?;
                out.write_all(&crc32fast::hash(bytes).to_le_bytes())?;
                out.write_all(bytes)
            });
        self.block.clear();
        if let Err(e) = written {
            self.fail(e);
        }
    }

    fn fail(&mut self, e: io::Error) {
        self.failed.get_or_insert(e);
        self.out = None;
    }

    /// Writes the end and closes the file; says so if any write failed.
    pub fn finish(mut self, end: &End) -> anyhow::Result<u64> {
        let json = serde_json::to_vec(end)?;
        self.item(TAG_END, &json);
        self.write_block();
        if let Some(mut out) = self.out.take()
            && let Err(e) = out.flush()
        {
            self.fail(e);
        }
        match self.failed {
            Some(e) => anyhow::bail!(
                "the recording {} is incomplete: writing it failed: {}",
                self.path.display(),
                crate::output::os_error_text(&e)
            ),
            None => Ok(self.events),
        }
    }
}

/// The live fact `tracer cache` and `tracer funcs` record: the kernel's count of lost
/// events grew to `total`, read at `at_ns` (CLOCK_MONOTONIC, the events' clock). Replay
/// applies it where it was recorded, so the bounds that act once events were lost (calls
/// and sessions silent since a loss are closed) act as they did live. Same JSON shape as
/// `hang --watch`'s `lost` fact, plus the time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fact", rename = "lost")]
pub struct LostFact {
    pub total: u64,
    pub at_ns: u64,
}

impl LostFact {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("two numbers serialize")
    }
}

/// What feeding a recording came to.
pub struct Fed {
    /// The end record; None when the consumer stopped first.
    pub end: Option<End>,
    pub malformed: u64,
}

/// What replay is handed, in the recorded order.
pub enum Replayed<'a> {
    Event(crate::probes::Event),
    /// A fact of the live run (JSON).
    LiveFact(&'a [u8]),
}

/// What [`RecordingReader::feed`] hands over, in the recorded order.
pub enum Recorded {
    Event(crate::probes::Event),
    Lost(LostFact),
}

/// One item read back.
pub enum Item<'a> {
    /// A ring record, as the kernel delivered it.
    RingRecord(&'a [u8]),
    /// A fact of the live run, as JSON.
    LiveFact(&'a [u8]),
    End(End),
}

/// What a recording is read from: a file, or bytes in memory.
trait Input: Read + Seek + Send {}
impl<T: Read + Seek + Send> Input for T {}

/// Reads a recording back, item by item.
pub struct RecordingReader {
    pub path: PathBuf,
    pub header: Header,
    /// The file's format version.
    pub format: u32,
    input: BufReader<Box<dyn Input>>,
    compressed: Vec<u8>,
    /// The current block, and where its next item starts.
    block: Vec<u8>,
    at: usize,
    /// The previous record of each kind in this block (format 5).
    delta: delta::Decoder,
    pub events: u64,
}

impl RecordingReader {
    pub fn open(path: &Path) -> Result<RecordingReader, RecordingError> {
        let file = File::open(path).map_err(|source| RecordingError::Open {
            path: path.to_owned(),
            source,
        })?;
        Self::from_reader(path, Box::new(file))
    }

    /// A recording already in memory; `path` names it in errors.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<RecordingReader, RecordingError> {
        Self::from_reader(path, Box::new(io::Cursor::new(bytes)))
    }

    fn from_reader(path: &Path, input: Box<dyn Input>) -> Result<RecordingReader, RecordingError> {
        let mut input = BufReader::with_capacity(1 << 20, input);
        let not_one = || RecordingError::NotARecording {
            path: path.to_owned(),
        };
        let mut start = [0u8; 16];
        input.read_exact(&mut start).map_err(|_| not_one())?;
        if start[..8] != MAGIC {
            return Err(not_one());
        }
        let word = |at: usize| u32::from_le_bytes(start[at..at + 4].try_into().expect("4 bytes"));
        let version = word(8);
        if version == 0 {
            return Err(not_one());
        }
        if version < OLDEST_READ_VERSION {
            return Err(RecordingError::OlderFormat {
                path: path.to_owned(),
                found: version,
            });
        }
        if version > FORMAT_VERSION {
            return Err(RecordingError::NewerFormat {
                path: path.to_owned(),
                found: version,
            });
        }
        let bad_header = |why: String| RecordingError::BadHeader {
            path: path.to_owned(),
            why,
        };
        let len = word(12) as usize;
        if len > MAX_HEADER_BYTES {
            return Err(bad_header(format!("it claims {len} bytes")));
        }
        let mut json = vec![0; len];
        input
            .read_exact(&mut json)
            .map_err(|_| bad_header("it is cut short".into()))?;
        let header: Header =
            serde_json::from_slice(&json).map_err(|e| bad_header(e.to_string()))?;
        if header.event_layout_version != tracer_common::EVENT_LAYOUT_VERSION {
            return Err(RecordingError::EventLayout {
                path: path.to_owned(),
                tracer: header.tracer_version.clone(),
                found: header.event_layout_version,
                known: tracer_common::EVENT_LAYOUT_VERSION,
            });
        }
        Ok(RecordingReader {
            path: path.to_owned(),
            header,
            format: version,
            input,
            compressed: Vec::new(),
            block: Vec::new(),
            at: 0,
            delta: delta::Decoder::new(),
            events: 0,
        })
    }

    /// The next item. A file that ends before its end record is
    /// [`RecordingError::Truncated`].
    pub fn next_item(&mut self) -> Result<Item<'_>, RecordingError> {
        if self.at >= self.block.len() {
            self.read_block()?;
        }
        let rest = &self.block[self.at..];
        let Some((&tag, rest)) = rest.split_first() else {
            return Err(self.damaged("an empty block".into()));
        };
        let len = rest
            .get(..4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize);
        let Some(bytes) = len.and_then(|len| rest.get(4..4 + len)) else {
            return Err(self.damaged("an item runs past its block".into()));
        };
        let start = self.at + 5;
        self.at = start + bytes.len();
        match tag {
            TAG_RING_RECORD => {
                self.events += 1;
                Ok(Item::RingRecord(&self.block[start..self.at]))
            }
            TAG_RING_KEPT | TAG_RING_DELTA if self.format >= 5 => {
                self.events += 1;
                let item = &self.block[start..self.at];
                let record = if tag == TAG_RING_KEPT {
                    self.delta.kept(item)
                } else {
                    self.delta.delta(item)
                };
                match record {
                    Ok(record) => Ok(Item::RingRecord(record)),
                    Err(why) => Err(RecordingError::Damaged {
                        path: self.path.clone(),
                        events: self.events,
                        why,
                    }),
                }
            }
            TAG_LIVE_FACT if self.format >= 3 => Ok(Item::LiveFact(&self.block[start..self.at])),
            TAG_END => serde_json::from_slice(&self.block[start..self.at])
                .map(Item::End)
                .map_err(|e| self.damaged(format!("its end record: {e}"))),
            tag => Err(self.damaged(format!("an item of unknown kind {tag}"))),
        }
    }

    /// Feeds every ring record, decoded as the live reader decodes it, and every
    /// lost-event fact, in the recorded order, to `on` until the end record, or until `on`
    /// returns false (`end` is then None). Records that are no event are counted as
    /// malformed, as live. Any other live fact is damage here: only `hang --watch` and
    /// `cache` record those (`cache` replays with `feed_items`).
    pub fn feed(&mut self, mut on: impl FnMut(Recorded) -> bool) -> Result<Fed, RecordingError> {
        let subcommand = self.header.job.subcommand();
        self.feed_items(|item| match item {
            Replayed::Event(ev) => Ok(on(Recorded::Event(ev))),
            Replayed::LiveFact(json) => match serde_json::from_slice::<LostFact>(json) {
                Ok(lost) => Ok(on(Recorded::Lost(lost))),
                Err(_) => Err(format!(
                    "a live fact other than lost events, which a recording of `tracer {subcommand}` never holds"
                )),
            },
        })
    }

    /// [`feed`](Self::feed), with the live facts too, each where it was recorded. `on`
    /// returns false to stop, or says in words why an item cannot be applied.
    pub fn feed_items(
        &mut self,
        mut on: impl FnMut(Replayed<'_>) -> Result<bool, String>,
    ) -> Result<Fed, RecordingError> {
        let mut malformed = 0;
        loop {
            let going_on = match self.next_item()? {
                Item::RingRecord(bytes) => match crate::probes::Event::from_bytes(bytes) {
                    Some(ev) => on(Replayed::Event(ev)),
                    None => {
                        malformed += 1;
                        Ok(true)
                    }
                },
                Item::LiveFact(json) => on(Replayed::LiveFact(json)),
                Item::End(end) => {
                    return Ok(Fed {
                        end: Some(end),
                        malformed,
                    });
                }
            };
            match going_on {
                Ok(true) => {}
                Ok(false) => {
                    return Ok(Fed {
                        end: None,
                        malformed,
                    });
                }
                Err(why) => return Err(self.damaged(why)),
            }
        }
    }

    /// Skips to the end record (a first pass, for what the live run learned as it went):
    /// the blocks are stepped over by their lengths, and only the last is read.
    pub fn end(&mut self) -> Result<End, RecordingError> {
        let mut last = None;
        loop {
            let at = self
                .input
                .stream_position()
                .map_err(|e| self.damaged(e.to_string()))?;
            let mut head = [0u8; 12];
            match self.input.read_exact(&mut head) {
                Ok(()) => {}
                // The previous block was the last whole one (or none was).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(self.damaged(e.to_string())),
            }
            let packed = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
            self.input
                .seek_relative(i64::from(packed))
                .map_err(|e| self.damaged(e.to_string()))?;
            last = Some(at);
        }
        let Some(at) = last else {
            return Err(RecordingError::Truncated {
                path: self.path.clone(),
                events: 0,
            });
        };
        self.input
            .seek(SeekFrom::Start(at))
            .map_err(|e| self.damaged(e.to_string()))?;
        self.block.clear();
        self.at = 0;
        loop {
            if let Item::End(end) = self.next_item()? {
                return Ok(end);
            }
        }
    }

    /// Reads, checks and decompresses the next block.
    fn read_block(&mut self) -> Result<(), RecordingError> {
        let mut head = [0u8; 12];
        self.read(&mut head)?;
        let word = |at: usize| u32::from_le_bytes(head[at..at + 4].try_into().expect("4 bytes"));
        let (raw, packed, crc) = (word(0) as usize, word(4) as usize, word(8));
        if raw == 0 || raw > MAX_BLOCK_BYTES || packed > MAX_BLOCK_BYTES + MAX_BLOCK_BYTES / 64 {
            return Err(self.damaged(format!("a block claims {raw} bytes ({packed} packed)")));
        }
        self.block.resize(raw, 0);
        // A block already whole in the read buffer is checked and decompressed there,
        // without copying it out first.
        let unpacked = if self.input.buffer().len() >= packed {
            let unpacked = unpack(&self.input.buffer()[..packed], crc, &mut self.block);
            self.input.consume(packed);
            unpacked
        } else {
            let mut compressed = std::mem::take(&mut self.compressed);
            compressed.resize(packed, 0);
            let read = self.read(&mut compressed);
            self.compressed = compressed;
            read?;
            unpack(&self.compressed, crc, &mut self.block)
        };
        match unpacked {
            Ok(n) if n == raw => {}
            Ok(n) => return Err(self.damaged(format!("a block holds {n} bytes, not {raw}"))),
            Err(why) => return Err(self.damaged(why)),
        }
        self.at = 0;
        self.delta.clear();
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<(), RecordingError> {
        self.input.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                RecordingError::Truncated {
                    path: self.path.clone(),
                    events: self.events,
                }
            } else {
                self.damaged(e.to_string())
            }
        })
    }

    fn damaged(&self, why: String) -> RecordingError {
        RecordingError::Damaged {
            path: self.path.clone(),
            events: self.events,
            why,
        }
    }
}

/// Checks a block's compressed bytes against their CRC and decompresses them into `into`
/// (sized to the block's raw length): the bytes written, or why not.
fn unpack(compressed: &[u8], crc: u32, into: &mut [u8]) -> Result<usize, String> {
    if crc32fast::hash(compressed) != crc {
        return Err("a block's checksum does not match".into());
    }
    lz4_flex::block::decompress_into(compressed, into).map_err(|e| e.to_string())
}

/// The header facts every recording shares.
pub fn header_for(binary: &crate::gobin::GoBinary, pid: u32, job: Job) -> Header {
    Header {
        tracer_version: env!("CARGO_PKG_VERSION").to_string(),
        kernel: kernel_release(),
        event_layout_version: tracer_common::EVENT_LAYOUT_VERSION,
        clock: ClockBase {
            monotonic_ns: clock_ns(libc::CLOCK_MONOTONIC),
            unix_ns: clock_ns(libc::CLOCK_REALTIME),
        },
        target: TargetFacts {
            pid,
            exe: binary.path().display().to_string(),
            build_id: binary.build_id(),
            go_version: binary.go_version().to_string(),
        },
        job,
    }
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    // SAFETY: clock_gettime fills the struct we pass.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            tracer_version: "0.1.0".into(),
            kernel: "6.18".into(),
            event_layout_version: tracer_common::EVENT_LAYOUT_VERSION,
            clock: ClockBase {
                monotonic_ns: 1,
                unix_ns: 2,
            },
            target: TargetFacts {
                pid: 7,
                exe: "/x".into(),
                build_id: None,
                go_version: "go1.26.6".into(),
            },
            job: Job::Funcs(FuncsJob {
                pattern: "main\\.f".into(),
                entry_only: false,
                functions: vec!["main.f".into()],
            }),
        }
    }

    /// Every 1000th record is followed by a live fact naming it.
    fn fact_after(i: usize) -> Option<Vec<u8>> {
        (i % 1000 == 999).then(|| format!("{{\"after\":{i}}}").into_bytes())
    }

    /// Writes a recording; `format` below 5 writes every ring record whole and puts that
    /// format's number in the file.
    fn write(path: &Path, records: &[Vec<u8>], with_facts: bool, format: u32) {
        let mut rec = PendingRecording::create(path)
            .unwrap()
            .start(&header())
            .unwrap();
        if format < 5 {
            rec = rec.without_deltas();
        }
        for (i, r) in records.iter().enumerate() {
            rec.ring_record(r);
            if let Some(fact) = fact_after(i).filter(|_| with_facts) {
                rec.live_fact(&fact);
            }
        }
        rec.finish(&End {
            lost_events: 3,
            ..End::default()
        })
        .unwrap();
        let mut bytes = std::fs::read(path).unwrap();
        bytes[8..12].copy_from_slice(&format.to_le_bytes());
        std::fs::write(path, &bytes).unwrap();
    }

    /// Records of every shape: odd lengths and whole words, and bare call records of a few
    /// probes whose time, goroutine and registers change (kept as differences).
    fn records() -> Vec<Vec<u8>> {
        (0..50_000u32)
            .map(|i| {
                if i % 3 != 0 {
                    return i.to_le_bytes().repeat(1 + (i % 40) as usize);
                }
                let size = std::mem::size_of::<tracer_common::GoCallEvent>();
                let call = tracer_common::GoCallEvent {
                    header: tracer_common::EventHeader::new(tracer_common::record::CALL, size),
                    kind: 1 + i % 2,
                    probe_id: i % 7,
                    tgid: 100,
                    tid: 100 + i % 3,
                    ts_ns: 1_000_000 + u64::from(i) * 977,
                    goid: u64::from(i / 30),
                    stack_depth: 0x2f0,
                    regs: std::array::from_fn(|r| match r {
                        0 => 0xc000_0000 + u64::from(i) * 64,
                        1 => u64::from(i % 5),
                        _ => r as u64,
                    }),
                };
                call.as_bytes().to_vec()
            })
            .collect()
    }

    /// The ring records, the live facts (each with the number of records before it) and
    /// the end.
    #[allow(clippy::type_complexity)]
    fn read_all(path: &Path) -> Result<(Vec<Vec<u8>>, Vec<(usize, Vec<u8>)>, End), RecordingError> {
        let mut r = RecordingReader::open(path)?;
        let (mut records, mut facts) = (Vec::new(), Vec::new());
        loop {
            match r.next_item()? {
                Item::RingRecord(bytes) => records.push(bytes.to_vec()),
                Item::LiveFact(json) => facts.push((records.len(), json.to_vec())),
                Item::End(end) => return Ok((records, facts, end)),
            }
        }
    }

    #[test]
    fn what_is_written_reads_back() {
        let dir = std::env::temp_dir().join(format!("rec-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.trace");
        let records = records();
        write(&path, &records, true, FORMAT_VERSION);
        let (back, facts, end) = read_all(&path).unwrap();
        assert_eq!(back, records);
        assert_eq!(end.lost_events, 3);
        // Each fact where it was written, between the same records.
        let want: Vec<(usize, Vec<u8>)> = (0..records.len())
            .filter_map(|i| fact_after(i).map(|f| (i + 1, f)))
            .collect();
        assert_eq!(facts, want);
        // The end is found without reading the blocks before it.
        let end = RecordingReader::open(&path).unwrap().end().unwrap();
        assert_eq!(end.lost_events, 3);

        // Every cut of the file is one clear error, never a panic or a misread.
        let whole = std::fs::read(&path).unwrap();
        let cut = dir.join("cut.trace");
        for len in (0..whole.len()).step_by(whole.len() / 97 + 1) {
            std::fs::write(&cut, &whole[..len]).unwrap();
            let err = read_all(&cut).unwrap_err();
            assert!(
                matches!(
                    err,
                    RecordingError::NotARecording { .. }
                        | RecordingError::BadHeader { .. }
                        | RecordingError::OlderFormat { .. }
                        | RecordingError::Truncated { .. }
                        | RecordingError::Damaged { .. }
                ),
                "{len}: {err}"
            );
        }
        // A flipped byte in the compressed stream is caught by its checksums.
        let mut flipped = whole.clone();
        let at = whole.len() - 100;
        flipped[at] ^= 0x55;
        std::fs::write(&cut, &flipped).unwrap();
        assert!(read_all(&cut).is_err());

        // Format 4 (records whole) is read, to the same records, facts and end; it is
        // larger.
        let v4 = dir.join("v4.trace");
        write(&v4, &records, true, 4);
        let (back4, facts4, end4) = read_all(&v4).unwrap();
        assert_eq!(
            (back4, facts4, end4.lost_events),
            (records.clone(), facts, 3)
        );
        assert!(std::fs::metadata(&v4).unwrap().len() > whole.len() as u64);
        // A record as a difference in a format 4 file is damage, never guessed at.
        let mut v4 = whole.clone();
        v4[8..12].copy_from_slice(&4u32.to_le_bytes());
        std::fs::write(&cut, &v4).unwrap();
        assert!(matches!(
            read_all(&cut).unwrap_err(),
            RecordingError::Damaged { ref why, .. } if why.contains("unknown kind 4")
        ));

        // Format 2 (no live facts) is read; a live fact in it is damage, never guessed at.
        let plain = dir.join("v2.trace");
        write(&plain, &records[..5000], false, 2);
        let (back, facts, _) = read_all(&plain).unwrap();
        assert_eq!((back.len(), facts.len()), (5000, 0));
        let v2 = dir.join("v2-facts.trace");
        write(&v2, &records, true, 2);
        assert!(matches!(
            read_all(&v2).unwrap_err(),
            RecordingError::Damaged { ref why, .. } if why.contains("unknown kind 3")
        ));

        // An older format is refused by name.
        let mut older = whole.clone();
        older[8..12].copy_from_slice(&1u32.to_le_bytes());
        std::fs::write(&cut, &older).unwrap();
        assert!(matches!(
            read_all(&cut).unwrap_err(),
            RecordingError::OlderFormat { found: 1, .. }
        ));
        // A newer format is refused by its version, before its header is read.
        let mut newer = whole.clone();
        newer[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        std::fs::write(&cut, &newer).unwrap();
        assert!(matches!(
            read_all(&cut).unwrap_err(),
            RecordingError::NewerFormat { found, .. } if found == FORMAT_VERSION + 1
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Goroutine snapshots: every goroutine of a live Go process read from its memory (state,
//! wait reason, wait start, stack by frame pointers, what it waits on), and the analysis over
//! them (wait-for graph, possible deadlocks). Reading goes through the [`Mem`] trait so the
//! walker runs on a live process (`target::memory`) and on fake memory in tests; a later
//! `--watch` feeds the same [`Goroutine`] records from probes.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap, HashSet},
};

use crate::gobin::{GOffsets, GoBinary, RuntimeLayout, status_is_dead, status_name};

/// Read access to the target's address space.
pub trait Mem {
    fn read(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()>;
    /// Many records of `size` bytes; `None` for those that could not be read.
    fn read_many(&self, addrs: &[u64], size: usize) -> Vec<Option<Vec<u8>>> {
        addrs
            .iter()
            .map(|&a| {
                let mut b = vec![0; size];
                self.read(a, &mut b).ok().map(|_| b)
            })
            .collect()
    }
    fn u64(&self, addr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b).ok()?;
        Some(u64::from_le_bytes(b))
    }
}

impl Mem for crate::target::memory::Memory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
        crate::target::memory::Memory::read(self, addr, buf)
    }
    fn read_many(&self, addrs: &[u64], size: usize) -> Vec<Option<Vec<u8>>> {
        crate::target::memory::Memory::read_many(self, addrs, size)
    }
}

/// Frames deeper than this are cut (Go's own dump stops at 100).
pub const MAX_FRAMES: usize = 64;
/// More goroutines than this in `allgs` means we read garbage.
const MAX_GOROUTINES: u64 = 10_000_000;
/// Bytes of each stack read in one go from the saved SP; deeper frames are read one by one.
const STACK_WINDOW: u64 = 16 * 1024;
/// Bounds on the sudog structures walked (treaps, wait lists), against torn reads.
const MAX_SUDOGS: usize = 1_000_000;
const MAX_WAIT_LIST: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Frame {
    pub func: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// The physical PC (return address for callers); shared by a call's inlined frames.
    pub pc: u64,
    /// Offset of `pc` from the function entry, as Go prints it (`+0x25`); none when inlined.
    pub offset: Option<u64>,
    pub inlined: bool,
}

/// What a blocked goroutine waits on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Wait {
    /// One of [`WAIT_KINDS`].
    #[serde(deserialize_with = "wait_kind")]
    pub kind: Cow<'static, str>,
    /// The object's address (the Mutex, RWMutex, WaitGroup, channel, or bare semaphore);
    /// `None` when it is not one object (a select on several channels) or unknown.
    pub object: Option<u64>,
    /// The runtime semaphore the goroutine sleeps on, for sync primitives.
    pub sema: Option<u64>,
    /// Channels of a channel operation or select.
    pub chans: Vec<u64>,
    /// The engine's name for the lock (e.g. `dagql cache callsMu`), when the target is an
    /// engine and its address or the waiting stack says which one.
    pub name: Option<Cow<'static, str>>,
    /// Which rule gave `name`.
    pub named_by: Option<crate::profiles::NamedBy>,
}

/// What a goroutine can wait on: "mutex", "rwmutex" (write lock), "rwmutex_read",
/// "waitgroup", "semaphore", "chan", "select".
pub const WAIT_KINDS: [&str; 7] = [
    "mutex",
    "rwmutex",
    "rwmutex_read",
    "waitgroup",
    "semaphore",
    "chan",
    "select",
];

/// A recorded wait kind, as the one of [`WAIT_KINDS`] it names (a recording is untrusted).
fn wait_kind<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Cow<'static, str>, D::Error> {
    let kind = <Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    WAIT_KINDS
        .iter()
        .find(|k| **k == kind)
        .map(|k| Cow::Borrowed(*k))
        .ok_or_else(|| serde::de::Error::custom(format!("unknown wait kind `{kind}`")))
}

/// Serializable so that `hang --watch` recordings keep what a snapshot read.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Goroutine {
    pub goid: u64,
    /// Address of the runtime `g` (reused after exit: key by goid).
    pub g: u64,
    pub status: u32,
    /// Raw `g.waitreason` (numbering varies by Go version).
    pub wait_reason_code: u8,
    /// Go's own string for the wait reason (`"sync.Mutex.Lock"`); `waitReason(N)` when the
    /// Go version's table is unknown; `None` when not waiting.
    pub wait_reason: Option<String>,
    /// Time since `g.waitsince`, what Go's own dump prints as "N minutes". The runtime sets
    /// it only when a GC's mark phase finds the goroutine blocked, to the start of the
    /// previous GC's mark termination: approximate by up to one GC interval, and `None`
    /// (never a guess) until two GCs have run since the goroutine blocked.
    pub waiting_ns: Option<u64>,
    pub parent_goid: Option<u64>,
    /// `go` statement that created it, and its start function.
    pub created_by: Option<Frame>,
    pub start_func: Option<String>,
    /// Started by the runtime for itself (hidden by Go's dump unless GOTRACEBACK=system).
    pub system: bool,
    pub stack: Vec<Frame>,
    /// Why the stack is empty or cut short, if it is.
    pub stack_note: Option<Cow<'static, str>>,
    pub wait: Option<Wait>,
    /// Raw stack words (only kept during analysis, to look for lock addresses).
    #[serde(skip)]
    stack_words: Vec<u64>,
}

impl Goroutine {
    /// What Go prints in the header: the wait reason, or the status.
    pub fn state(&self) -> String {
        match &self.wait_reason {
            Some(r) => r.clone(),
            None => status_name(self.status).to_owned(),
        }
    }

    pub fn status_name(&self) -> &'static str {
        status_name(self.status)
    }

    pub fn blocked(&self) -> bool {
        self.status & !crate::gobin::G_SCAN_BIT == 4
    }
}

/// A set of goroutines waiting on each other in a cycle.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Deadlock {
    pub goids: Vec<u64>,
    /// The lock each goroutine waits on, in the order of `goids`.
    pub locks: Vec<u64>,
    /// False when ownership was inferred (see `evidence`), true only when recorded.
    pub certain: bool,
    pub evidence: String,
}

/// Who may hold a lock, and why we think so.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    pub lock: u64,
    pub goid: u64,
    pub evidence: Cow<'static, str>,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub go_version: String,
    pub goroutines: Vec<Goroutine>,
    /// Goroutines skipped because their `g` could not be read consistently.
    pub unreadable: usize,
    pub holders: Vec<Holder>,
    pub deadlocks: Vec<Deadlock>,
    /// Wall time the read took.
    pub elapsed_ns: u64,
}

/// The binary side of a snapshot: layout, offsets, and a PC symbolizer with a cache.
pub struct Reader<'b> {
    bin: &'b GoBinary,
    layout: RuntimeLayout,
    off: GOffsets,
    /// Added to link-time addresses (PIE load address).
    bias: u64,
    symbols: Symbolizer<'b>,
}

impl<'b> Reader<'b> {
    pub fn new(bin: &'b GoBinary, bias: u64) -> anyhow::Result<Reader<'b>> {
        let layout = bin
            .runtime_layout()
            .map_err(|e| anyhow::anyhow!("{}: {e}", bin.path().display()))?;
        Ok(Reader {
            bin,
            layout,
            off: *bin.g_offsets().0,
            bias,
            symbols: Symbolizer::new(bin, bias),
        })
    }

    pub fn layout(&self) -> &RuntimeLayout {
        &self.layout
    }

    /// Reads every goroutine. `now_ns` is CLOCK_MONOTONIC at the time of reading.
    pub fn snapshot(&mut self, mem: &dyn Mem, now_ns: u64) -> anyhow::Result<Snapshot> {
        let start = std::time::Instant::now();
        // Link-time address plus load bias: modular, like the bias itself.
        let allgs = self.layout.allgs.wrapping_add(self.bias);
        let field = |off: u64| mem.u64(allgs.checked_add(off)?);
        let (ptr, len, cap) = (field(0), field(8), field(16));
        let (Some(ptr), Some(len), Some(cap)) = (ptr, len, cap) else {
            anyhow::bail!("cannot read runtime.allgs at {allgs:#x} in the target")
        };
        if len > cap || len > MAX_GOROUTINES || (len > 0 && ptr == 0) {
            anyhow::bail!("runtime.allgs looks invalid (ptr {ptr:#x}, len {len}, cap {cap})");
        }
        let mut raw = vec![0u8; len as usize * 8];
        mem.read(ptr, &mut raw)
            .map_err(|e| anyhow::anyhow!("cannot read the goroutine list: {e}"))?;
        let gs: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .filter(|&g| g != 0)
            .collect();

        let size = self.g_read_size();
        let records = mem.read_many(&gs, size);
        let sema_waits = self.sema_waiters(mem);
        let mut snap = Snapshot {
            go_version: self.bin.go_version().to_owned(),
            ..Snapshot::default()
        };
        for (&g, rec) in gs.iter().zip(records) {
            let Some(rec) = rec else {
                snap.unreadable += 1;
                continue;
            };
            if let Some(gr) = self.goroutine(mem, g, &rec, now_ns, &sema_waits) {
                snap.goroutines.push(gr);
            }
        }
        snap.goroutines.sort_by_key(|g| g.goid);
        analyze(&mut snap, mem);
        for g in &mut snap.goroutines {
            g.stack_words = Vec::new();
        }
        snap.elapsed_ns = start.elapsed().as_nanos() as u64;
        Ok(snap)
    }

    fn g_read_size(&self) -> usize {
        let o = &self.off;
        let max = [
            o.goid,
            o.stack_hi,
            o.sched_bp,
            o.sched_pc,
            o.sched_sp,
            o.atomicstatus,
            o.waitreason,
            o.gopc,
            o.startpc,
            o.parent_goid.unwrap_or(0),
            self.layout.g_waitsince,
            self.layout.g_waiting,
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        max as usize + 8
    }

    fn goroutine(
        &mut self,
        mem: &dyn Mem,
        g: u64,
        rec: &[u8],
        now_ns: u64,
        sema_waits: &HashMap<u64, u64>,
    ) -> Option<Goroutine> {
        let o = self.off;
        let word = |off: u64| {
            rec.get(off as usize..off as usize + 8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
                .unwrap_or(0)
        };
        let status = word(o.atomicstatus) as u32;
        if status_is_dead(status) {
            return None;
        }
        let goid = word(o.goid);
        let reason = rec.get(o.waitreason as usize).copied().unwrap_or(0);
        let waiting = status & !crate::gobin::G_SCAN_BIT == 4;
        let wait_reason = (waiting && reason != 0).then(|| match self.layout.wait_reason(reason) {
            Some(s) => s.to_owned(),
            None => format!("waitReason({reason})"),
        });
        let waitsince = word(self.layout.g_waitsince) as i64;
        let waiting_ns = (matches!(status & !crate::gobin::G_SCAN_BIT, 3 | 4) && waitsince > 0)
            .then(|| now_ns.saturating_sub(waitsince as u64));
        let (lo, hi) = (word(o.stack_lo), word(o.stack_hi));
        let (sp, pc, bp) = (word(o.sched_sp), word(o.sched_pc), word(o.sched_bp));

        let start_func = self.func_name(word(o.startpc));
        let system = start_func
            .as_deref()
            .is_some_and(|n| n.starts_with("runtime.") && n != "runtime.main");
        // Go's dump shows no creator for goroutines the runtime started itself (goroutine 1).
        let created_by = self
            .symbolize(word(o.gopc), true)
            .into_iter()
            .last()
            .filter(|f| !f.func.starts_with("runtime."));
        let mut gr = Goroutine {
            goid,
            g,
            status,
            wait_reason_code: reason,
            wait_reason,
            waiting_ns,
            parent_goid: o.parent_goid.map(word).filter(|&p| p != 0),
            created_by,
            start_func,
            system,
            stack: Vec::new(),
            stack_note: None,
            wait: None,
            stack_words: Vec::new(),
        };
        if status & !crate::gobin::G_SCAN_BIT == 2 {
            // Its registers live in the CPU; sched is stale. Reading them needs a stop.
            gr.stack_note =
                Some("running: registers not readable without stopping the thread".into());
        } else if !(lo < hi && sp >= lo && sp < hi) {
            gr.stack_note = Some(
                "saved stack pointer outside the goroutine's stack (changed while reading)".into(),
            );
        } else {
            self.unwind(mem, &mut gr, (lo, hi), sp, pc, bp);
        }
        if waiting {
            gr.wait = self.wait_of(mem, &gr, word(self.layout.g_waiting), sema_waits.get(&g));
        }
        Some(gr)
    }

    /// Frame-pointer unwinding from the saved registers. Go keeps frame pointers on amd64:
    /// `[bp]` is the caller's BP and `[bp+8]` the return address into the caller.
    fn unwind(
        &mut self,
        mem: &dyn Mem,
        gr: &mut Goroutine,
        (lo, hi): (u64, u64),
        sp: u64,
        pc: u64,
        bp: u64,
    ) {
        let window_end = hi.min(sp.saturating_add(STACK_WINDOW));
        let mut window = vec![0u8; window_end.saturating_sub(sp) as usize];
        if mem.read(sp, &mut window).is_err() {
            window.clear();
        }
        gr.stack_words = window
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let read = |addr: u64| -> Option<u64> {
            // Every address here comes from the target's memory: no arithmetic may overflow.
            let i = usize::try_from(addr.checked_sub(sp)?).ok()?;
            match window.get(i..i.checked_add(8)?) {
                Some(word) => Some(u64::from_le_bytes(word.try_into().ok()?)),
                None => mem.u64(addr),
            }
        };
        let (mut pc, mut bp) = (pc, bp);
        let mut physical = 0;
        loop {
            if pc == 0 {
                break;
            }
            let frames = self.symbolize(pc, true);
            if frames.is_empty() {
                gr.stack_note =
                    Some("a return address outside Go code (stack changed while reading?)".into());
                break;
            }
            let goexit = frames.last().is_some_and(|f| f.func == "runtime.goexit");
            if !goexit {
                gr.stack.extend(frames);
            }
            physical += 1;
            if goexit || bp == 0 {
                break;
            }
            if physical >= MAX_FRAMES {
                gr.stack_note = Some("stack cut at 64 frames".into());
                break;
            }
            match caller_frame(bp, (lo, hi), &read) {
                Ok((ret, next_bp)) => (pc, bp) = (ret, next_bp),
                Err(note) => {
                    gr.stack_note = Some(note.into());
                    break;
                }
            }
        }
    }

    fn symbolize(&mut self, pc: u64, ret: bool) -> Vec<Frame> {
        self.symbols.frames(pc, ret)
    }

    fn func_name(&self, pc: u64) -> Option<String> {
        self.symbols.func_name(pc)
    }

    /// The goroutine (`g` address) → semaphore address of every sleeper in `runtime.semtable`:
    /// each root holds a treap of sudogs (`prev`/`next` children) keyed by address, and the
    /// waiters for one address chained through `waitlink`.
    fn sema_waiters(&self, mem: &dyn Mem) -> HashMap<u64, u64> {
        use crate::gobin::{SEMAROOT_TREAP, SEMTAB_SIZE, SEMTAB_STRIDE};
        let mut out = HashMap::new();
        let Some(table) = self.layout.semtable else {
            return out;
        };
        let mut raw = vec![0u8; (SEMTAB_SIZE * SEMTAB_STRIDE) as usize];
        if mem.read(table.wrapping_add(self.bias), &mut raw).is_err() {
            return out;
        }
        let s = self.layout.sudog;
        let mut todo: Vec<u64> = (0..SEMTAB_SIZE)
            .map(|i| (i * SEMTAB_STRIDE + SEMAROOT_TREAP) as usize)
            .map(|at| u64::from_le_bytes(raw[at..at + 8].try_into().unwrap_or_default()))
            .filter(|&p| p != 0)
            .collect();
        let mut seen = HashSet::new();
        let mut buf = vec![0u8; s.size as usize];
        while let Some(sg) = todo.pop() {
            if seen.len() >= MAX_SUDOGS || !seen.insert(sg) || mem.read(sg, &mut buf).is_err() {
                continue;
            }
            let w = |off: u64| {
                u64::from_le_bytes(
                    buf[off as usize..off as usize + 8]
                        .try_into()
                        .unwrap_or_default(),
                )
            };
            let (g, elem) = (w(s.g), w(s.elem));
            if g != 0 && elem != 0 {
                out.insert(g, elem);
            }
            todo.extend(
                [w(s.prev), w(s.next), w(s.waitlink)]
                    .into_iter()
                    .filter(|&p| p != 0),
            );
        }
        out
    }

    /// What a waiting goroutine waits on: channels from its `g.waiting` sudog list; for
    /// semaphores, the sudog's address in `semtable`, mapped to the sync object by the
    /// frame it sleeps in (the semaphore's offset inside Mutex, RWMutex, WaitGroup).
    fn wait_of(
        &self,
        mem: &dyn Mem,
        gr: &Goroutine,
        waiting: u64,
        sema: Option<&u64>,
    ) -> Option<Wait> {
        let s = self.layout.sudog;
        if waiting != 0 {
            let mut chans = Vec::new();
            let mut sg = waiting;
            let mut buf = vec![0u8; s.size as usize];
            // Bounded by steps, not by channels found: a torn read of a live process can
            // make the list loop without a channel (found by fuzzing).
            let mut steps = 0;
            while sg != 0 && steps < MAX_WAIT_LIST && mem.read(sg, &mut buf).is_ok() {
                steps += 1;
                let w = |off: u64| {
                    u64::from_le_bytes(
                        buf[off as usize..off as usize + 8]
                            .try_into()
                            .unwrap_or_default(),
                    )
                };
                if w(s.c) != 0 {
                    chans.push(w(s.c));
                }
                sg = w(s.waitlink);
            }
            if !chans.is_empty() {
                let select = gr.stack.iter().any(|f| f.func == "runtime.selectgo");
                return Some(Wait {
                    kind: Cow::Borrowed(if select { "select" } else { "chan" }),
                    object: (chans.len() == 1).then(|| chans[0]),
                    sema: None,
                    chans,
                    name: None,
                    named_by: None,
                });
            }
        }
        let &sema = sema?;
        // Innermost sync frame decides: RWMutex.Lock waits for readers on writerSem, but for
        // another writer inside rw.w.Lock (lockSlow, on w.sema).
        let sync_frame = gr.stack.iter().find_map(|f| match f.func.as_str() {
            "sync.(*Mutex).lockSlow" | "internal/sync.(*Mutex).lockSlow" => Some(("mutex", 4)),
            "sync.(*RWMutex).Lock" => Some(("rwmutex", 8)),
            "sync.(*RWMutex).RLock" => Some(("rwmutex_read", 12)),
            "sync.(*WaitGroup).Wait" => Some(("waitgroup", 8)),
            _ => None,
        });
        Some(match sync_frame {
            Some((kind, off)) => Wait {
                kind: Cow::Borrowed(kind),
                object: sema.checked_sub(off),
                sema: Some(sema),
                chans: Vec::new(),
                name: None,
                named_by: None,
            },
            None => Wait {
                kind: Cow::Borrowed("semaphore"),
                object: Some(sema),
                sema: Some(sema),
                chans: Vec::new(),
                name: None,
                named_by: None,
            },
        })
    }
}

/// One step of a frame-pointer walk: from a frame's BP, the return address into its caller
/// (`[bp+8]`) and the caller's BP (`[bp]`). Every value comes from a process that keeps
/// running, so a torn read can give any BP, up to 2^64 - 1: the frame must lie inside the
/// goroutine's stack `[lo, hi)`, computed without overflow, and the chain must grow toward
/// the stack's top.
fn caller_frame(
    bp: u64,
    (lo, hi): (u64, u64),
    read: &dyn Fn(u64) -> Option<u64>,
) -> Result<(u64, u64), &'static str> {
    const LEFT: &str = "frame pointer chain left the stack (changed while reading?)";
    let ret_at = bp.checked_add(8).ok_or(LEFT)?;
    let frame_end = bp.checked_add(16).ok_or(LEFT)?;
    if bp < lo || frame_end > hi {
        return Err(LEFT);
    }
    let (Some(next_bp), Some(ret)) = (read(bp), read(ret_at)) else {
        return Err("stack unreadable");
    };
    if next_bp != 0 && next_bp <= bp {
        return Err("frame pointer chain not increasing (changed while reading?)");
    }
    Ok((ret, next_bp))
}

/// PCs of the target process to logical frames, with inlined calls, cached.
pub struct Symbolizer<'b> {
    /// None when replaying a recording: its answers are all there is.
    bin: Option<&'b GoBinary>,
    /// Added to link-time addresses (PIE load address).
    bias: u64,
    cache: HashMap<(u64, bool), Vec<Frame>>,
    /// Replay: PCs the recording had no answer for.
    pub unknown: u64,
}

/// One answer of a live run's symbolizer, as a recording keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SymbolFact {
    pub pc: u64,
    pub ret: bool,
    pub frames: Vec<Frame>,
}

impl<'b> Symbolizer<'b> {
    pub fn new(bin: &'b GoBinary, bias: u64) -> Symbolizer<'b> {
        Symbolizer {
            bin: Some(bin),
            bias,
            cache: HashMap::new(),
            unknown: 0,
        }
    }

    /// The answers a live run gave, for replaying its recording without the binary.
    pub fn from_facts(facts: Vec<SymbolFact>) -> Symbolizer<'static> {
        Symbolizer {
            bin: None,
            bias: 0,
            cache: facts
                .into_iter()
                .map(|f| ((f.pc, f.ret), f.frames))
                .collect(),
            unknown: 0,
        }
    }

    /// Every answer given so far (what a recording keeps).
    pub fn facts(&self) -> Vec<SymbolFact> {
        let mut facts: Vec<SymbolFact> = self
            .cache
            .iter()
            .map(|(&(pc, ret), frames)| SymbolFact {
                pc,
                ret,
                frames: frames.clone(),
            })
            .collect();
        facts.sort_by_key(|f| (f.pc, f.ret));
        facts
    }

    /// For a target whose load address is only known once it runs (a spawned PIE).
    pub fn set_bias(&mut self, bias: u64) {
        if bias != self.bias && self.bin.is_some() {
            self.bias = bias;
            self.cache.clear();
        }
    }

    /// Logical frames at `pc` (innermost first); `ret` when `pc` is a return address, which
    /// is looked up at `pc - 1` like Go's traceback does.
    pub fn frames(&mut self, pc: u64, ret: bool) -> Vec<Frame> {
        if let Some(f) = self.cache.get(&(pc, ret)) {
            return f.clone();
        }
        let Some(bin) = self.bin else {
            self.unknown += 1;
            return Vec::new();
        };
        let link_pc = pc.wrapping_sub(self.bias);
        let frames = match bin.function_at(link_pc) {
            Some(f) => {
                let lookup = if ret && link_pc > f.entry {
                    link_pc - 1
                } else {
                    link_pc
                };
                bin.frames_at(f, lookup)
                    .into_iter()
                    .map(|fr| Frame {
                        offset: (!fr.inlined).then(|| link_pc.saturating_sub(f.entry)),
                        func: fr.func,
                        file: fr.file,
                        line: fr.line,
                        pc,
                        inlined: fr.inlined,
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        self.cache.insert((pc, ret), frames.clone());
        frames
    }

    pub fn func_name(&self, pc: u64) -> Option<String> {
        self.bin?
            .function_at(pc.wrapping_sub(self.bias))
            .map(|f| f.name.clone())
    }

    /// Logical frames of a whole stack of PCs: the first is the probed instruction, the
    /// rest return addresses.
    pub fn stack(&mut self, pcs: &[u64]) -> Vec<Frame> {
        let mut out = Vec::new();
        for (i, &pc) in pcs.iter().enumerate() {
            let frames = self.frames(pc, i > 0);
            if frames.last().is_some_and(|f| f.func == "runtime.goexit") {
                break;
            }
            out.extend(frames);
        }
        out
    }
}

/// Holders and deadlocks. Go records no lock owner, so a snapshot can only infer one: a
/// goroutine *may* hold a locked Mutex/RWMutex when the lock's address is in its stack
/// (a receiver or local kept live across the Lock, e.g. for a deferred Unlock). A cycle of
/// such inferences is reported as a possible deadlock, never as a certain one.
fn analyze(snap: &mut Snapshot, mem: &dyn Mem) {
    let mut waited: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for g in &snap.goroutines {
        if let Some(w) = &g.wait
            && matches!(&*w.kind, "mutex" | "rwmutex" | "rwmutex_read")
            && let Some(obj) = w.object
        {
            waited.entry(obj).or_default().push(g.goid);
        }
    }
    let mut holders = Vec::new();
    for (&lock, waiters) in &waited {
        // Mutex.state bit 0 (and for RWMutex its w.state, at the same address) = locked; a
        // RWMutex held by readers shows in readerCount instead, which we do not interpret.
        let locked = mem.u64(lock).is_some_and(|s| s & 1 == 1);
        if !locked {
            continue;
        }
        for g in &snap.goroutines {
            if waiters.contains(&g.goid) && waiters.len() == 1 {
                continue;
            }
            if g.stack_words.contains(&lock) && !waiters.contains(&g.goid) {
                holders.push(Holder {
                    lock,
                    goid: g.goid,
                    evidence: "the lock's address is in its stack and the lock is held".into(),
                });
            }
        }
    }
    snap.holders = holders;
    snap.deadlocks = cycles(&snap.goroutines, &snap.holders);
}

/// Cycles in the graph goroutine → (lock it waits on) → goroutine that may hold it.
fn cycles(goroutines: &[Goroutine], holders: &[Holder]) -> Vec<Deadlock> {
    let waits: HashMap<u64, u64> = goroutines
        .iter()
        .filter_map(|g| Some((g.goid, g.wait.as_ref()?.object?)))
        .collect();
    let mut held_by: HashMap<u64, Vec<u64>> = HashMap::new();
    for h in holders {
        held_by.entry(h.lock).or_default().push(h.goid);
    }
    let mut found: Vec<Deadlock> = Vec::new();
    let mut seen: HashSet<Vec<u64>> = HashSet::new();
    for &start in waits.keys() {
        // Depth-first over paths from `start`, bounded, recording cycles back to it.
        let mut stack = vec![(start, vec![start])];
        while let Some((g, path)) = stack.pop() {
            let Some(lock) = waits.get(&g) else { continue };
            for &h in held_by.get(lock).into_iter().flatten() {
                if h == start && path.len() > 1 {
                    let mut key = path.clone();
                    key.sort_unstable();
                    if seen.insert(key) {
                        let locks = path.iter().map(|g| waits[g]).collect();
                        found.push(Deadlock {
                            goids: path.clone(),
                            locks,
                            certain: false,
                            evidence: "each goroutine waits on a lock held (locked) whose \
                                       address is in the next goroutine's stack; Go records \
                                       no owner, so ownership is inferred"
                                .into(),
                        });
                    }
                } else if !path.contains(&h) && path.len() < 16 {
                    let mut p = path.clone();
                    p.push(h);
                    stack.push((h, p));
                }
            }
        }
    }
    found.sort_by(|a, b| a.goids.cmp(&b.goids));
    found
}

/// Names the engine's locks that goroutines wait on: by their offset in the engine's
/// cache when its address `cache` is known, else from the waiting stacks.
pub fn name_locks(snap: &mut Snapshot, profile: &crate::profiles::Profile, cache: Option<u64>) {
    for g in &mut snap.goroutines {
        if let Some(w) = g.wait.as_mut()
            && matches!(&*w.kind, "mutex" | "rwmutex" | "rwmutex_read")
        {
            let addr = w.object.or(w.sema).unwrap_or(0);
            let named = profile.name_lock(cache, addr, g.stack.iter().map(|f| f.func.as_str()));
            w.name = named.map(|n| Cow::Borrowed(n.0));
            w.named_by = named.map(|n| n.1);
        }
    }
}

/// Goroutines with identical stacks and state, for grouped output (like pprof's debug=1).
pub fn group<'a>(goroutines: &[&'a Goroutine]) -> Vec<Vec<&'a Goroutine>> {
    let mut groups: Vec<Vec<&Goroutine>> = Vec::new();
    let mut index: HashMap<(String, Vec<u64>, Vec<String>), usize> = HashMap::new();
    for &g in goroutines {
        let key = (
            g.state(),
            g.stack.iter().map(|f| f.pc).collect(),
            g.stack.iter().map(|f| f.func.clone()).collect(),
        );
        match index.get(&key) {
            Some(&i) => groups[i].push(g),
            None => {
                index.insert(key, groups.len());
                groups.push(vec![g]);
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(goid: u64, lock: u64, words: Vec<u64>) -> Goroutine {
        Goroutine {
            goid,
            g: goid * 0x1000,
            status: 4,
            wait_reason_code: 0,
            wait_reason: Some("sync.Mutex.Lock".into()),
            waiting_ns: None,
            parent_goid: None,
            created_by: None,
            start_func: None,
            system: false,
            stack: Vec::new(),
            stack_note: None,
            wait: Some(Wait {
                kind: Cow::Borrowed("mutex"),
                object: Some(lock),
                sema: Some(lock + 4),
                chans: Vec::new(),
                name: None,
                named_by: None,
            }),
            stack_words: words,
        }
    }

    struct Locked;
    impl Mem for Locked {
        fn read(&self, _addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
            buf.fill(0);
            buf[0] = 1;
            Ok(())
        }
    }

    #[test]
    fn abba_cycle_is_possible_not_certain() {
        let (a, b) = (0xc000_0100, 0xc000_0200);
        let mut snap = Snapshot {
            goroutines: vec![g(7, b, vec![1, a, 2]), g(8, a, vec![b]), g(9, a, vec![])],
            ..Snapshot::default()
        };
        analyze(&mut snap, &Locked);
        assert_eq!(snap.deadlocks.len(), 1);
        let d = &snap.deadlocks[0];
        let mut goids = d.goids.clone();
        goids.sort();
        assert_eq!(goids, vec![7, 8]);
        assert!(!d.certain);
    }

    #[test]
    fn no_cycle_without_evidence() {
        let (a, b) = (0xc000_0100, 0xc000_0200);
        let mut snap = Snapshot {
            goroutines: vec![g(7, b, vec![]), g(8, a, vec![])],
            ..Snapshot::default()
        };
        analyze(&mut snap, &Locked);
        assert!(snap.deadlocks.is_empty());
        assert!(snap.holders.is_empty());
    }

    #[test]
    fn a_torn_frame_pointer_near_the_top_of_the_address_space_ends_the_walk() {
        // Any address reads as a plausible value: only the bounds can stop the walk.
        let read = |addr: u64| Some(addr | 1);
        let whole = (0, u64::MAX);
        for bp in [u64::MAX, u64::MAX - 7, u64::MAX - 8, u64::MAX - 15] {
            assert_eq!(
                caller_frame(bp, whole, &read),
                Err("frame pointer chain left the stack (changed while reading?)"),
                "{bp:#x}"
            );
        }
        // The highest frame that fits reads [bp] and [bp+8], and they must increase.
        let bp = u64::MAX - 16;
        let next = |addr: u64| Some(if addr == bp { u64::MAX } else { 0x4567 });
        assert_eq!(caller_frame(bp, whole, &next), Ok((0x4567, u64::MAX)));
        // A normal frame inside a normal stack.
        let stack = (0xc000_0000, 0xc000_8000);
        let words = |addr: u64| match addr {
            0xc000_1000 => Some(0xc000_2000),
            0xc000_1008 => Some(0x40_1234),
            _ => None,
        };
        assert_eq!(
            caller_frame(0xc000_1000, stack, &words),
            Ok((0x40_1234, 0xc000_2000))
        );
        assert_eq!(
            caller_frame(0xc000_7ff8, stack, &words),
            Err("frame pointer chain left the stack (changed while reading?)")
        );
        assert_eq!(
            caller_frame(0xc000_3000, stack, &words),
            Err("stack unreadable")
        );
    }

    #[test]
    fn groups_identical_stacks() {
        let a = g(1, 5, vec![]);
        let b = g(2, 5, vec![]);
        let mut c = g(3, 5, vec![]);
        c.wait_reason = Some("select".into());
        let groups = group(&[&a, &b, &c]);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].len(), 2);
    }
}

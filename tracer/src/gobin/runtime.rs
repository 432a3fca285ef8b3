//! What a goroutine dump needs from a Go binary beyond function tables: the addresses of
//! runtime globals (`runtime.allgs`, `runtime.semtable`, the module data), per-version layouts
//! of `g` fields and `sudog`, and the wait-reason strings, all without `.symtab` or DWARF.
//!
//! Globals are found from code that references them (iced-x86 on the runtime functions that
//! read them), because the linker places data differently in every build; the tests check each
//! result against the ELF symbols of unstripped builds of every Go version installed.

use std::collections::HashMap;

use iced_x86::{Mnemonic, OpKind};

use super::GoBinary;

/// Goroutine status values (`runtime._Gidle` …), stable since Go 1.x except for the two the
/// newest releases added. `_Gscan` (0x1000) is a bit on top of them.
pub const G_SCAN_BIT: u32 = 0x1000;

/// The status name Go prints in a dump header when there is no wait reason.
pub fn status_name(status: u32) -> &'static str {
    match status & !G_SCAN_BIT {
        0 => "idle",
        1 => "runnable",
        2 => "running",
        3 => "syscall",
        4 => "waiting",
        5 => "moribund",
        6 => "dead",
        7 => "enqueue",
        8 => "copystack",
        9 => "preempted",
        10 => "leaked",
        11 => "dead",
        _ => "unknown",
    }
}

/// True for statuses whose goroutine does not exist for the user (`_Gidle`, `_Gdead`,
/// go1.26+'s `_Gdeadextra`).
pub fn status_is_dead(status: u32) -> bool {
    matches!(status & !G_SCAN_BIT, 0 | 6 | 11)
}

/// Byte offsets inside `runtime.sudog`. go1.26 made `elem` and `c` two-word
/// `maybeTraceablePtr`s whose second word (`vu`) is the source of truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SudogOffsets {
    pub g: u64,
    /// Left / right child in a semaRoot treap.
    pub prev: u64,
    pub next: u64,
    pub elem: u64,
    pub waitlink: u64,
    pub c: u64,
    pub size: u64,
}

const SUDOG_1_19: SudogOffsets = SudogOffsets {
    g: 0,
    next: 8,
    prev: 16,
    elem: 24,
    waitlink: 64,
    c: 80,
    size: 88,
};

/// go1.26+: `elem` and `c` are {vp, vu}; we read `vu`.
const SUDOG_1_26: SudogOffsets = SudogOffsets {
    g: 0,
    next: 8,
    prev: 16,
    elem: 32,
    waitlink: 72,
    c: 96,
    size: 104,
};

/// `runtime.semtable`: 251 roots, each padded to a 64-byte cache line; the treap root pointer
/// is the second word of `semaRoot` (after its `mutex`), unchanged from go1.19 to go1.27.
pub const SEMTAB_SIZE: u64 = 251;
pub const SEMTAB_STRIDE: u64 = 64;
pub const SEMAROOT_TREAP: u64 = 8;

/// Everything the goroutine walker needs to know about one binary's runtime.
#[derive(Debug, Clone)]
pub struct RuntimeLayout {
    /// Go minor version (1.x).
    pub minor: u32,
    /// Link-time address of `runtime.allgs` (a `[]*g`: ptr, len, cap).
    pub allgs: u64,
    /// Link-time address of `runtime.semtable`, if found (waits on semaphores need it).
    pub semtable: Option<u64>,
    /// `g.waitsince` (int64 nanotime, set by the GC for goroutines it finds blocked).
    pub g_waitsince: u64,
    /// `g.waiting` (the sudogs of a channel operation or select).
    pub g_waiting: u64,
    pub sudog: SudogOffsets,
    /// `(constant name, printed string)` per wait-reason number, when the version is known.
    pub wait_reasons: Option<&'static [(&'static str, &'static str)]>,
}

impl RuntimeLayout {
    /// The string Go prints for wait reason `n` (`"sync.Mutex.Lock"`), if known.
    pub fn wait_reason(&self, n: u8) -> Option<&'static str> {
        self.wait_reasons?.get(usize::from(n)).map(|&(_, s)| s)
    }

    /// The runtime constant's name without the `waitReason` prefix (`"SyncMutexLock"`).
    pub fn wait_reason_const(&self, n: u8) -> Option<&'static str> {
        self.wait_reasons?.get(usize::from(n)).map(|&(c, _)| c)
    }
}

/// `g.waitsince` and `g.waiting` offsets, from the DWARF of go1.19.8 … go1.27.3 (go1.20 by
/// source: its `g` matches go1.19's up to these fields).
pub(crate) fn g_extra_offsets(minor: u32) -> Option<(u64, u64)> {
    Some(match minor {
        19 | 20 => (168, 328),
        21 | 22 | 25 => (168, 312),
        23 | 24 => (176, 320),
        26 | 27 => (168, 320),
        _ => return None,
    })
}

pub(crate) fn sudog_offsets(minor: u32) -> SudogOffsets {
    if minor >= 26 { SUDOG_1_26 } else { SUDOG_1_19 }
}

/// Offset of `gofunc` (base of FUNCDATA offsets) in `runtime.moduledata`, from DWARF of
/// go1.19.8 (304), go1.21.13 … go1.26.6 (320) and go1.27.3 (344); go1.20 added `covctrs`
/// (two words) before it, giving 320.
pub(crate) fn moduledata_gofunc(minor: u32) -> Option<u64> {
    Some(match minor {
        19 => 304,
        20..=26 => 320,
        27 => 344,
        _ => return None,
    })
}

pub(crate) fn wait_reasons(minor: u32) -> Option<&'static [(&'static str, &'static str)]> {
    Some(match minor {
        19 => WAIT_REASONS_1_19,
        21 => WAIT_REASONS_1_21,
        22 => WAIT_REASONS_1_22,
        23 => WAIT_REASONS_1_23,
        24 => WAIT_REASONS_1_24,
        25 => WAIT_REASONS_1_25,
        // Go 1.27 added no wait reason.
        26 | 27 => WAIT_REASONS_1_26,
        // go1.20 was not available to generate and verify a table: its numbers stay numbers.
        _ => return None,
    })
}

impl GoBinary {
    /// Locates the runtime globals and collects the per-version layouts.
    pub fn runtime_layout(&self) -> Result<RuntimeLayout, String> {
        let minor = self.minor();
        let (g_waitsince, g_waiting) =
            g_extra_offsets(minor).ok_or_else(|| format!("no goroutine layout for go1.{minor}"))?;
        let allgs = self.find_allgs()?;
        Ok(RuntimeLayout {
            minor,
            allgs,
            semtable: self.find_semtable().ok(),
            g_waitsince,
            g_waiting,
            sudog: sudog_offsets(minor),
            wait_reasons: wait_reasons(minor),
        })
    }

    /// `runtime.allgs`: `forEachG` loads the slice's pointer and length with two RIP-relative
    /// MOVs at A and A+8 (go1.19 … go1.27). `checkdead` and `forEachGRace` do the same and are
    /// tried when the first is missing or ambiguous.
    pub(crate) fn find_allgs(&self) -> Result<u64, String> {
        for name in [
            "runtime.forEachG",
            "runtime.forEachGRace",
            "runtime.checkdead",
        ] {
            let loads = self.rip_operands(name, |m| m == Mnemonic::Mov)?;
            if let Some(allgs) = slice_load(&loads) {
                return Ok(allgs);
            }
        }
        Err("cannot locate runtime.allgs (no unique slice load in runtime.forEachG, forEachGRace or checkdead)".into())
    }

    /// `runtime.semtable`: `semacquire1` computes `&semtable[addr>>3 % 251]` with a
    /// RIP-relative LEA, several times; the most frequent LEA target is it.
    pub(crate) fn find_semtable(&self) -> Result<u64, String> {
        let leas = self.rip_operands("runtime.semacquire1", |m| m == Mnemonic::Lea)?;
        most_frequent(&leas)
            .ok_or_else(|| "cannot locate runtime.semtable in runtime.semacquire1".into())
    }

    /// Targets of RIP-relative memory operands of instructions accepted by `keep`, in the
    /// (first) function named `name`.
    fn rip_operands(
        &self,
        name: &str,
        keep: impl Fn(Mnemonic) -> bool,
    ) -> Result<Vec<u64>, String> {
        let f = self
            .functions
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| format!("{name} not in the binary"))?;
        let code = self
            .code(f)
            .ok_or_else(|| format!("{name}: code not in the file"))?;
        Ok(rip_operands(code, f.entry, keep))
    }

    /// The Go minor version (1.x) that built the binary.
    pub fn minor(&self) -> u32 {
        super::parse_go_version(self.go_version()).map_or(0, |v| v.1)
    }

    /// A pointer-sized word of `runtime.firstmoduledata` as linked.
    pub(crate) fn moduledata_word(&self, offset: u64) -> Option<u64> {
        let at = self.moduledata_addr()?.checked_add(offset)?;
        super::moduledata::linked_word(&self.data, &self.elf, at)
    }

    /// Address of `runtime.firstmoduledata` (cached after the first call).
    pub(crate) fn moduledata_addr(&self) -> Option<u64> {
        *self.moduledata.get_or_init(|| {
            let tab = &self.data[self.pclntab.clone()];
            let tab_vaddr = self.elf.vaddr_of_offset(self.pclntab.start as u64)?;
            let first_off = u64::from(self.header.first_entry_off(tab)?);
            super::moduledata::find(&self.data, &self.elf, tab_vaddr, first_off).map(|md| md.addr)
        })
    }
}

/// Targets of RIP-relative memory operands of the instructions accepted by `keep`, in the
/// code loaded at `entry`.
pub(crate) fn rip_operands(code: &[u8], entry: u64, keep: impl Fn(Mnemonic) -> bool) -> Vec<u64> {
    super::disasm::decode_all(code, entry)
        .into_iter()
        .filter(|i| keep(i.mnemonic()))
        .filter(|i| i.is_ip_rel_memory_operand())
        .filter(|i| (0..i.op_count()).any(|o| i.op_kind(o) == OpKind::Memory))
        .map(|i| i.ip_rel_memory_address())
        .collect()
}

/// The one address A among `loads` that is loaded together with A+8 (a slice's pointer
/// and length), if exactly one is.
pub(crate) fn slice_load(loads: &[u64]) -> Option<u64> {
    let set: std::collections::HashSet<u64> = loads.iter().copied().collect();
    let mut pairs: Vec<u64> = set
        .iter()
        .copied()
        .filter(|a| a.checked_add(8).is_some_and(|next| set.contains(&next)))
        .collect();
    pairs.sort_unstable();
    match pairs.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// The address most frequent in `addrs`, if it occurs at least twice and more often than any
/// other.
pub(crate) fn most_frequent(addrs: &[u64]) -> Option<u64> {
    let mut count: HashMap<u64, usize> = HashMap::new();
    for &a in addrs {
        *count.entry(a).or_default() += 1;
    }
    let mut best: Vec<(usize, u64)> = count.into_iter().map(|(a, n)| (n, a)).collect();
    best.sort_unstable_by(|a, b| b.cmp(a));
    match best.as_slice() {
        [(n, a), rest @ ..] if *n >= 2 && rest.first().is_none_or(|(m, _)| m < n) => Some(*a),
        _ => None,
    }
}

// Generated from each toolchain's runtime/runtime2.go (`waitReason` constants in order, and
// `waitReasonStrings`). Index = the constant's value; (constant name without the
// `waitReason` prefix, the string Go prints).
const WAIT_REASONS_1_19: &[(&str, &str)] = &[
    ("Zero", ""),
    ("GCAssistMarking", "GC assist marking"),
    ("IOWait", "IO wait"),
    ("ChanReceiveNilChan", "chan receive (nil chan)"),
    ("ChanSendNilChan", "chan send (nil chan)"),
    ("DumpingHeap", "dumping heap"),
    ("GarbageCollection", "garbage collection"),
    ("GarbageCollectionScan", "garbage collection scan"),
    ("PanicWait", "panicwait"),
    ("Select", "select"),
    ("SelectNoCases", "select (no cases)"),
    ("GCAssistWait", "GC assist wait"),
    ("GCSweepWait", "GC sweep wait"),
    ("GCScavengeWait", "GC scavenge wait"),
    ("ChanReceive", "chan receive"),
    ("ChanSend", "chan send"),
    ("FinalizerWait", "finalizer wait"),
    ("ForceGCIdle", "force gc (idle)"),
    ("Semacquire", "semacquire"),
    ("Sleep", "sleep"),
    ("SyncCondWait", "sync.Cond.Wait"),
    ("TimerGoroutineIdle", "timer goroutine (idle)"),
    ("TraceReaderBlocked", "trace reader (blocked)"),
    ("WaitForGCCycle", "wait for GC cycle"),
    ("GCWorkerIdle", "GC worker (idle)"),
    ("Preempted", "preempted"),
    ("DebugCall", "debug call"),
];
const WAIT_REASONS_1_21: &[(&str, &str)] = &[
    ("Zero", ""),
    ("GCAssistMarking", "GC assist marking"),
    ("IOWait", "IO wait"),
    ("ChanReceiveNilChan", "chan receive (nil chan)"),
    ("ChanSendNilChan", "chan send (nil chan)"),
    ("DumpingHeap", "dumping heap"),
    ("GarbageCollection", "garbage collection"),
    ("GarbageCollectionScan", "garbage collection scan"),
    ("PanicWait", "panicwait"),
    ("Select", "select"),
    ("SelectNoCases", "select (no cases)"),
    ("GCAssistWait", "GC assist wait"),
    ("GCSweepWait", "GC sweep wait"),
    ("GCScavengeWait", "GC scavenge wait"),
    ("ChanReceive", "chan receive"),
    ("ChanSend", "chan send"),
    ("FinalizerWait", "finalizer wait"),
    ("ForceGCIdle", "force gc (idle)"),
    ("Semacquire", "semacquire"),
    ("Sleep", "sleep"),
    ("SyncCondWait", "sync.Cond.Wait"),
    ("SyncMutexLock", "sync.Mutex.Lock"),
    ("SyncRWMutexRLock", "sync.RWMutex.RLock"),
    ("SyncRWMutexLock", "sync.RWMutex.Lock"),
    ("TraceReaderBlocked", "trace reader (blocked)"),
    ("WaitForGCCycle", "wait for GC cycle"),
    ("GCWorkerIdle", "GC worker (idle)"),
    ("GCWorkerActive", "GC worker (active)"),
    ("Preempted", "preempted"),
    ("DebugCall", "debug call"),
    ("GCMarkTermination", "GC mark termination"),
    ("StoppingTheWorld", "stopping the world"),
];
const WAIT_REASONS_1_22: &[(&str, &str)] = &[
    ("Zero", ""),
    ("GCAssistMarking", "GC assist marking"),
    ("IOWait", "IO wait"),
    ("ChanReceiveNilChan", "chan receive (nil chan)"),
    ("ChanSendNilChan", "chan send (nil chan)"),
    ("DumpingHeap", "dumping heap"),
    ("GarbageCollection", "garbage collection"),
    ("GarbageCollectionScan", "garbage collection scan"),
    ("PanicWait", "panicwait"),
    ("Select", "select"),
    ("SelectNoCases", "select (no cases)"),
    ("GCAssistWait", "GC assist wait"),
    ("GCSweepWait", "GC sweep wait"),
    ("GCScavengeWait", "GC scavenge wait"),
    ("ChanReceive", "chan receive"),
    ("ChanSend", "chan send"),
    ("FinalizerWait", "finalizer wait"),
    ("ForceGCIdle", "force gc (idle)"),
    ("Semacquire", "semacquire"),
    ("Sleep", "sleep"),
    ("SyncCondWait", "sync.Cond.Wait"),
    ("SyncMutexLock", "sync.Mutex.Lock"),
    ("SyncRWMutexRLock", "sync.RWMutex.RLock"),
    ("SyncRWMutexLock", "sync.RWMutex.Lock"),
    ("TraceReaderBlocked", "trace reader (blocked)"),
    ("WaitForGCCycle", "wait for GC cycle"),
    ("GCWorkerIdle", "GC worker (idle)"),
    ("GCWorkerActive", "GC worker (active)"),
    ("Preempted", "preempted"),
    ("DebugCall", "debug call"),
    ("GCMarkTermination", "GC mark termination"),
    ("StoppingTheWorld", "stopping the world"),
    ("FlushProcCaches", "flushing proc caches"),
    ("TraceGoroutineStatus", "trace goroutine status"),
    ("TraceProcStatus", "trace proc status"),
    ("PageTraceFlush", "page trace flush"),
    ("Coroutine", "coroutine"),
];
const WAIT_REASONS_1_23: &[(&str, &str)] = &[
    ("Zero", ""),
    ("GCAssistMarking", "GC assist marking"),
    ("IOWait", "IO wait"),
    ("ChanReceiveNilChan", "chan receive (nil chan)"),
    ("ChanSendNilChan", "chan send (nil chan)"),
    ("DumpingHeap", "dumping heap"),
    ("GarbageCollection", "garbage collection"),
    ("GarbageCollectionScan", "garbage collection scan"),
    ("PanicWait", "panicwait"),
    ("Select", "select"),
    ("SelectNoCases", "select (no cases)"),
    ("GCAssistWait", "GC assist wait"),
    ("GCSweepWait", "GC sweep wait"),
    ("GCScavengeWait", "GC scavenge wait"),
    ("ChanReceive", "chan receive"),
    ("ChanSend", "chan send"),
    ("FinalizerWait", "finalizer wait"),
    ("ForceGCIdle", "force gc (idle)"),
    ("Semacquire", "semacquire"),
    ("Sleep", "sleep"),
    ("SyncCondWait", "sync.Cond.Wait"),
    ("SyncMutexLock", "sync.Mutex.Lock"),
    ("SyncRWMutexRLock", "sync.RWMutex.RLock"),
    ("SyncRWMutexLock", "sync.RWMutex.Lock"),
    ("TraceReaderBlocked", "trace reader (blocked)"),
    ("WaitForGCCycle", "wait for GC cycle"),
    ("GCWorkerIdle", "GC worker (idle)"),
    ("GCWorkerActive", "GC worker (active)"),
    ("Preempted", "preempted"),
    ("DebugCall", "debug call"),
    ("GCMarkTermination", "GC mark termination"),
    ("StoppingTheWorld", "stopping the world"),
    ("FlushProcCaches", "flushing proc caches"),
    ("TraceGoroutineStatus", "trace goroutine status"),
    ("TraceProcStatus", "trace proc status"),
    ("PageTraceFlush", "page trace flush"),
    ("Coroutine", "coroutine"),
    ("GCWeakToStrongWait", "GC weak to strong wait"),
];
const WAIT_REASONS_1_24: &[(&str, &str)] = &[
    ("Zero", ""),
    ("GCAssistMarking", "GC assist marking"),
    ("IOWait", "IO wait"),
    ("ChanReceiveNilChan", "chan receive (nil chan)"),
    ("ChanSendNilChan", "chan send (nil chan)"),
    ("DumpingHeap", "dumping heap"),
    ("GarbageCollection", "garbage collection"),
    ("GarbageCollectionScan", "garbage collection scan"),
    ("PanicWait", "panicwait"),
    ("Select", "select"),
    ("SelectNoCases", "select (no cases)"),
    ("GCAssistWait", "GC assist wait"),
    ("GCSweepWait", "GC sweep wait"),
    ("GCScavengeWait", "GC scavenge wait"),
    ("ChanReceive", "chan receive"),
    ("ChanSend", "chan send"),
    ("FinalizerWait", "finalizer wait"),
    ("ForceGCIdle", "force gc (idle)"),
    ("Semacquire", "semacquire"),
    ("Sleep", "sleep"),
    ("SyncCondWait", "sync.Cond.Wait"),
    ("SyncMutexLock", "sync.Mutex.Lock"),
    ("SyncRWMutexRLock", "sync.RWMutex.RLock"),
    ("SyncRWMutexLock", "sync.RWMutex.Lock"),
    ("SyncWaitGroupWait", "sync.WaitGroup.Wait"),
    ("TraceReaderBlocked", "trace reader (blocked)"),
    ("WaitForGCCycle", "wait for GC cycle"),
    ("GCWorkerIdle", "GC worker (idle)"),
    ("GCWorkerActive", "GC worker (active)"),
    ("Preempted", "preempted"),
    ("DebugCall", "debug call"),
    ("GCMarkTermination", "GC mark termination"),
    ("StoppingTheWorld", "stopping the world"),
    ("FlushProcCaches", "flushing proc caches"),
    ("TraceGoroutineStatus", "trace goroutine status"),
    ("TraceProcStatus", "trace proc status"),
    ("PageTraceFlush", "page trace flush"),
    ("Coroutine", "coroutine"),
    ("GCWeakToStrongWait", "GC weak to strong wait"),
    ("SynctestRun", "synctest.Run"),
    ("SynctestWait", "synctest.Wait"),
    ("SynctestChanReceive", "chan receive (synctest)"),
    ("SynctestChanSend", "chan send (synctest)"),
    ("SynctestSelect", "select (synctest)"),
];
const WAIT_REASONS_1_25: &[(&str, &str)] = &[
    ("Zero", ""),
    ("GCAssistMarking", "GC assist marking"),
    ("IOWait", "IO wait"),
    ("ChanReceiveNilChan", "chan receive (nil chan)"),
    ("ChanSendNilChan", "chan send (nil chan)"),
    ("DumpingHeap", "dumping heap"),
    ("GarbageCollection", "garbage collection"),
    ("GarbageCollectionScan", "garbage collection scan"),
    ("PanicWait", "panicwait"),
    ("Select", "select"),
    ("SelectNoCases", "select (no cases)"),
    ("GCAssistWait", "GC assist wait"),
    ("GCSweepWait", "GC sweep wait"),
    ("GCScavengeWait", "GC scavenge wait"),
    ("ChanReceive", "chan receive"),
    ("ChanSend", "chan send"),
    ("FinalizerWait", "finalizer wait"),
    ("ForceGCIdle", "force gc (idle)"),
    ("UpdateGOMAXPROCSIdle", "GOMAXPROCS updater (idle)"),
    ("Semacquire", "semacquire"),
    ("Sleep", "sleep"),
    ("SyncCondWait", "sync.Cond.Wait"),
    ("SyncMutexLock", "sync.Mutex.Lock"),
    ("SyncRWMutexRLock", "sync.RWMutex.RLock"),
    ("SyncRWMutexLock", "sync.RWMutex.Lock"),
    ("SyncWaitGroupWait", "sync.WaitGroup.Wait"),
    ("TraceReaderBlocked", "trace reader (blocked)"),
    ("WaitForGCCycle", "wait for GC cycle"),
    ("GCWorkerIdle", "GC worker (idle)"),
    ("GCWorkerActive", "GC worker (active)"),
    ("Preempted", "preempted"),
    ("DebugCall", "debug call"),
    ("GCMarkTermination", "GC mark termination"),
    ("StoppingTheWorld", "stopping the world"),
    ("FlushProcCaches", "flushing proc caches"),
    ("TraceGoroutineStatus", "trace goroutine status"),
    ("TraceProcStatus", "trace proc status"),
    ("PageTraceFlush", "page trace flush"),
    ("Coroutine", "coroutine"),
    ("GCWeakToStrongWait", "GC weak to strong wait"),
    ("SynctestRun", "synctest.Run"),
    ("SynctestWait", "synctest.Wait"),
    ("SynctestChanReceive", "chan receive (durable)"),
    ("SynctestChanSend", "chan send (durable)"),
    ("SynctestSelect", "select (durable)"),
    ("SynctestWaitGroupWait", "sync.WaitGroup.Wait (durable)"),
    ("CleanupWait", "cleanup wait"),
];
const WAIT_REASONS_1_26: &[(&str, &str)] = &[
    ("Zero", ""),
    ("GCAssistMarking", "GC assist marking"),
    ("IOWait", "IO wait"),
    ("DumpingHeap", "dumping heap"),
    ("GarbageCollection", "garbage collection"),
    ("GarbageCollectionScan", "garbage collection scan"),
    ("PanicWait", "panicwait"),
    ("GCAssistWait", "GC assist wait"),
    ("GCSweepWait", "GC sweep wait"),
    ("GCScavengeWait", "GC scavenge wait"),
    ("FinalizerWait", "finalizer wait"),
    ("ForceGCIdle", "force gc (idle)"),
    ("UpdateGOMAXPROCSIdle", "GOMAXPROCS updater (idle)"),
    ("Semacquire", "semacquire"),
    ("Sleep", "sleep"),
    ("ChanReceiveNilChan", "chan receive (nil chan)"),
    ("ChanSendNilChan", "chan send (nil chan)"),
    ("SelectNoCases", "select (no cases)"),
    ("Select", "select"),
    ("ChanReceive", "chan receive"),
    ("ChanSend", "chan send"),
    ("SyncCondWait", "sync.Cond.Wait"),
    ("SyncMutexLock", "sync.Mutex.Lock"),
    ("SyncRWMutexRLock", "sync.RWMutex.RLock"),
    ("SyncRWMutexLock", "sync.RWMutex.Lock"),
    ("SyncWaitGroupWait", "sync.WaitGroup.Wait"),
    ("TraceReaderBlocked", "trace reader (blocked)"),
    ("WaitForGCCycle", "wait for GC cycle"),
    ("GCWorkerIdle", "GC worker (idle)"),
    ("GCWorkerActive", "GC worker (active)"),
    ("Preempted", "preempted"),
    ("DebugCall", "debug call"),
    ("GCMarkTermination", "GC mark termination"),
    ("StoppingTheWorld", "stopping the world"),
    ("FlushProcCaches", "flushing proc caches"),
    ("TraceGoroutineStatus", "trace goroutine status"),
    ("TraceProcStatus", "trace proc status"),
    ("PageTraceFlush", "page trace flush"),
    ("Coroutine", "coroutine"),
    ("GCWeakToStrongWait", "GC weak to strong wait"),
    ("SynctestRun", "synctest.Run"),
    ("SynctestWait", "synctest.Wait"),
    ("SynctestChanReceive", "chan receive (durable)"),
    ("SynctestChanSend", "chan send (durable)"),
    ("SynctestSelect", "select (durable)"),
    ("SynctestWaitGroupWait", "sync.WaitGroup.Wait (durable)"),
    ("CleanupWait", "cleanup wait"),
];

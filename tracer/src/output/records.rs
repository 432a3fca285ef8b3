//! Every JSON record the tracer writes, one definition each, tagged by `kind`. Field names
//! and kinds are a contract (scripts, `tracer diff`, dashboards read them): a change that
//! removes or renames a field raises `SCHEMA_VERSION`, which the `header` record carries.
//! Records are built from borrowed model data and serialized straight to the sink.
use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    model::{
        cache_events::{EngineMiss, Text},
        explain::{CallIdentity, Explanation},
        goroutines::Frame,
        latency::Histogram,
        locks::{LockEvictions, LockSummary},
        watch::WatchEvictions,
    },
    probes::KernelFailures,
    profiles::NamedBy,
};

/// The version of the JSON records' schema.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record<'a> {
    /// First line of every JSON output: what wrote it.
    Header {
        schema: u32,
        tracer: &'static str,
        command: &'a str,
    },
    // `tracer cache`
    SessionOpen {
        session: &'a str,
        goid: u64,
    },
    SessionClose {
        session: &'a Option<Text>,
        /// Null when references are not followed (`--light`).
        refs_taken: Option<u64>,
        refs_released: Option<u64>,
        results_released: Option<u64>,
        leaked: Option<bool>,
    },
    LoadHit {
        pid: u32,
        session: &'a Option<Text>,
        goid: u64,
        digest: &'a Option<Text>,
        via: &'static str,
        hit_route: Option<&'static str>,
        result_id: Option<u64>,
    },
    OwnershipAnomaly {
        #[serde(rename = "type")]
        anomaly: &'static str,
        session: &'a Option<Text>,
        result_id: Option<u64>,
        count: Option<i64>,
    },
    Arbitrary {
        session: &'a Option<Text>,
        goid: u64,
        outcome: &'static str,
        duration_ns: Option<u64>,
    },
    Release {
        session: &'a Option<Text>,
        digest: &'a Option<Text>,
        refcount_after: Option<i64>,
        goid: u64,
    },
    Change {
        path: &'a Option<String>,
        outcome: &'static str,
        goid: u64,
        duration_ns: Option<u64>,
    },
    ChangeRelease {
        path: &'a Option<String>,
        refcount_after: Option<i64>,
    },
    Conflict {
        path: &'a Option<String>,
        error: &'a Option<String>,
    },
    CacheCall(CacheCallRecord<'a>),
    CacheSummary(Box<CacheSummary<'a>>),
    // `tracer diff`
    CacheDiff {
        a: String,
        b: String,
        diverged: bool,
        first_divergence: &'a Option<crate::model::diff::Divergence>,
        summary: &'a crate::model::diff::DiffSummary,
    },
    // `tracer funcs`
    #[serde(rename = "summary")]
    FuncsSummary {
        calls: u64,
        unwound: u64,
        lost_events: u64,
        kernel_failures: KernelFailures,
        unreadable_events: u64,
        /// What the call tracker's bounds closed (`evicted_state` as in `tracer cache`).
        evicted_state: crate::model::calls::CallEvictions,
        functions: Vec<FuncTotals<'a>>,
    },
    // `--follow`
    Attach {
        incarnation: u32,
        pid: u32,
        host_pid: Option<u32>,
        exe: String,
        unix_ns: u64,
    },
    // `tracer locks`
    Contention {
        lock: u64,
        lock_type: &'static str,
        lock_name: Option<&'static str>,
        lock_named_by: Option<&'static str>,
        waiter: u64,
        start_ns: u64,
        wait_ns: u64,
        released_by: Option<u64>,
        stack: Vec<FrameRecord<'a>>,
    },
    LockSummary {
        lock: u64,
        lock_type: &'static str,
        lock_name: Option<&'static str>,
        lock_named_by: Option<&'static str>,
        contended: u64,
        reader_waits: u64,
        total_wait_ns: u64,
        p50_wait_ns: Option<u64>,
        p99_wait_ns: Option<u64>,
        max_wait_ns: Option<u64>,
        top_stacks: Vec<TopStack<'a>>,
    },
    #[serde(rename = "summary")]
    LocksSummary {
        contended: u64,
        locks: usize,
        other_semaphore_waits: u64,
        lost_events: u64,
        kernel_failures: KernelFailures,
        malformed_events: u64,
        evicted: LockEvictions,
        /// `--otlp` only.
        #[serde(skip_serializing_if = "Option::is_none")]
        otlp: Option<OtlpTotals<'a>>,
    },
    // `tracer hang`, and `--watch`
    Goroutine(GoroutineRecord<'a>),
    Deadlock {
        goids: &'a [u64],
        locks: &'a [u64],
        #[serde(skip_serializing_if = "Option::is_none")]
        lock_names: Option<Vec<Option<&'a str>>>,
        certain: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        holders: Option<Vec<Holder>>,
        evidence: &'a str,
    },
    #[serde(rename = "summary")]
    HangSummary {
        go_version: &'a str,
        goroutines: usize,
        system_goroutines: usize,
        unreadable: usize,
        by_state: BTreeMap<String, usize>,
        snapshot_ns: u64,
    },
    Unblocked {
        goid: u64,
        waited_ns: u64,
    },
    #[serde(rename = "summary")]
    WatchSummary {
        reports: u64,
        unseen_wakeups: u64,
        lost_events: u64,
        kernel_failures: KernelFailures,
        malformed_events: u64,
        evicted: WatchEvictions,
        snapshots: u64,
        longest_snapshot_ns: u64,
    },
}

impl Record<'_> {
    /// The record as one JSON line.
    /// Generic so that a buffer (`Vec<u8>`) is written to without a dynamic call per
    /// token: serde writes a record in many small pieces.
    pub fn write_line<W: std::io::Write + ?Sized>(&self, w: &mut W) -> std::io::Result<()> {
        serde_json::to_writer(&mut *w, self)?;
        w.write_all(b"\n")
    }

    pub fn header(command: &str) -> Record<'_> {
        Record::Header {
            schema: SCHEMA_VERSION,
            tracer: env!("CARGO_PKG_VERSION"),
            command,
        }
    }
}

/// A stack frame. Lock stacks carry no PC (they are symbolized from PCs already grouped).
#[derive(Serialize)]
pub struct FrameRecord<'a> {
    pub func: &'a str,
    pub file: &'a Option<String>,
    pub line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pc: Option<u64>,
    pub inlined: bool,
}

impl<'a> FrameRecord<'a> {
    pub fn of(f: &'a Frame) -> Self {
        FrameRecord {
            func: &f.func,
            file: &f.file,
            line: f.line,
            pc: Some(f.pc),
            inlined: f.inlined,
        }
    }

    pub fn without_pc(f: &'a Frame) -> Self {
        FrameRecord {
            pc: None,
            ..FrameRecord::of(f)
        }
    }
}

#[derive(Serialize)]
pub struct TopStack<'a> {
    pub count: u64,
    pub stack: Vec<FrameRecord<'a>>,
}

impl<'a> Record<'a> {
    pub fn lock_summary(
        s: &'a LockSummary,
        frames: impl Fn(&'a [Frame]) -> Vec<FrameRecord<'a>>,
    ) -> Self {
        Record::LockSummary {
            lock: s.lock,
            lock_type: s.lock_type.as_str(),
            lock_name: s.name,
            lock_named_by: s.named_by.map(NamedBy::as_str),
            contended: s.contended,
            reader_waits: s.reader_waits,
            total_wait_ns: s.total_wait_ns,
            p50_wait_ns: s.wait.quantile(0.5),
            p99_wait_ns: s.wait.quantile(0.99),
            max_wait_ns: s.wait.quantile(1.0),
            top_stacks: s
                .top_stacks
                .iter()
                .map(|(count, stack)| TopStack {
                    count: *count,
                    stack: frames(stack),
                })
                .collect(),
        }
    }
}

/// Per-function totals of `tracer funcs`.
#[derive(Serialize)]
pub struct FuncTotals<'a> {
    pub func: &'a str,
    pub calls: u64,
    pub returned: u64,
    pub unwound: u64,
    pub unfinished: u64,
    pub entry_only: u64,
    pub no_entry: u64,
    pub p50_ns: Option<u64>,
    pub p99_ns: Option<u64>,
}

/// One goroutine of a snapshot; `--watch` adds why it is reported.
#[derive(Serialize)]
pub struct GoroutineRecord<'a> {
    /// `--watch`: "blocked" (past the threshold).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<&'static str>,
    pub goid: u64,
    pub state: &'static str,
    pub wait_reason: &'a Option<String>,
    pub waiting_ns: Option<u64>,
    /// `--watch`: how the wait's start is known (probe, runtime, attach).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_start: Option<&'static str>,
    pub waiting_on: Option<u64>,
    pub wait_kind: Option<&'a str>,
    pub lock_name: Option<&'a str>,
    pub lock_named_by: Option<&'static str>,
    pub sema: Option<u64>,
    pub channels: &'a [u64],
    pub possible_holders: Vec<u64>,
    pub system: bool,
    pub parent_goid: Option<u64>,
    pub start_func: &'a Option<String>,
    pub created_by: Option<FrameRecord<'a>>,
    pub stack: Vec<FrameRecord<'a>>,
    pub stack_note: Option<&'a str>,
}

/// A recorded owner in a certain deadlock (`--watch`).
#[derive(Serialize)]
pub struct Holder {
    pub lock: u64,
    pub goid: u64,
    pub since_ns: u64,
    pub taken_by: &'static str,
    pub taken_at: Option<SourcePlace>,
}

#[derive(Serialize)]
pub struct SourcePlace {
    pub func: String,
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// A `cache_call` record, serialized straight from the call (the hot path: no
/// intermediate JSON tree).
#[derive(Serialize)]
pub struct CacheCallRecord<'a> {
    pub pid: u32,
    pub goid: u64,
    pub digest: &'a Option<Text>,
    pub outcome: Option<&'static str>,
    pub hit_route: Option<&'static str>,
    pub engine_outcome: &'a Option<Text>,
    pub engine_hit_route: &'a Option<Text>,
    pub engine_disagrees: bool,
    pub result_id: Option<u64>,
    pub session: &'a Option<Text>,
    pub start_ns: Option<u64>,
    pub duration_ns: Option<u64>,
    pub exec_goid: Option<u64>,
    pub waiters: Option<u32>,
    pub returned_id_differs: Option<bool>,
    pub parent_digest: &'a Option<Text>,
    pub storage_key: &'a Option<String>,
    pub ttl: Ttl,
    pub error: &'a Option<String>,
    pub status: &'static str,
    pub identity: &'a Option<Box<CallIdentity>>,
    pub explain: &'a Option<Box<Explanation>>,
    pub engine_miss: Option<EngineMiss>,
}

#[derive(Serialize)]
pub struct Ttl {
    pub db_read: bool,
    pub db_written: bool,
}

/// `tracer cache`'s closing record.
#[derive(Serialize)]
pub struct CacheSummary<'a> {
    pub engine: &'a str,
    pub calls: u64,
    pub unknown_outcome: u64,
    pub outcomes: BTreeMap<&'static str, OutcomeTotals>,
    pub hit_ratio: Option<f64>,
    pub sessions: Vec<SessionTotals<'a>>,
    pub filesync: FilesyncTotals,
    pub metrics: MetricsNow,
    pub lost_events: u64,
    pub kernel_failures: KernelFailures,
    pub malformed_events: u64,
    pub evicted_state: crate::model::cache::Evictions,
    /// Entries the long-lived tables held when tracing stopped.
    pub state_sizes: crate::model::cache::StateSizes,
    pub sessions_folded: crate::model::cache::FoldedSessions,
    /// False on L3/L4 in `--light`: every session's references are then null (and the
    /// folded sessions' counts mean nothing).
    pub refs_followed: bool,
    pub tracer_cpu_ns: u64,
    /// Probe hits whose events arrived: what the engine paid a trap for.
    pub probe_hits: ProbeHits,
    /// Where cache calls' returns were read: `ret` (the function's RET instructions) or
    /// `callers` (the first jump after each call site the binary holds).
    pub returns_read_at: &'static str,
    /// Calls made from a place no return probe covers (an interface call the binary's
    /// code does not show): their results are unknown, their outcome null unless the
    /// path tells it.
    pub calls_with_unread_return: u64,
    /// `--otlp` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp: Option<OtlpTotals<'a>>,
}

/// Probe hits, in all, per cache call, and by what each probe is for (role name ->
/// hits; `other` for the runtime's probes).
#[derive(Serialize)]
pub struct ProbeHits {
    pub total: u64,
    pub per_call: Option<f64>,
    pub by_role: BTreeMap<String, u64>,
    /// `--light`: goroutines whose end was read from the engine's goroutine table instead
    /// of trapped (no exit probe is attached).
    pub goroutine_exits_read: u64,
}

/// `--otlp`: what became of the spans (`dropped` is the sum of the three `dropped_*`).
#[derive(Serialize)]
pub struct OtlpTotals<'a> {
    pub endpoint: &'a str,
    pub spans: u64,
    pub exported: u64,
    pub dropped: u64,
    pub dropped_queue_full: u64,
    pub dropped_export_failed: u64,
    pub dropped_unsent_at_exit: u64,
    pub last_error: &'a Option<String>,
}

#[derive(Serialize)]
pub struct OutcomeTotals {
    pub calls: u64,
    pub p50_ns: Option<u64>,
    pub p99_ns: Option<u64>,
}

impl OutcomeTotals {
    pub fn of(h: &Histogram) -> Self {
        OutcomeTotals {
            calls: h.count_all(),
            p50_ns: h.quantile(0.5),
            p99_ns: h.quantile(0.99),
        }
    }
}

#[derive(Serialize)]
pub struct SessionTotals<'a> {
    pub session: &'a Option<Text>,
    pub calls: u64,
    /// Null when references are not followed (L3/L4 `--light`).
    pub refs_taken: Option<u64>,
    pub refs_released: Option<u64>,
    pub closed: bool,
    /// Dropped while live, its release likely lost (`evicted_state.idle_sessions`).
    pub evicted: bool,
    pub leaked: Option<bool>,
}

#[derive(Serialize)]
pub struct FilesyncTotals {
    pub changes: u64,
    pub conflicts: u64,
}

#[derive(Serialize)]
pub struct MetricsNow {
    pub dagger_connected_clients: Option<u64>,
    pub dagger_dagql_cache_entries: Option<u64>,
}

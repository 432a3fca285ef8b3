//! `tracer cache --otlp URL`: each cache call as an OpenTelemetry span, sent over OTLP/HTTP
//! (protobuf) by opentelemetry-otlp's exporter, so the tracer's view of the cache sits
//! beside the engine's own traces in one backend; `tracer locks --otlp URL`: each
//! contended lock acquisition as a span of its wait.
//!
//! The event loop only clones a finished call (or wait) into a bounded queue (`try_send`): a full
//! queue drops the span and counts it, so a slow or absent collector never slows tracing.
//! One worker thread turns calls into spans, batches them and exports each batch on its
//! own single-threaded runtime; what the collector did not accept is counted as dropped.
//! At exit the worker gets a bounded time to send what is queued.
//!
//! Span attributes use the names the engine's own call spans use (`dagger.io/dag.digest`,
//! `dagger.io/cache.outcome`, `dagger.io/cache.hit.route`, the miss facts), in the
//! engine's vocabulary, so the two can be joined; what only the tracer knows is under
//! `tracer.`. Span ids come from the model's call ids: a call's record arrives after the
//! records of the calls nested in it, so a child names its parent's id before the parent
//! is sent. One trace per outermost call and its nesting.
use std::{
    borrow::Cow,
    hash::{BuildHasher, Hasher},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use super::records::OtlpTotals;
use crate::{
    model::{
        cache::{CacheCall, Outcome},
        locks::Contention,
    },
    recording::ClockBase,
};
use opentelemetry::{
    InstrumentationScope, KeyValue,
    trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState},
};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{
    Resource,
    trace::{SpanData, SpanExporter as _},
};

/// Spans waiting for the worker; past this, new spans are dropped (and counted).
const QUEUE: usize = 4096;
/// Spans per export request.
const BATCH: usize = 512;
/// A batch is sent when full or when its first span is this old.
const BATCH_AGE: Duration = Duration::from_millis(500);
/// One export request, retries included (the exporter's own deadline).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the tracer waits at exit for queued spans to be sent.
const EXIT_WAIT: Duration = Duration::from_secs(3);
/// The engine's `service.name` (Dagger's cmd/engine), so its spans and ours group together.
const SERVICE_NAME: &str = "dagger-engine";

/// An OTLP/HTTP traces endpoint, checked when the command line is parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint(String);

impl Endpoint {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `--otlp URL`: `http://HOST:PORT` gets OTLP's `/v1/traces` (as OTEL_EXPORTER_OTLP_ENDPOINT
/// does); a URL with a path is used as it is (as OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).
pub fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    if s.starts_with("https://") {
        return Err(
            "this tracer sends OTLP over plain HTTP (hint: run an OpenTelemetry Collector next \
             to it, e.g. http://127.0.0.1:4318, and let it forward over TLS)"
                .into(),
        );
    }
    let Some(rest) = s.strip_prefix("http://") else {
        return Err("give an http:// URL (hint: --otlp http://127.0.0.1:4318)".into());
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() {
        return Err("the URL names no host (hint: --otlp http://127.0.0.1:4318)".into());
    }
    let url = if path.is_empty() || path == "/" {
        format!("http://{authority}/v1/traces")
    } else {
        s.to_owned()
    };
    url.parse::<http::Uri>()
        .map_err(|e| format!("not a URL: {e}"))?;
    Ok(Endpoint(url))
}

/// The traced process, for the spans' resource.
pub struct TargetProcess<'a> {
    pub pid: u32,
    /// Its executable's path.
    pub exe: &'a str,
    /// The tracer's description of the engine (version, code line); None when the
    /// process is not a Dagger engine (`tracer locks` on any Go program).
    pub engine: Option<&'a str>,
}

/// A contended acquisition, as exported: what the span needs of a `Contention`.
#[derive(Clone, Debug)]
pub struct LockWait {
    /// Numbers the waits of this run (span ids).
    id: u64,
    lock: u64,
    lock_type: &'static str,
    name: Option<&'static str>,
    waiter: u64,
    start_ns: u64,
    wait_ns: u64,
    released_by: Option<u64>,
    /// The innermost function of the waiter outside the runtime and `sync`: who waited.
    caller: Option<String>,
}

/// What one queued span is made from.
enum SpanSource {
    Call(Box<CacheCall>),
    LockWait(Box<LockWait>),
}

/// Counters the event loop and the worker share.
#[derive(Default)]
struct Shared {
    /// Set at exit, before the queue closes.
    closing: AtomicBool,
    exported: AtomicU64,
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// What became of the spans, for the summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpCounts {
    pub endpoint: String,
    /// Calls offered as spans.
    pub spans: u64,
    /// Spans the collector accepted.
    pub exported: u64,
    /// Spans not exported: `queue_full + failed + unsent`.
    pub dropped: u64,
    /// Dropped at the queue (the worker was behind, e.g. on a slow collector).
    pub queue_full: u64,
    /// In export requests that failed (collector down, refused, timed out).
    pub failed: u64,
    /// Still queued when the exit wait ran out.
    pub unsent: u64,
    pub last_error: Option<String>,
}

impl OtlpCounts {
    /// The summary's `otlp` object.
    pub fn record(&self) -> OtlpTotals<'_> {
        OtlpTotals {
            endpoint: &self.endpoint,
            spans: self.spans,
            exported: self.exported,
            dropped: self.dropped,
            dropped_queue_full: self.queue_full,
            dropped_export_failed: self.failed,
            dropped_unsent_at_exit: self.unsent,
            last_error: &self.last_error,
        }
    }

    /// One line for a person, and a hint when spans were lost.
    pub fn human(&self) -> String {
        let mut line = format!(
            "otlp: {} spans to {}: {} exported, {} dropped",
            self.spans, self.endpoint, self.exported, self.dropped
        );
        if self.dropped > 0 {
            line.push_str(&format!(
                " ({} queue full, {} in failed exports, {} unsent at exit)",
                self.queue_full, self.failed, self.unsent
            ));
            if let Some(e) = &self.last_error {
                line.push_str(&format!(
                    "; last error: {e} (hint: is a collector listening?)"
                ));
            }
        }
        line
    }
}

/// The exporter side of the pipeline: a bounded queue to one worker thread.
pub struct Otlp {
    endpoint: String,
    queue: Option<SyncSender<SpanSource>>,
    shared: Arc<Shared>,
    done: Receiver<()>,
    /// Replay: wait for room in the queue rather than drop (nothing live to slow down),
    /// as long as the collector takes what is sent.
    lossless: bool,
    spans: u64,
    queue_full: u64,
    /// Lock waits offered so far.
    lock_waits: u64,
}

impl Otlp {
    /// Starts the worker. `clock` places the events' CLOCK_MONOTONIC times on the wall
    /// clock: read at start on a live run, the recording's own on a replay.
    pub fn start(
        endpoint: &Endpoint,
        target: &TargetProcess,
        clock: ClockBase,
        lossless: bool,
    ) -> anyhow::Result<Otlp> {
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint.as_str())
            .with_timeout(EXPORT_TIMEOUT)
            .with_retry_policy(
                opentelemetry_otlp::RetryPolicy::default()
                    .with_max_retries(2)
                    .with_max_delay(Duration::from_millis(400)),
            )
            .build()
            .map_err(|e| anyhow::anyhow!("cannot export to {}: {e}", endpoint.as_str()))?;
        exporter.set_resource(&resource(target));
        let spans = SpanMaker::new(clock);
        let shared = Arc::new(Shared::default());
        let (queue, calls) = mpsc::sync_channel(QUEUE);
        let (done_tx, done) = mpsc::sync_channel(1);
        let worker_shared = shared.clone();
        std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || {
                export_loop(calls, exporter, spans, &worker_shared);
                let _ = done_tx.send(());
            })?;
        Ok(Otlp {
            endpoint: endpoint.as_str().to_owned(),
            queue: Some(queue),
            shared,
            done,
            lossless,
            spans: 0,
            queue_full: 0,
            lock_waits: 0,
        })
    }

    /// Queues one finished call; never waits on a live run.
    pub fn call(&mut self, c: &CacheCall) {
        if c.start_ns.is_none() {
            // Nowhere to place it in time (the model gives every call a start).
            return;
        }
        self.offer(SpanSource::Call(Box::new(c.clone())));
    }

    /// Queues one contended acquisition's wait; never waits on a live run.
    pub fn lock_wait(&mut self, c: &Contention) {
        self.lock_waits += 1;
        let caller = c
            .stack
            .iter()
            .map(|f| f.func.as_str())
            .find(|f| {
                !f.starts_with("runtime.")
                    && !f.starts_with("sync.")
                    && !f.starts_with("internal/sync.")
            })
            .map(str::to_owned);
        self.offer(SpanSource::LockWait(Box::new(LockWait {
            id: self.lock_waits,
            lock: c.lock,
            lock_type: c.lock_type.as_str(),
            name: c.name,
            waiter: c.waiter,
            start_ns: c.start_ns,
            wait_ns: c.wait_ns,
            released_by: c.released_by,
            caller,
        })));
    }

    fn offer(&mut self, item: SpanSource) {
        let Some(queue) = &self.queue else { return };
        self.spans += 1;
        let sent = if self.lossless && self.shared.failed.load(Ordering::Relaxed) == 0 {
            queue.send(item).map_err(|_| ())
        } else {
            queue.try_send(item).map_err(|e| match e {
                TrySendError::Full(_) | TrySendError::Disconnected(_) => (),
            })
        };
        if sent.is_err() {
            self.queue_full += 1;
        }
    }

    /// Closes the queue and waits (bounded) for the worker to send what is in it.
    pub fn finish(mut self) -> OtlpCounts {
        self.shared.closing.store(true, Ordering::Relaxed);
        self.queue = None;
        let finished = self.done.recv_timeout(EXIT_WAIT).is_ok();
        let exported = self.shared.exported.load(Ordering::Relaxed);
        let failed = self.shared.failed.load(Ordering::Relaxed);
        // What the worker had not settled when the wait ran out.
        let unsent = if finished {
            0
        } else {
            self.spans - self.queue_full - exported - failed
        };
        OtlpCounts {
            endpoint: self.endpoint.clone(),
            spans: self.spans,
            exported,
            dropped: self.queue_full + failed + unsent,
            queue_full: self.queue_full,
            failed,
            unsent,
            last_error: self
                .shared
                .last_error
                .lock()
                .expect("never poisoned")
                .clone(),
        }
    }
}

/// The worker: batches calls into spans and exports them until the queue closes.
fn export_loop(
    calls: Receiver<SpanSource>,
    exporter: opentelemetry_otlp::SpanExporter,
    spans: SpanMaker,
    shared: &Shared,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            *shared.last_error.lock().expect("never poisoned") =
                Some(format!("cannot start the exporter's runtime: {e}"));
            let n = calls.iter().count() as u64;
            shared.failed.fetch_add(n, Ordering::Relaxed);
            return;
        }
    };
    let mut open = true;
    let mut last_failed = false;
    while open {
        let Ok(first) = calls.recv() else { break };
        let mut batch = vec![spans.span(&first)];
        let deadline = Instant::now() + BATCH_AGE;
        while batch.len() < BATCH {
            match calls.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(c) => batch.push(spans.span(&c)),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        let n = batch.len() as u64;
        // At exit, after a failed export, the rest is not tried: a collector that is
        // down costs dropped spans, not a slow exit.
        if last_failed && shared.closing.load(Ordering::Relaxed) {
            shared.failed.fetch_add(n, Ordering::Relaxed);
            break;
        }
        match runtime.block_on(exporter.export(batch)) {
            Ok(()) => {
                shared.exported.fetch_add(n, Ordering::Relaxed);
                last_failed = false;
            }
            Err(e) => {
                shared.failed.fetch_add(n, Ordering::Relaxed);
                *shared.last_error.lock().expect("never poisoned") = Some(e.to_string());
                last_failed = true;
            }
        }
    }
    if last_failed {
        // What is left in the queue (it is closed: this does not wait).
        let n = calls.iter().count() as u64;
        shared.failed.fetch_add(n, Ordering::Relaxed);
    }
    let _ = exporter.shutdown();
}

fn resource(target: &TargetProcess) -> Resource {
    let name = target.exe.rsplit('/').next().unwrap_or(target.exe);
    // An engine's spans go with the engine's own; another program is named by its file.
    let service = if target.engine.is_some() {
        SERVICE_NAME
    } else {
        name
    };
    let mut attributes = vec![
        KeyValue::new("process.pid", i64::from(target.pid)),
        KeyValue::new("process.executable.name", name.to_owned()),
        KeyValue::new("process.executable.path", target.exe.to_owned()),
    ];
    if let Some(engine) = target.engine {
        attributes.push(KeyValue::new("tracer.engine", engine.to_owned()));
    }
    Resource::builder_empty()
        .with_service_name(service.to_owned())
        .with_attributes(attributes)
        .build()
}

/// From a call record to a span: ids, wall-clock times, attributes.
struct SpanMaker {
    clock: ClockBase,
    /// Random per run, so two runs' ids never meet in one backend.
    salt: u64,
    scope: InstrumentationScope,
}

/// A bijective 64-bit mix (splitmix64's finalizer): distinct calls, distinct ids.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl SpanMaker {
    fn new(clock: ClockBase) -> SpanMaker {
        let mut h = std::hash::RandomState::new().build_hasher();
        h.write_u64(std::process::id().into());
        SpanMaker {
            clock,
            salt: h.finish(),
            scope: InstrumentationScope::builder("tracer")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        }
    }

    fn span_id(&self, call: u64) -> SpanId {
        // An all-zero id is invalid; one call in 2^64 would map there.
        SpanId::from(mix(call ^ self.salt).max(1))
    }

    fn trace_id(&self, root: u64) -> TraceId {
        TraceId::from(u128::from(self.salt) << 64 | u128::from(mix(root.wrapping_add(self.salt))))
    }

    /// A CLOCK_MONOTONIC time on the wall clock.
    fn wall(&self, monotonic_ns: u64) -> SystemTime {
        let unix = i128::from(self.clock.unix_ns) + i128::from(monotonic_ns)
            - i128::from(self.clock.monotonic_ns);
        UNIX_EPOCH + Duration::from_nanos(u64::try_from(unix).unwrap_or(0))
    }

    fn span(&self, source: &SpanSource) -> SpanData {
        match source {
            SpanSource::Call(c) => self.call_span(c),
            SpanSource::LockWait(w) => self.lock_wait_span(w),
        }
    }

    /// A wait is a trace of its own; its ids are apart from the calls' (top bit set).
    fn lock_wait_span(&self, w: &LockWait) -> SpanData {
        let id = 1 << 63 | w.id;
        let lock = w.name.unwrap_or(w.lock_type);
        let mut attributes = vec![
            KeyValue::new("tracer.lock.address", format!("{:#x}", w.lock)),
            KeyValue::new("tracer.lock.type", w.lock_type),
            KeyValue::new("tracer.goid", w.waiter as i64),
            KeyValue::new("tracer.lock.wait_ns", w.wait_ns as i64),
        ];
        if let Some(name) = w.name {
            attributes.push(KeyValue::new("tracer.lock.name", name));
        }
        if let Some(r) = w.released_by {
            attributes.push(KeyValue::new("tracer.lock.released_by", r as i64));
        }
        if let Some(f) = &w.caller {
            attributes.push(KeyValue::new("code.function.name", f.clone()));
        }
        SpanData {
            span_context: SpanContext::new(
                self.trace_id(id),
                self.span_id(id),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Owned(format!("wait {lock}")),
            start_time: self.wall(w.start_ns),
            end_time: self.wall(w.start_ns + w.wait_ns),
            attributes,
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: self.scope.clone(),
        }
    }

    fn call_span(&self, c: &CacheCall) -> SpanData {
        let start_ns = c.start_ns.unwrap_or(self.clock.monotonic_ns);
        let start = self.wall(start_ns);
        // No end seen (light mode, a call cut by the stop): a span of no length.
        let end = self.wall(start_ns + c.duration_ns.unwrap_or(0));
        let field = c.identity.as_ref().and_then(|i| i.field.clone());
        let status = match (&c.error, c.outcome) {
            (Some(e), _) => Status::error(e.clone()),
            (None, Some(Outcome::Error | Outcome::Recursive)) => Status::error("error"),
            _ => Status::Unset,
        };
        SpanData {
            span_context: SpanContext::new(
                self.trace_id(c.root_call),
                self.span_id(c.call),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: c.parent_call.map_or(SpanId::INVALID, |p| self.span_id(p)),
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: field.map_or(Cow::Borrowed("cache call"), Cow::Owned),
            start_time: start,
            end_time: end,
            attributes: attributes(c),
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status,
            instrumentation_scope: self.scope.clone(),
        }
    }
}

/// The engine's `dagger.io/cache.outcome` word, where it has one (an error is not a cache
/// decision: the engine stamps none then either).
fn engine_outcome(o: Outcome) -> Option<&'static str> {
    match o {
        Outcome::Hit | Outcome::HitContent => Some("hit"),
        Outcome::Miss => Some("executed"),
        Outcome::Join => Some("joined"),
        Outcome::Uncached => Some("uncached"),
        Outcome::Error | Outcome::Recursive => None,
    }
}

fn attributes(c: &CacheCall) -> Vec<KeyValue> {
    let mut a = Vec::with_capacity(16);
    let mut text = |key: &'static str, v: Option<&str>| {
        if let Some(v) = v {
            a.push(KeyValue::new(key, v.to_owned()));
        }
    };
    // The engine's names (Dagger's otel-go telemetry and engine/telemetryattrs).
    text("dagger.io/dag.digest", c.digest.as_deref());
    text(
        "dagger.io/cache.outcome",
        c.outcome.and_then(engine_outcome),
    );
    text("dagger.io/cache.hit.route", c.hit_route.map(|r| r.as_str()));
    text(
        "dagger.io/cache.self_digest",
        c.identity.as_ref().and_then(|i| i.self_digest.as_deref()),
    );
    // The engine stamps its miss facts on executed calls only, "true" only when true.
    if let (Some(Outcome::Miss), Some(m)) = (c.outcome, c.engine_miss) {
        if m.incompatible_candidates {
            text("dagger.io/cache.miss.incompatible_candidates", Some("true"));
        }
        if m.saw_expired {
            text("dagger.io/cache.miss.saw_expired", Some("true"));
        }
        if let Some(i) = m.unknown_input {
            text("dagger.io/cache.miss.unknown_input", Some(&i.to_string()));
        }
    }
    // The tracer's own.
    text("tracer.cache.outcome", c.outcome.map(Outcome::as_str));
    text("tracer.session", c.session.as_deref());
    text("tracer.parent_digest", c.parent_digest.as_deref());
    text("tracer.error", c.error.as_deref());
    text("tracer.status", Some(c.status.as_str()));
    let mut int = |key: &'static str, v: Option<u64>| {
        if let Some(v) = v {
            // OTLP integers are signed; goroutine ids and result ids fit.
            a.push(KeyValue::new(key, v as i64));
        }
    };
    int("tracer.goid", Some(c.goid));
    int("tracer.exec_goid", c.exec_goid);
    int("tracer.waiters", c.waiters.map(u64::from));
    int("tracer.result_id", c.result_id);
    if c.engine_disagrees {
        a.push(KeyValue::new("tracer.engine_disagrees", true));
    }
    a
}

/// The clock base of a live run: both clocks now.
pub fn clock_now() -> ClockBase {
    let monotonic_ns = crate::target::memory::monotonic_ns();
    let unix_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    ClockBase {
        monotonic_ns,
        unix_ns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{cache_events::HitRoute, calls::CallStatus};

    fn call(id: u64, parent: Option<u64>, root: u64) -> CacheCall {
        CacheCall {
            call: id,
            parent_call: parent,
            root_call: root,
            tgid: 1,
            goid: 7,
            digest: Some("xxh3:a".into()),
            outcome: Some(Outcome::HitContent),
            hit_route: Some(HitRoute::Digest),
            engine_outcome: None,
            engine_hit_route: None,
            engine_disagrees: false,
            session: Some("s1".into()),
            exec_goid: None,
            waiters: None,
            returned_id_differs: None,
            parent_digest: parent.map(|_| "xxh3:p".into()),
            db_read: false,
            db_written: false,
            storage_key: None,
            error: None,
            result_id: Some(3),
            start_ns: Some(1_000),
            duration_ns: Some(500),
            status: CallStatus::Returned,
            identity: None,
            explain: None,
            engine_miss: None,
        }
    }

    #[test]
    fn endpoints_get_the_traces_path_unless_they_have_one() {
        let p = |s| parse_endpoint(s).map(|e| e.0);
        assert_eq!(
            p("http://127.0.0.1:4318"),
            Ok("http://127.0.0.1:4318/v1/traces".into())
        );
        assert_eq!(
            p("http://collector:4318/"),
            Ok("http://collector:4318/v1/traces".into())
        );
        assert_eq!(p("http://c:1/otlp/t"), Ok("http://c:1/otlp/t".into()));
        assert!(p("https://c:4318").unwrap_err().contains("plain HTTP"));
        assert!(p("c:4318").unwrap_err().contains("http://"));
        assert!(p("http:///x").is_err());
    }

    #[test]
    fn a_nested_call_names_its_parent_and_shares_its_trace() {
        let maker = SpanMaker::new(ClockBase {
            monotonic_ns: 1_000,
            unix_ns: 1_700_000_000_000_000_000,
        });
        let parent = maker.call_span(&call(2, None, 2));
        let child = maker.call_span(&call(3, Some(2), 2));
        let other = maker.call_span(&call(4, None, 4));
        assert_eq!(child.parent_span_id, parent.span_context.span_id());
        assert_eq!(parent.parent_span_id, SpanId::INVALID);
        assert_eq!(
            child.span_context.trace_id(),
            parent.span_context.trace_id()
        );
        assert_ne!(
            other.span_context.trace_id(),
            parent.span_context.trace_id()
        );
        assert_ne!(child.span_context.span_id(), parent.span_context.span_id());
        // Monotonic 1000 is the wall clock's base; the call ends 500 ns later.
        let at = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_nanos();
        assert_eq!(at(parent.start_time), 1_700_000_000_000_000_000);
        assert_eq!(at(parent.end_time), 1_700_000_000_000_000_500);
        let attr = |key: &str| {
            parent
                .attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(attr("dagger.io/cache.outcome").as_deref(), Some("hit"));
        assert_eq!(attr("tracer.cache.outcome").as_deref(), Some("hit_content"));
        assert_eq!(attr("dagger.io/cache.hit.route").as_deref(), Some("digest"));
        assert_eq!(attr("dagger.io/dag.digest").as_deref(), Some("xxh3:a"));
        assert_eq!(attr("tracer.goid").as_deref(), Some("7"));
    }

    #[test]
    fn an_absent_collector_costs_counted_spans_and_a_short_exit() {
        // A port nothing listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = parse_endpoint(&format!("http://127.0.0.1:{port}")).unwrap();
        let target = TargetProcess {
            pid: 1,
            exe: "/x/engine",
            engine: Some("test"),
        };
        let mut otlp = Otlp::start(&endpoint, &target, clock_now(), false).unwrap();
        for i in 0..10 {
            otlp.call(&call(i + 1, None, i + 1));
        }
        let began = Instant::now();
        let counts = otlp.finish();
        assert!(began.elapsed() < EXIT_WAIT + Duration::from_secs(1));
        assert_eq!(counts.spans, 10);
        assert_eq!(counts.exported, 0);
        assert_eq!(counts.dropped, 10);
        assert!(counts.human().contains("10 dropped"), "{}", counts.human());
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        // A collector that accepts connections and never answers: the worker is stuck in
        // an export while the queue fills.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let endpoint = parse_endpoint(&format!("http://127.0.0.1:{port}")).unwrap();
        let target = TargetProcess {
            pid: 1,
            exe: "/x/engine",
            engine: Some("test"),
        };
        let mut otlp = Otlp::start(&endpoint, &target, clock_now(), false).unwrap();
        let n = (QUEUE + 2 * BATCH) as u64;
        let began = Instant::now();
        for i in 0..n {
            otlp.call(&call(i + 1, None, i + 1));
        }
        assert!(
            began.elapsed() < Duration::from_secs(1),
            "queueing never waits"
        );
        let counts = otlp.finish();
        assert!(began.elapsed() < EXIT_WAIT + EXPORT_TIMEOUT);
        assert_eq!(counts.spans, n);
        assert!(counts.queue_full > 0, "{counts:?}");
        assert_eq!(counts.exported, 0);
        assert_eq!(counts.dropped, n, "{counts:?}");
        assert_eq!(
            counts.queue_full + counts.failed + counts.unsent,
            counts.dropped
        );
    }
}

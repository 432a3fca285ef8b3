//! `--metrics [ADDR]`: the metrics the debugging guide's leak triage starts from, served
//! in OpenMetrics text for Prometheus to scrape (loopback unless an address is given).
//! The engine's own gauges (`dagger_connected_clients`, `dagger_dagql_cache_entries`) and
//! the five bucket gauges the engine no longer exports are read from what the tracer sees
//! (sessions, and the element counts of the cache's maps in its memory); the tracer adds
//! call counters per outcome and hit route, latency histograms per outcome, and its own
//! CPU. Metrics are prometheus-client's; the HTTP side answers one GET per connection.
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64},
    },
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::model::{
    cache::{CacheCall, Outcome},
    locks::Contention,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    outcome: String,
    hit_route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

/// The bucket gauges, by the position of their map in a line's `Size()` maps: four maps
/// (L2, L3, L4: ongoing calls, completed results, ongoing and completed arbitrary calls)
/// or five (L1, which also indexes completed calls by content).
const BUCKETS_OF_FOUR: [&str; 4] = [
    "dagger_dagql_cache_ongoing_calls_entries",
    "dagger_dagql_cache_completed_calls_entries",
    "dagger_dagql_cache_ongoing_arbitrary_entries",
    "dagger_dagql_cache_completed_arbitrary_entries",
];
const BUCKETS_OF_FIVE: [&str; 5] = [
    "dagger_dagql_cache_ongoing_calls_entries",
    "dagger_dagql_cache_completed_calls_entries",
    "dagger_dagql_cache_completed_calls_by_content_entries",
    "dagger_dagql_cache_ongoing_arbitrary_entries",
    "dagger_dagql_cache_completed_arbitrary_entries",
];

/// What `tracer cache --metrics` serves.
pub struct CacheMetrics {
    registry: Arc<Registry>,
    lost_events: Counter,
    calls: Family<CallLabels, Counter>,
    durations: Family<OutcomeLabel, Histogram, fn() -> Histogram>,
    connected_clients: Gauge,
    cache_entries: Gauge,
    buckets: Vec<Gauge>,
    tracer_cpu: Gauge<f64, AtomicU64>,
}

fn duration_histogram() -> Histogram {
    // 1 us to ~17 s.
    Histogram::new(exponential_buckets(1e-6, 4.0, 13))
}

impl CacheMetrics {
    /// `maps`: how many maps the line's `Size()` sums (their gauges are registered).
    pub fn new(maps: usize) -> CacheMetrics {
        let mut registry = Registry::default();
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "dagger_tracer_cache_calls",
            "dagql cache calls seen, by outcome and hit route",
            calls.clone(),
        );
        let durations: Family<OutcomeLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        registry.register(
            "dagger_tracer_cache_call_duration_seconds",
            "dagql cache call durations, by outcome",
            durations.clone(),
        );
        let connected_clients = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "dagger_connected_clients",
            "sessions open in the engine, as the tracer saw them",
            connected_clients.clone(),
        );
        let cache_entries = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "dagger_dagql_cache_entries",
            "what the engine's cache Size() returns, read from its memory",
            cache_entries.clone(),
        );
        let names: &[&str] = if maps == 5 {
            &BUCKETS_OF_FIVE
        } else {
            &BUCKETS_OF_FOUR
        };
        let buckets = names
            .iter()
            .take(maps)
            .map(|name| {
                let g = Gauge::<i64, AtomicI64>::default();
                registry.register(
                    *name,
                    "element count of one of the cache's maps, read from its memory",
                    g.clone(),
                );
                g
            })
            .collect();
        let (tracer_cpu, lost_events) = register_own(&mut registry);
        CacheMetrics {
            registry: Arc::new(registry),
            lost_events,
            calls,
            durations,
            connected_clients,
            cache_entries,
            buckets,
            tracer_cpu,
        }
    }

    pub fn call(&self, c: &CacheCall) {
        let outcome = c.outcome.map_or("unknown", Outcome::as_str).to_string();
        self.calls
            .get_or_create(&CallLabels {
                outcome: outcome.clone(),
                hit_route: c.hit_route.map_or("", |r| r.as_str()).to_string(),
            })
            .inc();
        if let Some(ns) = c.duration_ns {
            self.durations
                .get_or_create(&OutcomeLabel { outcome })
                .observe(ns as f64 / 1e9);
        }
    }

    /// Sets the gauges: sessions open, the cache's map counts (None: not readable now),
    /// the tracer's CPU.
    pub fn set(&self, connected: u64, maps: Option<&[u64]>, cpu_ns: u64) {
        self.connected_clients.set(connected as i64);
        if let Some(counts) = maps {
            self.cache_entries.set(counts.iter().sum::<u64>() as i64);
            for (g, n) in self.buckets.iter().zip(counts) {
                g.set(*n as i64);
            }
        }
        self.tracer_cpu.set(cpu_ns as f64 / 1e9);
    }

    pub fn lost_events(&self, lost: u64) {
        raise_to(&self.lost_events, lost);
    }
}

impl Served for CacheMetrics {
    fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LockLabels {
    /// The engine's name for the lock, or its address.
    lock: String,
    lock_type: String,
}

/// What `tracer locks --metrics` serves: contended acquisitions and wait times per lock.
pub struct LockMetrics {
    registry: Arc<Registry>,
    contended: Family<LockLabels, Counter>,
    waits: Family<LockLabels, Histogram, fn() -> Histogram>,
    tracer_cpu: Gauge<f64, AtomicU64>,
    lost_events: Counter,
}

impl Default for LockMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl LockMetrics {
    pub fn new() -> LockMetrics {
        let mut registry = Registry::default();
        let contended = Family::<LockLabels, Counter>::default();
        registry.register(
            "dagger_tracer_lock_contended",
            "contended acquisitions, by lock (engine name or address) and type",
            contended.clone(),
        );
        let waits: Family<LockLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        registry.register(
            "dagger_tracer_lock_wait_seconds",
            "how long contended acquisitions waited, by lock",
            waits.clone(),
        );
        let (tracer_cpu, lost_events) = register_own(&mut registry);
        LockMetrics {
            registry: Arc::new(registry),
            contended,
            waits,
            tracer_cpu,
            lost_events,
        }
    }

    pub fn contention(&self, c: &Contention) {
        let labels = LockLabels {
            lock: c
                .name
                .map_or_else(|| format!("{:#x}", c.lock), str::to_owned),
            lock_type: c.lock_type.as_str().to_owned(),
        };
        self.contended.get_or_create(&labels).inc();
        self.waits
            .get_or_create(&labels)
            .observe(c.wait_ns as f64 / 1e9);
    }

    pub fn set(&self, cpu_ns: u64, lost: Option<u64>) {
        self.tracer_cpu.set(cpu_ns as f64 / 1e9);
        if let Some(lost) = lost {
            raise_to(&self.lost_events, lost);
        }
    }
}

impl Served for LockMetrics {
    fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WaitReasonLabel {
    wait_reason: String,
}

/// What `tracer hang --watch --metrics` serves: goroutines reported blocked past the
/// threshold and not yet running again, by the runtime's wait reason; deadlocks reported.
pub struct WatchMetrics {
    registry: Arc<Registry>,
    blocked: Family<WaitReasonLabel, Gauge>,
    reports: Family<KindLabel, Counter>,
    tracer_cpu: Gauge<f64, AtomicU64>,
    lost_events: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

impl Default for WatchMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl WatchMetrics {
    pub fn new() -> WatchMetrics {
        let mut registry = Registry::default();
        let blocked = Family::<WaitReasonLabel, Gauge>::default();
        registry.register(
            "dagger_tracer_blocked_goroutines",
            "goroutines reported blocked past the threshold and not running again, by wait reason",
            blocked.clone(),
        );
        let reports = Family::<KindLabel, Counter>::default();
        registry.register(
            "dagger_tracer_hang_reports",
            "reports written: blocked, unblocked, deadlock, possible_deadlock",
            reports.clone(),
        );
        let (tracer_cpu, lost_events) = register_own(&mut registry);
        WatchMetrics {
            registry: Arc::new(registry),
            blocked,
            reports,
            tracer_cpu,
            lost_events,
        }
    }

    /// A report of `kind`; a goroutine that blocked (`+1`) or ran again (`-1`) with
    /// `wait_reason` (empty when unknown).
    pub fn report(&self, kind: &str, blocked: Option<(&str, i64)>) {
        self.reports
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
        if let Some((reason, delta)) = blocked {
            self.blocked
                .get_or_create(&WaitReasonLabel {
                    wait_reason: reason.to_owned(),
                })
                .inc_by(delta);
        }
    }

    pub fn set(&self, cpu_ns: u64, lost: u64) {
        self.tracer_cpu.set(cpu_ns as f64 / 1e9);
        raise_to(&self.lost_events, lost);
    }
}

impl Served for WatchMetrics {
    fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }
}

/// The tracer's own gauges: its CPU, and events the kernel side lost (ring full).
fn register_own(registry: &mut Registry) -> (Gauge<f64, AtomicU64>, Counter) {
    let tracer_cpu = Gauge::<f64, AtomicU64>::default();
    registry.register(
        "tracer_cpu_seconds",
        "CPU time the tracer has used",
        tracer_cpu.clone(),
    );
    let lost = Counter::default();
    registry.register(
        "tracer_lost_events",
        "events the kernel side could not queue (ring buffer full)",
        lost.clone(),
    );
    (tracer_cpu, lost)
}

/// A counter mirrored from a count kept elsewhere (the kernel's).
fn raise_to(counter: &Counter, now: u64) {
    let was = counter.get();
    if now > was {
        counter.inc_by(now - was);
    }
}

/// Metrics with a registry to serve.
pub trait Served {
    fn registry(&self) -> Arc<Registry>;
}

/// Serves `metrics` at `/metrics` on `listener` (bound before anything was attached) for
/// as long as `runtime` runs, and says where.
pub fn start<M: Served>(
    metrics: M,
    listener: std::net::TcpListener,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<M> {
    let addr = listener.local_addr()?;
    {
        let _in_runtime = runtime.enter();
        serve(metrics.registry(), listener)?;
    }
    eprintln!("tracer: metrics at http://{addr}/metrics");
    Ok(metrics)
}

/// Serves `registry` at `/metrics` on `listener` until the runtime ends.
fn serve(registry: Arc<Registry>, listener: std::net::TcpListener) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(answer(conn, registry.clone()));
        }
    });
    Ok(())
}

/// Binds `--metrics` before anything is attached: a busy or foreign address is one
/// sentence.
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr).map_err(|e| {
        anyhow::anyhow!(
            "cannot serve metrics on {addr}: {} (hint: choose a free port, e.g. --metrics 127.0.0.1:9465)",
            super::os_error_text(&e)
        )
    })
}

/// One scrape: read the request head, answer `/metrics`, close.
async fn answer(mut conn: tokio::net::TcpStream, registry: Arc<Registry>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read_head = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    };
    let Ok(true) = tokio::time::timeout(std::time::Duration::from_secs(5), read_head).await else {
        return;
    };
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let path = line.split(|&b| b == b' ').nth(1).unwrap_or_default();
    let (status, kind, body) = if path == b"/metrics" || path.starts_with(b"/metrics?") {
        let mut text = String::new();
        match prometheus_client::encoding::text::encode(&mut text, &registry) {
            Ok(()) => (
                "200 OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            ),
            Err(_) => ("500 Internal Server Error", "text/plain", String::new()),
        }
    } else {
        ("404 Not Found", "text/plain", "try /metrics\n".to_string())
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(reply.as_bytes()).await;
    let _ = conn.shutdown().await;
}

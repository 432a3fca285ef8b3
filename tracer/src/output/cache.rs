//! Output of `tracer cache`: one line (or JSON object) per cache call and session
//! event, in the debugging guide's "minimal logging" spirit, and the summary.
use std::{
    collections::BTreeMap,
    io::{self, Write},
};

use super::records::{
    CacheCallRecord, CacheSummary, FilesyncTotals, MetricsNow, OutcomeTotals, ProbeHits, Record,
    SessionTotals, Ttl,
};

use super::format::duration;
use crate::model::explain::Explanation;
use crate::model::{
    cache::{CacheCall, CacheOutput, Evictions, FoldedSessions, Outcome, SessionRefs, StateSizes},
    cache_events::HitRoute,
    latency::Histogram,
};
use crate::probes::KernelFailures;
use crate::profiles::dagger::Role;
use tracer_common::ProbeKind;

/// Totals for the summary.
#[derive(Default)]
pub struct CacheTotals {
    pub per_outcome: BTreeMap<Outcome, Histogram>,
    pub unknown_outcome: u64,
    pub calls: u64,
    pub conflicts: u64,
    pub changes: u64,
}

impl CacheTotals {
    pub fn add(&mut self, out: &CacheOutput) {
        match out {
            CacheOutput::Call(c) => {
                self.calls += 1;
                match c.outcome {
                    Some(o) => {
                        let h = self.per_outcome.entry(o).or_default();
                        match c.duration_ns {
                            Some(d) => h.record(d),
                            None => h.record_unknown(),
                        }
                    }
                    None => self.unknown_outcome += 1,
                }
            }
            CacheOutput::Conflict { .. } => self.conflicts += 1,
            CacheOutput::Change { .. } => self.changes += 1,
            _ => {}
        }
    }

    fn count(&self, o: Outcome) -> u64 {
        self.per_outcome.get(&o).map_or(0, Histogram::count_all)
    }

    /// Hits over cacheable lookups: (hit + hit_content) / (hit + hit_content + miss + join).
    pub fn hit_ratio(&self) -> Option<f64> {
        let hits = self.count(Outcome::Hit) + self.count(Outcome::HitContent);
        let all = hits + self.count(Outcome::Miss) + self.count(Outcome::Join);
        (all > 0).then(|| hits as f64 / all as f64)
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or("-".into(), T::to_string)
}

/// A session leaked refs when it closed (or was removed) holding more than it released.
pub fn leaked(s: &SessionRefs) -> bool {
    (s.closed || s.removed) && s.refs_taken > s.refs_released
}

/// Appends one output as a JSON line to a buffer (batched by the caller).
pub fn write_json_record(w: &mut Vec<u8>, out: &CacheOutput, pid: u32) -> io::Result<()> {
    let record = match out {
        CacheOutput::Call(c) => {
            write_call_json(w, c, pid);
            return Ok(());
        }
        _ => other_record(out, pid),
    };
    record.write_line(w)
}

/// A `cache_call` record, its schema as `CacheCallRecord` derives it.
fn call_record(c: &CacheCall, pid: u32) -> Record<'_> {
    Record::CacheCall(CacheCallRecord {
        pid,
        goid: c.goid,
        digest: &c.digest,
        outcome: c.outcome.map(Outcome::as_str),
        hit_route: c.hit_route.map(HitRoute::as_str),
        engine_outcome: &c.engine_outcome,
        engine_hit_route: &c.engine_hit_route,
        engine_disagrees: c.engine_disagrees,
        result_id: c.result_id,
        session: &c.session,
        start_ns: c.start_ns,
        duration_ns: c.duration_ns,
        exec_goid: c.exec_goid,
        waiters: c.waiters,
        returned_id_differs: c.returned_id_differs,
        parent_digest: &c.parent_digest,
        storage_key: &c.storage_key,
        ttl: Ttl {
            db_read: c.db_read,
            db_written: c.db_written,
        },
        error: &c.error,
        status: c.status.as_str(),
        identity: &c.identity,
        explain: &c.explain,
        engine_miss: c.engine_miss,
    })
}

/// `cache_call` records are most of a replay's output: written field by field, byte for
/// byte as serde_json writes [`call_record`] (tested), at a fraction of its cost. Each key
/// is one static piece with its comma and colon (a key written in four pieces was a
/// tenth of a replay).
fn write_call_json(w: &mut Vec<u8>, c: &CacheCall, pid: u32) {
    /// A field's key as written after the previous field.
    macro_rules! key {
        ($k:literal) => {
            concat!(",\"", $k, "\":").as_bytes()
        };
    }
    fn u64_(w: &mut Vec<u8>, key: &[u8], v: Option<u64>) {
        w.extend_from_slice(key);
        match v {
            Some(v) => w.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
            None => w.extend_from_slice(b"null"),
        }
    }
    fn str_(w: &mut Vec<u8>, key: &[u8], v: Option<&str>) {
        w.extend_from_slice(key);
        match v {
            Some(v) => super::json::string(w, v),
            None => w.extend_from_slice(b"null"),
        }
    }
    /// One of the tracer's own words (an outcome, a route, a status): plain text, so
    /// not looked at for bytes to escape.
    fn word_(w: &mut Vec<u8>, key: &[u8], v: Option<&'static str>) {
        w.extend_from_slice(key);
        match v {
            Some(v) => {
                w.push(b'"');
                w.extend_from_slice(v.as_bytes());
                w.push(b'"');
            }
            None => w.extend_from_slice(b"null"),
        }
    }
    fn bool_(w: &mut Vec<u8>, key: &[u8], v: Option<bool>) {
        w.extend_from_slice(key);
        w.extend_from_slice(match v {
            Some(true) => b"true",
            Some(false) => b"false",
            None => b"null",
        });
    }
    fn value<T: serde::Serialize>(w: &mut Vec<u8>, key: &[u8], v: Option<&T>) {
        w.extend_from_slice(key);
        match v {
            Some(v) => serde_json::to_writer(&mut *w, v).expect("writing to a Vec cannot fail"),
            None => w.extend_from_slice(b"null"),
        }
    }
    w.reserve(1024);
    w.extend_from_slice(br#"{"kind":"cache_call""#);
    u64_(w, key!("pid"), Some(u64::from(pid)));
    u64_(w, key!("goid"), Some(c.goid));
    str_(w, key!("digest"), c.digest.as_deref());
    word_(w, key!("outcome"), c.outcome.map(Outcome::as_str));
    word_(w, key!("hit_route"), c.hit_route.map(HitRoute::as_str));
    str_(w, key!("engine_outcome"), c.engine_outcome.as_deref());
    str_(w, key!("engine_hit_route"), c.engine_hit_route.as_deref());
    bool_(w, key!("engine_disagrees"), Some(c.engine_disagrees));
    u64_(w, key!("result_id"), c.result_id);
    str_(w, key!("session"), c.session.as_deref());
    u64_(w, key!("start_ns"), c.start_ns);
    u64_(w, key!("duration_ns"), c.duration_ns);
    u64_(w, key!("exec_goid"), c.exec_goid);
    u64_(w, key!("waiters"), c.waiters.map(u64::from));
    bool_(w, key!("returned_id_differs"), c.returned_id_differs);
    str_(w, key!("parent_digest"), c.parent_digest.as_deref());
    str_(w, key!("storage_key"), c.storage_key.as_deref());
    w.extend_from_slice(key!("ttl"));
    w.extend_from_slice(match (c.db_read, c.db_written) {
        (false, false) => br#"{"db_read":false,"db_written":false}"#,
        (false, true) => br#"{"db_read":false,"db_written":true}"#,
        (true, false) => br#"{"db_read":true,"db_written":false}"#,
        (true, true) => br#"{"db_read":true,"db_written":true}"#,
    });
    str_(w, key!("error"), c.error.as_deref());
    word_(w, key!("status"), Some(c.status.as_str()));
    value(w, key!("identity"), c.identity.as_deref());
    value(w, key!("explain"), c.explain.as_deref());
    w.extend_from_slice(key!("engine_miss"));
    match &c.engine_miss {
        Some(m) => {
            w.extend_from_slice(match (m.incompatible_candidates, m.saw_expired) {
                (false, false) => br#"{"incompatible_candidates":false,"saw_expired":false"#,
                (false, true) => br#"{"incompatible_candidates":false,"saw_expired":true"#,
                (true, false) => br#"{"incompatible_candidates":true,"saw_expired":false"#,
                (true, true) => br#"{"incompatible_candidates":true,"saw_expired":true"#,
            });
            w.extend_from_slice(key!("unknown_input"));
            match m.unknown_input {
                Some(v) => w.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
                None => w.extend_from_slice(b"null"),
            }
            w.push(b'}');
        }
        None => w.extend_from_slice(b"null"),
    }
    w.extend_from_slice(b"}\n");
}

/// Every record of `tracer cache` but `cache_call`.
fn other_record(out: &CacheOutput, pid: u32) -> Record<'_> {
    match out {
        CacheOutput::Call(c) => call_record(c, pid),
        CacheOutput::SessionOpened { session, goid } => Record::SessionOpen {
            session,
            goid: *goid,
        },
        CacheOutput::SessionClosed {
            session,
            refs_taken,
            refs_released,
            results_released,
        } => Record::SessionClose {
            session,
            refs_taken: *refs_taken,
            refs_released: *refs_released,
            results_released: *results_released,
            leaked: refs_taken.zip(*refs_released).map(|(t, r)| t > r),
        },
        CacheOutput::LoadHit {
            session,
            goid,
            digest,
            via,
            route,
            result_id,
        } => Record::LoadHit {
            pid,
            session,
            goid: *goid,
            digest,
            via,
            hit_route: route.map(HitRoute::as_str),
            result_id: *result_id,
        },
        CacheOutput::Anomaly {
            kind,
            session,
            result_id,
            count,
        } => Record::OwnershipAnomaly {
            anomaly: kind.as_str(),
            session,
            result_id: *result_id,
            count: *count,
        },
        CacheOutput::Arbitrary {
            session,
            goid,
            outcome,
            duration_ns,
        } => Record::Arbitrary {
            session,
            goid: *goid,
            outcome,
            duration_ns: *duration_ns,
        },
        CacheOutput::Release {
            session,
            digest,
            refcount_after,
            goid,
        } => Record::Release {
            session,
            digest,
            refcount_after: *refcount_after,
            goid: *goid,
        },
        CacheOutput::Change {
            path,
            outcome,
            goid,
            duration_ns,
        } => Record::Change {
            path,
            outcome,
            goid: *goid,
            duration_ns: *duration_ns,
        },
        CacheOutput::ChangeRelease {
            path,
            refcount_after,
        } => Record::ChangeRelease {
            path,
            refcount_after: *refcount_after,
        },
        CacheOutput::Conflict { path, error } => Record::Conflict { path, error },
    }
}

/// `--explain`'s line under a miss: what differs from the earlier call compared with.
fn why(c: &CacheCall, x: &Explanation) -> String {
    let parts: Vec<String> = x
        .differs
        .iter()
        .map(|d| match (d.part.as_str(), &d.was, &d.now) {
            ("do_not_cache", ..) => "the request asked not to be cached (DoNotCache)".into(),
            ("new field", ..) => format!(
                "first call of `{}` seen",
                c.identity
                    .as_ref()
                    .and_then(|i| i.field.as_deref())
                    .unwrap_or("?")
            ),
            ("same identity", _, Some(now)) => format!("same identity as before: {now}"),
            ("not read", ..) => "its identity was not read (no lookup seen)".into(),
            (part, was, now) => format!(
                "{part} differs: {} -> {}",
                was.as_deref().unwrap_or("?"),
                now.as_deref().unwrap_or("?")
            ),
        })
        .collect();
    let mut why = match &x.compared_with {
        Some(d) => format!("{} (vs {d})", parts.join("; ")),
        None => parts.join("; "),
    };
    if let Some(m) = &c.engine_miss {
        let mut facts = Vec::new();
        if m.incompatible_candidates {
            facts.push("candidates for another session only".to_string());
        }
        if m.saw_expired {
            facts.push("an expired candidate".to_string());
        }
        if let Some(i) = m.unknown_input {
            facts.push(format!("input {i} unknown to the cache"));
        }
        if facts.is_empty() {
            facts.push("no candidate".to_string());
        }
        why.push_str(&format!("; the engine: {}", facts.join(", ")));
    }
    why
}

fn call_line(c: &CacheCall) -> String {
    let mut line = format!(
        "{:<12} g{:<6} {:<11} {} {}",
        opt(&c.session),
        c.goid,
        c.outcome.map_or("?", Outcome::as_str),
        opt(&c.digest),
        c.duration_ns.map_or("-".into(), duration),
    );
    if let Some(r) = c.hit_route {
        line.push_str(&format!(" route={}", r.as_str()));
    }
    if c.engine_disagrees {
        line.push_str(&format!(
            " FINDING: engine recorded {}/{}",
            opt(&c.engine_outcome),
            opt(&c.engine_hit_route)
        ));
    }
    if let Some(g) = c.exec_goid.filter(|g| *g != c.goid) {
        line.push_str(&format!(" exec=g{g}"));
    }
    if let Some(w) = c.waiters.filter(|w| *w > 1) {
        line.push_str(&format!(" waiters={w}"));
    }
    if c.returned_id_differs == Some(true) {
        line.push_str(" id-overridden");
    }
    if c.db_read {
        line.push_str(" ttl:db-read");
    }
    if c.db_written {
        line.push_str(" ttl:db-written");
    }
    if let Some(k) = &c.storage_key {
        line.push_str(&format!(" storage={k}"));
    }
    if let Some(p) = &c.parent_digest {
        line.push_str(&format!(" parent={p}"));
    }
    if let Some(e) = &c.error {
        line.push_str(&format!(" err={e:?}"));
    }
    if c.status != crate::model::calls::CallStatus::Returned {
        line.push_str(&format!(" [{}]", c.status.as_str()));
    }
    if let Some(x) = &c.explain {
        line.push_str(&format!("\n{:<12} why: {}", "", why(c, x)));
    }
    line
}

/// One human line per record; releases are summarised, not listed.
pub fn human_line(out: &CacheOutput) -> Option<String> {
    Some(match out {
        CacheOutput::Call(c) => call_line(c),
        CacheOutput::SessionOpened { session, goid } => {
            format!("{session:<12} g{goid:<6} session open")
        }
        CacheOutput::SessionClosed {
            session,
            refs_taken,
            refs_released,
            results_released,
        } => {
            let mut l = match refs_taken.zip(*refs_released) {
                Some((taken, released)) => format!(
                    "{:<12} session closed: refs taken {taken}, released {released}",
                    opt(session)
                ),
                None => format!(
                    "{:<12} session closed: refs not followed (--light)",
                    opt(session)
                ),
            };
            if let Some(n) = results_released {
                l.push_str(&format!(", {n} results left the cache"));
            }
            if let Some((taken, released)) = refs_taken.zip(*refs_released)
                && taken > released
            {
                l.push_str(&format!("  LEAK: {} refs still held", taken - released));
            }
            l
        }
        CacheOutput::Change {
            path,
            outcome,
            goid,
            duration_ns,
        } => format!(
            "{:<12} g{goid:<6} change {outcome:<5} {} {}",
            "filesync",
            opt(path),
            duration_ns.map_or("-".into(), duration)
        ),
        CacheOutput::Conflict { path, error } => {
            format!("{:<12} CONFLICT {} {}", "filesync", opt(path), opt(error))
        }
        CacheOutput::LoadHit {
            session,
            goid,
            digest,
            via,
            route,
            ..
        } => format!(
            "{:<12} g{goid:<6} load-hit    {} via {via}{}",
            opt(session),
            opt(digest),
            route.map_or(String::new(), |r| format!(" route={}", r.as_str()))
        ),
        CacheOutput::Anomaly {
            kind,
            session,
            result_id,
            count,
        } => format!(
            "{:<12} OWNERSHIP ANOMALY {}: result {} count {}",
            opt(session),
            kind.as_str(),
            opt(result_id),
            opt(count)
        ),
        CacheOutput::Arbitrary {
            session,
            goid,
            outcome,
            duration_ns,
        } => format!(
            "{:<12} g{goid:<6} arbitrary {outcome:<5} {}",
            opt(session),
            duration_ns.map_or("-".into(), duration)
        ),
        CacheOutput::Release { .. } | CacheOutput::ChangeRelease { .. } => return None,
    })
}

/// The engine's own metrics (§7), as the tracer can establish them.
pub struct Metrics {
    /// Sessions seen starting and not yet removed (`dagger_connected_clients`).
    pub connected_clients: Option<u64>,
    /// `dagger_dagql_cache_entries`, read from the engine's cache struct at exit.
    pub cache_entries: Option<u64>,
}

pub struct SummaryInput<'a> {
    pub totals: &'a CacheTotals,
    pub sessions: Vec<&'a SessionRefs>,
    pub metrics: Metrics,
    pub lost_events: u64,
    pub kernel_failures: KernelFailures,
    /// Ring records that were not a record of this tracer's layout: counted, not decoded.
    pub malformed_events: u64,
    /// What the model's bounds made it forget, and the ended sessions folded away.
    pub evictions: Evictions,
    pub folded: FoldedSessions,
    /// The long-lived tables' sizes when tracing stopped.
    pub state_sizes: StateSizes,
    pub engine: String,
    /// CPU the tracer itself used (user + system), for the cost of leaving it on.
    pub tracer_cpu_ns: u64,
    /// `--otlp`: what became of the spans.
    pub otlp: Option<&'a super::otel::OtlpCounts>,
    pub probe_hits: &'a ProbeHitCounts,
    /// The returns of cache calls are read in their callers (else at RETs).
    pub returns_at_callers: bool,
    /// Calls from places no return probe covers.
    pub unread_returns: u64,
    /// Session references are counted (not on L3/L4 in `--light`).
    pub refs_followed: bool,
}

/// Probe hits whose events arrived, per probe, named by what each probe is for: the
/// engine pays a trap for each, so they explain what tracing costs it.
pub struct ProbeHitCounts {
    roles: Vec<Option<Role>>,
    /// Entries and points, by probe id.
    by_probe: Vec<u64>,
    /// RETs (a trap of their own, single-stepped), by probe id.
    returns_by_probe: Vec<u64>,
    /// Goroutine exits (the runtime's probe, which closes a goroutine's frames).
    goroutine_exits: u64,
    /// Hits of any other probe outside the profile's table.
    other: u64,
    /// `--light`: goroutines whose end was read from the engine's goroutine table (no
    /// trap: no exit probe is attached).
    pub exits_read: u64,
}

impl ProbeHitCounts {
    pub fn new(roles: &[Option<Role>]) -> Self {
        ProbeHitCounts {
            roles: roles.to_vec(),
            by_probe: vec![0; roles.len()],
            returns_by_probe: vec![0; roles.len()],
            goroutine_exits: 0,
            other: 0,
            exits_read: 0,
        }
    }

    pub fn count(&mut self, probe_id: u32, kind: u32) {
        let table = if kind == ProbeKind::FuncReturn as u32 {
            &mut self.returns_by_probe
        } else {
            &mut self.by_probe
        };
        match table.get_mut(probe_id as usize) {
            Some(n) => *n += 1,
            None if probe_id == crate::probes::plan::GOEXIT_PROBE_ID => self.goroutine_exits += 1,
            None => self.other += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.by_probe.iter().sum::<u64>()
            + self.returns_by_probe.iter().sum::<u64>()
            + self.goroutine_exits
            + self.other
    }

    /// Hits per role (several probes can share one), goroutine exits and the others,
    /// largest first.
    fn by_role(&self) -> Vec<(String, u64)> {
        let mut by: BTreeMap<String, u64> = BTreeMap::new();
        for (suffix, table) in [("", &self.by_probe), (" return", &self.returns_by_probe)] {
            for (role, n) in self.roles.iter().zip(table) {
                if *n > 0 {
                    let name = role.map_or("unnamed".to_string(), |r| format!("{r:?}"));
                    *by.entry(format!("{name}{suffix}")).or_default() += n;
                }
            }
        }
        if self.goroutine_exits > 0 {
            by.insert("GoroutineExit".into(), self.goroutine_exits);
        }
        if self.other > 0 {
            by.insert("other".into(), self.other);
        }
        let mut v: Vec<_> = by.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }

    fn per_call(&self, calls: u64) -> Option<f64> {
        (calls > 0).then(|| self.total() as f64 / calls as f64)
    }

    fn record(&self, calls: u64) -> ProbeHits {
        ProbeHits {
            total: self.total(),
            per_call: self.per_call(calls),
            by_role: self.by_role().into_iter().collect(),
            goroutine_exits_read: self.exits_read,
        }
    }

    fn human(&self, calls: u64) -> String {
        let per_call = self
            .per_call(calls)
            .map_or(String::new(), |p| format!(" ({p:.2} per cache call)"));
        let roles: Vec<String> = self
            .by_role()
            .into_iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        let read = if self.exits_read > 0 {
            format!(
                "; goroutine exits read from the goroutine table (no trap): {}",
                self.exits_read
            )
        } else {
            String::new()
        };
        format!(
            "probe hits: {}{per_call}: {}{read}",
            self.total(),
            roles.join(", ")
        )
    }
}

pub fn summary_json<'a>(s: &'a SummaryInput<'a>) -> Record<'a> {
    Record::CacheSummary(Box::new(CacheSummary {
        engine: &s.engine,
        calls: s.totals.calls,
        unknown_outcome: s.totals.unknown_outcome,
        outcomes: s
            .totals
            .per_outcome
            .iter()
            .map(|(o, h)| (o.as_str(), OutcomeTotals::of(h)))
            .collect(),
        hit_ratio: s.totals.hit_ratio(),
        sessions: s
            .sessions
            .iter()
            .map(|r| SessionTotals {
                session: &r.id,
                calls: r.calls,
                refs_taken: s.refs_followed.then_some(r.refs_taken),
                refs_released: s.refs_followed.then_some(r.refs_released),
                closed: r.closed || r.removed,
                evicted: r.evicted,
                leaked: s.refs_followed.then(|| leaked(r)),
            })
            .collect(),
        filesync: FilesyncTotals {
            changes: s.totals.changes,
            conflicts: s.totals.conflicts,
        },
        metrics: MetricsNow {
            dagger_connected_clients: s.metrics.connected_clients,
            dagger_dagql_cache_entries: s.metrics.cache_entries,
        },
        lost_events: s.lost_events,
        kernel_failures: s.kernel_failures,
        malformed_events: s.malformed_events,
        evicted_state: s.evictions,
        state_sizes: s.state_sizes,
        sessions_folded: s.folded,
        refs_followed: s.refs_followed,
        tracer_cpu_ns: s.tracer_cpu_ns,
        probe_hits: s.probe_hits.record(s.totals.calls),
        returns_read_at: if s.returns_at_callers {
            "callers"
        } else {
            "ret"
        },
        calls_with_unread_return: s.unread_returns,
        otlp: s.otlp.map(super::otel::OtlpCounts::record),
    }))
}

pub fn summary_human(w: &mut dyn Write, s: &SummaryInput) -> io::Result<()> {
    writeln!(w, "--- cache summary ({}) ---", s.engine)?;
    let ratio = s
        .totals
        .hit_ratio()
        .map_or("-".into(), |r| format!("{:.1}%", r * 100.0));
    writeln!(
        w,
        "calls: {}   hit ratio: {ratio} (hit + hit_content over hit, hit_content, miss, join)",
        s.totals.calls
    )?;
    writeln!(
        w,
        "{:<12} {:>8} {:>10} {:>10}",
        "outcome", "calls", "p50", "p99"
    )?;
    for (o, h) in &s.totals.per_outcome {
        let q = |p| h.quantile(p).map_or("-".into(), duration);
        writeln!(
            w,
            "{:<12} {:>8} {:>10} {:>10}",
            o.as_str(),
            h.count_all(),
            q(0.5),
            q(0.99)
        )?;
    }
    if s.totals.unknown_outcome > 0 {
        writeln!(
            w,
            "{:<12} {:>8}   (calls whose path was not seen, e.g. begun before attach)",
            "unknown", s.totals.unknown_outcome
        )?;
    }
    if !s.sessions.is_empty() {
        writeln!(w, "sessions:")?;
        for r in &s.sessions {
            let state = if r.closed || r.removed {
                "closed"
            } else if r.evicted {
                "evicted (release not seen)"
            } else {
                "open"
            };
            if s.refs_followed {
                writeln!(
                    w,
                    "  {:<12} calls {:>5}  refs taken {:>5}  released {:>5}  {state}",
                    opt(&r.id),
                    r.calls,
                    r.refs_taken,
                    r.refs_released
                )?;
            } else {
                writeln!(w, "  {:<12} calls {:>5}  {state}", opt(&r.id), r.calls)?;
            }
        }
        if !s.refs_followed {
            writeln!(
                w,
                "  (session references and ownership anomalies are not followed in --light on this code line: run without --light to follow them)"
            )?;
        }
    }
    for r in s.sessions.iter().filter(|r| s.refs_followed && leaked(r)) {
        writeln!(
            w,
            "warning: session {} closed with {} dagql cache refs still held (taken {}, released {}): refs are leaking; see the debugging guide's \"Metrics-First Leak Triage\"",
            opt(&r.id),
            r.refs_taken - r.refs_released,
            r.refs_taken,
            r.refs_released
        )?;
    }
    if s.totals.changes > 0 || s.totals.conflicts > 0 {
        writeln!(
            w,
            "filesync: {} change lookups, {} conflicts",
            s.totals.changes, s.totals.conflicts
        )?;
    }
    writeln!(
        w,
        "metrics now: dagger_connected_clients {}  dagger_dagql_cache_entries {}",
        opt(&s.metrics.connected_clients),
        opt(&s.metrics.cache_entries)
    )?;
    writeln!(w, "lost events: {}", s.lost_events)?;
    if s.malformed_events > 0 {
        writeln!(
            w,
            "malformed ring records (not decoded): {}",
            s.malformed_events
        )?;
    }
    if let Some(k) = s.kernel_failures.describe() {
        writeln!(w, "{k}")?;
    }
    if s.folded.sessions > 0 && !s.refs_followed {
        writeln!(
            w,
            "plus {} older ended sessions, folded: calls {}",
            s.folded.sessions, s.folded.calls,
        )?;
    } else if s.folded.sessions > 0 {
        writeln!(
            w,
            "plus {} older ended sessions, folded: calls {}, refs taken {}, released {}, {} leaked",
            s.folded.sessions,
            s.folded.calls,
            s.folded.refs_taken,
            s.folded.refs_released,
            s.folded.leaked
        )?;
    }
    if let Some(e) = s.evictions.describe() {
        writeln!(w, "bounded state evicted: {e}")?;
    }
    writeln!(w, "state kept at the end: {}", s.state_sizes.describe())?;
    if s.probe_hits.total() > 0 {
        writeln!(w, "{}", s.probe_hits.human(s.totals.calls))?;
    }
    if s.unread_returns > 0 {
        writeln!(
            w,
            "calls whose return no probe read: {} (made from a place the binary's code does not show, e.g. through an interface): their hit or error is unknown (null), and on L1/L2 the session references they took are missing from refs_taken",
            s.unread_returns
        )?;
    }
    if let Some(per_k) = (s.tracer_cpu_ns * 1000).checked_div(s.totals.calls) {
        writeln!(
            w,
            "tracer CPU: {} ({} per 1,000 calls)",
            duration(s.tracer_cpu_ns),
            duration(per_k)
        )?;
    }
    if let Some(o) = s.otlp {
        writeln!(w, "{}", o.human())?;
    }
    if s.lost_events > 0 {
        writeln!(
            w,
            "warning: events were lost (ring buffer full); some outcomes above may be unknown (hint: --ring-mb)"
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        cache_events::EngineMiss,
        calls::CallStatus,
        explain::{ArgPart, CallIdentity, Difference},
    };

    fn call() -> CacheCall {
        CacheCall {
            call: 1,
            parent_call: None,
            root_call: 1,
            tgid: 2,
            goid: 3,
            digest: None,
            outcome: None,
            hit_route: None,
            engine_outcome: None,
            engine_hit_route: None,
            engine_disagrees: false,
            session: None,
            exec_goid: None,
            waiters: None,
            returned_id_differs: None,
            parent_digest: None,
            db_read: false,
            db_written: false,
            storage_key: None,
            error: None,
            result_id: None,
            start_ns: None,
            duration_ns: None,
            status: CallStatus::Unwound,
            identity: None,
            explain: None,
            engine_miss: None,
        }
    }

    /// The hand-written `cache_call` writer says what the derived schema says, byte for
    /// byte: every field unknown, every field known (with text that needs escaping), and
    /// each of the fixed-text choices.
    #[test]
    fn cache_call_json_is_the_derived_records() {
        let some = |s: &str| Some(s.to_string());
        let full = CacheCall {
            digest: Some("xxh3:3e5da85004feca5a".into()),
            outcome: Some(Outcome::HitContent),
            hit_route: Some(HitRoute::Structural),
            engine_outcome: Some("hit".into()),
            engine_hit_route: Some("term".into()),
            engine_disagrees: true,
            session: Some("sess-1".into()),
            exec_goid: Some(u64::MAX),
            waiters: Some(u32::MAX),
            returned_id_differs: Some(true),
            parent_digest: Some("sha256:ab".into()),
            db_read: true,
            db_written: false,
            storage_key: some("key \"quoted\" \\ \u{1}"),
            error: some("line\nbreak, tab\t, é"),
            result_id: Some(0),
            start_ns: Some(1),
            duration_ns: Some(2),
            status: CallStatus::Returned,
            identity: Some(Box::new(CallIdentity {
                field: some("withExec"),
                self_digest: some("xxh3:1"),
                input_count: Some(2),
                inputs: vec![None, some("xxh3:2")],
                arg_count: Some(1),
                args: vec![ArgPart {
                    name: some("args"),
                    kind: None,
                    value: some("[\"sh\"]"),
                    sensitive: false,
                }],
            })),
            explain: Some(Box::new(Explanation {
                compared_with: some("xxh3:0"),
                differs: vec![Difference {
                    part: "arg args".into(),
                    was: None,
                    now: some("x"),
                }],
            })),
            engine_miss: Some(EngineMiss {
                incompatible_candidates: true,
                saw_expired: false,
                unknown_input: Some(-1),
            }),
            ..call()
        };
        let mut calls = vec![call(), full.clone()];
        for (read, written) in [(false, true), (true, true), (false, false)] {
            calls.push(CacheCall {
                db_read: read,
                db_written: written,
                ..full.clone()
            });
        }
        for (a, b) in [(false, false), (false, true), (true, true)] {
            calls.push(CacheCall {
                engine_miss: Some(EngineMiss {
                    incompatible_candidates: a,
                    saw_expired: b,
                    unknown_input: None,
                }),
                ..full.clone()
            });
        }
        for c in calls {
            let mut fast = Vec::new();
            write_call_json(&mut fast, &c, 4242);
            let mut derived = Vec::new();
            call_record(&c, 4242).write_line(&mut derived).unwrap();
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                String::from_utf8(derived).unwrap()
            );
        }
    }

    #[test]
    fn probe_hits_are_summed_by_role_and_unknown_probes_are_other() {
        let roles = [
            Some(Role::Call),
            Some(Role::OwnershipUp),
            None,
            Some(Role::Publish),
            Some(Role::Publish),
        ];
        let mut hits = ProbeHitCounts::new(&roles);
        for id in [0, 0, 0, 1, 3, 4, 4, 2, 0xff_ffff, 77] {
            hits.count(id, ProbeKind::FuncEntry as u32);
        }
        hits.count(0, ProbeKind::FuncReturn as u32);
        assert_eq!(hits.total(), 11);
        let r = hits.record(3);
        assert_eq!(r.per_call, Some(11.0 / 3.0));
        let by: Vec<(&str, u64)> = r.by_role.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            by,
            [
                ("Call", 3),
                ("Call return", 1),
                ("GoroutineExit", 1),
                ("OwnershipUp", 1),
                ("Publish", 3),
                ("other", 1),
                ("unnamed", 1)
            ]
        );
        assert_eq!(
            hits.human(3),
            "probe hits: 11 (3.67 per cache call): Call 3, Publish 3, Call return 1, GoroutineExit 1, OwnershipUp 1, other 1, unnamed 1"
        );
        assert_eq!(ProbeHitCounts::new(&roles).record(0).per_call, None);
    }
}

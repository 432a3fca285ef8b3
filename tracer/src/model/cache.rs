//! dagql cache timelines: from typed cache events (see `cache_events`) to one record
//! per cache call (identity, outcome, route, session, goroutines, timing), session
//! reference accounting, ownership anomalies and filesync change-cache events.
//!
//! Outcomes are read off the path each call took, as the debugging guide's "hit path"
//! asks: uncached pass-through, recursive-call error, a lookup that hit, a wait as a
//! joiner or for the execution the call started. The model knows no code line: every
//! register and offset stays in the decoders of `profiles::dagger`.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::{
    bounded::LruMap,
    cache_events::{CacheEvent, EngineMiss, HitRoute, OwnerContext, SessionKey, Text},
    calls::CallStatus,
    calls::{IDLE_AFTER_LOSS_NS, IDLE_SWEEP_EVERY_NS},
    explain::{CallIdentity, Explainer, Explanation},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Hit,
    HitContent,
    Miss,
    Join,
    Uncached,
    Error,
    Recursive,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Hit,
        Outcome::HitContent,
        Outcome::Miss,
        Outcome::Join,
        Outcome::Uncached,
        Outcome::Error,
        Outcome::Recursive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::HitContent => "hit_content",
            Outcome::Miss => "miss",
            Outcome::Join => "join",
            Outcome::Uncached => "uncached",
            Outcome::Error => "error",
            Outcome::Recursive => "recursive",
        }
    }

    /// The engine's `CacheDecision.Outcome` word for this outcome, where it has one.
    fn engine_word(self) -> Option<&'static str> {
        match self {
            Outcome::Hit | Outcome::HitContent => Some("hit"),
            Outcome::Miss => Some("executed"),
            Outcome::Join => Some("joined"),
            Outcome::Uncached => Some("uncached"),
            Outcome::Error | Outcome::Recursive => None,
        }
    }
}

/// One cache call, as its caller saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheCall {
    /// This call's id, unique in one run (for span ids: a call's record comes after
    /// the records of the calls nested in it).
    pub call: u64,
    /// The call it is nested in, while that call is open (`--light` can end a parent
    /// first; its digest stays in `parent_digest`).
    pub parent_call: Option<u64>,
    /// The outermost call of its nesting (itself when it has no parent).
    pub root_call: u64,
    pub tgid: u32,
    pub goid: u64,
    pub digest: Option<Text>,
    pub outcome: Option<Outcome>,
    pub hit_route: Option<HitRoute>,
    /// The engine's own record of the decision (L4 `CacheDecision`), when armed.
    pub engine_outcome: Option<Text>,
    pub engine_hit_route: Option<Text>,
    /// The engine's record disagrees with the path the tracer saw.
    pub engine_disagrees: bool,
    pub session: Option<Text>,
    /// The goroutine that ran `fn` (miss, join; the caller itself for uncached).
    pub exec_goid: Option<u64>,
    /// Callers waiting on the same execution.
    pub waiters: Option<u32>,
    pub returned_id_differs: Option<bool>,
    pub parent_digest: Option<Text>,
    pub db_read: bool,
    pub db_written: bool,
    /// The storage key, where the path computed one and handed it to the DB (TTL).
    pub storage_key: Option<String>,
    pub error: Option<String>,
    pub result_id: Option<u64>,
    pub start_ns: Option<u64>,
    pub duration_ns: Option<u64>,
    pub status: CallStatus,
    /// The identity parts read at its lookup (`--explain`).
    pub identity: Option<Box<CallIdentity>>,
    /// Why a miss or an uncached call was not answered from the cache (`--explain`).
    pub explain: Option<Box<Explanation>>,
    /// The engine's own miss facts (L4 beta.8+, when its CacheDecision was armed).
    pub engine_miss: Option<EngineMiss>,
}

/// A hit, through the content-digest fallback if the lookup took it.
fn hit_outcome(lookup: Option<Lookup>) -> Outcome {
    if lookup.is_some_and(|l| l.content) {
        Outcome::HitContent
    } else {
        Outcome::Hit
    }
}

/// Ownership trouble the engine's own issue tracker calls bugs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnomalyKind {
    /// An ownership count went below zero.
    NegativeCount,
    /// A result stays owned after every session that owned it was released.
    OwnedAfterRelease,
    /// A session was released that never made a call while we watched.
    UnknownSessionRelease,
}

impl AnomalyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::NegativeCount => "negative_count",
            AnomalyKind::OwnedAfterRelease => "owned_after_release",
            AnomalyKind::UnknownSessionRelease => "unknown_session_release",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheOutput {
    Call(Box<CacheCall>),
    SessionOpened {
        session: Text,
        goid: u64,
    },
    SessionClosed {
        session: Option<Text>,
        /// None when references are not followed (`CacheModel::refs_followed`).
        refs_taken: Option<u64>,
        refs_released: Option<u64>,
        /// Results that left the cache during the release (L3/L4).
        results_released: Option<u64>,
    },
    Release {
        session: Option<Text>,
        digest: Option<Text>,
        refcount_after: Option<i64>,
        goid: u64,
    },
    LoadHit {
        session: Option<Text>,
        goid: u64,
        digest: Option<Text>,
        via: &'static str,
        route: Option<HitRoute>,
        result_id: Option<u64>,
    },
    Anomaly {
        kind: AnomalyKind,
        session: Option<Text>,
        result_id: Option<u64>,
        count: Option<i64>,
    },
    Arbitrary {
        session: Option<Text>,
        goid: u64,
        outcome: &'static str,
        duration_ns: Option<u64>,
    },
    Change {
        path: Option<String>,
        outcome: &'static str,
        goid: u64,
        duration_ns: Option<u64>,
    },
    ChangeRelease {
        path: Option<String>,
        refcount_after: Option<i64>,
    },
    Conflict {
        path: Option<String>,
        error: Option<String>,
    },
}

/// Per-session reference accounting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionRefs {
    pub id: Option<Text>,
    pub calls: u64,
    pub refs_taken: u64,
    pub refs_released: u64,
    /// Results that left the cache during this session's release (L3/L4).
    pub results_released: Option<u64>,
    pub closed: bool,
    pub removed: bool,
    /// Dropped while live: silent for two minutes with events lost since, so its
    /// release was likely lost (its counts stop there).
    pub evicted: bool,
    /// Event time of its latest call (or of the model's latest event when it had another).
    pub last_ns: u64,
}

/// The cache calls open on one goroutine, innermost last. Nearly always one, kept inline:
/// a call's begin and end then allocate nothing.
#[derive(Default)]
struct OpenCalls {
    first: Option<u64>,
    more: Vec<u64>,
}

impl OpenCalls {
    fn push(&mut self, call: u64) {
        if self.is_empty() {
            self.first = Some(call);
        } else {
            self.more.push(call);
        }
    }

    fn remove(&mut self, call: u64) {
        if self.first == Some(call) {
            self.first = None;
        } else {
            self.more.retain(|c| *c != call);
        }
    }

    fn innermost(&self) -> Option<u64> {
        self.more.last().copied().or(self.first)
    }

    fn is_empty(&self) -> bool {
        self.first.is_none() && self.more.is_empty()
    }
}

/// A session's name: its id, or what its handle was named.
fn name_of(names: &HashMap<u64, Text>, key: &SessionKey) -> Option<Text> {
    match key {
        SessionKey::Id(id) => Some(id.clone()),
        SessionKey::Handle(h) => names.get(h).cloned(),
    }
}

/// One open cache call.
struct OpenCall {
    tgid: u32,
    goid: u64,
    start_ns: u64,
    session: Option<SessionKey>,
    digest: Option<Text>,
    parent: Option<u64>,
    /// The parent's digest when this call began: in `--light` a parent can end first
    /// (its goroutine goes on before `fn`'s goroutine exits), and its record is gone.
    parent_digest: Option<Text>,
    /// The outermost call of its nesting.
    root: u64,
    uncached: bool,
    looked_up: Option<Lookup>,
    waited: Option<Wait>,
    engine: Option<(Option<Text>, Option<Text>)>,
    db_read: bool,
    db_written: bool,
    storage_key: Option<String>,
    /// Boxed: the open calls are moved in and out of a map, and few have one.
    identity: Option<Box<CallIdentity>>,
    engine_miss: Option<EngineMiss>,
}

#[derive(Clone, Copy)]
struct Lookup {
    hit: bool,
    content: bool,
    route: Option<HitRoute>,
    result: Option<u64>,
}

#[derive(Clone, Copy)]
struct Wait {
    /// The execution waited on (its key in `CacheModel::ongoing`, not its address).
    ongoing: u64,
    joined: Option<bool>,
    waiters: Option<u32>,
}

/// What is known of one execution in flight.
#[derive(Clone, Copy, Default)]
struct Ongoing {
    /// The engine's address of it (`ongoingCall`): reused by a later execution once the
    /// garbage collector has freed it, which may be before all of its waiters' returns
    /// are seen.
    addr: u64,
    /// The call that started it.
    leader: Option<u64>,
    /// The goroutine running `fn`, and its process.
    exec: Option<u64>,
    exec_tgid: u32,
    /// Calls that waited on it so far, and those still waiting.
    waiters: u32,
    waiting: u32,
    /// Every call that waited on it has returned. It is kept until its address is reused
    /// (or the bound is reached): a joiner that took it before it finished may be
    /// descheduled and reach its `wait` only after every other waiter returned.
    finished: bool,
    /// When its last waiter returned: only a call begun before then can have taken it.
    finished_ns: u64,
}

/// Who owns a result, as far as the events show.
#[derive(Default)]
struct Owners {
    sessions: HashSet<SessionKey>,
    /// Sessions that owned it and were released since.
    released: bool,
    /// Ownership the engine took and dropped for itself (hand-off, dependencies).
    engine_net: i64,
    count: Option<i64>,
    persisted: bool,
}

/// Bounds on what the model keeps over hours: every structure that grows with the
/// engine's uptime has one, and every eviction is counted (`Evictions`).
const MAX_TRACKED_RESULTS: usize = 1 << 18;
/// Ended sessions kept in full for the summary; older ones are folded into totals.
const MAX_ENDED_SESSIONS: usize = 4096;
const MAX_SEEN_SESSIONS: usize = 1 << 16;
const MAX_NAMES: usize = 1 << 16;
const MAX_ONGOING: usize = 1 << 16;
/// How long (event time) a finished execution is kept for a joiner that took it before it
/// finished and reaches its `wait` late: far longer than any descheduling, and short enough
/// that the tables stay small (an engine finishes thousands of executions a second, and
/// each lookup in a large table misses the CPU cache). A joiner later than that still
/// joins; only its record's executor and waiter count are then unknown.
const FINISHED_KEPT_NS: u64 = 1_000_000_000;
/// Finished executions are swept this often (event time), so none stays much longer.
const FINISHED_SWEEP_EVERY_NS: u64 = FINISHED_KEPT_NS / 4;
/// Sessions dropped as idle that are remembered, to count those heard of again.
const IDLE_DROPPED_REMEMBERED: usize = 4096;

/// What the bounds made the model forget, for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Evictions {
    /// Ended sessions folded into `FoldedSessions` (oldest first).
    pub ended_sessions: u64,
    /// Times the seen-session set was full and cleared (a release of a session seen
    /// before then is not reported as unknown).
    pub seen_sessions: u64,
    /// Session names of ended handles dropped.
    pub names: u64,
    /// Executions nobody waited on, dropped.
    pub ongoing: u64,
    /// Results whose ownership was not followed (the table was full).
    pub results: u64,
    /// `--explain`: fields whose earlier calls were forgotten (oldest field first).
    pub explain_fields: u64,
    /// The call tracker's (a revived goroutine's calls then end as `no_entry`).
    #[serde(flatten)]
    pub calls: super::calls::CallEvictions,
    /// Live sessions ended as `evicted` after two minutes without an event, with events
    /// lost since (their release was likely lost).
    pub idle_sessions: u64,
    /// Of those, sessions heard of again (counted afresh from then on).
    pub idle_sessions_revived: u64,
}

impl Evictions {
    /// One human line, naming only what was evicted.
    pub fn describe(&self) -> Option<String> {
        let own = [
            (self.ended_sessions, "ended sessions folded"),
            (self.seen_sessions, "clears of the seen-session set"),
            (self.names, "session names"),
            (self.ongoing, "executions nobody waited on"),
            (self.results, "results not followed"),
            (self.explain_fields, "--explain fields"),
        ];
        let sessions = [
            (self.idle_sessions, "sessions silent since a loss"),
            (
                self.idle_sessions_revived,
                "of which sessions heard of again",
            ),
        ];
        super::calls::describe_counts(own.into_iter().chain(self.calls.parts()).chain(sessions))
    }
}

/// How many entries the long-lived tables hold now, for the summary: a soak names the
/// table that grows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StateSizes {
    /// Call tracker: goroutines with open frames, and those frames.
    pub open_goroutines: usize,
    pub open_frames: usize,
    /// Decoder: open frames it keeps facts of.
    pub decoder_frames: usize,
    /// Model: cache calls open, and the goroutines they are open on.
    pub open_calls: usize,
    pub goroutines_in_calls: usize,
    /// Executions in flight, and goroutines running one.
    pub executions: usize,
    pub execution_goroutines: usize,
    /// Live sessions, ended ones kept in full, session names, sessions seen.
    pub sessions: usize,
    pub ended_sessions: usize,
    pub session_names: usize,
    pub seen_sessions: usize,
    /// Results whose ownership is followed, and (session, result) ownerships.
    pub results: usize,
    pub session_results: usize,
    /// Sessions whose release is running.
    pub releasing: usize,
}

impl StateSizes {
    /// One human line.
    pub fn describe(&self) -> String {
        format!(
            "{} goroutines with {} open frames ({} decoded), {} open calls on {} goroutines, {} executions ({} goroutines), {} sessions ({} ended, {} names, {} seen), {} results ({} session ownerships), {} releases running",
            self.open_goroutines,
            self.open_frames,
            self.decoder_frames,
            self.open_calls,
            self.goroutines_in_calls,
            self.executions,
            self.execution_goroutines,
            self.sessions,
            self.ended_sessions,
            self.session_names,
            self.seen_sessions,
            self.results,
            self.session_results,
            self.releasing,
        )
    }
}

/// Ended sessions no longer listed one by one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FoldedSessions {
    pub sessions: u64,
    pub calls: u64,
    pub refs_taken: u64,
    pub refs_released: u64,
    pub leaked: u64,
}

pub struct CacheModel {
    calls: HashMap<u64, OpenCall>,
    /// Open calls per goroutine.
    open: HashMap<(u32, u64), OpenCalls>,
    /// Executions in flight or recently finished, by a key of our own; a finished one is
    /// dropped when its address is reused.
    ongoing: HashMap<u64, Ongoing>,
    /// The execution now at each engine address, and the last key given.
    ongoing_at: HashMap<u64, u64>,
    last_ongoing_key: u64,
    /// Goroutines running `fn` for an execution.
    exec_of: HashMap<(u32, u64), u64>,
    /// Live sessions; released ones move to `ended`.
    pub sessions: HashMap<SessionKey, SessionRefs>,
    pub ended: std::collections::VecDeque<SessionRefs>,
    pub folded: FoldedSessions,
    pub evictions: Evictions,
    /// A release of a session never seen is only an anomaly while the seen set is whole.
    seen_complete: bool,
    /// Whether the probes that count a session's references are attached (not on L3/L4
    /// in `--light`); if not, counts are unknown, never zero.
    pub refs_followed: bool,
    /// Session handle -> id, kept after the session ends until the handle is reused.
    names: HashMap<u64, Text>,
    /// Sessions that made a call or were opened while we watched.
    seen_sessions: HashSet<SessionKey>,
    owners: HashMap<u64, Owners>,
    /// Results each session owns (L3/L4), for the check at its release.
    owned_by: HashMap<SessionKey, HashSet<u64>>,
    /// Sessions whose release is running, with its collected-result count.
    releasing: HashMap<SessionKey, u64>,
    /// Whether the line reports `LookedUp` for every cached call (else a call that
    /// neither waited nor failed is taken as a hit).
    sees_lookups: bool,
    /// `--explain`: each miss compared with earlier calls of its field.
    explainer: Option<Explainer>,
    /// Latest event time seen (calls' starts and ends).
    now_ns: u64,
    /// When a loss of events was last noticed (0: never).
    lost_at_ns: u64,
    next_idle_sweep_ns: u64,
    /// When finished executions are next swept.
    next_finished_sweep_ns: u64,
    /// Sessions last dropped as idle (value unused).
    idle_dropped: Option<LruMap<SessionKey, ()>>,
}

/// Execution `key` is being forgotten: its goroutine leaves `exec_of` with it (in
/// `--light` goroutine exits are not seen, and a call nested there could no longer find
/// its parent through a forgotten execution anyway).
fn forget_exec_goroutine(exec_of: &mut HashMap<(u32, u64), u64>, key: u64, o: &Ongoing) {
    if let Some(g) = o.exec
        && exec_of.get(&(o.exec_tgid, g)) == Some(&key)
    {
        exec_of.remove(&(o.exec_tgid, g));
    }
}

/// `retain`'s answer `keep` for execution `key`, its goroutine forgotten with it if not.
fn kept(exec_of: &mut HashMap<(u32, u64), u64>, key: u64, o: &Ongoing, keep: bool) -> bool {
    if !keep {
        forget_exec_goroutine(exec_of, key, o);
    }
    keep
}

impl CacheModel {
    pub fn new(sees_lookups: bool) -> CacheModel {
        CacheModel {
            calls: HashMap::default(),
            open: HashMap::default(),
            ongoing: HashMap::default(),
            ongoing_at: HashMap::default(),
            last_ongoing_key: 0,
            exec_of: HashMap::default(),
            sessions: HashMap::default(),
            ended: std::collections::VecDeque::new(),
            folded: FoldedSessions::default(),
            evictions: Evictions::default(),
            seen_complete: true,
            refs_followed: true,
            names: HashMap::default(),
            seen_sessions: HashSet::default(),
            owners: HashMap::default(),
            owned_by: HashMap::default(),
            releasing: HashMap::default(),
            sees_lookups,
            explainer: None,
            now_ns: 0,
            lost_at_ns: 0,
            next_idle_sweep_ns: 0,
            next_finished_sweep_ns: 0,
            idle_dropped: None,
        }
    }

    /// Explains every miss and uncached call (`--explain`).
    pub fn with_explain(mut self) -> CacheModel {
        self.explainer = Some(Explainer::default());
        self
    }

    /// The model's tables now (the call tracker's and decoder's are the caller's).
    pub fn state_sizes(&self) -> StateSizes {
        StateSizes {
            open_calls: self.calls.len(),
            goroutines_in_calls: self.open.len(),
            executions: self.ongoing.len(),
            execution_goroutines: self.exec_of.len(),
            sessions: self.sessions.len(),
            ended_sessions: self.ended.len(),
            session_names: self.names.len(),
            seen_sessions: self.seen_sessions.len(),
            results: self.owners.len(),
            session_results: self.owned_by.values().map(HashSet::len).sum(),
            releasing: self.releasing.len(),
            ..StateSizes::default()
        }
    }

    /// Every session seen: ended ones first, then live ones.
    pub fn all_sessions(&self) -> impl Iterator<Item = &SessionRefs> {
        self.ended.iter().chain(self.sessions.values())
    }

    fn session_name(&self, key: &SessionKey) -> Option<Text> {
        name_of(&self.names, key)
    }

    fn session(&mut self, key: &SessionKey) -> &mut SessionRefs {
        if self.idle_dropped.is_some() && !self.sessions.contains_key(key) {
            self.heard_of_dropped(key);
        }
        // One lookup (this runs at every call and ownership change); named once.
        let now = self.now_ns;
        let names = &self.names;
        let s = self.sessions.entry(key.clone()).or_default();
        if s.id.is_none() {
            s.id = name_of(names, key);
        }
        s.last_ns = s.last_ns.max(now);
        s
    }

    /// A loss of events was noticed at `at_ns` (CLOCK_MONOTONIC, the events' clock): a
    /// session's release may have been lost.
    pub fn note_lost_events(&mut self, at_ns: u64) {
        self.lost_at_ns = self.lost_at_ns.max(at_ns);
    }

    pub fn on_event(&mut self, ev: CacheEvent, out: &mut impl FnMut(CacheOutput)) {
        let at = match &ev {
            CacheEvent::CallBegan { start_ns, .. } => Some(*start_ns),
            CacheEvent::CallEnded { end_ns, .. } => *end_ns,
            _ => None,
        };
        if let Some(t) = at {
            self.now_ns = self.now_ns.max(t);
            if self.now_ns >= self.next_finished_sweep_ns {
                self.forget_old_finished_executions();
            }
            if self.now_ns >= self.next_idle_sweep_ns {
                self.drop_idle_sessions();
            }
        }
        match ev {
            CacheEvent::CallBegan {
                call,
                enclosing,
                tgid,
                goid,
                start_ns,
                session,
                digest,
                uncached,
            } => {
                // A nested call's parent: the call around it on this goroutine, or, on a
                // goroutine running `fn`, the call that started that execution.
                let parent = enclosing.or_else(|| {
                    let oc = self.exec_of.get(&(tgid, goid))?;
                    self.ongoing.get(oc)?.leader
                });
                let parent_open = parent.and_then(|p| self.calls.get(&p));
                let root = parent_open.map_or(call, |p| p.root);
                let parent_digest = parent_open.and_then(|p| p.digest.clone());
                if let Some(key) = &session {
                    self.saw_session(key);
                    self.session(key).calls += 1;
                }
                self.open.entry((tgid, goid)).or_default().push(call);
                self.calls.insert(
                    call,
                    OpenCall {
                        tgid,
                        goid,
                        start_ns,
                        session,
                        digest,
                        parent,
                        parent_digest,
                        root,
                        uncached,
                        looked_up: None,
                        waited: None,
                        engine: None,
                        db_read: false,
                        db_written: false,
                        storage_key: None,
                        identity: None,
                        engine_miss: None,
                    },
                );
            }
            CacheEvent::EngineMiss { call, miss } => {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.engine_miss = Some(miss);
                }
            }
            CacheEvent::Identity { call, identity } => {
                if let Some(c) = self.calls.get_mut(&call) {
                    match &mut c.identity {
                        Some(known) => known.merge(*identity),
                        None => c.identity = Some(identity),
                    }
                }
            }
            CacheEvent::Digest { call, digest } => {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.digest = Some(digest);
                }
            }
            CacheEvent::Uncached { call } => {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.uncached = true;
                }
            }
            CacheEvent::LookedUp {
                call,
                hit,
                content,
                route,
                result,
            } => {
                if let Some(c) = self.calls.get_mut(&call) {
                    // The first lookup decides (a lookup made by `fn` belongs to its call).
                    c.looked_up.get_or_insert(Lookup {
                        hit,
                        content,
                        route,
                        result,
                    });
                }
            }
            CacheEvent::Waited {
                call,
                ongoing,
                joined,
                waiters,
            } => {
                let leader = self.calls.contains_key(&call).then_some(call);
                let began_ns = self.calls.get(&call).map(|c| c.start_ns);
                // A new execution at a reused address: a first caller waiting where another
                // call already led, or any caller at a finished one unless it began before
                // that finished (it took it from the engine's map while it ran). Never the
                // one this call leads: its execution can start, be joined, and have every
                // joiner return before the leader reaches its own wait.
                let key = self.execution_at(ongoing, |o| {
                    if leader.is_some() && o.leader == leader {
                        return false;
                    }
                    let joinable = began_ns.is_some_and(|t| t < o.finished_ns);
                    (o.finished && (joined == Some(false) || !joinable))
                        || (joined == Some(false)
                            && leader.is_some()
                            && o.leader.is_some_and(|l| Some(l) != leader))
                });
                let ongoing = key;
                let Some(o) = self.ongoing.get_mut(&key) else {
                    return;
                };
                o.waiters += 1;
                o.waiting += 1;
                o.finished = false;
                if joined == Some(false) {
                    o.leader = o.leader.or(leader);
                }
                if let Some(c) = self.calls.get_mut(&call) {
                    c.waited = Some(Wait {
                        ongoing,
                        joined,
                        waiters,
                    });
                }
            }
            CacheEvent::EngineDecision {
                call,
                outcome,
                route,
            } => {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.engine = Some((outcome, route));
                }
            }
            CacheEvent::Db {
                call,
                written,
                storage_key,
            } => {
                if let Some(c) = self.calls.get_mut(&call) {
                    if written {
                        c.db_written = true;
                        c.storage_key = storage_key;
                    } else {
                        c.db_read = true;
                    }
                }
            }
            CacheEvent::CallEnded {
                call,
                end_ns,
                status,
                error,
                returned_id_differs,
                result,
                ref_taken,
            } => {
                let Some(c) = self.calls.remove(&call) else {
                    return;
                };
                if let Some(open) = self.open.get_mut(&(c.tgid, c.goid)) {
                    open.remove(call);
                    if open.is_empty() {
                        self.open.remove(&(c.tgid, c.goid));
                    }
                }
                if ref_taken && let Some(key) = &c.session {
                    self.session(key).refs_taken += 1;
                }
                let record =
                    self.record(call, c, end_ns, status, error, returned_id_differs, result);
                out(CacheOutput::Call(Box::new(record)));
            }
            CacheEvent::ExecStarted {
                tgid,
                goid,
                ongoing,
                creator,
                digest,
            } => {
                // The goroutine that started this execution is inside the call that
                // missed. Knowing it now, not at that call's later `wait`, lets calls
                // nested in `fn` find their parent however goroutines are scheduled.
                let leader = creator
                    .and_then(|g| self.open.get(&(tgid, g)))
                    .and_then(OpenCalls::innermost);
                // Its digest too, for those calls' parent_digest, if not known yet.
                if let (Some(l), Some(d)) = (leader, digest)
                    && let Some(c) = self.calls.get_mut(&l)
                {
                    c.digest.get_or_insert(d);
                }
                // Another goroutine already ran the execution at this address, or another
                // call led it: this is a new one at a reused address.
                let key = self.execution_at(ongoing, |o| {
                    o.finished
                        || o.exec.is_some_and(|g| g != goid)
                        || (leader.is_some() && o.leader.is_some_and(|l| Some(l) != leader))
                });
                let Some(o) = self.ongoing.get_mut(&key) else {
                    return;
                };
                o.exec = Some(goid);
                o.exec_tgid = tgid;
                if leader.is_some() {
                    o.leader = leader;
                }
                self.exec_of.insert((tgid, goid), key);
                self.bound_ongoing();
                self.bound_exec_goroutines();
            }
            CacheEvent::GoroutineExited { tgid, goid } => {
                self.exec_of.remove(&(tgid, goid));
            }
            CacheEvent::LoadHit {
                goid,
                session,
                digest,
                via,
                route,
                result,
                t_ns: _,
            } => {
                let session = session.and_then(|k| self.session_name(&k));
                out(CacheOutput::LoadHit {
                    session,
                    goid,
                    digest,
                    via,
                    route,
                    result_id: result,
                });
            }
            CacheEvent::SessionOpened {
                key,
                id,
                goid,
                announce,
            } => {
                if let SessionKey::Handle(h) = key {
                    self.bind_handle(h, id.clone());
                }
                self.saw_session(&key);
                self.session(&key);
                if announce {
                    out(CacheOutput::SessionOpened { session: id, goid });
                }
            }
            CacheEvent::SessionRemoved { key, id } => {
                // Still live: the release runs inside the removal. The counts move to
                // `ended` when the handle names a new session.
                let s = self.session(&key);
                s.removed = true;
                s.id = s.id.take().or(id);
            }
            CacheEvent::SessionReleaseBegan { key } => {
                if self.seen_complete && !self.seen_sessions.contains(&key) {
                    out(CacheOutput::Anomaly {
                        kind: AnomalyKind::UnknownSessionRelease,
                        session: self.session_name(&key),
                        result_id: None,
                        count: None,
                    });
                    // Reported once; its release is then accounted like any other.
                    self.saw_session(&key);
                }
                self.releasing.insert(key, 0);
            }
            CacheEvent::SessionReleased { key, goid: _ } => {
                let refs_followed = self.refs_followed;
                let collected = self.releasing.remove(&key);
                self.check_release(&key, out);
                let s = self.session(&key);
                s.closed = true;
                if collected.is_some() {
                    s.results_released = collected;
                }
                let closed = CacheOutput::SessionClosed {
                    session: s.id.clone(),
                    refs_taken: refs_followed.then_some(s.refs_taken),
                    refs_released: refs_followed.then_some(s.refs_released),
                    results_released: s.results_released,
                };
                out(closed);
                // A session named by id is over once released (a handle may be reused
                // and moves on when it is).
                if let SessionKey::Id(_) = key
                    && let Some(s) = self.sessions.remove(&key)
                {
                    self.seen_sessions.remove(&key);
                    self.end_session(s);
                }
            }
            CacheEvent::RefReleased {
                session,
                digest,
                refcount_after,
                goid,
            } => {
                if let Some(key) = &session {
                    self.session(key).refs_released += 1;
                }
                out(CacheOutput::Release {
                    session: session.and_then(|k| self.session_name(&k)),
                    digest,
                    refcount_after,
                    goid,
                });
            }
            CacheEvent::Ownership {
                result,
                delta,
                count_after,
                context,
            } => self.ownership(result, delta, count_after, context, out),
            CacheEvent::ResultCollected {
                result,
                during_release_of,
            } => {
                self.owners.remove(&result);
                if let Some(key) = during_release_of
                    && let Some(n) = self.releasing.get_mut(&key)
                {
                    *n += 1;
                }
            }
            CacheEvent::Persisted { result } => {
                if let Some(o) = self.owners.get_mut(&result) {
                    o.persisted = true;
                }
            }
            CacheEvent::Arbitrary {
                session,
                goid,
                outcome,
                duration_ns,
            } => {
                let session = session.and_then(|k| self.session_name(&k));
                out(CacheOutput::Arbitrary {
                    session,
                    goid,
                    outcome,
                    duration_ns,
                });
            }
            CacheEvent::Change {
                path,
                outcome,
                goid,
                duration_ns,
            } => out(CacheOutput::Change {
                path,
                outcome,
                goid,
                duration_ns,
            }),
            CacheEvent::ChangeRelease {
                path,
                refcount_after,
            } => out(CacheOutput::ChangeRelease {
                path,
                refcount_after,
            }),
            CacheEvent::Conflict { path, error } => out(CacheOutput::Conflict { path, error }),
        }
    }

    fn ownership(
        &mut self,
        result: u64,
        delta: i64,
        count_after: Option<i64>,
        context: OwnerContext,
        out: &mut impl FnMut(CacheOutput),
    ) {
        if count_after.is_some_and(|c| c < 0) {
            let session = match &context {
                OwnerContext::SessionTracked(k) | OwnerContext::SessionReleased(k) => {
                    self.session_name(k)
                }
                _ => None,
            };
            out(CacheOutput::Anomaly {
                kind: AnomalyKind::NegativeCount,
                session,
                result_id: Some(result),
                count: count_after,
            });
        }
        if !self.owners.contains_key(&result) && self.owners.len() >= MAX_TRACKED_RESULTS {
            self.evictions.results += 1;
            return;
        }
        let o = self.owners.entry(result).or_default();
        o.count = count_after;
        match context {
            OwnerContext::SessionTracked(key) => {
                o.sessions.insert(key.clone());
                self.session(&key).refs_taken += 1;
                self.owned_by.entry(key).or_default().insert(result);
            }
            OwnerContext::SessionReleased(key) => {
                o.sessions.remove(&key);
                o.released = true;
                self.session(&key).refs_released += 1;
            }
            OwnerContext::Engine => o.engine_net += delta,
            // Ownership taken where no probed context explains it stays unexplained.
            OwnerContext::Unknown => {}
        }
    }

    /// At the end of `key`'s release: results it owned that every owning session has
    /// released, that did not leave the cache, are not kept by design (persisted) and
    /// whose count is not explained by the engine's own holds, stay owned by nobody.
    fn check_release(&mut self, key: &SessionKey, out: &mut impl FnMut(CacheOutput)) {
        let Some(results) = self.owned_by.remove(key) else {
            return;
        };
        let mut leaked: Vec<(u64, Option<i64>)> = Vec::new();
        for r in results {
            let Some(o) = self.owners.get_mut(&r) else {
                continue; // collected
            };
            // A session that owned it is released even if its decrement was never made.
            o.sessions.remove(key);
            o.released = true;
            let count = o.count.unwrap_or(0);
            if o.sessions.is_empty() && !o.persisted && count > o.engine_net.max(0) {
                leaked.push((r, o.count));
            } else if o.sessions.is_empty() && count <= 0 {
                // Owned by nobody and not yet collected: nothing left to check.
                self.owners.remove(&r);
            }
        }
        leaked.sort_unstable();
        for (r, count) in leaked {
            self.owners.remove(&r);
            out(CacheOutput::Anomaly {
                kind: AnomalyKind::OwnedAfterRelease,
                session: self.session_name(key),
                result_id: Some(r),
                count,
            });
        }
    }

    /// Names handle `h` as session `id`. A handle already naming another session was
    /// reused: that session's counts are kept as ended.
    fn bind_handle(&mut self, h: u64, id: Text) {
        if self.names.get(&h) == Some(&id) {
            return;
        }
        self.names.insert(h, id.clone());
        let fresh = SessionRefs {
            id: Some(id),
            ..SessionRefs::default()
        };
        if let Some(old) = self.sessions.insert(SessionKey::Handle(h), fresh)
            && (old.id.is_some() || old.calls > 0)
        {
            self.end_session(old);
        }
        if self.names.len() > MAX_NAMES {
            let live = &self.sessions;
            let before = self.names.len();
            self.names
                .retain(|h, _| live.contains_key(&SessionKey::Handle(*h)));
            self.evictions.names += (before - self.names.len()) as u64;
        }
    }

    /// Keeps a session's final counts for the summary, folding the oldest beyond the bound.
    fn end_session(&mut self, s: SessionRefs) {
        self.ended.push_back(s);
        if self.ended.len() > MAX_ENDED_SESSIONS
            && let Some(old) = self.ended.pop_front()
        {
            let f = &mut self.folded;
            f.sessions += 1;
            f.calls += old.calls;
            f.refs_taken += old.refs_taken;
            f.refs_released += old.refs_released;
            // An evicted session's release was not seen: no leak can be told.
            f.leaked += u64::from(!old.evicted && old.refs_taken > old.refs_released);
            self.evictions.ended_sessions += 1;
        }
    }

    /// Ends, as `evicted`, the live sessions without an event for
    /// [`IDLE_AFTER_LOSS_NS`] and no open call, with events lost since: their release
    /// was likely lost, and nothing else would ever end them.
    fn drop_idle_sessions(&mut self) {
        self.next_idle_sweep_ns = self.now_ns.saturating_add(IDLE_SWEEP_EVERY_NS);
        let lost_at = self.lost_at_ns;
        let Some(cutoff) = self.now_ns.checked_sub(IDLE_AFTER_LOSS_NS) else {
            return;
        };
        if lost_at == 0 {
            return;
        }
        let busy: HashSet<&SessionKey> = self
            .calls
            .values()
            .filter_map(|c| c.session.as_ref())
            .collect();
        let idle: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(k, s)| s.last_ns < cutoff && s.last_ns < lost_at && !busy.contains(k))
            .map(|(k, _)| k.clone())
            .collect();
        for key in idle {
            let Some(mut s) = self.sessions.remove(&key) else {
                continue;
            };
            self.releasing.remove(&key);
            // Its results are no longer owned by it; nothing is reported of them, as its
            // release was not seen.
            for r in self.owned_by.remove(&key).unwrap_or_default() {
                if let Some(o) = self.owners.get_mut(&r) {
                    o.sessions.remove(&key);
                    if o.sessions.is_empty() && o.count.unwrap_or(0) <= 0 {
                        self.owners.remove(&r);
                    }
                }
            }
            s.evicted = true;
            self.evictions.idle_sessions += 1;
            self.idle_dropped
                .get_or_insert_with(|| LruMap::new(IDLE_DROPPED_REMEMBERED))
                .insert(key, ());
            self.end_session(s);
        }
    }

    /// An event of session `key`, not live: if it was dropped as idle, it was alive.
    fn heard_of_dropped(&mut self, key: &SessionKey) {
        if let Some(dropped) = self.idle_dropped.as_mut()
            && dropped.remove(key).is_some()
        {
            self.evictions.idle_sessions_revived += 1;
        }
    }

    fn saw_session(&mut self, key: &SessionKey) {
        if self.seen_sessions.contains(key) {
            return;
        }
        if self.seen_sessions.len() >= MAX_SEEN_SESSIONS {
            self.seen_sessions.clear();
            self.seen_complete = false;
            self.evictions.seen_sessions += 1;
        }
        self.seen_sessions.insert(key.clone());
    }

    /// The key of the execution at engine address `addr`: the current one, or a new one
    /// when there is none or `is_another(current)` says the address was reused (the
    /// current one then lives on under its key for the waiters that have not returned).
    fn execution_at(&mut self, addr: u64, is_another: impl Fn(&Ongoing) -> bool) -> u64 {
        if let Some(&key) = self.ongoing_at.get(&addr) {
            match self.ongoing.get(&key) {
                Some(o) if !is_another(o) => return key,
                // The one it replaces is forgotten once nobody waits on it.
                Some(o) if o.waiting == 0 => {
                    forget_exec_goroutine(&mut self.exec_of, key, o);
                    self.ongoing.remove(&key);
                }
                _ => {}
            }
        }
        self.last_ongoing_key += 1;
        let key = self.last_ongoing_key;
        self.ongoing.insert(
            key,
            Ongoing {
                addr,
                ..Ongoing::default()
            },
        );
        self.ongoing_at.insert(addr, key);
        key
    }

    /// Executions begun before attaching, or whose waiters were never seen, would stay:
    /// past the bound, those nobody waits on are dropped.
    fn bound_ongoing(&mut self) {
        if self.ongoing.len() <= MAX_ONGOING {
            return;
        }
        // Finished ones go first, uncounted: nothing is lost with them but a late
        // joiner's executor.
        let exec_of = &mut self.exec_of;
        self.ongoing
            .retain(|&key, o| kept(exec_of, key, o, !o.finished));
        if self.ongoing.len() > MAX_ONGOING {
            let before = self.ongoing.len();
            self.ongoing
                .retain(|&key, o| kept(exec_of, key, o, o.waiting > 0));
            self.evictions.ongoing += (before - self.ongoing.len()) as u64;
        }
        let ongoing = &self.ongoing;
        self.ongoing_at.retain(|_, key| ongoing.contains_key(key));
    }

    /// Finished executions older than [`FINISHED_KEPT_NS`] are forgotten (uncounted: no
    /// call waits on them, and a joiner that late is not expected).
    fn forget_old_finished_executions(&mut self) {
        self.next_finished_sweep_ns = self.now_ns.saturating_add(FINISHED_SWEEP_EVERY_NS);
        let Some(cutoff) = self.now_ns.checked_sub(FINISHED_KEPT_NS) else {
            return;
        };
        let exec_of = &mut self.exec_of;
        let ongoing_at = &mut self.ongoing_at;
        self.ongoing.retain(|&key, o| {
            let old = o.finished && o.waiting == 0 && o.finished_ns < cutoff;
            // Only its own address can still name it: one lookup, not a pass over
            // every address (this runs four times a second).
            if old && ongoing_at.get(&o.addr) == Some(&key) {
                ongoing_at.remove(&o.addr);
            }
            kept(exec_of, key, o, !old)
        });
    }

    /// A goroutine leaves `exec_of` when it exits; one whose exit was lost would stay.
    /// Past the bound, goroutines of executions already ended are dropped: nothing is
    /// forgotten, as a call nested in them could no longer find its parent anyway.
    fn bound_exec_goroutines(&mut self) {
        if self.exec_of.len() > MAX_ONGOING {
            let ongoing = &self.ongoing;
            self.exec_of.retain(|_, oc| ongoing.contains_key(oc));
        }
    }

    /// A call that waited on execution `oc` completed; the last one ends its record.
    fn done_waiting(&mut self, oc: u64, end_ns: Option<u64>) {
        if let Some(o) = self.ongoing.get_mut(&oc) {
            o.waiting = o.waiting.saturating_sub(1);
            o.finished_ns = o.finished_ns.max(end_ns.unwrap_or(0));
            if o.waiting == 0 {
                o.finished = true;
                // Kept while it is the one at its address (see `Ongoing::finished`).
                if self.ongoing_at.get(&o.addr) != Some(&oc) {
                    forget_exec_goroutine(&mut self.exec_of, oc, o);
                    self.ongoing.remove(&oc);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        call: u64,
        c: OpenCall,
        end_ns: Option<u64>,
        status: CallStatus,
        error: Option<super::cache_events::CallError>,
        returned_id_differs: Option<bool>,
        result: Option<u64>,
    ) -> CacheCall {
        let returned = status == CallStatus::Returned;
        let hit_seen = c.looked_up.is_some_and(|l| l.hit);
        let outcome = match &error {
            Some(e) if e.recursive => Some(Outcome::Recursive),
            Some(_) => Some(Outcome::Error),
            None if c.uncached => Some(Outcome::Uncached),
            None if hit_seen => Some(hit_outcome(c.looked_up)),
            None => match c.waited {
                Some(w) => Some(match w.joined {
                    Some(true) => Outcome::Join,
                    Some(false) => Outcome::Miss,
                    // The call whose goroutine started the execution is its leader.
                    None if self.ongoing.get(&w.ongoing).and_then(|o| o.leader) == Some(call) => {
                        Outcome::Miss
                    }
                    None => Outcome::Join,
                }),
                // Without lookup results, a call that returned without waiting or
                // failing was answered from the cache.
                None if returned && !self.sees_lookups => Some(hit_outcome(c.looked_up)),
                None => None,
            },
        };
        let ongoing = c.waited.and_then(|w| self.ongoing.get(&w.ongoing).copied());
        let (exec_goid, waiters) = match (outcome, ongoing) {
            (Some(Outcome::Miss | Outcome::Join), Some(o)) => {
                (o.exec, c.waited.and_then(|w| w.waiters).or(Some(o.waiters)))
            }
            (Some(Outcome::Uncached), _) => (Some(c.goid), None),
            _ => (None, None),
        };
        if let Some(w) = c.waited {
            self.done_waiting(w.ongoing, end_ns);
        }
        let parent_call = c.parent.filter(|p| self.calls.contains_key(p));
        // The parent's digest as known now (it may have been learnt since), else as it
        // was when this call began.
        let parent_digest = parent_call
            .and_then(|p| self.calls.get(&p))
            .and_then(|p| p.digest.clone())
            .or(c.parent_digest);
        let hit_route = match outcome {
            Some(Outcome::Hit | Outcome::HitContent) => c.looked_up.and_then(|l| l.route),
            _ => None,
        };
        let identity = c.identity.map(|i| Box::new(i.trimmed()));
        let explain = self.explainer.as_mut().and_then(|e| {
            e.explain(
                c.digest.as_deref(),
                identity.as_deref(),
                outcome == Some(Outcome::Miss),
                outcome == Some(Outcome::Uncached),
            )
        });
        if let Some(e) = &self.explainer {
            self.evictions.explain_fields = e.evicted_fields;
        }
        let (engine_outcome, engine_hit_route) = c.engine.unwrap_or_default();
        let engine_disagrees = match (&engine_outcome, outcome.and_then(Outcome::engine_word)) {
            (Some(e), Some(ours)) => &**e != ours,
            _ => false,
        } || match (&engine_hit_route, hit_route) {
            (Some(e), Some(ours)) => &**e != ours.as_str(),
            _ => false,
        };
        CacheCall {
            call,
            parent_call,
            root_call: c.root,
            tgid: c.tgid,
            goid: c.goid,
            session: c.session.as_ref().and_then(|k| self.session_name(k)),
            digest: c.digest,
            outcome,
            hit_route,
            engine_outcome,
            engine_hit_route,
            engine_disagrees,
            exec_goid,
            waiters,
            returned_id_differs,
            parent_digest,
            db_read: c.db_read,
            db_written: c.db_written,
            storage_key: c.storage_key,
            error: error.and_then(|e| e.text),
            result_id: result.or(c.looked_up.and_then(|l| l.result)),
            start_ns: Some(c.start_ns),
            duration_ns: end_ns.map(|e| e.saturating_sub(c.start_ns)),
            status,
            identity,
            explain: explain.map(Box::new),
            engine_miss: c.engine_miss,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cache_events::CallError;

    fn began(call: u64, goid: u64, digest: &str, session: &str) -> CacheEvent {
        CacheEvent::CallBegan {
            call,
            enclosing: None,
            tgid: 1,
            goid,
            start_ns: call * 10,
            session: Some(SessionKey::Id(session.into())),
            digest: Some(digest.into()),
            uncached: false,
        }
    }

    fn ended(call: u64) -> CacheEvent {
        CacheEvent::CallEnded {
            call,
            end_ns: Some(call * 10 + 5),
            status: CallStatus::Returned,
            error: None,
            returned_id_differs: None,
            result: None,
            ref_taken: false,
        }
    }

    fn run(events: Vec<CacheEvent>) -> Vec<CacheOutput> {
        let mut model = CacheModel::new(true);
        let mut out = Vec::new();
        for e in events {
            model.on_event(e, &mut |o| out.push(o));
        }
        out
    }

    fn calls(out: &[CacheOutput]) -> Vec<&CacheCall> {
        out.iter()
            .filter_map(|o| match o {
                CacheOutput::Call(c) => Some(&**c),
                _ => None,
            })
            .collect()
    }

    /// In `--light` a call is closed only when its goroutine goes on: the miss on g1 can be
    /// closed (g1's next call) before the call its `fn` made on g15, which ends when g15
    /// exits. The later one still names the miss's digest as its parent's.
    #[test]
    fn a_nested_call_keeps_its_parents_digest_when_the_parent_ends_first() {
        let out = run(vec![
            began(1, 1, "xxh3:a", "s1"),
            CacheEvent::Waited {
                call: 1,
                ongoing: 0xc,
                joined: Some(false),
                waiters: None,
            },
            CacheEvent::ExecStarted {
                tgid: 1,
                goid: 15,
                ongoing: 0xc,
                creator: Some(1),
                digest: None,
            },
            began(2, 15, "xxh3:a", "s1"),
            ended(1),
            ended(2),
        ]);
        let c = calls(&out);
        assert_eq!((c[0].call, c[1].call), (1, 2));
        assert_eq!(c[1].parent_digest.as_deref(), Some("xxh3:a"));
        // Its parent's record came first, so it is no longer named as a span parent.
        assert_eq!((c[1].parent_call, c[1].root_call), (None, 1));
    }

    #[test]
    fn outcomes_follow_the_path() {
        let out = run(vec![
            began(1, 2, "xxh3:a", "s1"),
            CacheEvent::LookedUp {
                call: 1,
                hit: true,
                content: false,
                route: Some(HitRoute::Digest),
                result: Some(7),
            },
            ended(1),
            // A miss on g3 starts execution 0xc on g9; g4 joins it.
            began(2, 3, "xxh3:b", "s1"),
            CacheEvent::LookedUp {
                call: 2,
                hit: false,
                content: false,
                route: None,
                result: None,
            },
            CacheEvent::Waited {
                call: 2,
                ongoing: 0xc,
                joined: None,
                waiters: None,
            },
            CacheEvent::ExecStarted {
                tgid: 1,
                goid: 9,
                ongoing: 0xc,
                creator: Some(3),
                digest: None,
            },
            // A call made by fn on g9 has the miss as its parent.
            began(3, 9, "xxh3:c", "s1"),
            CacheEvent::LookedUp {
                call: 3,
                hit: true,
                content: false,
                route: Some(HitRoute::Recipe),
                result: Some(8),
            },
            ended(3),
            began(4, 4, "xxh3:b", "s1"),
            CacheEvent::Waited {
                call: 4,
                ongoing: 0xc,
                joined: Some(true),
                waiters: Some(2),
            },
            ended(2),
            ended(4),
            began(5, 5, "xxh3:d", "s2"),
            CacheEvent::CallEnded {
                call: 5,
                end_ns: Some(60),
                status: CallStatus::Returned,
                error: Some(CallError {
                    text: Some("recursive call detected".into()),
                    recursive: true,
                }),
                returned_id_differs: None,
                result: None,
                ref_taken: false,
            },
        ]);
        let c = calls(&out);
        assert_eq!(c.len(), 5);
        assert_eq!(c[0].outcome, Some(Outcome::Hit));
        assert_eq!(c[0].hit_route, Some(HitRoute::Digest));
        assert_eq!(c[0].result_id, Some(7));
        assert_eq!(c[1].parent_digest.as_deref(), Some("xxh3:b"));
        // Ids for spans: the nested call names its parent and its root (the miss).
        assert_eq!(
            (c[1].call, c[1].parent_call, c[1].root_call),
            (3, Some(2), 2)
        );
        assert_eq!((c[2].call, c[2].parent_call, c[2].root_call), (2, None, 2));
        assert_eq!(c[2].outcome, Some(Outcome::Miss));
        assert_eq!(c[2].exec_goid, Some(9));
        assert_eq!(c[3].outcome, Some(Outcome::Join));
        assert_eq!(c[3].exec_goid, Some(9));
        assert_eq!(c[3].waiters, Some(2));
        assert_eq!(c[4].outcome, Some(Outcome::Recursive));
    }

    /// Finished executions are kept for late joiners only for a while of event time,
    /// never while a call still waits on one.
    #[test]
    fn finished_executions_are_forgotten_after_a_while() {
        let mut model = CacheModel::new(true);
        let feed = |model: &mut CacheModel, e| model.on_event(e, &mut |_| {});
        for i in 0..100u64 {
            let call = i + 1;
            feed(&mut model, began(call, 100 + i, "xxh3:a", "s1"));
            feed(
                &mut model,
                CacheEvent::Waited {
                    call,
                    ongoing: 0x1000 + i,
                    joined: Some(false),
                    waiters: None,
                },
            );
            feed(
                &mut model,
                CacheEvent::ExecStarted {
                    tgid: 1,
                    goid: 1000 + i,
                    ongoing: 0x1000 + i,
                    creator: Some(100 + i),
                    digest: None,
                },
            );
            // The last call is still waiting.
            if i < 99 {
                feed(&mut model, ended(call));
            }
        }
        assert_eq!(model.ongoing.len(), 100, "kept until the address is reused");
        assert_eq!(model.exec_of.len(), 100);
        // 30 s later (event time) a call begins: the sweep forgets the finished ones, and
        // their goroutines with them (their exits are not seen in --light).
        feed(&mut model, began(3_000_000_000, 7, "xxh3:b", "s1"));
        assert_eq!(model.ongoing.len(), 1, "the one still waited on stays");
        assert_eq!(model.ongoing_at.len(), 1);
        assert!(model.ongoing.values().all(|o| o.waiting == 1));
        assert_eq!(model.exec_of.len(), 1);
        assert!(model.exec_of.contains_key(&(1, 1099)));
    }

    /// The engine's `ongoingCall` of a finished execution can be freed and its address
    /// given to the next one before the return of every call that waited on the first is
    /// seen: each call keeps its own execution.
    #[test]
    fn a_reused_execution_address_starts_a_new_execution() {
        let wait = |call, joined| CacheEvent::Waited {
            call,
            ongoing: 0xc,
            joined: Some(joined),
            waiters: None,
        };
        let exec = |goid, creator| CacheEvent::ExecStarted {
            tgid: 1,
            goid,
            ongoing: 0xc,
            creator: Some(creator),
            digest: None,
        };
        let out = run(vec![
            // Call 1 on g3 misses: execution on g9; call 2 on g4 joins it.
            began(1, 3, "xxh3:a", "s1"),
            wait(1, false),
            exec(9, 3),
            began(2, 4, "xxh3:a", "s1"),
            wait(2, true),
            ended(1),
            // Before call 2's return is seen, call 3 on g5 misses at the same address
            // (the order the leader's wait and its execution's start arrive in varies).
            began(3, 5, "xxh3:b", "s1"),
            exec(10, 5),
            wait(3, false),
            ended(2),
            // Call 4 on g6 joins the new execution.
            began(4, 6, "xxh3:b", "s1"),
            wait(4, true),
            ended(3),
            ended(4),
            // Call 5 on g7 misses there again, its wait seen before its execution.
            began(5, 7, "xxh3:c", "s1"),
            wait(5, false),
            exec(11, 7),
            ended(5),
            // Call 6 on g8 took that execution before it finished (it began at 52) but
            // reaches its wait only after every other waiter returned.
            CacheEvent::CallBegan {
                call: 6,
                enclosing: None,
                tgid: 1,
                goid: 8,
                start_ns: 52,
                session: Some(SessionKey::Id("s1".into())),
                digest: Some("xxh3:c".into()),
                uncached: false,
            },
            wait(6, true),
            ended(6),
            // A new execution at the same address, whose joiner (call 8) waits before its
            // leader (call 7) and before the execution's start are seen.
            began(7, 9, "xxh3:d", "s1"),
            began(8, 10, "xxh3:d", "s1"),
            wait(8, true),
            exec(12, 9),
            wait(7, false),
            ended(7),
            ended(8),
            // Call 9 on g13 misses; under load its execution starts, is joined by call 10
            // on g15, and that joiner returns, all before call 9 reaches its own wait.
            began(9, 13, "xxh3:e", "s1"),
            exec(14, 13),
            began(10, 15, "xxh3:e", "s1"),
            wait(10, true),
            ended(10),
            wait(9, false),
            CacheEvent::CallEnded {
                call: 9,
                end_ns: Some(110),
                status: CallStatus::Returned,
                error: None,
                returned_id_differs: None,
                result: None,
                ref_taken: false,
            },
        ]);
        let by_call: std::collections::BTreeMap<u64, &CacheCall> =
            calls(&out).into_iter().map(|c| (c.call, c)).collect();
        let seen = |call: u64| {
            let c = by_call[&call];
            (c.outcome, c.exec_goid, c.waiters)
        };
        assert_eq!(seen(1), (Some(Outcome::Miss), Some(9), Some(2)));
        assert_eq!(seen(2), (Some(Outcome::Join), Some(9), Some(2)));
        assert_eq!(seen(3), (Some(Outcome::Miss), Some(10), Some(2)));
        assert_eq!(seen(4), (Some(Outcome::Join), Some(10), Some(2)));
        assert_eq!(seen(5), (Some(Outcome::Miss), Some(11), Some(1)));
        assert_eq!(seen(6), (Some(Outcome::Join), Some(11), Some(2)));
        assert_eq!(seen(7), (Some(Outcome::Miss), Some(12), Some(2)));
        assert_eq!(seen(8), (Some(Outcome::Join), Some(12), Some(2)));
        assert_eq!(seen(9), (Some(Outcome::Miss), Some(14), Some(2)));
        assert_eq!(seen(10), (Some(Outcome::Join), Some(14), Some(1)));
    }

    #[test]
    fn engine_decision_disagreement_is_flagged() {
        let out = run(vec![
            began(1, 2, "xxh3:a", "s1"),
            CacheEvent::LookedUp {
                call: 1,
                hit: true,
                content: false,
                route: Some(HitRoute::Recipe),
                result: None,
            },
            CacheEvent::EngineDecision {
                call: 1,
                outcome: Some("hit".into()),
                route: Some("structural".into()),
            },
            ended(1),
        ]);
        assert!(calls(&out)[0].engine_disagrees);
    }

    fn own(result: u64, delta: i64, after: i64, context: OwnerContext) -> CacheEvent {
        CacheEvent::Ownership {
            result,
            delta,
            count_after: Some(after),
            context,
        }
    }

    fn anomalies(out: &[CacheOutput]) -> Vec<(AnomalyKind, Option<u64>)> {
        out.iter()
            .filter_map(|o| match o {
                CacheOutput::Anomaly {
                    kind, result_id, ..
                } => Some((*kind, *result_id)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn ownership_anomalies() {
        let s1 = SessionKey::Id("s1".into());
        let s2 = SessionKey::Id("s2".into());
        let out = run(vec![
            began(1, 2, "xxh3:a", "s1"),
            ended(1),
            began(2, 2, "xxh3:a", "s2"),
            ended(2),
            // Result 1 is shared by s1 and s2 and released by both: fine.
            own(1, 1, 1, OwnerContext::SessionTracked(s1.clone())),
            own(1, 1, 2, OwnerContext::SessionTracked(s2.clone())),
            // Result 2: s1 tracked it, but its release never decrements it.
            own(2, 1, 1, OwnerContext::SessionTracked(s1.clone())),
            // Result 3: the engine holds it for itself (explained).
            own(3, 1, 1, OwnerContext::SessionTracked(s1.clone())),
            own(3, 1, 2, OwnerContext::Engine),
            CacheEvent::SessionReleaseBegan { key: s1.clone() },
            own(1, -1, 1, OwnerContext::SessionReleased(s1.clone())),
            own(3, -1, 1, OwnerContext::SessionReleased(s1.clone())),
            CacheEvent::SessionReleased {
                key: s1.clone(),
                goid: 1,
            },
            CacheEvent::SessionReleaseBegan { key: s2.clone() },
            own(1, -1, 0, OwnerContext::SessionReleased(s2.clone())),
            CacheEvent::ResultCollected {
                result: 1,
                during_release_of: Some(s2.clone()),
            },
            // A second decrement of a collected result goes negative.
            own(1, -1, -1, OwnerContext::SessionReleased(s2.clone())),
            CacheEvent::SessionReleased {
                key: s2.clone(),
                goid: 1,
            },
            CacheEvent::SessionReleaseBegan {
                key: SessionKey::Id("ghost".into()),
            },
        ]);
        assert_eq!(
            anomalies(&out),
            vec![
                (AnomalyKind::OwnedAfterRelease, Some(2)),
                (AnomalyKind::NegativeCount, Some(1)),
                (AnomalyKind::UnknownSessionRelease, None),
            ]
        );
        let closed: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                CacheOutput::SessionClosed {
                    refs_taken,
                    refs_released,
                    results_released,
                    ..
                } => Some((*refs_taken, *refs_released, *results_released)),
                _ => None,
            })
            .collect();
        assert_eq!(
            closed,
            vec![(Some(3), Some(2), Some(0)), (Some(1), Some(2), Some(1))]
        );
    }

    const SEC: u64 = 1_000_000_000;

    /// Session `sid`'s call `call` on goroutine `goid` at `t`, returned, taking result `r`.
    fn session_call(model: &mut CacheModel, sid: &str, call: u64, r: u64, t: u64) {
        let key = SessionKey::Id(sid.into());
        let mut out = |_| {};
        model.on_event(
            CacheEvent::CallBegan {
                call,
                enclosing: None,
                tgid: 1,
                goid: call,
                start_ns: t,
                session: Some(key.clone()),
                digest: None,
                uncached: false,
            },
            &mut out,
        );
        model.on_event(
            CacheEvent::Ownership {
                result: r,
                delta: 1,
                count_after: Some(1),
                context: OwnerContext::SessionTracked(key),
            },
            &mut out,
        );
        model.on_event(
            CacheEvent::CallEnded {
                call,
                end_ns: Some(t + 1),
                status: CallStatus::Returned,
                error: None,
                returned_id_differs: None,
                result: Some(r),
                ref_taken: false,
            },
            &mut out,
        );
    }

    fn released(model: &mut CacheModel, sid: &str) {
        let key = SessionKey::Id(sid.into());
        let mut out = |_| {};
        model.on_event(
            CacheEvent::SessionReleaseBegan { key: key.clone() },
            &mut out,
        );
        model.on_event(CacheEvent::SessionReleased { key, goid: 1 }, &mut out);
    }

    #[test]
    fn sessions_whose_release_was_lost_are_dropped_after_an_idle_spell() {
        let mut model = CacheModel::new(true);
        // Ten minutes of one short session a second, ten calls each; the release of one
        // session in ten is lost, and events are lost every second.
        let mut call = 0;
        let mut most_live = 0;
        let mut most_owned = 0;
        for sec in 1..=600u64 {
            let sid = format!("s{sec}");
            for k in 0..10 {
                call += 1;
                session_call(&mut model, &sid, call, call, sec * SEC + k);
            }
            if sec % 10 != 0 {
                released(&mut model, &sid);
            }
            model.note_lost_events(sec * SEC + SEC / 2);
            let sizes = model.state_sizes();
            most_live = most_live.max(sizes.sessions);
            most_owned = most_owned.max(sizes.session_results);
        }
        // Sessions lost in the last 130 s at most (idle window and sweep period).
        assert!(most_live <= 14, "{most_live} live sessions kept");
        assert!(most_owned <= 140, "{most_owned} session ownerships kept");
        let dropped = model.evictions.idle_sessions;
        assert!((46..=60).contains(&dropped), "{dropped} sessions dropped");
        assert_eq!(model.evictions.idle_sessions_revived, 0);
        // Ended as evicted, not as leaks: their release was not seen.
        let evicted: Vec<_> = model.all_sessions().filter(|s| s.evicted).collect();
        assert_eq!(evicted.len() as u64, dropped);
        assert!(evicted.iter().all(|s| !s.closed && s.calls == 10));
    }

    #[test]
    fn without_lost_events_or_with_open_calls_sessions_stay() {
        let mut model = CacheModel::new(true);
        let mut out = |_| {};
        session_call(&mut model, "quiet", 1, 1, SEC);
        // "long" has a call open for the whole run.
        model.on_event(
            CacheEvent::CallBegan {
                call: 2,
                enclosing: None,
                tgid: 1,
                goid: 2,
                start_ns: SEC,
                session: Some(SessionKey::Id("long".into())),
                digest: None,
                uncached: false,
            },
            &mut out,
        );
        for sec in 2..3600u64 {
            session_call(&mut model, "busy", 100 + sec, 100 + sec, sec * SEC);
        }
        assert_eq!(model.state_sizes().sessions, 3, "no loss: nothing dropped");
        model.note_lost_events(3600 * SEC);
        session_call(&mut model, "busy", 5000, 5000, 3700 * SEC);
        // The quiet session went; the one with an open call and the busy one stayed.
        assert_eq!(model.evictions.idle_sessions, 1);
        let live: HashSet<_> = model.sessions.keys().cloned().collect();
        assert!(live.contains(&SessionKey::Id("long".into())));
        assert!(live.contains(&SessionKey::Id("busy".into())));
        // Heard of again: counted, and counted afresh.
        session_call(&mut model, "quiet", 6000, 6000, 3701 * SEC);
        assert_eq!(model.evictions.idle_sessions_revived, 1);
        assert_eq!(model.sessions[&SessionKey::Id("quiet".into())].calls, 1);
    }

    #[test]
    fn goroutines_of_executions_leave_with_their_exit_or_their_execution() {
        let mut model = CacheModel::new(true);
        let mut out = Vec::new();
        // Each execution's goroutine exits: none stays.
        for g in 0..1000u64 {
            model.on_event(
                CacheEvent::ExecStarted {
                    tgid: 1,
                    goid: 100 + g,
                    ongoing: g,
                    creator: None,
                    digest: None,
                },
                &mut |o| out.push(o),
            );
            model.on_event(
                CacheEvent::GoroutineExited {
                    tgid: 1,
                    goid: 100 + g,
                },
                &mut |o| out.push(o),
            );
        }
        assert_eq!(model.exec_of.len(), 0);
        // Exits lost: the goroutines of executions no longer in flight are dropped
        // past the bound, those of live ones stay.
        for g in 0..(MAX_ONGOING as u64 + 10) {
            model.on_event(
                CacheEvent::ExecStarted {
                    tgid: 1,
                    goid: 1_000_000 + g,
                    ongoing: 1_000_000 + g,
                    creator: None,
                    digest: None,
                },
                &mut |o| out.push(o),
            );
            model.ongoing.clear();
        }
        assert!(model.exec_of.len() <= MAX_ONGOING);
        let last = 1_000_000 + MAX_ONGOING as u64 + 9;
        model.on_event(
            CacheEvent::ExecStarted {
                tgid: 1,
                goid: last + 1,
                ongoing: last + 1,
                creator: None,
                digest: None,
            },
            &mut |o| out.push(o),
        );
        assert!(model.exec_of.contains_key(&(1, last + 1)));
    }

    #[test]
    fn ended_sessions_are_bounded_and_folded() {
        let mut model = CacheModel::new(true);
        let mut out = Vec::new();
        let n = MAX_ENDED_SESSIONS as u64 + 100;
        for i in 0..n {
            let key = SessionKey::Id(format!("s{i}").into());
            model.on_event(began(i + 1, 2, "xxh3:a", &format!("s{i}")), &mut |o| {
                out.push(o)
            });
            model.on_event(ended(i + 1), &mut |o| out.push(o));
            model.on_event(
                own(i, 1, 1, OwnerContext::SessionTracked(key.clone())),
                &mut |o| out.push(o),
            );
            model.on_event(
                CacheEvent::SessionReleaseBegan { key: key.clone() },
                &mut |o| out.push(o),
            );
            model.on_event(
                own(i, -1, 0, OwnerContext::SessionReleased(key.clone())),
                &mut |o| out.push(o),
            );
            model.on_event(CacheEvent::SessionReleased { key, goid: 1 }, &mut |o| {
                out.push(o)
            });
        }
        assert_eq!(model.ended.len(), MAX_ENDED_SESSIONS);
        assert!(
            model.sessions.is_empty(),
            "released sessions leave the live table"
        );
        assert!(model.seen_sessions.is_empty());
        assert_eq!(model.evictions.ended_sessions, 100);
        assert_eq!(model.folded.sessions, 100);
        assert_eq!(model.folded.refs_taken, 100);
        assert_eq!(model.folded.refs_released, 100);
        assert_eq!(model.folded.leaked, 0);
        assert!(anomalies(&out).is_empty());
        assert!(
            model.owners.is_empty(),
            "results owned by nobody are forgotten"
        );
    }
}

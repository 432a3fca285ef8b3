//! The cache model's input: what happened in the engine's dagql cache, as typed
//! events. Each code line's decoder (`profiles::dagger`) turns its raw probe hits into
//! these; the model knows no register, offset or function name.
use super::calls::CallStatus;

/// A digest, a session id or an engine's word as a decoder read it: read and checked
/// once, then shared by the events, the model and the records that name it (a reference
/// count, not a copy).
pub type Text = std::sync::Arc<str>;

/// How the engine names a session: its id string (L3/L4 pass it to every cache
/// method) or a per-session object pointer that a `SessionOpened` names (L1/L2's
/// `*SessionCache`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SessionKey {
    Id(Text),
    Handle(u64),
}

/// Which index answered a hit, in Dagger's own words (`CacheDecision.HitRoute`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HitRoute {
    /// The request's recipe digest.
    Recipe,
    /// One of the request's extra (content) digests.
    Digest,
    /// The e-graph term: self digest plus input equivalence classes.
    Structural,
}

impl HitRoute {
    pub fn as_str(self) -> &'static str {
        match self {
            HitRoute::Recipe => "recipe",
            HitRoute::Digest => "digest",
            HitRoute::Structural => "structural",
        }
    }
}

/// Why the engine's lookup missed, as its `CacheDecision` recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EngineMiss {
    /// Candidates were found but none could serve this session.
    pub incompatible_candidates: bool,
    /// A candidate had expired (its TTL).
    pub saw_expired: bool,
    /// The first structural input the e-graph did not know (None: all known).
    pub unknown_input: Option<i64>,
}

/// An error a call returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallError {
    /// Its message, when it could be read.
    pub text: Option<String>,
    /// The engine's recursive-call error.
    pub recursive: bool,
}

/// Where an ownership count changed, as far as the probes can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerContext {
    /// A session started owning the result (it tracked it for the first time).
    SessionTracked(SessionKey),
    /// A session's release dropped its ownership.
    SessionReleased(SessionKey),
    /// The engine's own bookkeeping (publication hand-off, dependencies, persistence).
    Engine,
    /// No probed context around the change.
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheEvent {
    /// A cache call began, as its caller sees it. `call` identifies it until
    /// `CallEnded`; `enclosing` is the cache call open around it on the same goroutine.
    CallBegan {
        call: u64,
        enclosing: Option<u64>,
        tgid: u32,
        goid: u64,
        start_ns: u64,
        session: Option<SessionKey>,
        digest: Option<Text>,
        uncached: bool,
    },
    /// The engine's own miss facts (L4 `CacheDecision`, when armed).
    EngineMiss {
        call: u64,
        miss: EngineMiss,
    },
    /// Identity parts read at the call's lookup (`--explain`), merged as they come. Boxed:
    /// it is four times the size of the other events, which are moved at every hit.
    Identity {
        call: u64,
        identity: Box<super::explain::CallIdentity>,
    },
    /// The recipe digest, learned after the call began.
    Digest {
        call: u64,
        digest: Text,
    },
    /// The call runs its resolver inline without caching (DoNotCache), decided inside.
    Uncached {
        call: u64,
    },
    /// The cache index answered: `hit`, and if so by which route (None: unknown).
    LookedUp {
        call: u64,
        hit: bool,
        content: bool,
        route: Option<HitRoute>,
        result: Option<u64>,
    },
    /// The call waits for execution `ongoing`: as a joiner (`joined`), or for the
    /// execution it just started. `waiters` is the engine's count right after this
    /// caller registered, when it was read.
    Waited {
        call: u64,
        ongoing: u64,
        joined: Option<bool>,
        waiters: Option<u32>,
    },
    /// The engine's own record of the decision (L4 `CacheDecision`), when armed.
    EngineDecision {
        call: u64,
        outcome: Option<Text>,
        route: Option<Text>,
    },
    /// TTL metadata read or written for the call (L1/L2 SQL).
    Db {
        call: u64,
        written: bool,
        storage_key: Option<String>,
    },
    /// The call returned, or is proven gone (`status`).
    CallEnded {
        call: u64,
        end_ns: Option<u64>,
        status: CallStatus,
        error: Option<CallError>,
        /// The returned result's identity differs from the request's (L1/L2).
        returned_id_differs: Option<bool>,
        /// The engine's id of the returned result.
        result: Option<u64>,
        /// The session now holds a reference it did not hold (L1/L2).
        ref_taken: bool,
    },
    /// A goroutine began running the resolver of execution `ongoing`; `creator` is the
    /// goroutine whose call started it, `digest` the execution's call key (the recipe
    /// digest of that call, known before any call its resolver makes).
    ExecStarted {
        tgid: u32,
        goid: u64,
        ongoing: u64,
        creator: Option<u64>,
        digest: Option<Text>,
    },
    GoroutineExited {
        tgid: u32,
        goid: u64,
    },
    /// A hit taken while loading an ID, outside any cache call.
    LoadHit {
        goid: u64,
        session: Option<SessionKey>,
        digest: Option<Text>,
        via: &'static str,
        route: Option<HitRoute>,
        result: Option<u64>,
        t_ns: u64,
    },
    /// The session is known by `id` (and its handle, if any, names it from now on);
    /// `announce` when this is its opening rather than an early naming.
    SessionOpened {
        key: SessionKey,
        id: Text,
        goid: u64,
        announce: bool,
    },
    /// The server removed the session (its release may run inside).
    SessionRemoved {
        key: SessionKey,
        id: Option<Text>,
    },
    /// The session's release began and ended.
    SessionReleaseBegan {
        key: SessionKey,
    },
    SessionReleased {
        key: SessionKey,
        goid: u64,
    },
    /// A reference a session held was released (L1/L2 `release`).
    RefReleased {
        session: Option<SessionKey>,
        digest: Option<Text>,
        refcount_after: Option<i64>,
        goid: u64,
    },
    /// A result's ownership count changed by `delta`; `count_after` as read.
    Ownership {
        result: u64,
        delta: i64,
        count_after: Option<i64>,
        context: OwnerContext,
    },
    /// A result left the cache.
    ResultCollected {
        result: u64,
        during_release_of: Option<SessionKey>,
    },
    /// A result was marked to persist across sessions (kept by design).
    Persisted {
        result: u64,
    },
    /// The arbitrary-value cache answered.
    Arbitrary {
        session: Option<SessionKey>,
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

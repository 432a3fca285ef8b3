//! dagql cache timelines: from probe hits on the engine's cache functions to one
//! record per cache call (identity, outcome, session, goroutines, timing), session
//! ref accounting and filesync change-cache events.
//!
//! Outcomes are read off the code path each call took, as the debugging guide's
//! "hit path" asks: DoNotCache pass-through, recursive-call error, a lookup that hit
//! (by structure, or through the content-digest fallback line), a `wait` called from
//! the join call site or from the fresh-execution one.
use std::{collections::HashMap, ops::Range};

use tracer_common::Capture;

use super::calls::{CallRecord, CallStatus, Captures, OpenFrame, Tracked};
use crate::{
    probes::Event,
    profiles::{Profile, Role},
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
}

/// Which call site a return address belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteKind {
    Join,
    Fresh,
    ChangeJoin,
    ChangeNew,
}

/// One cache call, as the session saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheCall {
    pub tgid: u32,
    pub goid: u64,
    pub digest: Option<String>,
    pub outcome: Option<Outcome>,
    /// The engine's session id, when the session's start was seen.
    pub session: Option<String>,
    /// The goroutine that ran `fn` (miss, join; the caller itself for uncached).
    pub exec_goid: Option<u64>,
    /// Callers that waited on the same execution (miss and join).
    pub waiters: Option<u32>,
    pub returned_id_differs: Option<bool>,
    pub parent_digest: Option<String>,
    pub db_read: bool,
    pub db_written: bool,
    /// The storage key, where the path computed one and handed it to the DB (TTL).
    pub storage_key: Option<String>,
    pub error: Option<String>,
    pub start_ns: Option<u64>,
    pub duration_ns: Option<u64>,
    pub status: CallStatus,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheOutput {
    Call(CacheCall),
    SessionOpened {
        session: String,
        goid: u64,
    },
    SessionClosed {
        session: Option<String>,
        refs_taken: u64,
        refs_released: u64,
    },
    Release {
        session: Option<String>,
        digest: Option<String>,
        refcount_after: Option<i64>,
        goid: u64,
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

/// Per-session ref accounting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionRefs {
    pub id: Option<String>,
    pub calls: u64,
    pub refs_taken: u64,
    pub refs_released: u64,
    pub closed: bool,
    pub removed: bool,
}

#[derive(Default)]
struct CallFacts {
    lookup_hit: bool,
    content_hit: bool,
    wait_site: Option<SiteKind>,
    ongoing_call: Option<u64>,
    db_read: bool,
    db_written: bool,
    storage_key: Option<String>,
}

enum Frame {
    Session {
        sc: u64,
        do_not_cache: bool,
        logical_parent: Option<u64>,
        base: Option<BaseResult>,
    },
    Base {
        facts: CallFacts,
        session_frame: Option<u64>,
    },
    Lookup {
        base_frame: Option<u64>,
        content_hit: bool,
    },
    ReleaseAndClose {
        sc: u64,
    },
    InitSession {
        id: Option<String>,
    },
    Change {
        site: Option<SiteKind>,
    },
    Other,
}

/// What is known of one execution in flight.
#[derive(Clone, Copy, Default)]
struct Ongoing {
    /// The base call that started it.
    leader: Option<u64>,
    /// The goroutine running `fn`.
    exec: Option<u64>,
    /// Calls that waited on it so far, and those still waiting.
    waiters: u32,
    waiting: u32,
}

struct BaseResult {
    outcome: Outcome,
    /// The execution this call waited on, as it stood when the call completed.
    ongoing: Option<Ongoing>,
    returned_id_differs: Option<bool>,
    error: Option<String>,
    db_read: bool,
    db_written: bool,
    storage_key: Option<String>,
}

pub struct CacheModel {
    profile: &'static Profile,
    /// Light mode: the lookup's and the base call's RETs are not probed, so a hit is
    /// "no wait, no error" and errors come from the session layer.
    light: bool,
    /// Probe id -> index into the profile's probes.
    roles: Vec<Role>,
    sites: Vec<(Range<u64>, SiteKind)>,
    frames: HashMap<u64, Frame>,
    /// Digest of each open session call, for its nested calls.
    digests: HashMap<u64, Option<String>>,
    /// Executions in flight, by `*ongoingCall`; dropped when their last waiting call
    /// completes, so memory stays bounded and a reused address starts afresh.
    ongoing: HashMap<u64, Ongoing>,
    /// Goroutines running `fn` for an ongoing call.
    exec_of: HashMap<(u32, u64), u64>,
    /// Open base calls per goroutine, innermost last: the one that just started an
    /// execution is its creator's innermost.
    open_base: HashMap<(u32, u64), Vec<u64>>,
    /// Sessions by SessionCache pointer. A pointer is reused once its session is gone;
    /// the earlier session's counts then move to `ended`.
    pub sessions: HashMap<u64, SessionRefs>,
    pub ended: Vec<SessionRefs>,
    /// SessionCache pointer -> session id, kept after the session ends (calls on a
    /// closed SessionCache still name it) until the pointer starts a new session.
    names: HashMap<u64, String>,
    /// The `*cache` the calls went through (for the engine's entry-count metric).
    pub cache_pointer: Option<u64>,
}

/// A captured string, if it was read and looks like text. Error messages are read
/// as "the first field of the error value"; for error types without a message field
/// (e.g. context.DeadlineExceeded) that is not text, and we report nothing.
fn text(c: Option<&Capture>) -> Option<String> {
    let bytes = c?.text()?;
    let s = std::str::from_utf8(bytes)
        .ok()
        .filter(|s| !s.is_empty() && !s.chars().any(char::is_control))?;
    Some(if c?.truncated() {
        format!("{s}...")
    } else {
        s.to_string()
    })
}

fn cap(caps: &Captures, i: Option<usize>) -> Option<&Capture> {
    caps.as_ref()?.get(i?)
}

impl CacheModel {
    /// `roles[probe_id]` is the role of each attached probe; `sites` map return
    /// addresses (minus one) to call sites.
    pub fn new(
        profile: &'static Profile,
        roles: Vec<Role>,
        sites: Vec<(Range<u64>, SiteKind)>,
        light: bool,
    ) -> CacheModel {
        CacheModel {
            profile,
            light,
            roles,
            sites,
            frames: HashMap::new(),
            digests: HashMap::new(),
            ongoing: HashMap::new(),
            exec_of: HashMap::new(),
            open_base: HashMap::new(),
            sessions: HashMap::new(),
            ended: Vec::new(),
            names: HashMap::new(),
            cache_pointer: None,
        }
    }

    fn role(&self, probe_id: u32) -> Option<Role> {
        self.roles.get(probe_id as usize).copied()
    }

    /// Where the profile put a named capture of a role's probe (each role has one).
    fn cap_index(&self, role: Role, name: &str, ret: bool) -> Option<usize> {
        let def = self.profile.probes.iter().find(|p| p.role == role)?;
        if ret {
            def.ret_cap(name)
        } else {
            def.entry_cap(name)
        }
    }

    fn site(&self, return_address: u64) -> Option<SiteKind> {
        let pc = return_address.checked_sub(1)?;
        self.sites
            .iter()
            .find(|(r, _)| r.contains(&pc))
            .map(|(_, k)| *k)
    }

    fn session_id(&self, sc: u64) -> Option<String> {
        self.names.get(&sc).cloned()
    }

    /// The innermost enclosing base call of `frame` (itself included), following
    /// traced parents on the goroutine.
    fn enclosing_base(
        &self,
        mut frame: Option<u64>,
        parents: &HashMap<u64, Option<u64>>,
    ) -> Option<u64> {
        while let Some(f) = frame {
            if matches!(self.frames.get(&f), Some(Frame::Base { .. })) {
                return Some(f);
            }
            frame = parents.get(&f).copied().flatten();
        }
        None
    }

    /// Every session seen: ended ones first, then live ones.
    pub fn all_sessions(&self) -> impl Iterator<Item = &SessionRefs> {
        self.ended.iter().chain(self.sessions.values())
    }

    pub fn on_tracked(
        &mut self,
        t: Tracked,
        parents: &mut HashMap<u64, Option<u64>>,
        out: &mut impl FnMut(CacheOutput),
    ) {
        match t {
            Tracked::Entered(f) => {
                parents.insert(f.frame, f.parent);
                self.entered(f, parents);
            }
            Tracked::Point { event, within } => self.point(event, within, parents, out),
            Tracked::Completed(rec) => {
                parents.remove(&rec.frame);
                self.completed(rec, out);
            }
        }
    }

    fn entered(&mut self, f: &OpenFrame, parents: &HashMap<u64, Option<u64>>) {
        let Some(role) = self.role(f.probe_id) else {
            return;
        };
        let frame = match role {
            Role::SessionCall => {
                let digest_at = self.cap_index(Role::SessionCall, "digest", false);
                self.digests
                    .insert(f.frame, text(cap(&f.captures, digest_at)));
                // A nested call's parent: the session call around it on this goroutine,
                // or, on a goroutine running `fn`, the call that started that execution.
                let base = self.enclosing_base(f.parent, parents).or_else(|| {
                    let oc = self.exec_of.get(&(f.tgid, f.goid))?;
                    self.ongoing.get(oc)?.leader
                });
                let logical_parent = base.and_then(|b| match self.frames.get(&b) {
                    Some(Frame::Base { session_frame, .. }) => *session_frame,
                    _ => None,
                });
                let sc = f.args[0];
                if let Some(id) = self.initialising_session(f.parent, parents) {
                    self.bind_session(sc, id);
                }
                self.sessions.entry(sc).or_default().calls += 1;
                Frame::Session {
                    sc,
                    do_not_cache: f.args[7] & 0xff != 0,
                    logical_parent,
                    base: None,
                }
            }
            Role::CacheCall => {
                self.cache_pointer.get_or_insert(f.args[0]);
                self.open_base
                    .entry((f.tgid, f.goid))
                    .or_default()
                    .push(f.frame);
                let session_frame = f
                    .parent
                    .filter(|p| matches!(self.frames.get(p), Some(Frame::Session { .. })));
                Frame::Base {
                    facts: CallFacts::default(),
                    session_frame,
                }
            }
            Role::Lookup => Frame::Lookup {
                base_frame: self.enclosing_base(f.parent, parents),
                content_hit: false,
            },
            Role::ReleaseAndClose => Frame::ReleaseAndClose { sc: f.args[0] },
            Role::InitSession => Frame::InitSession {
                id: text(cap(
                    &f.captures,
                    self.cap_index(Role::InitSession, "session_id", false),
                )),
            },
            Role::ChangeGetOrInit => Frame::Change { site: None },
            _ => Frame::Other,
        };
        self.frames.insert(f.frame, frame);
    }

    fn point(
        &mut self,
        event: &Event,
        within: Option<u64>,
        parents: &HashMap<u64, Option<u64>>,
        out: &mut impl FnMut(CacheOutput),
    ) {
        let ev = &event.call;
        let key = (ev.tgid, ev.goid);
        if ev.kind == tracer_common::ProbeKind::GoroutineExit as u32 {
            self.exec_of.remove(&key);
            return;
        }
        let Some(role) = self.role(ev.probe_id) else {
            return;
        };
        let caps = &event.captures;
        let base = self.enclosing_base(within, parents);
        match role {
            Role::ContentFallback => {
                if let Some(Frame::Lookup { content_hit, .. }) =
                    within.and_then(|w| self.frames.get_mut(&w))
                {
                    *content_hit = true;
                }
            }
            Role::Wait => {
                let ra = cap(caps, self.cap_index(role, "return_address", false))
                    .and_then(Capture::word);
                let site = ra.and_then(|ra| self.site(ra));
                let oc = ev.regs[3];
                let o = self.ongoing.entry(oc).or_default();
                o.waiters += 1;
                o.waiting += 1;
                if site == Some(SiteKind::Fresh) {
                    o.leader = o.leader.or(base);
                }
                if let Some(Frame::Base { facts, .. }) = base.and_then(|b| self.frames.get_mut(&b))
                {
                    facts.wait_site = site;
                    facts.ongoing_call = Some(oc);
                }
            }
            Role::Exec => {
                if let Some(oc) =
                    cap(caps, self.cap_index(role, "ongoing_call", false)).and_then(Capture::word)
                {
                    self.ongoing.entry(oc).or_default().exec = Some(ev.goid);
                    self.exec_of.insert(key, oc);
                    // The goroutine that started this execution is inside the call that
                    // missed. Knowing it now, not at that call's later `wait`, lets calls
                    // nested in `fn` find their parent however goroutines are scheduled.
                    let creator = cap(caps, self.cap_index(role, "creator_goid", false))
                        .and_then(Capture::word);
                    if let Some(leader) = creator
                        .and_then(|g| self.open_base.get(&(ev.tgid, g)))
                        .and_then(|frames| frames.last().copied())
                    {
                        self.ongoing.entry(oc).or_default().leader = Some(leader);
                    }
                }
            }
            Role::DbRead | Role::DbWrite => {
                let storage_key = (role == Role::DbWrite)
                    .then(|| {
                        text(cap(
                            caps,
                            self.cap_index(Role::DbWrite, "storage_key", false),
                        ))
                    })
                    .flatten();
                if let Some(Frame::Base { facts, .. }) = base.and_then(|b| self.frames.get_mut(&b))
                {
                    if role == Role::DbRead {
                        facts.db_read = true;
                    } else {
                        facts.db_written = true;
                        facts.storage_key = storage_key;
                    }
                }
            }
            Role::Release => {
                let sc = self.releasing_session(within, parents);
                if let Some(sc) = sc {
                    self.sessions.entry(sc).or_default().refs_released += 1;
                }
                let refcount =
                    cap(caps, self.cap_index(role, "refcount", false)).and_then(Capture::word);
                out(CacheOutput::Release {
                    session: sc.and_then(|sc| self.session_id(sc)),
                    digest: text(cap(caps, self.cap_index(role, "digest", false))),
                    refcount_after: refcount.map(|r| r as i64 - 1),
                    goid: ev.goid,
                });
            }
            Role::RemoveSession => {
                let id = text(cap(caps, self.cap_index(role, "session_id", false)));
                if let Some(sc) =
                    cap(caps, self.cap_index(role, "session_cache", false)).and_then(Capture::word)
                {
                    // Still live: ReleaseAndClose runs inside removeDaggerSession. The
                    // counts move to `ended` when the pointer names a new session.
                    let s = self.sessions.entry(sc).or_default();
                    s.removed = true;
                    s.id = s.id.take().or(id);
                }
            }
            Role::ChangeWait => {
                let ra = cap(caps, self.cap_index(role, "return_address", false))
                    .and_then(Capture::word);
                let site = ra.and_then(|ra| self.site(ra));
                if let Some(Frame::Change { site: s }) =
                    within.and_then(|w| self.frames.get_mut(&w))
                {
                    *s = site;
                }
            }
            Role::ChangeRelease => {
                let refcount =
                    cap(caps, self.cap_index(role, "refcount", false)).and_then(Capture::word);
                out(CacheOutput::ChangeRelease {
                    path: text(cap(caps, self.cap_index(role, "path", false))),
                    refcount_after: refcount.map(|r| r as i64 - 1),
                });
            }
            _ => {}
        }
    }

    /// The id of the session being initialised around `frame`, if any.
    fn initialising_session(
        &self,
        mut frame: Option<u64>,
        parents: &HashMap<u64, Option<u64>>,
    ) -> Option<String> {
        while let Some(f) = frame {
            if let Some(Frame::InitSession { id }) = self.frames.get(&f) {
                return id.clone();
            }
            frame = parents.get(&f).copied().flatten();
        }
        None
    }

    /// Names SessionCache `sc` as session `id`. A pointer already naming another
    /// session was reused: that session's counts are kept as ended.
    fn bind_session(&mut self, sc: u64, id: String) -> bool {
        if self.names.get(&sc) == Some(&id) {
            return false;
        }
        self.names.insert(sc, id.clone());
        let fresh = SessionRefs {
            id: Some(id),
            ..SessionRefs::default()
        };
        if let Some(old) = self.sessions.insert(sc, fresh)
            && (old.id.is_some() || old.calls > 0)
        {
            self.ended.push(old);
        }
        true
    }

    /// A call that waited on execution `oc` completed; the last one ends its record.
    fn done_waiting(&mut self, oc: u64) {
        if let Some(o) = self.ongoing.get_mut(&oc) {
            o.waiting = o.waiting.saturating_sub(1);
            if o.waiting == 0 {
                self.ongoing.remove(&oc);
            }
        }
    }

    /// The session a release belongs to: the closing session whose ReleaseAndClose
    /// is running it, or the session call it happens in.
    fn releasing_session(
        &self,
        mut frame: Option<u64>,
        parents: &HashMap<u64, Option<u64>>,
    ) -> Option<u64> {
        while let Some(f) = frame {
            match self.frames.get(&f) {
                Some(Frame::ReleaseAndClose { sc }) | Some(Frame::Session { sc, .. }) => {
                    return Some(*sc);
                }
                _ => frame = parents.get(&f).copied().flatten(),
            }
        }
        None
    }

    fn completed(&mut self, rec: CallRecord, out: &mut impl FnMut(CacheOutput)) {
        let Some(frame) = self.frames.remove(&rec.frame) else {
            return;
        };
        let Some(role) = self.role(rec.probe_id) else {
            return;
        };
        let ret = rec.ret.unwrap_or_default();
        let returned = rec.status == CallStatus::Returned;
        match (role, frame) {
            (
                Role::Lookup,
                Frame::Lookup {
                    base_frame,
                    content_hit,
                },
            ) => {
                if let Some(Frame::Base { facts, .. }) =
                    base_frame.and_then(|b| self.frames.get_mut(&b))
                {
                    // lookupCacheForID returns (AnyResult RAX,RBX; hit CL; error RDI,RSI).
                    facts.lookup_hit = returned && ret[2] & 0xff == 1;
                    facts.content_hit = content_hit;
                }
            }
            (
                Role::CacheCall,
                Frame::Base {
                    facts,
                    session_frame,
                },
            ) => {
                let key = (rec.tgid, rec.goid.unwrap_or_default());
                if let Some(open) = self.open_base.get_mut(&key) {
                    open.retain(|f| *f != rec.frame);
                    if open.is_empty() {
                        self.open_base.remove(&key);
                    }
                }
                let waited_on = facts.ongoing_call;
                let result = self.base_result(&rec, facts);
                if let Some(oc) = waited_on {
                    self.done_waiting(oc);
                }
                match session_frame.and_then(|s| self.frames.get_mut(&s)) {
                    Some(Frame::Session { base, .. }) => *base = Some(result),
                    _ => out(CacheOutput::Call(self.record(
                        &rec,
                        None,
                        None,
                        Some(result),
                        false,
                    ))),
                }
            }
            (
                Role::SessionCall,
                Frame::Session {
                    sc,
                    do_not_cache,
                    logical_parent,
                    base,
                },
            ) => {
                let parent_digest =
                    logical_parent.and_then(|p| self.digests.get(&p).cloned().flatten());
                let call = self.record(&rec, Some(sc), parent_digest, base, do_not_cache);
                self.digests.remove(&rec.frame);
                // SessionCache keeps non-DoNotCache results with a value: a ref taken.
                if returned && !do_not_cache && ret[0] != 0 && ret[2] == 0 {
                    self.sessions.entry(sc).or_default().refs_taken += 1;
                }
                out(CacheOutput::Call(call));
            }
            (Role::ReleaseAndClose, Frame::ReleaseAndClose { sc }) => {
                let s = self.sessions.entry(sc).or_default();
                s.closed = true;
                out(CacheOutput::SessionClosed {
                    session: s.id.clone(),
                    refs_taken: s.refs_taken,
                    refs_released: s.refs_released,
                });
            }
            (Role::InitSession, _) if returned => {
                let caps = &rec.ret_captures;
                let sc =
                    cap(caps, self.cap_index(role, "session_cache", true)).and_then(Capture::word);
                let id = text(cap(caps, self.cap_index(role, "session_id", true)));
                if let (Some(sc), Some(id)) = (sc, id) {
                    self.bind_session(sc, id.clone());
                    out(CacheOutput::SessionOpened {
                        session: id,
                        goid: rec.goid.unwrap_or_default(),
                    });
                }
            }
            (Role::ChangeGetOrInit, Frame::Change { site }) => {
                let outcome = if !returned {
                    "unfinished"
                } else if ret[1] != 0 {
                    "error"
                } else {
                    match site {
                        Some(SiteKind::ChangeJoin) => "join",
                        Some(SiteKind::ChangeNew) => "new",
                        _ => "hit",
                    }
                };
                out(CacheOutput::Change {
                    path: text(cap(
                        &rec.entry_captures,
                        self.cap_index(role, "path", false),
                    )),
                    outcome,
                    goid: rec.goid.unwrap_or_default(),
                    duration_ns: rec.duration_ns(),
                });
            }
            (Role::VerifyChange, _) if returned && ret[0] != 0 => {
                out(CacheOutput::Conflict {
                    path: text(cap(
                        &rec.entry_captures,
                        self.cap_index(role, "path", false),
                    )),
                    error: text(cap(&rec.ret_captures, self.cap_index(role, "error", true))),
                });
            }
            _ => {}
        }
    }

    fn base_result(&self, rec: &CallRecord, facts: CallFacts) -> BaseResult {
        let ret = rec.ret.unwrap_or_default();
        let args = rec.args.unwrap_or_default();
        let caps = &rec.ret_captures;
        let error = (ret[2] != 0)
            .then(|| text(cap(caps, self.cap_index(Role::CacheCall, "error", true))))
            .flatten();
        let outcome = if ret[2] != 0 && error.as_deref() == Some(self.profile.recursive_error) {
            Outcome::Recursive
        } else if ret[2] != 0 {
            Outcome::Error
        } else if args[7] & 0xff != 0 {
            Outcome::Uncached
        } else if (self.light && facts.wait_site.is_none()) || facts.lookup_hit {
            // Light mode has no lookup result: a call that neither waited nor failed hit.
            if facts.content_hit {
                Outcome::HitContent
            } else {
                Outcome::Hit
            }
        } else {
            match facts.wait_site {
                Some(SiteKind::Join) => Outcome::Join,
                _ => Outcome::Miss,
            }
        };
        let requested = text(cap(
            &rec.entry_captures,
            self.cap_index(Role::CacheCall, "digest", false),
        ));
        let returned = (ret[0] != 0 && ret[2] == 0)
            .then(|| {
                text(cap(
                    caps,
                    self.cap_index(Role::CacheCall, "returned_digest", true),
                ))
            })
            .flatten();
        BaseResult {
            outcome,
            ongoing: facts
                .ongoing_call
                .and_then(|oc| self.ongoing.get(&oc).copied()),
            returned_id_differs: match (requested, returned) {
                (Some(a), Some(b)) => Some(a != b),
                _ => None,
            },
            error,
            db_read: facts.db_read,
            db_written: facts.db_written,
            storage_key: facts.storage_key,
        }
    }

    fn record(
        &self,
        rec: &CallRecord,
        sc: Option<u64>,
        parent_digest: Option<String>,
        base: Option<BaseResult>,
        do_not_cache: bool,
    ) -> CacheCall {
        let ret = rec.ret.unwrap_or_default();
        let returned = rec.status == CallStatus::Returned;
        let session_error = (returned && ret[2] != 0)
            .then(|| {
                text(cap(
                    &rec.ret_captures,
                    self.cap_index(Role::SessionCall, "error", true),
                ))
            })
            .flatten();
        let digest_role = if sc.is_some() {
            Role::SessionCall
        } else {
            Role::CacheCall
        };
        let digest = text(cap(
            &rec.entry_captures,
            self.cap_index(digest_role, "digest", false),
        ));
        let goid = rec.goid.unwrap_or_default();
        let (outcome, exec_goid, waiters, differs, error, db_read, db_written) = match &base {
            Some(b) => {
                // In light mode the base call's RET is not probed: its error shows at
                // the session layer's RET.
                let outcome = if self.light && returned && ret[2] != 0 {
                    match session_error.as_deref() {
                        Some(t) if t == self.profile.recursive_error => Outcome::Recursive,
                        _ => Outcome::Error,
                    }
                } else {
                    b.outcome
                };
                let (exec, waiters) = match (outcome, b.ongoing) {
                    (Outcome::Miss | Outcome::Join, Some(o)) => (o.exec, Some(o.waiters)),
                    (Outcome::Uncached, _) => (Some(goid), None),
                    _ => (None, None),
                };
                let error = b.error.clone().or(session_error);
                (
                    Some(outcome),
                    exec,
                    waiters,
                    b.returned_id_differs,
                    error,
                    b.db_read,
                    b.db_written,
                )
            }
            // The session layer answered alone (e.g. "session cache is closed").
            None if returned && ret[2] != 0 => (
                Some(Outcome::Error),
                None,
                None,
                None,
                session_error,
                false,
                false,
            ),
            None if returned && do_not_cache => (
                Some(Outcome::Uncached),
                Some(goid),
                None,
                None,
                None,
                false,
                false,
            ),
            None => (None, None, None, None, None, false, false),
        };
        let storage_key = base.as_ref().and_then(|b| b.storage_key.clone());
        CacheCall {
            storage_key,
            tgid: rec.tgid,
            goid,
            digest,
            outcome,
            session: sc.and_then(|sc| self.session_id(sc)),
            exec_goid,
            waiters,
            returned_id_differs: differs,
            parent_digest,
            db_read,
            db_written,
            error,
            start_ns: rec.start_ns,
            duration_ns: rec.duration_ns(),
            status: rec.status,
        }
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::{CAPTURE_BYTES, GoCallEvent, MAX_CAPTURES, ProbeKind};

    use super::*;
    use crate::{model::calls::CallTracker, profiles::detect_for_tests};

    /// Builds events for the L2 profile: probe ids are profile indexes.
    struct Script {
        events: Vec<Event>,
        ts: u64,
    }

    fn id_of(role: Role) -> u32 {
        detect_for_tests()
            .probes
            .iter()
            .position(|p| p.role == role)
            .unwrap() as u32
    }

    fn string_cap(s: &str) -> Capture {
        let mut c = Capture {
            value: s.len() as u64,
            ok: 1,
            nbytes: s.len() as u32,
            bytes: [0; CAPTURE_BYTES],
        };
        c.bytes[..s.len()].copy_from_slice(s.as_bytes());
        c
    }

    fn word_cap(v: u64) -> Capture {
        Capture {
            value: v,
            ok: 1,
            nbytes: 0,
            bytes: [0; CAPTURE_BYTES],
        }
    }

    impl Script {
        fn push(
            &mut self,
            kind: ProbeKind,
            role: Role,
            goid: u64,
            depth: u64,
            regs: [u64; 9],
            caps: &[Capture],
        ) {
            self.ts += 10;
            let mut all = [word_cap(0); MAX_CAPTURES];
            for (slot, c) in all.iter_mut().zip(caps) {
                *slot = *c;
            }
            for slot in all.iter_mut().skip(caps.len()) {
                slot.ok = 0;
            }
            self.events.push(Event {
                call: GoCallEvent {
                    kind: kind as u32,
                    probe_id: id_of(role),
                    tgid: 1,
                    tid: 1,
                    ts_ns: self.ts,
                    goid,
                    stack_depth: depth,
                    regs,
                },
                captures: Some(Box::new(all)),
                stack: Vec::new(),
            });
        }
    }

    const SC: u64 = 0x5c;
    const JOIN_RA: u64 = 0x1001;
    const FRESH_RA: u64 = 0x2001;

    fn run(script: Script) -> Vec<CacheOutput> {
        let sites = vec![
            (0x1000..0x1001, SiteKind::Join),
            (0x2000..0x2001, SiteKind::Fresh),
        ];
        let profile = detect_for_tests();
        let roles = profile.probes.iter().map(|p| p.role).collect();
        let mut model = CacheModel::new(profile, roles, sites, false);
        let mut tracker = CallTracker::new(false);
        let mut parents = HashMap::new();
        let mut out = Vec::new();
        for ev in script.events {
            tracker.on_event(ev, &mut |t| {
                model.on_tracked(t, &mut parents, &mut |o| out.push(o))
            });
        }
        out
    }

    fn calls(out: &[CacheOutput]) -> Vec<&CacheCall> {
        out.iter()
            .filter_map(|o| {
                if let CacheOutput::Call(c) = o {
                    Some(c)
                } else {
                    None
                }
            })
            .collect()
    }

    /// session call -> base call -> (lookup) -> returns, on goroutine `g`.
    /// A call up to (and including) its `wait`, on goroutine `g`.
    fn begin_call(s: &mut Script, g: u64, digest: &str, hit: bool, wait_ra: Option<u64>, oc: u64) {
        let mut entry = [0; 9];
        entry[0] = SC;
        s.push(
            ProbeKind::FuncEntry,
            Role::SessionCall,
            g,
            100,
            entry,
            &[string_cap(digest)],
        );
        s.push(
            ProbeKind::FuncEntry,
            Role::CacheCall,
            g,
            200,
            [0; 9],
            &[string_cap(digest)],
        );
        s.push(ProbeKind::FuncEntry, Role::Lookup, g, 300, [0; 9], &[]);
        let mut lookup_ret = [0; 9];
        lookup_ret[2] = hit as u64;
        s.push(ProbeKind::FuncReturn, Role::Lookup, g, 300, lookup_ret, &[]);
        if let Some(ra) = wait_ra {
            let mut regs = [0; 9];
            regs[3] = oc;
            s.push(ProbeKind::Point, Role::Wait, g, 300, regs, &[word_cap(ra)]);
        }
    }

    /// The returns of a call begun with `begin_call`.
    fn end_call(s: &mut Script, g: u64, digest: &str) {
        let mut ret = [0; 9];
        ret[0] = 0x7e; // a result
        s.push(
            ProbeKind::FuncReturn,
            Role::CacheCall,
            g,
            200,
            ret,
            &[string_cap(digest), word_cap(0)],
        );
        s.push(ProbeKind::FuncReturn, Role::SessionCall, g, 100, ret, &[]);
    }

    fn call(s: &mut Script, g: u64, digest: &str, hit: bool, wait_ra: Option<u64>, oc: u64) {
        begin_call(s, g, digest, hit, wait_ra, oc);
        end_call(s, g, digest);
    }

    #[test]
    fn outcomes_follow_the_code_path() {
        let mut s = Script {
            events: Vec::new(),
            ts: 0,
        };
        // Session start: initializeDaggerSession's RET reads id and SessionCache.
        s.push(ProbeKind::FuncEntry, Role::InitSession, 1, 50, [0; 9], &[]);
        s.push(
            ProbeKind::FuncReturn,
            Role::InitSession,
            1,
            50,
            [0; 9],
            &[string_cap("sess-1"), word_cap(SC)],
        );
        call(&mut s, 2, "xxh3:aaaaaaaaaaaaaaaa", true, None, 0);
        // A miss on g3 starts an execution (ongoing call 0x0c) that runs on g9; g4
        // joins it while it runs; then both waiting calls return.
        begin_call(
            &mut s,
            3,
            "xxh3:bbbbbbbbbbbbbbbb",
            false,
            Some(FRESH_RA),
            0x0c,
        );
        s.push(
            ProbeKind::Point,
            Role::Exec,
            9,
            40,
            [0; 9],
            &[word_cap(0x0c)],
        );
        begin_call(
            &mut s,
            4,
            "xxh3:bbbbbbbbbbbbbbbb",
            false,
            Some(JOIN_RA),
            0x0c,
        );
        end_call(&mut s, 3, "xxh3:bbbbbbbbbbbbbbbb");
        end_call(&mut s, 4, "xxh3:bbbbbbbbbbbbbbbb");
        let out = run(s);
        let c = calls(&out);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].outcome, Some(Outcome::Hit));
        assert_eq!(c[0].session.as_deref(), Some("sess-1"));
        assert_eq!(c[1].outcome, Some(Outcome::Miss));
        assert_eq!(c[2].outcome, Some(Outcome::Join));
        assert_eq!(c[2].exec_goid, Some(9));
        assert_eq!(c[2].waiters, Some(2));
        assert_eq!(c[0].returned_id_differs, Some(false));
        assert!(matches!(out[0], CacheOutput::SessionOpened { .. }));
    }
}

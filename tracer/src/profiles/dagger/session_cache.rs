//! Decoder of the SessionCache design (L1, L2): a per-session `SessionCache` in
//! front of one base `*cache`; references are refcounts released by
//! `(*sharedResult).release`. What differs between the two lines is a `Design`.
use std::{collections::hash_map::Entry, ops::Range};

use rustc_hash::FxHashMap as HashMap;
use tracer_common::ProbeKind;

use super::{
    Decoder, DecoderSetup, Frames, LayoutError, Role, Texts, call_error, call_sites, cap, count_of,
    filesync::Filesync, site_of, slot, text, word,
};
use crate::{
    model::{
        cache_events::{CacheEvent, CallError, SessionKey, Text},
        calls::{CallRecord, CallStatus, OpenFrame, Tracked},
    },
    probes::Event,
    profiles::{At, ProbeDef, at_entry, string, word as word_cap},
};

/// How a `wait` tells a joiner from the caller that started the execution.
pub enum WaitKind {
    /// By the call site its return address lies in (L2: `wait(ctx, oc, requestID)`).
    CallSites {
        func: &'static str,
        file: &'static str,
        join_line: u32,
        fresh_line: u32,
    },
    /// By its `isFirstCaller bool` argument (L1: SIL).
    FirstCallerArg { reg: usize },
}

/// How a content-digest hit shows.
pub enum ContentKind {
    /// A line probe inside the lookup (L2).
    FallbackLine,
    /// The returned `Result.hitContentDigestCache` flag (L1), read at the session layer's
    /// RET (it returns the base call's result as is).
    ResultFlag,
}

pub struct Design {
    pub line: &'static str,
    pub wait: WaitKind,
    pub content: ContentKind,
    pub recursive_error: &'static str,
}

/// `--light`: the base call's `return nil, ErrCacheRecursiveCall`, found in its code.
pub(super) fn light_recursive_probe() -> ProbeDef {
    ProbeDef::new(
        Role::LightRecursive,
        "dagql.(*cache).GetOrInitCall",
        At::Site {
            site: super::code::Site::GlobalErrorReturn,
            frame: false,
        },
    )
    .light(crate::profiles::Light::Only)
    .optional()
}

/// `--light`: the call of `wait` from the base call's join path (`line`). At the call
/// the in-flight execution is in RDI, as at `wait`'s entry.
pub(super) fn light_join_probe(line: u32) -> ProbeDef {
    ProbeDef::new(
        Role::LightJoin,
        "dagql.(*cache).GetOrInitCall",
        At::Site {
            site: super::code::Site::CallOnLine("dagql.(*cache).wait", line),
            frame: false,
        },
    )
    .light(crate::profiles::Light::Only)
}

/// The probes of the session layer and server that L1 and L2 share (same functions,
/// registers and offsets in both: engine-l1.md §1.2, engine-internals.md §1.2).
pub(super) fn session_layer_probes() -> Vec<ProbeDef> {
    const RCX: u8 = 2;
    const RDI: u8 = 3;
    vec![
        // c RAX.
        ProbeDef::new(
            Role::ReleaseAndClose,
            "dagql.(*SessionCache).ReleaseAndClose",
            At::Call,
        ),
        ProbeDef::new(
            Role::DbRead,
            "dagql/db.(*Queries).SelectCall",
            At::EntryPoint,
        ),
        // SetExpirationParams on the stack: CallKey [RSP+8], StorageKey [RSP+24]: the
        // storage key the TTL path computed.
        ProbeDef::new(
            Role::DbWrite,
            "dagql/db.(*Queries).SetExpiration",
            At::EntryPoint,
        )
        .entry(&[string("storage_key", tracer_common::REG_RSP, &[], 24)]),
        // sess RCX: sessionID +0, dagqlCache *SessionCache +280 (set inside the function,
        // so read at its RETs from the entry's RCX). Calls made during initialisation
        // bind the new SessionCache to the id before the RET reports the pointer.
        ProbeDef::new(
            Role::InitSession,
            "engine/server.(*Server).initializeDaggerSession",
            At::Call,
        )
        .entry(&[string("session_id", RCX, &[], 0)])
        .ret(&[
            at_entry(string("session_id", RCX, &[], 0)),
            at_entry(word_cap("session_cache", RCX, &[280])),
            // SessionCache.cache's data word (+8): the one base `*cache` whose maps the
            // entry metric reads, learnt once a session instead of at every call.
            at_entry(word_cap("base_cache", RCX, &[280, 8])),
        ]),
        // sess RDI.
        ProbeDef::new(
            Role::RemoveSession,
            "engine/server.(*Server).removeDaggerSession",
            At::EntryPoint,
        )
        .entry(&[
            string("session_id", RDI, &[], 0),
            word_cap("session_cache", RDI, &[280]),
            word_cap("base_cache", RDI, &[280, 8]),
        ]),
    ]
}

/// What a call's path showed, for `--light`, which reads no return: without a wait, an
/// uncached run or a refusal, the call hit.
#[derive(Clone, Copy, Default)]
struct LightPath {
    waited: bool,
    recursive: bool,
    content: bool,
    /// It read TTL metadata: its execution may run under a storage-key digest (L2).
    ttl: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Site {
    Join,
    Fresh,
}

#[derive(Clone)]
enum Kind {
    /// A cache call as its caller sees it: the session layer's, or a base call made
    /// without one.
    Top {
        sc: Option<u64>,
        do_not_cache: bool,
        differs: Option<bool>,
        /// Made from a place whose return no probe reads (see `ReturnCheck`).
        return_unread: bool,
        /// What `--light` learns on the way instead of at the return.
        path: LightPath,
    },
    Base {
        top: Option<u64>,
    },
    Lookup {
        top: Option<u64>,
        content: bool,
    },
    ReleaseAndClose {
        sc: u64,
    },
    InitSession {
        id: Option<Text>,
    },
    Other,
}

/// Capture indexes, resolved once from the profile.
struct Slot {
    session_cache: Option<usize>,
    session_digest: Option<usize>,
    session_error: Option<usize>,
    session_hit_flags: Option<usize>,
    session_returned: Option<usize>,
    session_return_address: Option<usize>,
    base_digest: Option<usize>,
    base_returned: Option<usize>,
    base_hit_flags: Option<usize>,
    base_error: Option<usize>,
    wait_ra: Option<usize>,
    exec_oc: Option<usize>,
    exec_creator: Option<usize>,
    exec_call_key: Option<usize>,
    release_digest: Option<usize>,
    release_refcount: Option<usize>,
    init_session_id: Option<usize>,
    init_ret_session_id: Option<usize>,
    init_ret_session_cache: Option<usize>,
    init_ret_base_cache: Option<usize>,
    remove_session_id: Option<usize>,
    remove_session_cache: Option<usize>,
    remove_base_cache: Option<usize>,
    storage_key: Option<usize>,
}

pub struct SessionCacheDecoder {
    design: &'static Design,
    roles: Vec<Option<Role>>,
    slot: Slot,
    sites: Vec<(Range<u64>, Site)>,
    /// The target's load bias: return addresses minus it are link-time addresses.
    bias: u64,
    filesync: Filesync,
    frames: Frames<Kind>,
    cache: Option<u64>,
    returns: super::ReturnCheck,
    light: bool,
    /// `--light` without `wait` probes: a first caller's miss is read from its
    /// execution's start, and its call found among these, the cache call (frame and
    /// digest) each goroutine has open.
    leaders_from_exec: bool,
    open_calls: HashMap<(u32, u64), (u64, Option<Text>)>,
    texts: Texts,
}

pub fn build(setup: &DecoderSetup, design: &'static Design) -> anyhow::Result<Box<dyn Decoder>> {
    let p = setup.profile;
    let sites = match design.wait {
        WaitKind::CallSites {
            func,
            file,
            join_line,
            fresh_line,
        } => call_sites(
            setup.sites,
            func,
            file,
            [(join_line, Site::Join), (fresh_line, Site::Fresh)],
        )?,
        _ => Vec::new(),
    };
    let slot = Slot {
        session_cache: slot(p, Role::SessionCall, "cache", false),
        session_digest: slot(p, Role::SessionCall, "digest", false),
        session_error: slot(p, Role::SessionCall, "error", true),
        session_hit_flags: slot(p, Role::SessionCall, "hit_flags", true),
        session_returned: slot(p, Role::SessionCall, "returned_digest", true),
        session_return_address: slot(p, Role::SessionCall, "return_address", false),
        base_digest: slot(p, Role::BaseCall, "digest", false),
        base_returned: slot(p, Role::BaseCall, "returned_digest", true),
        base_hit_flags: slot(p, Role::BaseCall, "hit_flags", true),
        base_error: slot(p, Role::BaseCall, "error", true),
        wait_ra: slot(p, Role::Wait, "return_address", false),
        exec_oc: slot(p, Role::Exec, "ongoing", false),
        exec_creator: slot(p, Role::Exec, "creator_goid", false),
        exec_call_key: slot(p, Role::Exec, "call_key", false),
        release_digest: slot(p, Role::Release, "digest", false),
        release_refcount: slot(p, Role::Release, "refcount", false),
        init_session_id: slot(p, Role::InitSession, "session_id", false),
        init_ret_session_id: slot(p, Role::InitSession, "session_id", true),
        init_ret_session_cache: slot(p, Role::InitSession, "session_cache", true),
        init_ret_base_cache: slot(p, Role::InitSession, "base_cache", true),
        remove_session_id: slot(p, Role::RemoveSession, "session_id", false),
        remove_session_cache: slot(p, Role::RemoveSession, "session_cache", false),
        remove_base_cache: slot(p, Role::RemoveSession, "base_cache", false),
        storage_key: slot(p, Role::DbWrite, "storage_key", false),
    };
    Ok(Box::new(SessionCacheDecoder {
        design,
        roles: setup.roles.clone(),
        slot,
        sites,
        filesync: Filesync::new(setup.sites, p)?,
        bias: 0,
        frames: Frames::default(),
        cache: None,
        returns: super::ReturnCheck::new(setup.call_return_sites),
        light: setup.light,
        leaders_from_exec: setup.light && setup.roles.contains(&Some(Role::LightJoin)),
        open_calls: HashMap::default(),
        texts: Texts::default(),
    }))
}

impl SessionCacheDecoder {
    fn role(&self, probe_id: u32) -> Option<Role> {
        self.roles.get(probe_id as usize).copied().flatten()
    }

    fn site(&self, return_address: Option<u64>) -> Option<Site> {
        site_of(&self.sites, self.bias, return_address)
    }

    fn top(&self, frame: Option<u64>) -> Option<u64> {
        self.frames.find(frame, |k| matches!(k, Kind::Top { .. }))
    }

    /// The cache call a call begun inside `frame` is nested in. In `--light` no return
    /// closes a call: an earlier call still open on the goroutine is taken for the parent
    /// only if it runs `fn` on this goroutine (uncached); any other has returned, since
    /// its `fn` runs on another goroutine (a later call made from a deeper frame would
    /// otherwise look nested in it).
    fn enclosing(&self, frame: Option<u64>) -> Option<u64> {
        let top = self.top(frame)?;
        match self.frames.get(top) {
            Some(Kind::Top { do_not_cache, .. }) if self.light && !do_not_cache => None,
            _ => Some(top),
        }
    }

    /// Notes on the path of the cache call around `frame`.
    fn light_path(&mut self, frame: Option<u64>, note: impl FnOnce(&mut LightPath)) {
        if let Some(Kind::Top { path, .. }) = self.top(frame).and_then(|t| self.frames.get_mut(t)) {
            note(path);
        }
    }

    fn entered(&mut self, f: &OpenFrame, out: &mut Vec<CacheEvent>) -> Result<(), LayoutError> {
        let Some(role) = self.role(f.probe_id) else {
            return Ok(());
        };
        if self.filesync.entered(role, f) {
            return Ok(());
        }
        let line = self.design.line;
        let kind = match role {
            Role::SessionCall => {
                let sc = f.args[0];
                if let Some(cache) = word(&f.captures, self.slot.session_cache) {
                    self.cache.get_or_insert(cache);
                }
                // A call made while the session is being initialised names it first.
                if let Some(id) = self.initialising(f.parent) {
                    out.push(CacheEvent::SessionOpened {
                        key: SessionKey::Handle(sc),
                        id,
                        goid: f.goid,
                        announce: false,
                    });
                }
                let do_not_cache = f.args[7] & 0xff != 0;
                let return_unread = self.returns.unread(
                    word(&f.captures, self.slot.session_return_address),
                    self.bias,
                );
                let digest = self.texts.digest(
                    line,
                    "a call digest",
                    cap(&f.captures, self.slot.session_digest),
                )?;
                if self.leaders_from_exec {
                    self.open_calls
                        .insert((f.tgid, f.goid), (f.frame, digest.clone()));
                }
                out.push(CacheEvent::CallBegan {
                    call: f.frame,
                    enclosing: self.enclosing(f.parent),
                    tgid: f.tgid,
                    goid: f.goid,
                    start_ns: f.start_ns,
                    session: Some(SessionKey::Handle(sc)),
                    digest,
                    uncached: do_not_cache,
                });
                Kind::Top {
                    sc: Some(sc),
                    do_not_cache,
                    differs: None,
                    return_unread,
                    path: LightPath::default(),
                }
            }
            Role::BaseCall => {
                self.cache.get_or_insert(f.args[0]);
                let do_not_cache = f.args[7] & 0xff != 0;
                match self.top(f.parent) {
                    Some(top) => {
                        if do_not_cache {
                            out.push(CacheEvent::Uncached { call: top });
                        }
                        Kind::Base { top: Some(top) }
                    }
                    // A base call made without the session layer is a call of its own.
                    None => {
                        out.push(CacheEvent::CallBegan {
                            call: f.frame,
                            enclosing: None,
                            tgid: f.tgid,
                            goid: f.goid,
                            start_ns: f.start_ns,
                            session: None,
                            digest: self.texts.digest(
                                line,
                                "a call digest",
                                cap(&f.captures, self.slot.base_digest),
                            )?,
                            uncached: do_not_cache,
                        });
                        Kind::Top {
                            sc: None,
                            do_not_cache,
                            differs: None,
                            return_unread: false,
                            path: LightPath::default(),
                        }
                    }
                }
            }
            Role::Lookup => Kind::Lookup {
                top: self.top(f.parent),
                content: false,
            },
            Role::ReleaseAndClose => Kind::ReleaseAndClose { sc: f.args[0] },
            Role::InitSession => Kind::InitSession {
                id: text(cap(&f.captures, self.slot.init_session_id)).map(Text::from),
            },
            _ => Kind::Other,
        };
        self.frames.insert(f.frame, kind, f.parent);
        Ok(())
    }

    /// The id of the session being initialised around `frame`, if any.
    fn initialising(&self, frame: Option<u64>) -> Option<Text> {
        let f = self
            .frames
            .find(frame, |k| matches!(k, Kind::InitSession { .. }))?;
        match self.frames.get(f) {
            Some(Kind::InitSession { id }) => id.clone(),
            _ => None,
        }
    }

    fn point(
        &mut self,
        event: &Event,
        within: Option<u64>,
        out: &mut Vec<CacheEvent>,
    ) -> Result<(), LayoutError> {
        let ev = &event.call;
        if ev.kind == ProbeKind::GoroutineExit as u32 {
            out.push(CacheEvent::GoroutineExited {
                tgid: ev.tgid,
                goid: ev.goid,
            });
            return Ok(());
        }
        let Some(role) = self.role(ev.probe_id) else {
            return Ok(());
        };
        if self.filesync.point(role, event, within, out) {
            return Ok(());
        }
        let caps = &event.captures;
        let line = self.design.line;
        match role {
            Role::ContentFallback => {
                if self.light {
                    self.light_path(within, |p| p.content = true);
                } else if let Some(Kind::Lookup { content, .. }) =
                    within.and_then(|w| self.frames.get_mut(w))
                {
                    // Recordings of the former plan, whose lookups were frames.
                    *content = true;
                } else if let Some(call) = self.top(within) {
                    out.push(CacheEvent::LookedUp {
                        call,
                        hit: false,
                        content: true,
                        route: None,
                        result: None,
                    });
                }
            }
            // A join's call of `wait` (--light) has the same registers as `wait`'s entry.
            Role::Wait | Role::LightJoin => {
                let joined = if role == Role::LightJoin {
                    Some(true)
                } else {
                    match self.design.wait {
                        WaitKind::CallSites { .. } => {
                            match self.site(word(caps, self.slot.wait_ra)) {
                                Some(Site::Join) => Some(true),
                                Some(Site::Fresh) => Some(false),
                                _ => None,
                            }
                        }
                        WaitKind::FirstCallerArg { reg } => Some(ev.regs[reg] & 0xff == 0),
                    }
                };
                if let Some(call) = self.top(within) {
                    out.push(CacheEvent::Waited {
                        call,
                        ongoing: ev.regs[3],
                        joined,
                        waiters: None,
                    });
                }
                self.light_path(within, |p| p.waited = true);
            }
            Role::LightUncached => {
                if let Some(call) = self.top(within) {
                    out.push(CacheEvent::Uncached { call });
                    if let Some(Kind::Top { do_not_cache, .. }) = self.frames.get_mut(call) {
                        *do_not_cache = true;
                    }
                }
            }
            Role::LightRecursive => self.light_path(within, |p| p.recursive = true),
            Role::Exec => {
                let Some(oc) = word(caps, self.slot.exec_oc) else {
                    return Ok(());
                };
                let digest = self.texts.digest(
                    line,
                    "an execution's call key",
                    cap(caps, self.slot.exec_call_key),
                )?;
                let mut creator = word(caps, self.slot.exec_creator);
                let mut leader = None;
                if self.leaders_from_exec {
                    // The creator's open call led this execution if it is for the same
                    // key (L2 runs a call that read TTL metadata under a digest mixing in
                    // its storage key). It is not if the creator went on first (its
                    // context was cancelled before this goroutine ran): then the leader
                    // is unknown, and the creator's later call must not be taken for it.
                    let open = creator.and_then(|g| self.open_calls.get(&(ev.tgid, g)));
                    let led = open.is_some_and(|(frame, d)| {
                        let ttl = matches!(
                            self.frames.get(*frame),
                            Some(Kind::Top { path, .. }) if path.ttl
                        );
                        d.is_some() && (*d == digest || ttl)
                    });
                    match open {
                        Some((frame, _)) if led => leader = Some(*frame),
                        _ => creator = None,
                    }
                }
                out.push(CacheEvent::ExecStarted {
                    tgid: ev.tgid,
                    goid: ev.goid,
                    ongoing: oc,
                    creator,
                    digest,
                });
                if let Some(call) = leader {
                    out.push(CacheEvent::Waited {
                        call,
                        ongoing: oc,
                        joined: Some(false),
                        waiters: None,
                    });
                    if let Some(Kind::Top { path, .. }) = self.frames.get_mut(call) {
                        path.waited = true;
                    }
                }
            }
            Role::DbRead | Role::DbWrite => {
                self.light_path(within, |p| p.ttl = true);
                if let Some(call) = self.top(within) {
                    let storage_key = (role == Role::DbWrite)
                        .then(|| text(cap(caps, self.slot.storage_key)))
                        .flatten();
                    out.push(CacheEvent::Db {
                        call,
                        written: role == Role::DbWrite,
                        storage_key,
                    });
                }
            }
            Role::Release => {
                let session = self
                    .frames
                    .find(within, |k| {
                        matches!(
                            k,
                            Kind::ReleaseAndClose { .. } | Kind::Top { sc: Some(_), .. }
                        )
                    })
                    .and_then(|f| match self.frames.get(f) {
                        Some(Kind::ReleaseAndClose { sc })
                        | Some(Kind::Top { sc: Some(sc), .. }) => Some(SessionKey::Handle(*sc)),
                        _ => None,
                    });
                let refcount = count_of(
                    line,
                    "a result refcount",
                    word(caps, self.slot.release_refcount),
                )?;
                out.push(CacheEvent::RefReleased {
                    session,
                    digest: text(cap(caps, self.slot.release_digest)).map(Text::from),
                    refcount_after: refcount.map(|r| r - 1),
                    goid: ev.goid,
                });
            }
            Role::RemoveSession => {
                if let Some(cache) = word(caps, self.slot.remove_base_cache) {
                    self.cache.get_or_insert(cache);
                }
                if let Some(sc) = word(caps, self.slot.remove_session_cache) {
                    out.push(CacheEvent::SessionRemoved {
                        key: SessionKey::Handle(sc),
                        id: text(cap(caps, self.slot.remove_session_id)).map(Text::from),
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn completed(
        &mut self,
        rec: &CallRecord,
        out: &mut Vec<CacheEvent>,
    ) -> Result<(), LayoutError> {
        let Some(role) = self.role(rec.probe_id) else {
            return Ok(());
        };
        if self.filesync.completed(role, rec, out) {
            return Ok(());
        }
        let Some(kind) = self.frames.remove(rec.frame) else {
            return Ok(());
        };
        if let Some(goid) = rec.goid
            && let Entry::Occupied(e) = self.open_calls.entry((rec.tgid, goid))
            && e.get().0 == rec.frame
        {
            e.remove();
        }
        let ret = rec.ret.unwrap_or_default();
        let returned = rec.status == CallStatus::Returned;
        match (role, kind) {
            (Role::Lookup, Kind::Lookup { top, content }) => {
                // lookupCacheForID returns (AnyResult RAX,RBX; hit CL; error RDI,RSI).
                // Without its RET (light mode) only the content fallback is known.
                if let Some(call) = top
                    && (returned || content)
                {
                    out.push(CacheEvent::LookedUp {
                        call,
                        hit: returned && ret[2] & 0xff == 1,
                        content,
                        route: None,
                        result: None,
                    });
                }
            }
            // Recordings of the former plan (the base call's RETs were probed).
            (Role::BaseCall, Kind::Base { top }) => {
                if let (Some(top), true) = (top, returned) {
                    let differs =
                        self.returned_differs(rec, self.slot.base_digest, self.slot.base_returned);
                    self.content_hit(rec, top, self.slot.base_hit_flags, out);
                    if let Some(Kind::Top { differs: d, .. }) = self.frames.get_mut(top) {
                        *d = d.or(differs);
                    }
                }
            }
            // A base call made without the session layer (v0.20.x and the egraph branch make
            // none: the server's cache is the SessionCache). Its RETs are not probed: its
            // outcome is known only if it waited.
            (Role::BaseCall, Kind::Top { .. }) => {
                if returned {
                    self.content_hit(rec, rec.frame, self.slot.base_hit_flags, out);
                }
                let error = self.error(rec, self.slot.base_error);
                out.push(CacheEvent::CallEnded {
                    call: rec.frame,
                    end_ns: rec.end_ns,
                    status: rec.status,
                    error,
                    returned_id_differs: self.returned_differs(
                        rec,
                        self.slot.base_digest,
                        self.slot.base_returned,
                    ),
                    result: None,
                    ref_taken: false,
                });
            }
            (
                Role::SessionCall,
                Kind::Top {
                    sc: Some(_),
                    do_not_cache,
                    differs,
                    return_unread,
                    path,
                },
            ) => {
                let mut error = self.error(rec, self.slot.session_error);
                // Only a call proven over (the goroutine went on) hit; one still open when
                // tracing stopped may be running.
                if self.light && !returned {
                    if path.recursive {
                        error = Some(CallError {
                            text: None,
                            recursive: true,
                        });
                    } else if !path.waited && !do_not_cache && rec.status == CallStatus::Unwound {
                        out.push(CacheEvent::LookedUp {
                            call: rec.frame,
                            hit: true,
                            content: path.content,
                            route: None,
                            result: None,
                        });
                    }
                }
                // SessionCache keeps non-DoNotCache results with a value: a ref taken.
                let ref_taken = returned && !do_not_cache && ret[0] != 0 && ret[2] == 0;
                // The session layer returns the base call's result as it is.
                if returned {
                    self.content_hit(rec, rec.frame, self.slot.session_hit_flags, out);
                }
                let differs = differs.or(self.returned_differs(
                    rec,
                    self.slot.session_digest,
                    self.slot.session_returned,
                ));
                // Its end is proven by the goroutine's next event, its results unknown.
                let status = if (self.light || return_unread) && rec.status == CallStatus::Unwound {
                    CallStatus::EntryOnly
                } else {
                    rec.status
                };
                out.push(CacheEvent::CallEnded {
                    call: rec.frame,
                    end_ns: rec.end_ns,
                    status,
                    error,
                    returned_id_differs: differs,
                    result: None,
                    ref_taken,
                });
            }
            (Role::ReleaseAndClose, Kind::ReleaseAndClose { sc }) => {
                out.push(CacheEvent::SessionReleased {
                    key: SessionKey::Handle(sc),
                    goid: rec.goid.unwrap_or_default(),
                });
            }
            (Role::InitSession, _) if returned => {
                let caps = &rec.ret_captures;
                if let Some(cache) = word(caps, self.slot.init_ret_base_cache) {
                    self.cache.get_or_insert(cache);
                }
                let sc = word(caps, self.slot.init_ret_session_cache);
                let id = text(cap(caps, self.slot.init_ret_session_id)).map(Text::from);
                if let (Some(sc), Some(id)) = (sc, id) {
                    out.push(CacheEvent::SessionOpened {
                        key: SessionKey::Handle(sc),
                        id,
                        goid: rec.goid.unwrap_or_default(),
                        announce: true,
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn error(&self, rec: &CallRecord, slot: Option<usize>) -> Option<CallError> {
        call_error(rec, slot, self.design.recursive_error)
    }

    /// Whether a call returned a result whose ID is not the request's (`requested`: the
    /// entry capture of the request's digest, `returned`: the RET capture of the result's).
    fn returned_differs(
        &self,
        rec: &CallRecord,
        requested: Option<usize>,
        returned: Option<usize>,
    ) -> Option<bool> {
        let ret = rec.ret?;
        if ret[0] == 0 || ret[2] != 0 {
            return None;
        }
        let requested = text(cap(&rec.entry_captures, requested))?;
        let returned = text(cap(&rec.ret_captures, returned))?;
        Some(requested != returned)
    }

    /// L1: the returned Result's flags (RET capture `flags`) say a content-digest hit.
    fn content_hit(
        &self,
        rec: &CallRecord,
        call: u64,
        flags: Option<usize>,
        out: &mut Vec<CacheEvent>,
    ) {
        if !matches!(self.design.content, ContentKind::ResultFlag) {
            return;
        }
        let Some(ret) = rec.ret else { return };
        if ret[2] != 0 || ret[0] == 0 {
            return;
        }
        // hitCache (+16) and hitContentDigestCache (+17) as one word from +16.
        if let Some(flags) = word(&rec.ret_captures, flags)
            && flags & 0xff00 != 0
        {
            out.push(CacheEvent::LookedUp {
                call,
                hit: true,
                content: true,
                route: None,
                result: None,
            });
        }
    }
}

impl Decoder for SessionCacheDecoder {
    fn decode(&mut self, t: &Tracked, out: &mut Vec<CacheEvent>) -> Result<(), LayoutError> {
        match t {
            Tracked::Entered(f) => self.entered(f, out),
            Tracked::Point { event, within } => self.point(event, *within, out),
            Tracked::Completed(rec) => self.completed(rec, out),
        }
    }

    fn cache_pointer(&self) -> Option<u64> {
        self.cache
    }

    fn open_frames(&self) -> usize {
        self.frames.len() + self.filesync.open_frames()
    }

    fn set_load_bias(&mut self, bias: u64) {
        self.bias = bias;
        self.filesync.bias = bias;
    }

    fn unread_returns(&self) -> u64 {
        self.returns.count()
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::{CAPTURE_BYTES, Capture, EventHeader, GoCallEvent, MAX_CAPTURES, record};

    use super::*;
    use crate::{
        probes::CaptureBox,
        profiles::{Profile, dagger::LineSites},
    };

    struct NoSites;
    impl LineSites for NoSites {
        fn line_sites(&self, _: &str, _: &str, _: u32) -> anyhow::Result<Vec<Range<u64>>> {
            Ok(Vec::new())
        }
    }

    const A: &str = "xxh3:00000000000000aa";
    const B: &str = "xxh3:00000000000000bb";

    enum V {
        Word(u64),
        Str(&'static str),
    }

    fn captures(values: &[V]) -> Option<CaptureBox> {
        let mut all = [Capture {
            value: 0,
            ok: 0,
            nbytes: 0,
            bytes: [0; CAPTURE_BYTES],
        }; MAX_CAPTURES];
        for (c, v) in all.iter_mut().zip(values) {
            c.ok = 1;
            match v {
                V::Word(w) => c.value = *w,
                V::Str(s) => {
                    c.value = s.len() as u64;
                    c.nbytes = s.len() as u32;
                    c.bytes[..s.len()].copy_from_slice(s.as_bytes());
                }
            }
        }
        // SAFETY: Capture is plain integers and bytes (repr(C)); reading it as bytes is sound.
        let bytes = unsafe {
            std::slice::from_raw_parts(all.as_ptr() as *const u8, std::mem::size_of_val(&all))
        };
        CaptureBox::from_bytes(bytes)
    }

    fn id_of(p: &Profile, role: Role) -> u32 {
        p.probes.iter().position(|d| d.role == role).unwrap() as u32
    }

    fn call(p: &Profile, frame: u64, goid: u64, digest: &'static str) -> OpenFrame {
        OpenFrame {
            frame,
            parent: None,
            probe_id: id_of(p, Role::SessionCall),
            tgid: 1,
            goid,
            depth: 100,
            tid: 1,
            start_ns: frame,
            args: [0xc5, 0, 0, 0, 0, 0, 0, 0, 0],
            captures: captures(&[V::Str(digest), V::Word(0xcac)]),
        }
    }

    fn exec(p: &Profile, goid: u64, creator: u64, key: &'static str) -> Event {
        let call = GoCallEvent {
            header: EventHeader::new(record::CAPTURE, 0),
            kind: ProbeKind::Point as u32,
            probe_id: id_of(p, Role::Exec),
            tgid: 1,
            tid: 2,
            ts_ns: 0,
            goid,
            stack_depth: 50,
            regs: [0; 9],
        };
        Event {
            call,
            captures: captures(&[V::Word(0x0c0 + goid), V::Word(creator), V::Str(key)]),
            stack: Vec::new(),
        }
    }

    fn ended(rec_of: &OpenFrame) -> CallRecord {
        CallRecord {
            frame: rec_of.frame,
            parent: None,
            probe_id: rec_of.probe_id,
            tgid: 1,
            goid: Some(rec_of.goid),
            tid: 1,
            start_ns: Some(rec_of.start_ns),
            end_ns: Some(rec_of.start_ns + 1),
            args: None,
            ret: None,
            status: CallStatus::Unwound,
            entry_captures: None,
            ret_captures: None,
        }
    }

    fn waits(out: &[CacheEvent]) -> Vec<(u64, Option<bool>)> {
        out.iter()
            .filter_map(|e| match e {
                CacheEvent::Waited { call, joined, .. } => Some((*call, *joined)),
                _ => None,
            })
            .collect()
    }

    fn creators(out: &[CacheEvent]) -> Vec<Option<u64>> {
        out.iter()
            .filter_map(|e| match e {
                CacheEvent::ExecStarted { creator, .. } => Some(*creator),
                _ => None,
            })
            .collect()
    }

    /// --light without `wait` probes: an execution's start names the miss that leads it,
    /// and one that starts after its creator went on is not taken for the creator's later
    /// call.
    #[test]
    fn a_miss_is_read_from_its_executions_start_and_never_from_a_later_call() {
        let p: &'static Profile = Box::leak(Box::new(super::super::l2::profile()));
        let roles = p
            .probes
            .iter()
            .map(|d| (d.role != Role::Wait).then_some(d.role))
            .collect();
        let setup = DecoderSetup {
            sites: &NoSites,
            profile: p,
            roles,
            light: true,
            call_return_sites: None,
        };
        let mut d = (p.decoder)(&setup).unwrap();
        let mut out = Vec::new();

        // Goroutine 7's call of A misses: its execution starts on goroutine 20.
        let first = call(p, 1, 7, A);
        d.decode(&Tracked::Entered(&first), &mut out).unwrap();
        let started = |d: &mut Box<dyn Decoder>, ev: &Event, out: &mut Vec<CacheEvent>| {
            let point = Tracked::Point {
                event: ev,
                within: None,
            };
            d.decode(&point, out).unwrap()
        };
        started(&mut d, &exec(p, 20, 7, A), &mut out);
        assert_eq!(creators(&out), [Some(7)]);
        assert_eq!(waits(&out), [(1, Some(false))]);

        // It went on to a call of B; then an execution of A created by goroutine 7
        // starts (its first caller was cancelled before it ran): not B's.
        out.clear();
        d.decode(&Tracked::Completed(ended(&first)), &mut out)
            .unwrap();
        let second = call(p, 2, 7, B);
        d.decode(&Tracked::Entered(&second), &mut out).unwrap();
        started(&mut d, &exec(p, 21, 7, A), &mut out);
        assert_eq!(creators(&out), [None]);
        assert!(waits(&out).is_empty(), "{out:?}");
    }
}

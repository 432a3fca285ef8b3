//! Decoder of the ownership design (L3, L4; aa719a10d5): one exported `*Cache`,
//! sessions named by id, results kept alive by ownership counts. What differs
//! between the lines and L4's variants is a `Design`.
use std::ops::Range;

use tracer_common::ProbeKind;

use super::{
    Decoder, DecoderSetup, Frames, LayoutError, Role, Slots, cap, count_of, digest_of, session_of,
    slots, text, word,
};
use crate::{
    model::{
        cache_events::{CacheEvent, CallError, HitRoute, OwnerContext, SessionKey},
        calls::{CallRecord, CallStatus, OpenFrame, Tracked},
    },
    probes::{Event, plan::line_ranges},
    profiles::DAGGER,
};

/// How a `wait` tells a joiner from the caller that started the execution.
pub enum JoinedBy {
    /// The call site its return address lies in (L3).
    CallSites {
        func: &'static str,
        file: &'static str,
        join_line: u32,
        fresh_line: u32,
    },
    /// Its `joined bool` stack argument (L4), captured as `joined`.
    Argument,
}

pub struct Design {
    /// "L3", "L4 (beta.8-10)": how errors name the profile.
    pub line: &'static str,
    pub joined_by: JoinedBy,
    pub recursive_error: &'static str,
    /// `(*changeCache).getOrInit`'s `wait` call sites: join, new.
    pub change_sites: (u32, u32),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Site {
    Join,
    Fresh,
    ChangeJoin,
    ChangeNew,
}

/// What the index probes of one lookup showed.
#[derive(Clone, Default)]
struct Lookup {
    /// Digest indexes consulted; the first is the request's recipe digest.
    digests: u32,
    first_digest: Option<String>,
    term: bool,
    hit: bool,
    result: Option<u64>,
}

impl Lookup {
    /// The route of a hit, from which indexes were consulted before it: the recipe
    /// digest's alone, extra digests after it, or the term index after both.
    fn route(&self) -> Option<HitRoute> {
        if self.term {
            Some(HitRoute::Structural)
        } else if self.digests >= 2 {
            Some(HitRoute::Digest)
        } else if self.digests == 1 {
            Some(HitRoute::Recipe)
        } else {
            None
        }
    }
}

#[derive(Clone)]
enum Kind {
    Call {
        session: Option<SessionKey>,
        lookup: Lookup,
        result: Option<u64>,
        /// It entered `wait` (as joiner or for its own execution).
        waited: bool,
    },
    Load {
        via: &'static str,
        session: Option<SessionKey>,
        digest: Option<String>,
        lookup: Lookup,
        /// Under an open cache call on the same goroutine: the hit belongs to it.
        inside_call: bool,
    },
    Track {
        session: Option<SessionKey>,
    },
    /// Engine bookkeeping around a call: `wait`, publication, hand-off release.
    Engine,
    Release {
        session: SessionKey,
    },
    Arbitrary {
        session: Option<SessionKey>,
        first_caller: Option<bool>,
    },
    Change {
        site: Option<Site>,
    },
    Other,
}

struct Slot<'a> {
    call: Slots<'a>,
    digest_index: Slots<'a>,
    hit: Slots<'a>,
    wait: Slots<'a>,
    exec: Slots<'a>,
    track: Slots<'a>,
    up: Slots<'a>,
    down: Slots<'a>,
    collect: Slots<'a>,
    persist: Slots<'a>,
    release: Slots<'a>,
    load_request: Slots<'a>,
    load_digests: Slots<'a>,
    arbitrary: Slots<'a>,
    init: Slots<'a>,
    remove: Slots<'a>,
    change: Slots<'a>,
    change_wait: Slots<'a>,
    change_release: Slots<'a>,
    verify: Slots<'a>,
}

pub struct OwnershipDecoder {
    design: &'static Design,
    roles: Vec<Option<Role>>,
    slot: Slot<'static>,
    sites: Vec<(Range<u64>, Site)>,
    frames: Frames<Kind>,
    light: bool,
    cache: Option<u64>,
}

pub fn build(setup: &DecoderSetup, design: &'static Design) -> anyhow::Result<Box<dyn Decoder>> {
    let p = setup.profile;
    let binary = setup.binary;
    let mut sites = Vec::new();
    let mut add = |func: &str, file: &'static str, line: u32, site: Site| -> anyhow::Result<()> {
        let name = format!("{DAGGER}{func}");
        let Some(f) = binary.functions().iter().find(|f| f.name == name) else {
            return Ok(());
        };
        let ranges = line_ranges(binary, f, file, line);
        if ranges.is_empty() {
            return Err(super::ProfileError::MissingLine {
                path: binary.path().display().to_string(),
                func: name,
                file,
                line,
            }
            .into());
        }
        sites.extend(ranges.into_iter().map(|r| (r, site)));
        Ok(())
    };
    if let JoinedBy::CallSites {
        func,
        file,
        join_line,
        fresh_line,
    } = design.joined_by
    {
        add(func, file, join_line, Site::Join)?;
        add(func, file, fresh_line, Site::Fresh)?;
    }
    let change = "engine/filesync.(*changeCache).getOrInit";
    let change_file = "engine/filesync/change_cache.go";
    add(change, change_file, design.change_sites.0, Site::ChangeJoin)?;
    add(change, change_file, design.change_sites.1, Site::ChangeNew)?;
    let slot = Slot {
        call: slots(p, Role::Call),
        digest_index: slots(p, Role::DigestIndex),
        hit: slots(p, Role::Hit),
        wait: slots(p, Role::Wait),
        exec: slots(p, Role::Exec),
        track: slots(p, Role::TrackSession),
        up: slots(p, Role::OwnershipUp),
        down: slots(p, Role::OwnershipDown),
        collect: slots(p, Role::Collect),
        persist: slots(p, Role::Persist),
        release: slots(p, Role::ReleaseSession),
        load_request: slots(p, Role::LoadRequest),
        load_digests: slots(p, Role::LoadDigests),
        arbitrary: slots(p, Role::Arbitrary),
        init: slots(p, Role::InitSession),
        remove: slots(p, Role::RemoveSession),
        change: slots(p, Role::ChangeGetOrInit),
        change_wait: slots(p, Role::ChangeWait),
        change_release: slots(p, Role::ChangeRelease),
        verify: slots(p, Role::VerifyChange),
    };
    Ok(Box::new(OwnershipDecoder {
        design,
        roles: setup.roles.clone(),
        slot,
        sites,
        frames: Frames::default(),
        light: setup.light,
        cache: None,
    }))
}

fn is_lookup_owner(k: &Kind) -> bool {
    matches!(k, Kind::Call { .. } | Kind::Load { .. })
}

impl OwnershipDecoder {
    fn role(&self, probe_id: u32) -> Option<Role> {
        self.roles.get(probe_id as usize).copied().flatten()
    }

    fn site(&self, return_address: Option<u64>) -> Option<Site> {
        let pc = return_address?.checked_sub(1)?;
        self.sites
            .iter()
            .find(|(r, _)| r.contains(&pc))
            .map(|(_, k)| *k)
    }

    fn call(&self, frame: Option<u64>) -> Option<u64> {
        self.frames.find(frame, |k| matches!(k, Kind::Call { .. }))
    }

    fn session(
        &self,
        caps: &crate::model::calls::Captures,
        slot: Option<usize>,
    ) -> Result<Option<SessionKey>, LayoutError> {
        Ok(session_of(self.design.line, cap(caps, slot))?.map(SessionKey::Id))
    }

    /// The call or load whose own lookup a hit inside `within` belongs to: not one
    /// made by the engine's bookkeeping (`wait` loads the published result too).
    fn lookup_owner(&self, within: Option<u64>) -> Option<u64> {
        let f = self.frames.find(within, |k| {
            is_lookup_owner(k) || matches!(k, Kind::Engine | Kind::Track { .. })
        })?;
        self.frames.get(f).filter(|k| is_lookup_owner(k)).map(|_| f)
    }

    fn lookup_mut(&mut self, within: Option<u64>) -> Option<&mut Lookup> {
        let f = self.lookup_owner(within)?;
        match self.frames.get_mut(f)? {
            Kind::Call { lookup, .. } | Kind::Load { lookup, .. } => Some(lookup),
            _ => None,
        }
    }

    fn entered(&mut self, f: &OpenFrame, out: &mut Vec<CacheEvent>) -> Result<(), LayoutError> {
        let Some(role) = self.role(f.probe_id) else {
            return Ok(());
        };
        let line = self.design.line;
        let caps = &f.captures;
        let kind = match role {
            Role::Call => {
                self.cache.get_or_insert(f.args[0]);
                let session = self.session(caps, self.slot.call.entry("session"))?;
                // CallRequest.DoNotCache is the byte at req+32.
                let uncached =
                    word(caps, self.slot.call.entry("do_not_cache")).is_some_and(|w| w & 0xff != 0);
                out.push(CacheEvent::CallBegan {
                    call: f.frame,
                    enclosing: self.call(f.parent),
                    tgid: f.tgid,
                    goid: f.goid,
                    start_ns: f.start_ns,
                    session: session.clone(),
                    digest: digest_of(
                        line,
                        "the request's recipe digest",
                        cap(caps, self.slot.call.entry("digest")),
                    )?,
                    uncached,
                });
                Kind::Call {
                    session,
                    lookup: Lookup::default(),
                    result: None,
                    waited: false,
                }
            }
            Role::LoadRequest | Role::LoadDigests => {
                let (slots, via) = if role == Role::LoadRequest {
                    (&self.slot.load_request, "request")
                } else {
                    (&self.slot.load_digests, "digests")
                };
                let session = self.session(caps, slots.entry("session"))?;
                let digest = digest_of(
                    line,
                    "a loaded recipe digest",
                    cap(caps, slots.entry("digest")),
                )?;
                Kind::Load {
                    via,
                    session,
                    digest,
                    lookup: Lookup::default(),
                    inside_call: self.call(f.parent).is_some(),
                }
            }
            Role::Wait => {
                let joined = match self.design.joined_by {
                    JoinedBy::CallSites { .. } => {
                        match self.site(word(caps, self.slot.wait.entry("return_address"))) {
                            Some(Site::Join) => Some(true),
                            Some(Site::Fresh) => Some(false),
                            _ => None,
                        }
                    }
                    JoinedBy::Argument => {
                        word(caps, self.slot.wait.entry("joined")).map(|w| w & 0xff != 0)
                    }
                };
                let waiters = count_of(
                    line,
                    "an ongoing call's waiter count",
                    word(caps, self.slot.wait.entry("waiters")),
                )?;
                if let Some(call) = self.call(f.parent) {
                    if let Some(Kind::Call { waited, .. }) = self.frames.get_mut(call) {
                        *waited = true;
                    }
                    out.push(CacheEvent::Waited {
                        call,
                        // wait(c, ctx, sessionID, resolver, oc R10, req R11, ...)
                        ongoing: f.args[7],
                        joined,
                        waiters: waiters.and_then(|w| u32::try_from(w).ok()),
                    });
                }
                Kind::Engine
            }
            Role::TrackSession => {
                let session = self.session(caps, self.slot.track.entry("session"))?;
                let result = word(caps, self.slot.track.entry("result"));
                if let Some(call) = self.call(f.parent)
                    && let Some(Kind::Call { result: r, .. }) = self.frames.get_mut(call)
                {
                    *r = r.or(result);
                }
                Kind::Track { session }
            }
            Role::Publish => Kind::Engine,
            Role::Persist => {
                if let Some(result) = word(caps, self.slot.persist.entry("result")) {
                    out.push(CacheEvent::Persisted { result });
                }
                Kind::Engine
            }
            Role::ReleaseSession => {
                match self.session(caps, self.slot.release.entry("session"))? {
                    Some(key) => {
                        out.push(CacheEvent::SessionReleaseBegan { key: key.clone() });
                        Kind::Release { session: key }
                    }
                    None => Kind::Other,
                }
            }
            Role::Arbitrary => Kind::Arbitrary {
                session: self.session(caps, self.slot.arbitrary.entry("session"))?,
                first_caller: None,
            },
            Role::ChangeGetOrInit => Kind::Change { site: None },
            _ => Kind::Other,
        };
        self.frames.insert(f.frame, kind, f.parent);
        Ok(())
    }

    fn ownership_context(&self, within: Option<u64>, delta: i64) -> OwnerContext {
        let f = self
            .frames
            .find(within, |k| !matches!(k, Kind::Other | Kind::Change { .. }));
        match f.and_then(|f| self.frames.get(f)) {
            Some(Kind::Track { session: Some(s) })
            | Some(Kind::Call {
                session: Some(s), ..
            })
            | Some(Kind::Load {
                session: Some(s), ..
            }) if delta > 0 => OwnerContext::SessionTracked(s.clone()),
            Some(Kind::Release { session }) if delta < 0 => {
                OwnerContext::SessionReleased(session.clone())
            }
            Some(_) => OwnerContext::Engine,
            None => OwnerContext::Unknown,
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
        let caps = &event.captures;
        let line = self.design.line;
        match role {
            Role::DigestIndex => {
                let d = digest_of(
                    line,
                    "a digest looked up",
                    cap(caps, self.slot.digest_index.entry("digest")),
                )?;
                let call = self.call(within);
                let mut first = None;
                if let Some(l) = self.lookup_mut(within) {
                    l.digests += 1;
                    if l.digests == 1 {
                        l.first_digest = d.clone();
                        first = d;
                    }
                }
                // The recipe digest, when the call did not carry it in.
                if let (Some(call), Some(digest)) = (call, first)
                    && self.lookup_owner(within) == Some(call)
                {
                    out.push(CacheEvent::Digest { call, digest });
                }
            }
            Role::TermIndex => {
                if let Some(l) = self.lookup_mut(within) {
                    l.term = true;
                }
            }
            Role::Hit => {
                let result = word(caps, self.slot.hit.entry("result"));
                let owner = self.lookup_owner(within);
                if let Some(l) = self.lookup_mut(within) {
                    l.hit = true;
                    l.result = result;
                }
                if let Some(f) = owner
                    && let Some(Kind::Call { lookup, .. }) = self.frames.get(f)
                {
                    out.push(CacheEvent::LookedUp {
                        call: f,
                        hit: true,
                        content: false,
                        route: lookup.route(),
                        result,
                    });
                }
            }
            Role::Exec => {
                if let Some(oc) = word(caps, self.slot.exec.entry("ongoing")) {
                    out.push(CacheEvent::ExecStarted {
                        tgid: ev.tgid,
                        goid: ev.goid,
                        ongoing: oc,
                        creator: word(caps, self.slot.exec.entry("creator_goid")),
                    });
                }
            }
            Role::OwnershipUp | Role::OwnershipDown => {
                let (slots, delta) = if role == Role::OwnershipUp {
                    (&self.slot.up, 1)
                } else {
                    (&self.slot.down, -1)
                };
                let Some(result) = word(caps, slots.entry("result")) else {
                    return Ok(());
                };
                let before =
                    count_of(line, "an ownership count", word(caps, slots.entry("count")))?;
                out.push(CacheEvent::Ownership {
                    result,
                    delta,
                    count_after: before.map(|b| b + delta),
                    context: self.ownership_context(within, delta),
                });
            }
            Role::Collect => {
                if let Some(result) = word(caps, self.slot.collect.entry("result")) {
                    let during_release_of = self
                        .frames
                        .find(within, |k| matches!(k, Kind::Release { .. }))
                        .and_then(|f| match self.frames.get(f) {
                            Some(Kind::Release { session }) => Some(session.clone()),
                            _ => None,
                        });
                    out.push(CacheEvent::ResultCollected {
                        result,
                        during_release_of,
                    });
                }
            }
            Role::ArbitraryWait => {
                // waitArbitrary(c, ctx, sessionID, res R8, isFirstCaller R9B)
                let first = ev.regs[6] & 0xff != 0;
                if let Some(f) = self
                    .frames
                    .find(within, |k| matches!(k, Kind::Arbitrary { .. }))
                    && let Some(Kind::Arbitrary { first_caller, .. }) = self.frames.get_mut(f)
                {
                    *first_caller = Some(first);
                }
            }
            Role::InitSession => {
                if let Some(id) = session_of(line, cap(caps, self.slot.init.entry("session_id")))? {
                    out.push(CacheEvent::SessionOpened {
                        key: SessionKey::Id(id.clone()),
                        id,
                        goid: ev.goid,
                        announce: true,
                    });
                }
            }
            Role::RemoveSession => {
                if let Some(id) = session_of(line, cap(caps, self.slot.remove.entry("session_id")))?
                {
                    out.push(CacheEvent::SessionRemoved {
                        key: SessionKey::Id(id.clone()),
                        id: Some(id),
                    });
                }
            }
            Role::ChangeWait => {
                let site = self.site(word(caps, self.slot.change_wait.entry("return_address")));
                if let Some(Kind::Change { site: s }) = within.and_then(|w| self.frames.get_mut(w))
                {
                    *s = site;
                }
            }
            Role::ChangeRelease => {
                let refcount = word(caps, self.slot.change_release.entry("refcount"));
                out.push(CacheEvent::ChangeRelease {
                    path: text(cap(caps, self.slot.change_release.entry("path"))),
                    refcount_after: refcount.map(|r| r as i64 - 1),
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn completed(&mut self, rec: CallRecord, out: &mut Vec<CacheEvent>) -> Result<(), LayoutError> {
        let Some(kind) = self.frames.remove(rec.frame) else {
            return Ok(());
        };
        let Some(role) = self.role(rec.probe_id) else {
            return Ok(());
        };
        let ret = rec.ret.unwrap_or_default();
        let returned = rec.status == CallStatus::Returned;
        let goid = rec.goid.unwrap_or_default();
        match (role, kind) {
            (
                Role::Call,
                Kind::Call {
                    result,
                    lookup,
                    waited,
                    ..
                },
            ) => {
                // Light mode has no hit probe: a call whose lookup consulted an index and
                // that then did not wait was answered from the cache.
                if self.light && !waited && !lookup.hit && (lookup.digests > 0 || lookup.term) {
                    out.push(CacheEvent::LookedUp {
                        call: rec.frame,
                        hit: true,
                        content: false,
                        route: lookup.route(),
                        result: None,
                    });
                }
                let caps = &rec.ret_captures;
                let line = self.design.line;
                let digest = digest_of(
                    line,
                    "the request's recipe digest (ResultCall.recipeDigest)",
                    cap(caps, self.slot.call.ret("digest")),
                )?;
                // The request's memoized recipe digest is the one its lookup used: if
                // not, the offsets read are not this build's.
                if returned
                    && let Some(looked_up) = &lookup.first_digest
                    && digest.as_ref() != Some(looked_up)
                {
                    return Err(LayoutError {
                        line: line.to_string(),
                        what: "the request's recipe digest (ResultCall.recipeDigest)",
                        value: format!(
                            "{} where its lookup used {looked_up}",
                            digest.as_deref().unwrap_or("nothing")
                        ),
                    });
                }
                if let Some(digest) = digest {
                    out.push(CacheEvent::Digest {
                        call: rec.frame,
                        digest,
                    });
                }
                let outcome = text(cap(caps, self.slot.call.ret("engine_outcome")));
                let route = text(cap(caps, self.slot.call.ret("engine_route")));
                if outcome.is_some() || route.is_some() {
                    out.push(CacheEvent::EngineDecision {
                        call: rec.frame,
                        outcome,
                        route,
                    });
                }
                // Light mode probes no RET: the call's end is proven by the goroutine's
                // next shallower event, without results.
                let status = if self.light && rec.status == CallStatus::Unwound {
                    CallStatus::EntryOnly
                } else {
                    rec.status
                };
                out.push(CacheEvent::CallEnded {
                    call: rec.frame,
                    end_ns: rec.end_ns,
                    status,
                    error: self.error(&rec, self.slot.call.ret("error")),
                    returned_id_differs: None,
                    result,
                    ref_taken: false,
                });
            }
            // (AnyResult RAX,RBX; hit CL; error RDI,RSI)
            (
                Role::LoadRequest | Role::LoadDigests,
                Kind::Load {
                    via,
                    session,
                    digest,
                    lookup,
                    inside_call: false,
                },
            ) if returned && ret[2] & 0xff == 1 && ret[3] == 0 => {
                out.push(CacheEvent::LoadHit {
                    goid,
                    session,
                    digest: digest.or(lookup.first_digest.clone()),
                    via,
                    route: lookup.route(),
                    result: lookup.result,
                    t_ns: rec.end_ns.unwrap_or_default(),
                });
            }
            (Role::ReleaseSession, Kind::Release { session }) => {
                out.push(CacheEvent::SessionReleased { key: session, goid });
            }
            (
                Role::Arbitrary,
                Kind::Arbitrary {
                    session,
                    first_caller,
                },
            ) => {
                let outcome = if !returned {
                    "unfinished"
                } else if ret[2] != 0 {
                    "error"
                } else {
                    match first_caller {
                        Some(true) => "new",
                        Some(false) => "join",
                        None => "hit",
                    }
                };
                out.push(CacheEvent::Arbitrary {
                    session,
                    goid,
                    outcome,
                    duration_ns: rec.duration_ns(),
                });
            }
            (Role::ChangeGetOrInit, Kind::Change { site }) => {
                let outcome = if !returned {
                    "unfinished"
                } else if ret[1] != 0 {
                    "error"
                } else {
                    match site {
                        Some(Site::ChangeJoin) => "join",
                        Some(Site::ChangeNew) => "new",
                        _ => "hit",
                    }
                };
                out.push(CacheEvent::Change {
                    path: text(cap(&rec.entry_captures, self.slot.change.entry("path"))),
                    outcome,
                    goid,
                    duration_ns: rec.duration_ns(),
                });
            }
            (Role::VerifyChange, _) if returned && ret[0] != 0 => {
                out.push(CacheEvent::Conflict {
                    path: text(cap(&rec.entry_captures, self.slot.verify.entry("path"))),
                    error: text(cap(&rec.ret_captures, self.slot.verify.ret("error"))),
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// The error a call returned (error interface in RCX,RDI), if any.
    fn error(&self, rec: &CallRecord, slot: Option<usize>) -> Option<CallError> {
        let ret = rec.ret?;
        (ret[2] != 0).then(|| {
            let text = text(cap(&rec.ret_captures, slot));
            let recursive = text.as_deref() == Some(self.design.recursive_error);
            CallError { text, recursive }
        })
    }
}

impl Decoder for OwnershipDecoder {
    fn decode(&mut self, t: Tracked, out: &mut Vec<CacheEvent>) -> Result<(), LayoutError> {
        match t {
            Tracked::Entered(f) => self.entered(f, out),
            Tracked::Point { event, within } => self.point(event, within, out),
            Tracked::Completed(rec) => self.completed(rec, out),
        }
    }

    fn cache_pointer(&self) -> Option<u64> {
        self.cache
    }
}

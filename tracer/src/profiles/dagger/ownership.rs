//! Decoder of the ownership design (L3, L4; aa719a10d5): one exported `*Cache`,
//! sessions named by id, results kept alive by ownership counts. What differs
//! between the lines and L4's variants is a `Design`.
use std::ops::Range;

use tracer_common::ProbeKind;

use super::{
    Decoder, DecoderSetup, Frames, LayoutError, Role, Texts, call_error, call_sites, cap, count_of,
    filesync::Filesync, site_of, slot, text, word,
};
use crate::{
    model::{
        cache_events::{
            CacheEvent, CallError, EngineMiss, HitRoute, OwnerContext, SessionKey, Text,
        },
        calls::{CallRecord, CallStatus, OpenFrame, Tracked},
        explain::{ArgPart, CallIdentity},
    },
    probes::Event,
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
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Site {
    Join,
    Fresh,
}

/// What the index probes of one lookup showed.
#[derive(Clone, Default)]
struct Lookup {
    /// The request's extra digests were looked up: its recipe digest found nothing.
    extras: bool,
    /// The term index was consulted: the digests found nothing.
    term: bool,
    /// Digest-index probes seen (recordings of the former probe plan, which probed every
    /// digest lookup: the second and later are extra digests).
    digests: u32,
    /// The recipe digest the lookup used (or the call key `wait` was given), to check the
    /// memoized one against.
    first_digest: Option<Text>,
    /// `--explain`: structural inputs and arguments the call has, read first.
    inputs: Option<u64>,
    args: Option<u64>,
}

impl Lookup {
    /// The route of a hit, from which indexes were consulted before it: the recipe
    /// digest's alone, extra digests after it, or the term index after both. None when
    /// the probes that tell them apart are not attached (`routes_known`).
    fn route(&self, routes_known: bool) -> Option<HitRoute> {
        if self.term {
            Some(HitRoute::Structural)
        } else if self.extras || self.digests >= 2 {
            Some(HitRoute::Digest)
        } else if routes_known {
            Some(HitRoute::Recipe)
        } else {
            None
        }
    }
}

/// What a cache call's frame starts from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Anchor {
    /// `GetOrInitCall`'s entry (with its RET in the default mode).
    Entry,
    /// `--light`: the call of `lookupCacheForRequest` in the body.
    Lookup,
    /// `--light`: the uncached path's call of `fn`.
    Uncached,
    /// `--light`: the recursive-call refusal.
    Recursive,
}

#[derive(Clone)]
enum Kind {
    Call {
        anchor: Anchor,
        session: Option<SessionKey>,
        uncached: bool,
        /// The model knows its recipe digest.
        has_digest: bool,
        lookup: Lookup,
        result: Option<u64>,
        /// It entered `wait` (as joiner or for its own execution).
        waited: bool,
        /// Made from a place whose return no probe reads.
        return_unread: bool,
    },
    Load {
        via: &'static str,
        session: Option<SessionKey>,
        digest: Option<Text>,
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
    Other,
}

/// Capture indexes, resolved once from the profile.
struct Slot {
    arbitrary_session: Option<usize>,
    call_digest: Option<usize>,
    call_do_not_cache: Option<usize>,
    call_return_address: Option<usize>,
    call_ret_digest: Option<usize>,
    call_ret_engine: Option<usize>,
    call_ret_error: Option<usize>,
    call_ret_result: Option<usize>,
    call_session: Option<usize>,
    collect_result: Option<usize>,
    down_count: Option<usize>,
    down_result: Option<usize>,
    exec_call_key: Option<usize>,
    exec_creator_goid: Option<usize>,
    exec_ongoing: Option<usize>,
    init_session_id: Option<usize>,
    light_digest: Option<usize>,
    light_session: Option<usize>,
    load_digests_digest: Option<usize>,
    load_digests_result: Option<usize>,
    load_digests_session: Option<usize>,
    load_request_digest: Option<usize>,
    load_request_result: Option<usize>,
    load_request_session: Option<usize>,
    persist_result: Option<usize>,
    release_session: Option<usize>,
    remove_session_id: Option<usize>,
    track_result: Option<usize>,
    track_session: Option<usize>,
    up_count: Option<usize>,
    up_result: Option<usize>,
    wait_call_key: Option<usize>,
    wait_joined: Option<usize>,
    wait_return_address: Option<usize>,
    wait_waiters: Option<usize>,
    wait_ev_miss: Option<usize>,
    explain: ExplainSlots,
}

/// Where `--explain`'s probes put their captures: the probe that reads each part, and
/// its capture there.
struct ExplainSlots {
    field: Option<usize>,
    self_digest: Option<usize>,
    inputs: Option<usize>,
    args: Option<usize>,
    input: [(Role, Option<usize>); 2],
    arg_name: [(Role, Option<usize>); 2],
    arg_kind: [(Role, Option<usize>); 2],
    arg_value: [(Role, Option<usize>); 2],
}

/// A part's capture, if this hit's probe is the one that reads it.
fn part_cap(
    caps: &crate::model::calls::Captures,
    role: Role,
    (by, slot): (Role, Option<usize>),
) -> Option<&tracer_common::Capture> {
    if by == role { cap(caps, slot) } else { None }
}

pub struct OwnershipDecoder {
    design: &'static Design,
    roles: Vec<Option<Role>>,
    slot: Slot,
    sites: Vec<(Range<u64>, Site)>,
    /// The target's load bias: return addresses minus it are link-time addresses.
    bias: u64,
    filesync: Filesync,
    frames: Frames<Kind>,
    light: bool,
    /// The probes that tell a hit's route apart are attached (else routes are null).
    routes_known: bool,
    cache: Option<u64>,
    /// Calls whose memoized recipe digest was compared with their lookup's, and those
    /// that differed.
    digest_checks: u64,
    digest_mismatches: u64,
    returns: super::ReturnCheck,
    texts: Texts,
}

pub fn build(setup: &DecoderSetup, design: &'static Design) -> anyhow::Result<Box<dyn Decoder>> {
    let p = setup.profile;
    let sites = match design.joined_by {
        JoinedBy::CallSites {
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
        arbitrary_session: slot(p, Role::Arbitrary, "session", false),
        call_digest: slot(p, Role::Call, "digest", false),
        call_do_not_cache: slot(p, Role::Call, "do_not_cache", false),
        call_return_address: slot(p, Role::Call, "return_address", false),
        call_ret_digest: slot(p, Role::Call, "digest", true),
        call_ret_engine: slot(p, Role::Call, "engine", true),
        call_ret_error: slot(p, Role::Call, "error", true),
        call_ret_result: slot(p, Role::Call, "result", true),
        call_session: slot(p, Role::Call, "session", false),
        collect_result: slot(p, Role::Collect, "result", false),
        down_count: slot(p, Role::OwnershipDown, "count", false),
        down_result: slot(p, Role::OwnershipDown, "result", false),
        exec_call_key: slot(p, Role::Exec, "call_key", false),
        exec_creator_goid: slot(p, Role::Exec, "creator_goid", false),
        exec_ongoing: slot(p, Role::Exec, "ongoing", false),
        init_session_id: slot(p, Role::InitSession, "session_id", false),
        light_digest: slot(p, Role::LightCall, "digest", false),
        light_session: slot(p, Role::LightCall, "session", false),
        load_digests_digest: slot(p, Role::LoadDigests, "digest", false),
        load_digests_result: slot(p, Role::LoadDigests, "result", true),
        load_digests_session: slot(p, Role::LoadDigests, "session", false),
        load_request_digest: slot(p, Role::LoadRequest, "digest", true),
        load_request_result: slot(p, Role::LoadRequest, "result", true),
        load_request_session: slot(p, Role::LoadRequest, "session", false),
        persist_result: slot(p, Role::Persist, "result", false),
        release_session: slot(p, Role::ReleaseSession, "session", false),
        remove_session_id: slot(p, Role::RemoveSession, "session_id", false),
        track_result: slot(p, Role::TrackSession, "result", false),
        track_session: slot(p, Role::TrackSession, "session", false),
        up_count: slot(p, Role::OwnershipUp, "count", false),
        up_result: slot(p, Role::OwnershipUp, "result", false),
        wait_call_key: slot(p, Role::Wait, "call_key", false),
        wait_joined: slot(p, Role::Wait, "joined", false),
        wait_return_address: slot(p, Role::Wait, "return_address", false),
        wait_waiters: slot(p, Role::Wait, "waiters", false),
        wait_ev_miss: slot(p, Role::Wait, "ev_miss", false),
        explain: ExplainSlots {
            field: slot(p, Role::ExplainLookup, "field", false),
            self_digest: slot(p, Role::ExplainLookup, "self", false),
            inputs: slot(p, Role::ExplainLookup, "inputs", false),
            args: slot(p, Role::ExplainLookup, "args", false),
            input: [
                explain_slot(p, Role::ExplainLocked, "input0"),
                explain_slot(p, Role::ExplainMatch, "input1"),
            ],
            arg_name: [
                explain_slot(p, Role::ExplainLocked, "arg0_name"),
                explain_slot(p, Role::ExplainLocked, "arg1_name"),
            ],
            arg_kind: [
                explain_slot(p, Role::ExplainMatch, "arg0_kind"),
                explain_slot(p, Role::ExplainLocked, "arg1_kind"),
            ],
            arg_value: [
                explain_slot(p, Role::ExplainMatch, "arg0_value"),
                explain_slot(p, Role::ExplainMatch, "arg1_value"),
            ],
        },
    };
    Ok(Box::new(OwnershipDecoder {
        design,
        roles: setup.roles.clone(),
        slot,
        sites,
        filesync: Filesync::new(setup.sites, p)?,
        bias: 0,
        frames: Frames::default(),
        light: setup.light,
        routes_known: {
            let has = |r: Role| setup.roles.contains(&Some(r));
            (has(Role::ExtraDigest) || has(Role::DigestIndex)) && has(Role::TermIndex)
        },
        cache: None,
        digest_checks: 0,
        digest_mismatches: 0,
        returns: super::ReturnCheck::new(setup.call_return_sites),
        texts: Texts::default(),
    }))
}

fn explain_slot(p: &super::Profile, role: Role, name: &str) -> (Role, Option<usize>) {
    (role, slot(p, role, name, false))
}

fn is_lookup_owner(k: &Kind) -> bool {
    matches!(k, Kind::Call { .. } | Kind::Load { .. })
}

impl OwnershipDecoder {
    fn role(&self, probe_id: u32) -> Option<Role> {
        self.roles.get(probe_id as usize).copied().flatten()
    }

    fn site(&self, return_address: Option<u64>) -> Option<Site> {
        site_of(&self.sites, self.bias, return_address)
    }

    fn call(&self, frame: Option<u64>) -> Option<u64> {
        self.frames.find(frame, |k| matches!(k, Kind::Call { .. }))
    }

    fn session(
        &mut self,
        caps: &crate::model::calls::Captures,
        slot: Option<usize>,
    ) -> Result<Option<SessionKey>, LayoutError> {
        let line = self.design.line;
        Ok(self
            .texts
            .session(line, cap(caps, slot))?
            .map(SessionKey::Id))
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

    /// A cache call begins at frame `f`.
    fn began(
        &self,
        f: &OpenFrame,
        anchor: Anchor,
        session: Option<SessionKey>,
        digest: Option<Text>,
        uncached: bool,
        out: &mut Vec<CacheEvent>,
    ) -> Kind {
        let mut lookup = Lookup::default();
        if anchor == Anchor::Lookup {
            lookup.first_digest = digest.clone();
        }
        let has_digest = digest.is_some();
        out.push(CacheEvent::CallBegan {
            call: f.frame,
            enclosing: self.call(f.parent),
            tgid: f.tgid,
            goid: f.goid,
            start_ns: f.start_ns,
            session: session.clone(),
            digest,
            uncached,
        });
        Kind::Call {
            anchor,
            session,
            uncached,
            has_digest,
            lookup,
            result: None,
            waited: false,
            return_unread: false,
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
        let caps = &f.captures;
        let kind = match role {
            Role::Call => {
                self.cache.get_or_insert(f.args[0]);
                let session = self.session(caps, self.slot.call_session)?;
                // CallRequest.DoNotCache is the byte at req+32.
                let uncached =
                    word(caps, self.slot.call_do_not_cache).is_some_and(|w| w & 0xff != 0);
                let digest = self.texts.digest(
                    line,
                    "the request's recipe digest",
                    cap(caps, self.slot.call_digest),
                )?;
                let unread = self
                    .returns
                    .unread(word(caps, self.slot.call_return_address), self.bias);
                let mut kind = self.began(f, Anchor::Entry, session, digest, uncached, out);
                if let Kind::Call { return_unread, .. } = &mut kind {
                    *return_unread = unread;
                }
                kind
            }
            Role::LightCall => {
                // At the call of lookupCacheForRequest: c RAX, sessionID RDI/RSI, the
                // recipe digest at [RSP].
                self.cache.get_or_insert(f.args[0]);
                let session = self.session(caps, self.slot.light_session)?;
                let digest = self.texts.digest(
                    line,
                    "the recipe digest looked up",
                    cap(caps, self.slot.light_digest),
                )?;
                self.began(f, Anchor::Lookup, session, digest, false, out)
            }
            // No register holds the session or the request here: both stay unknown.
            Role::LightUncached => self.began(f, Anchor::Uncached, None, None, true, out),
            Role::LightRecursive => self.began(f, Anchor::Recursive, None, None, false, out),
            Role::LoadRequest | Role::LoadDigests => {
                let (session_slot, digest_slot, via) = if role == Role::LoadRequest {
                    (self.slot.load_request_session, None, "request")
                } else {
                    (
                        self.slot.load_digests_session,
                        self.slot.load_digests_digest,
                        "digests",
                    )
                };
                let session = self.session(caps, session_slot)?;
                let digest =
                    self.texts
                        .digest(line, "a loaded recipe digest", cap(caps, digest_slot))?;
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
                        match self.site(word(caps, self.slot.wait_return_address)) {
                            Some(Site::Join) => Some(true),
                            Some(Site::Fresh) => Some(false),
                            _ => None,
                        }
                    }
                    JoinedBy::Argument => word(caps, self.slot.wait_joined).map(|w| w & 0xff != 0),
                };
                let waiters = count_of(
                    line,
                    "an ongoing call's waiter count",
                    word(caps, self.slot.wait_waiters),
                )?;
                // The call key (the recipe digest, as the lookup used it).
                let call_key = self.texts.digest(
                    line,
                    "an ongoing call's key",
                    cap(caps, self.slot.wait_call_key),
                )?;
                if let Some(call) = self.call(f.parent) {
                    if let Some(Kind::Call {
                        waited,
                        lookup,
                        has_digest,
                        ..
                    }) = self.frames.get_mut(call)
                    {
                        *waited = true;
                        if lookup.first_digest.is_none() {
                            lookup.first_digest = call_key.clone();
                        }
                        if !*has_digest && let Some(digest) = call_key {
                            *has_digest = true;
                            out.push(CacheEvent::Digest { call, digest });
                        }
                    }
                    if let Some((flags, unknown)) =
                        cap(caps, self.slot.wait_ev_miss).and_then(|c| c.word_pair())
                    {
                        let unknown = Some(unknown as i64).filter(|i| *i >= 0);
                        out.push(CacheEvent::EngineMiss {
                            call,
                            miss: EngineMiss {
                                incompatible_candidates: flags & 0xff != 0,
                                saw_expired: (flags >> 8) & 0xff != 0,
                                unknown_input: unknown,
                            },
                        });
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
                let session = self.session(caps, self.slot.track_session)?;
                let result = word(caps, self.slot.track_result);
                if let Some(call) = self.call(f.parent)
                    && let Some(Kind::Call { result: r, .. }) = self.frames.get_mut(call)
                {
                    *r = r.or(result);
                }
                Kind::Track { session }
            }
            Role::Publish => Kind::Engine,
            Role::Persist => {
                if let Some(result) = word(caps, self.slot.persist_result) {
                    out.push(CacheEvent::Persisted { result });
                }
                Kind::Engine
            }
            Role::ReleaseSession => match self.session(caps, self.slot.release_session)? {
                Some(key) => {
                    out.push(CacheEvent::SessionReleaseBegan { key: key.clone() });
                    Kind::Release { session: key }
                }
                None => Kind::Other,
            },
            Role::Arbitrary => Kind::Arbitrary {
                session: self.session(caps, self.slot.arbitrary_session)?,
                first_caller: None,
            },
            _ => Kind::Other,
        };
        self.frames.insert(f.frame, kind, f.parent);
        Ok(())
    }

    /// `--explain`: identity parts of the call whose lookup this is. Inputs and
    /// arguments are believed only below the counts its first probe read.
    fn identity(
        &mut self,
        role: Role,
        caps: &crate::model::calls::Captures,
        within: Option<u64>,
        out: &mut Vec<CacheEvent>,
    ) -> Result<(), LayoutError> {
        let Some(call) = self.lookup_owner(within) else {
            return Ok(());
        };
        if !matches!(self.frames.get(call), Some(Kind::Call { .. })) {
            return Ok(());
        }
        let line = self.design.line;
        let slots = &self.slot.explain;
        let mut id = CallIdentity::default();
        if role == Role::ExplainLookup {
            id.field = text(cap(caps, slots.field));
            id.self_digest = self
                .texts
                .digest(line, "a self digest", cap(caps, slots.self_digest))?
                .map(|d| d.to_string());
            let inputs = count_of(line, "an input count", word(caps, slots.inputs))?;
            let args = count_of(line, "an argument count", word(caps, slots.args))?;
            id.input_count = inputs.map(|n| n as u64);
            id.arg_count = args.map(|n| n as u64);
            if let Some(l) = self.lookup_mut(within) {
                l.inputs = id.input_count;
                l.args = id.arg_count;
            }
        } else {
            let (inputs, args) = match self.lookup_mut(within) {
                Some(l) => (l.inputs.unwrap_or(0), l.args.unwrap_or(0)),
                None => (0, 0),
            };
            let slots = &self.slot.explain;
            for (k, input) in slots.input.iter().enumerate() {
                if (k as u64) < inputs
                    && let Some(c) = part_cap(caps, role, *input)
                {
                    let d = self
                        .texts
                        .digest(line, "a structural input digest", Some(c))?;
                    id.inputs.resize(k, None);
                    id.inputs.push(d.map(|d| d.to_string()));
                }
            }
            for i in 0..2 {
                if (i as u64) >= args {
                    continue;
                }
                let value = part_cap(caps, role, slots.arg_value[i]);
                let part = ArgPart {
                    name: text(part_cap(caps, role, slots.arg_name[i])),
                    kind: text(part_cap(caps, role, slots.arg_kind[i])),
                    value: value.and_then(|c| c.text()).map(|b| {
                        let s = String::from_utf8_lossy(b).into_owned();
                        if value.is_some_and(|c| c.truncated()) {
                            format!("{s}...")
                        } else {
                            s
                        }
                    }),
                    sensitive: value.is_some_and(|c| c.withheld()),
                };
                if part != ArgPart::default() {
                    id.args.resize_with(i, ArgPart::default);
                    id.args.push(part);
                }
            }
        }
        out.push(CacheEvent::Identity {
            call,
            identity: Box::new(id),
        });
        Ok(())
    }

    fn ownership_context(&self, within: Option<u64>, delta: i64) -> OwnerContext {
        let f = self.frames.find(within, |k| !matches!(k, Kind::Other));
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
        if self.filesync.point(role, event, within, out) {
            return Ok(());
        }
        let caps = &event.captures;
        let line = self.design.line;
        match role {
            Role::ExtraDigest => {
                if let Some(l) = self.lookup_mut(within) {
                    l.extras = true;
                }
            }
            // Recordings of the former plan: every digest lookup, the recipe's first.
            Role::DigestIndex => {
                if let Some(l) = self.lookup_mut(within) {
                    l.digests += 1;
                }
            }
            Role::TermIndex => {
                if let Some(l) = self.lookup_mut(within) {
                    l.term = true;
                }
            }
            Role::ExplainLookup | Role::ExplainLocked | Role::ExplainMatch => {
                self.identity(role, caps, within, out)?;
            }
            Role::Exec => {
                if let Some(oc) = word(caps, self.slot.exec_ongoing) {
                    out.push(CacheEvent::ExecStarted {
                        tgid: ev.tgid,
                        goid: ev.goid,
                        ongoing: oc,
                        creator: word(caps, self.slot.exec_creator_goid),
                        digest: self.texts.digest(
                            line,
                            "an ongoing call's key",
                            cap(caps, self.slot.exec_call_key),
                        )?,
                    });
                }
            }
            Role::OwnershipUp | Role::OwnershipDown => {
                let (result_slot, count_slot, delta) = if role == Role::OwnershipUp {
                    (self.slot.up_result, self.slot.up_count, 1)
                } else {
                    (self.slot.down_result, self.slot.down_count, -1)
                };
                let Some(result) = word(caps, result_slot) else {
                    return Ok(());
                };
                let before = count_of(line, "an ownership count", word(caps, count_slot))?;
                out.push(CacheEvent::Ownership {
                    result,
                    delta,
                    count_after: before.map(|b| b + delta),
                    context: self.ownership_context(within, delta),
                });
            }
            Role::Collect => {
                if let Some(result) = word(caps, self.slot.collect_result) {
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
                if let Some(id) = self
                    .texts
                    .session(line, cap(caps, self.slot.init_session_id))?
                {
                    out.push(CacheEvent::SessionOpened {
                        key: SessionKey::Id(id.clone()),
                        id,
                        goid: ev.goid,
                        announce: true,
                    });
                }
            }
            Role::RemoveSession => {
                if let Some(id) = self
                    .texts
                    .session(line, cap(caps, self.slot.remove_session_id))?
                {
                    out.push(CacheEvent::SessionRemoved {
                        key: SessionKey::Id(id.clone()),
                        id: Some(id),
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
        let ret = rec.ret.unwrap_or_default();
        let returned = rec.status == CallStatus::Returned;
        let goid = rec.goid.unwrap_or_default();
        match (role, kind) {
            (
                Role::Call | Role::LightCall | Role::LightUncached | Role::LightRecursive,
                Kind::Call {
                    anchor,
                    uncached,
                    result,
                    lookup,
                    waited,
                    return_unread,
                    ..
                },
            ) => {
                let caps = &rec.ret_captures;
                let line = self.design.line;
                let mut error =
                    call_error(rec, self.slot.call_ret_error, self.design.recursive_error);
                let returned_result = word(caps, self.slot.call_ret_result).filter(|r| *r != 0);
                let hit = match anchor {
                    // The body's only return after its lookup that neither waited nor
                    // failed is the hit's (uncached calls never look up).
                    Anchor::Entry if returned => error.is_none() && !waited && !uncached,
                    // Recordings of the former light plan: an index consulted, no wait.
                    Anchor::Entry => {
                        self.light && !waited && !uncached && (lookup.digests > 0 || lookup.term)
                    }
                    // Light: the lookup was made; a call that then did not wait was
                    // answered from the cache (an error of the lookup itself is not seen).
                    Anchor::Lookup => !waited,
                    Anchor::Uncached => false,
                    Anchor::Recursive => {
                        error = Some(CallError {
                            text: None,
                            recursive: true,
                        });
                        false
                    }
                };
                if hit {
                    out.push(CacheEvent::LookedUp {
                        call: rec.frame,
                        hit: true,
                        content: false,
                        route: lookup.route(self.routes_known),
                        result: returned_result,
                    });
                }
                let digest = self.texts.digest(
                    line,
                    "the request's recipe digest (ResultCall.recipeDigest)",
                    cap(caps, self.slot.call_ret_digest),
                )?;
                // The request's memoized recipe digest is the one its lookup used: if
                // not, systematically, the offsets read are not this build's. A rare
                // mismatch (a lookup attributed to the wrong call after lost events, seen
                // once in 10M calls) is counted and said at the end, not fatal.
                if returned && let Some(looked_up) = &lookup.first_digest {
                    self.digest_checks += 1;
                    if digest.as_ref() != Some(looked_up) {
                        self.digest_mismatches += 1;
                        if self.digest_mismatches >= 8
                            && self.digest_mismatches * 2 > self.digest_checks
                        {
                            return Err(LayoutError {
                                line: line.to_string(),
                                what: "the request's recipe digest (ResultCall.recipeDigest)",
                                value: format!(
                                    "{} where its lookup used {looked_up} ({} of {} calls differ)",
                                    digest.as_deref().unwrap_or("nothing"),
                                    self.digest_mismatches,
                                    self.digest_checks
                                ),
                            });
                        }
                    }
                }
                if let Some(digest) = digest {
                    out.push(CacheEvent::Digest {
                        call: rec.frame,
                        digest,
                    });
                }
                if let Some((outcome, route)) = cap(caps, self.slot.call_ret_engine)
                    .and_then(|c| c.pair())
                    .map(|(o, r)| (self.texts.word(o), self.texts.word(r)))
                    && (outcome.is_some() || route.is_some())
                {
                    out.push(CacheEvent::EngineDecision {
                        call: rec.frame,
                        outcome,
                        route,
                    });
                }
                // Light mode probes no RET (nor does anything read the return of a call
                // from an unseen place): the call's end is proven by the goroutine's next
                // event at its depth or shallower, without results.
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
                    returned_id_differs: None,
                    result: returned_result.or(result),
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
                let caps = &rec.ret_captures;
                let (digest_slot, result_slot) = if role == Role::LoadRequest {
                    (self.slot.load_request_digest, self.slot.load_request_result)
                } else {
                    (None, self.slot.load_digests_result)
                };
                let memoized = self.texts.digest(
                    self.design.line,
                    "a loaded recipe digest",
                    cap(caps, digest_slot),
                )?;
                out.push(CacheEvent::LoadHit {
                    goid,
                    session,
                    digest: digest.or(memoized),
                    via,
                    route: lookup.route(self.routes_known),
                    result: word(caps, result_slot).filter(|r| *r != 0),
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
            _ => {}
        }
        Ok(())
    }
}

impl Decoder for OwnershipDecoder {
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

    fn digest_mismatches(&self) -> (u64, u64) {
        (self.digest_mismatches, self.digest_checks)
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

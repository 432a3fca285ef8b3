//! Code line L3: v0.21.x (v0.21.8 = 7902e644be) and v1.0.0-beta.1..3, the aa719a10d5
//! design: one exported `*Cache`, sessions by id, ownership counts. Registers, offsets
//! and lines are from shared/reference/engine-l3-l4.md §2.1, §3, §4, §5, §11. The
//! probe set is shared with L4, which differs in the layout values below.
use tracer_common::{REG_G, REG_RDX, REG_RSP};

use super::{
    CacheLocks, EntryMaps, LockAt, LockName, Profile, Role,
    code::Site,
    error_text, filesync,
    ownership::{self, Design, JoinedBy},
};
use crate::profiles::{
    At, G_PARENT_GOID, Light, ProbeDef, at_entry, guarded_string, string, string_pair, string_regs,
    word, word_pair,
};

pub(super) const RAX: u8 = 0;
pub(super) const RBX: u8 = 1;
pub(super) const RCX: u8 = 2;
pub(super) const RDI: u8 = 3;
pub(super) const R8: u8 = 5;
pub(super) const R9: u8 = 6;
pub(super) const R10: u8 = 7;
pub(super) const R11: u8 = 8;

/// What moves between L3 and L4's variants.
pub(super) struct Layout {
    /// The function that holds a cache call's body (`getOrInitCall` in L3,
    /// `getOrInitCallInner` in L4): where `--light` finds its calls.
    pub body_func: &'static str,
    /// The goroutine closure that runs `fn`, and where its context holds `*ongoingCall`.
    pub exec_func: &'static str,
    pub exec_closure_ongoing: i32,
    /// `ongoingCall.waiters`.
    pub ongoing_waiters: i32,
    /// `sharedResult.incomingOwnershipCount`.
    pub ownership_count: i32,
    /// `CallRequest.CacheEvidence` (*CacheDecision), where the line has it.
    pub cache_evidence: Option<i32>,
    /// `wait`'s `joined bool` stack argument (L4), else the call sites.
    pub joined_argument: bool,
    /// L4 after beta.10: the hand-off release left `wait` for its own function.
    pub handoff_release: bool,
}

/// The probes of the ownership design, for `layout`.
///
/// Per cache hit the default mode takes two traps: `GetOrInitCall`'s entry and its
/// return, which reads the outcome's remaining facts (error, memoized digest, the
/// returned result, the engine's decision). The return is read at the caller's first jump
/// after the call (emulated) where every call site allows it, else at the RET
/// (single-stepped); the entry reads its return address to tell calls from places the
/// analysis could not see (through an interface), whose return nothing reads. `--light`
/// takes one: the call of
/// `lookupCacheForRequest` in the call's body (a `CALL rel32`, emulated by the kernel).
/// What neither reads per hit: the hit route is the recipe digest's unless the extra
/// digests or the term index were consulted (probes off the hit path), and a call that
/// returned without error, without waiting and was not uncached took the hit return
/// (the only other return of the body after its lookup).
pub(super) fn probes(layout: &Layout) -> Vec<ProbeDef> {
    // GetOrInitCall(c RAX, ctx RBX/RCX, sessionID RDI/RSI, resolver R8/R9, req R10, fn R11)
    // -> (AnyResult RAX/RBX, error RCX/RDI). req: *ResultCall +0 (recipeDigest +224/+232),
    // DoNotCache +32; the recipe digest is there only once derived (or set by telemetry).
    // At the RET: the recipe digest as derived by the end of the call (before any lookup
    // for a recursive call, never for an uncached one without telemetry), and the returned
    // result: its data -> Result{shared +0} -> sharedResult.id +0.
    let mut call_ret = vec![
        error_text("error", RDI),
        at_entry(string("digest", R10, &[0], 224)),
        word("result", RBX, &[0, 0]),
    ];
    if let Some(ev) = layout.cache_evidence {
        // CacheDecision: Outcome +0 and HitRoute +16 (one read of both headers); nil
        // unless the caller armed it.
        call_ret.push(at_entry(string_pair("engine", R10, &[ev], 0)));
    }
    // wait(c, ctx, sessionID, resolver, oc R10, req R11[, joined [RSP+8]]): the call key
    // (the recipe digest) at oc+0.
    let mut wait_caps = vec![
        if layout.joined_argument {
            word("joined", REG_RSP, &[8])
        } else {
            word("return_address", REG_RSP, &[0])
        },
        word("waiters", R10, &[layout.ongoing_waiters]),
        string("call_key", R10, &[], 0),
    ];
    if let Some(ev) = layout.cache_evidence {
        // The engine's miss facts, set by the lookup before `wait` (req R11 ->
        // CacheDecision): MissIncompatibleCandidates +32 and MissSawExpired +33 (one
        // word), MissUnknownInputIndex +40, in one read. Nil unless the caller armed it.
        wait_caps.push(word_pair("ev_miss", R11, &[ev], 32));
    }
    // *sharedResult: id +0, the ownership count at its offset.
    let result_caps = |reg: u8| {
        [
            word("result", reg, &[0]),
            word("count", reg, &[layout.ownership_count]),
        ]
    };
    let mut probes = vec![
        ProbeDef::new(Role::Call, "dagql.(*Cache).GetOrInitCall", At::Call)
            .entry(&[
                string_regs("session", RDI),
                word("do_not_cache", R10, &[32]),
                string("digest", R10, &[0], 224),
                word("return_address", REG_RSP, &[0]),
            ])
            .ret(&call_ret)
            .returns_at_callers(&[RAX, RBX, RCX, RDI])
            .light(Light::Drop),
        // --light: the call of lookupCacheForRequest(c, ctx, sessionID RDI/RSI, resolver,
        // req R10; stack: requestDigest [RSP+0]/[RSP+8] at the call) in the body. Calls that
        // never look up: the uncached path (its `fn` call) and the recursive refusal; a call
        // refused before them (an invalid request, a digest that cannot be derived) is not
        // seen.
        ProbeDef::new(
            Role::LightCall,
            layout.body_func,
            At::Site {
                site: Site::CallTo("dagql.(*Cache).lookupCacheForRequest"),
                frame: true,
            },
        )
        .entry(&[
            string_regs("session", RDI),
            string("digest", REG_RSP, &[], 0),
        ])
        .light(Light::Only),
        ProbeDef::new(
            Role::LightUncached,
            layout.body_func,
            At::Site {
                site: Site::ClosureCall,
                frame: true,
            },
        )
        .light(Light::Only)
        .optional(),
        ProbeDef::new(
            Role::LightRecursive,
            layout.body_func,
            At::Site {
                site: Site::GlobalErrorReturn,
                frame: true,
            },
        )
        .light(Light::Only)
        .optional(),
        // lookupMatchForDigestsLocked: the lookups of the extra digests, made only when the
        // recipe digest's found nothing.
        ProbeDef::new(
            Role::ExtraDigest,
            "dagql.(*Cache).lookupMatchForDigestsLocked",
            At::Site {
                site: Site::CallsAfterFirstLine("dagql.(*Cache).appendDigestResultsLocked"),
                frame: false,
            },
        )
        .optional(),
        // appendTermSetResultsLocked: the structural lookup, after the digests missed.
        ProbeDef::new(
            Role::TermIndex,
            "dagql.(*Cache).appendTermSetResultsLocked",
            At::EntryPoint,
        )
        .optional(),
        ProbeDef::new(Role::Wait, "dagql.(*Cache).wait", At::Frame).entry(&wait_caps),
        // The execution goroutine: its closure holds *ongoingCall (callKey +0).
        ProbeDef::new(Role::Exec, layout.exec_func, At::EntryPoint).entry(&[
            word("ongoing", REG_RDX, &[layout.exec_closure_ongoing]),
            word("creator_goid", REG_G, &[G_PARENT_GOID]),
            string("call_key", REG_RDX, &[layout.exec_closure_ongoing], 0),
        ]),
        // trackSessionResult(c, ctx, sessionID RDI/RSI, res R8/R9, hitCache R10B).
        // --light does not follow references: two traps per result a session takes and
        // releases (about 1 per call with short sessions) would double its cost.
        ProbeDef::new(
            Role::TrackSession,
            "dagql.(*Cache).trackSessionResult",
            At::Frame,
        )
        .entry(&[string_regs("session", RDI), word("result", R9, &[0, 0])])
        .light(Light::Drop),
        // increment/decrementIncomingOwnershipLocked(c, ctx, res RDI, ...): count before.
        // The increment can compile to a frameless leaf (its trace hook compiled out): then
        // its callers' calls of it are probed, not its single-stepped first instruction.
        ProbeDef::new(
            Role::OwnershipUp,
            "dagql.(*Cache).incrementIncomingOwnershipLocked",
            At::EntryOrCallers { package: "dagql." },
        )
        .entry(&result_caps(RDI))
        .light(Light::Drop),
        ProbeDef::new(
            Role::OwnershipDown,
            "dagql.(*Cache).decrementIncomingOwnershipLocked",
            At::EntryPoint,
        )
        .entry(&result_caps(RDI))
        .light(Light::Drop),
        // removeResultFromEgraphLocked(c, ctx, res RDI): a result leaves the cache.
        ProbeDef::new(
            Role::Collect,
            "dagql.(*Cache).removeResultFromEgraphLocked",
            At::EntryPoint,
        )
        .entry(&[word("result", RDI, &[0])]),
        // upsertPersistedEdgeLocked(c, ctx, res RDI, ...): kept across sessions by design
        // (the ownership it takes is the persisted edge's).
        ProbeDef::new(
            Role::Persist,
            "dagql.(*Cache).upsertPersistedEdgeLocked",
            At::Frame,
        )
        .entry(&[word("result", RDI, &[0])])
        .optional(),
        // The engine's own ownership: publication (hand-off hold, dependencies), the
        // dependencies a collected result drops, explicit dependencies.
        ProbeDef::new(
            Role::Publish,
            "dagql.(*Cache).initCompletedResult",
            At::Frame,
        ),
        ProbeDef::new(
            Role::Publish,
            "dagql.(*Cache).collectUnownedResultsLocked",
            At::Frame,
        ),
        ProbeDef::new(
            Role::Publish,
            "dagql.(*Cache).addExplicitDependencyLocked",
            At::Frame,
        )
        .optional(),
        // attachResult (core attaching a result to a session): its own hit-value load is
        // not a lookup of the call around it.
        ProbeDef::new(Role::Publish, "dagql.(*Cache).attachResult", At::Frame).optional(),
        // ReleaseSession(c, ctx, sessionID RDI/RSI) error.
        ProbeDef::new(
            Role::ReleaseSession,
            "dagql.(*Cache).ReleaseSession",
            At::Call,
        )
        .entry(&[string_regs("session", RDI)]),
        // ID loading: lookupCallRequest(c, ctx, sessionID RDI/RSI, resolver, req R10) and
        // lookupCacheForDigests(c, ctx, sessionID, resolver, recipeDigest R10/R11, ...)
        // -> (AnyResult, hit CL, error RDI/RSI).
        ProbeDef::new(
            Role::LoadRequest,
            "dagql.(*Cache).lookupCallRequest",
            At::Call,
        )
        .entry(&[string_regs("session", RDI)])
        .ret(&[
            at_entry(string("digest", R10, &[0], 224)),
            word("result", RBX, &[0, 0]),
        ]),
        ProbeDef::new(
            Role::LoadDigests,
            "dagql.(*Cache).lookupCacheForDigests",
            At::Call,
        )
        .entry(&[string_regs("session", RDI), string_regs("digest", R10)])
        .ret(&[word("result", RBX, &[0, 0])]),
        // GetOrInitArbitrary(c, ctx, sessionID RDI/RSI, callKey R8/R9, fn R10)
        // -> (ArbitraryCachedResult RAX/RBX, error RCX/RDI).
        ProbeDef::new(
            Role::Arbitrary,
            "dagql.(*Cache).GetOrInitArbitrary",
            At::Call,
        )
        .entry(&[string_regs("session", RDI)]),
        ProbeDef::new(
            Role::ArbitraryWait,
            "dagql.(*Cache).waitArbitrary",
            At::EntryPoint,
        ),
        // initializeDaggerSession(srv, clientMetadata RBX, sess RCX, ...): sess.sessionID +0.
        ProbeDef::new(
            Role::InitSession,
            "engine/server.(*Server).initializeDaggerSession",
            At::EntryPoint,
        )
        .entry(&[string("session_id", RCX, &[], 0)]),
        // removeDaggerSession(srv, ctx, sess RDI).
        ProbeDef::new(
            Role::RemoveSession,
            "engine/server.(*Server).removeDaggerSession",
            At::EntryPoint,
        )
        .entry(&[string("session_id", RDI, &[], 0)]),
    ];
    probes.extend(explain_probes());
    if layout.handoff_release {
        // releaseOngoingCallHandoff(c, ctx, oc RDI): the last waiter's hold, released.
        probes.push(ProbeDef::new(
            Role::Publish,
            "dagql.(*Cache).releaseOngoingCallHandoff",
            At::Frame,
        ));
    }
    probes.extend(filesync::probes());
    probes
}

/// `--explain`: a call's identity parts, read along its lookup (engine-l3-l4 §2.1, §4,
/// the same on L3 and L4). Counts come first so that nothing past a slice is believed.
fn explain_probes() -> Vec<ProbeDef> {
    // ResultCall: Field +24, Args +144 (len +152) of *ResultCallArg {Name +0, IsSensitive
    // +16, Value *ResultCallLiteral +24}; ResultCallLiteral: Kind +0, StringValue +40.
    const ARGS: i32 = 144;
    const ARG_SENSITIVE: i32 = 16;
    const ARG_VALUE: i32 = 24;
    const LITERAL_STRING: i32 = 40;
    vec![
        // lookupCacheForRequest(c, ctx, sessionID, resolver, req R10; stack: requestDigest
        // [+8], requestSelf [+24]/[+32], requestInputs [+40]/[+48]/[+56], ...).
        ProbeDef::new(
            Role::ExplainLookup,
            "dagql.(*Cache).lookupCacheForRequest",
            At::EntryPoint,
        )
        .entry(&[
            string("field", R10, &[0], 24),
            string("self", REG_RSP, &[], 24),
            word("inputs", REG_RSP, &[48]),
            word("args", R10, &[0, ARGS + 8]),
        ])
        .explain_only(),
        // lookupCacheForRequestLocked(c, ctx, sessionID, req R8, requestDigest R9/R10;
        // stack: requestSelf [+8]/[+16], requestInputs [+24]/[+32]/[+40], ...).
        ProbeDef::new(
            Role::ExplainLocked,
            "dagql.(*Cache).lookupCacheForRequestLocked",
            At::EntryPoint,
        )
        .entry(&[
            string("input0", REG_RSP, &[24], 0),
            string("arg0_name", R8, &[0, ARGS, 0], 0),
            string("arg1_name", R8, &[0, ARGS, 8], 0),
            string("arg1_kind", R8, &[0, ARGS, 8, ARG_VALUE], 0),
        ])
        .explain_only(),
        // lookupMatchForCallLocked(c, frame RBX, recipeDigest RCX/RDI, selfDigest RSI/R8,
        // inputDigests R9/R10/R11, nowUnix [+8]). A sensitive argument's value is never
        // read.
        ProbeDef::new(
            Role::ExplainMatch,
            "dagql.(*Cache).lookupMatchForCallLocked",
            At::EntryPoint,
        )
        .entry(&[
            string("input1", R9, &[], 16),
            string("arg0_kind", RBX, &[ARGS, 0, ARG_VALUE], 0),
            guarded_string(
                "arg0_value",
                RBX,
                &[ARGS, 0, ARG_VALUE],
                ARG_SENSITIVE,
                LITERAL_STRING,
            ),
            guarded_string(
                "arg1_value",
                RBX,
                &[ARGS, 8, ARG_VALUE],
                ARG_SENSITIVE,
                LITERAL_STRING,
            ),
        ])
        .explain_only(),
    ]
}

/// §5: callsMu c+0 (sema +4), sessionMu c+8 (sema +12), egraphMu c+16 (RWMutex: writerSem
/// +24, readerSem +28; exclusive even for lookups), the same in L3 and every L4 variant.
/// The cache's address is the receiver of `GetOrInitCall`, or of `ReleaseSession` for an
/// engine that only releases sessions while traced.
pub(super) const CACHE_LOCKS: CacheLocks = CacheLocks {
    receiver_of: &[
        "dagql.(*Cache).GetOrInitCall",
        "dagql.(*Cache).ReleaseSession",
    ],
    locks: &[
        LockAt {
            offset: 0,
            rwmutex: false,
            name: "dagql cache callsMu",
        },
        LockAt {
            offset: 8,
            rwmutex: false,
            name: "dagql cache sessionMu",
        },
        LockAt {
            offset: 16,
            rwmutex: true,
            name: "dagql cache egraphMu",
        },
    ],
};

/// By the waiting method, when the cache's address is not known (yet).
pub(super) const LOCKS: &[LockName] = &[
    LockName {
        waiter_prefix: "dagql.(*Cache).trackSession",
        rwmutex: false,
        name: "dagql cache sessionMu",
    },
    LockName {
        waiter_prefix: "dagql.(*Cache).lookupCacheFor",
        rwmutex: false,
        name: "dagql cache sessionMu",
    },
    LockName {
        waiter_prefix: "dagql.(*Cache).ReleaseSession",
        rwmutex: false,
        name: "dagql cache sessionMu or callsMu",
    },
    LockName {
        waiter_prefix: "dagql.(*Cache).",
        rwmutex: false,
        name: "dagql cache callsMu",
    },
    LockName {
        waiter_prefix: "dagql.(*Cache).",
        rwmutex: true,
        name: "dagql cache egraphMu",
    },
    filesync::LOCK,
];

static DESIGN: Design = Design {
    line: "L3",
    joined_by: JoinedBy::CallSites {
        func: "dagql.(*Cache).getOrInitCall",
        file: "dagql/cache.go",
        join_line: 3591,
        fresh_line: 3639,
    },
    recursive_error: "recursive call detected",
};

pub fn profile() -> Profile {
    let layout = Layout {
        body_func: "dagql.(*Cache).getOrInitCall",
        exec_func: "dagql.(*Cache).getOrInitCall.func1",
        exec_closure_ongoing: L3_EXEC_CLOSURE_ONGOING,
        ongoing_waiters: 96,
        ownership_count: 272,
        cache_evidence: None,
        joined_argument: false,
        handoff_release: false,
    };
    Profile {
        id: "L3",
        variant: "v0.21.x",
        description: "v0.21.x: exported *Cache, sessions by id, ownership counts",
        probes: probes(&layout),
        // §4 and §6: Size() = ongoingCalls 56 + resultOutputEqClasses 200 +
        // ongoingArbitraryCalls 248 + completedArbitraryCalls 256.
        cache_entry_maps: EntryMaps::Fixed(L3_ENTRY_MAPS),
        locks: LOCKS,
        cache_locks: Some(CACHE_LOCKS),
        sees_lookups: |_| true,
        decoder: |setup| ownership::build(setup, &DESIGN),
    }
}

/// `Size()`'s maps in the 424-byte cache of L3 and of L4 up to beta.9: ongoingCalls 56,
/// resultOutputEqClasses 200, ongoingArbitraryCalls 248, completedArbitraryCalls 256.
pub(super) const L3_ENTRY_MAPS: &[u64] = &[56, 200, 248, 256];

/// Offset of `*ongoingCall` in `getOrInitCall.func1`'s closure context (measured on
/// the stand-in with -gcflags=-S; captures in source order).
const L3_EXEC_CLOSURE_ONGOING: i32 = 8;

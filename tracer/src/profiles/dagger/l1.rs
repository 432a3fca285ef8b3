//! Code line L1: v0.20.x (v0.20.8 = 74bff7d10f): one `*cache` behind a per-session
//! `SessionCache`, a single cache mutex, refcounted results. Registers, offsets and
//! lines are from shared/reference/engine-l1.md §1-§4.
use tracer_common::{REG_G, REG_RDX, REG_RSP};

use super::{
    CacheLocks, EntryMaps, LockAt, LockName, Profile, Role,
    code::Site,
    error_text, filesync,
    session_cache::{
        self, ContentKind, Design, WaitKind, light_join_probe, light_recursive_probe,
        session_layer_probes,
    },
};
use crate::profiles::{At, G_PARENT_GOID, Light, ProbeDef, string, word};

const RAX: u8 = 0;
const RBX: u8 = 1;
const RCX: u8 = 2;
const RDI: u8 = 3;

static DESIGN: Design = Design {
    line: "L1",
    // wait(ctx, res *sharedResult, isFirstCaller bool): isFirstCaller in SIL.
    wait: WaitKind::FirstCallerArg { reg: 4 },
    content: ContentKind::ResultFlag,
    recursive_error: "recursive call detected",
};

pub fn profile() -> Profile {
    // key.ID RDI -> pb (+0) -> Digest (+120): the call digest (§3 `callpbv1.Call`).
    let digest = string("digest", RDI, &[0], 120);
    let mut probes = vec![
        // session_cache.go:95 — c RAX; key.ID RDI; ConcurrencyKey RSI/R8; TTL R9;
        // DoNotCache R10B; fn R11; opts on the stack -> (AnyResult RAX,RBX; error RCX,RDI).
        // The session layer returns the base call's result as it is: the returned Result
        // (RBX) has hitCache +16 and hitContentDigestCache +17.
        ProbeDef::new(
            Role::SessionCall,
            "dagql.(*SessionCache).GetOrInitCall",
            At::Call,
        )
        // Its returns are read in its callers (one emulated jump each) where they allow.
        .entry(&[digest, word("return_address", REG_RSP, &[0])])
        .ret(&[error_text("error", RDI), word("hit_flags", RBX, &[16])])
        .returns_at_callers(&[RAX, RBX, RCX, RDI])
        // --light: its entry only (one trap per call); a call that neither waited nor was
        // uncached or refused hit. Errors, content hits and references are not seen.
        .light(Light::EntryOnly)
        // --light reads the digest only (the return address serves the returns it skips).
        .light_entry(1),
        // cache.go:786 — same registers; R10B set here but not at the session layer = the
        // forced no-cache retry. Its entry only: what its RET would read, the session
        // layer's reads (one single-stepped RET per call instead of two).
        ProbeDef::new(Role::BaseCall, "dagql.(*cache).GetOrInitCall", At::Frame)
            .entry(&[digest])
            .light(Light::Drop),
        // --light: the base call's DoNotCache path calls `fn` itself (cache.go:802), the only
        // call of its func value there: a forced retry after an error is uncached.
        ProbeDef::new(
            Role::LightUncached,
            "dagql.(*cache).GetOrInitCall",
            At::Site {
                site: Site::ClosureCall,
                frame: false,
            },
        )
        .light(Light::Only)
        .optional(),
        // --light: `return nil, ErrCacheRecursiveCall` (cache.go:921).
        light_recursive_probe(),
        // --light: the join's call of `wait` (cache.go:1008); the first caller's miss comes from
        // its execution's start, one trap less per miss.
        light_join_probe(1008),
        // cache.go:1070 — res RDI (the in-flight sharedResult), isFirstCaller SIL.
        ProbeDef::new(Role::Wait, "dagql.(*cache).wait", At::EntryPoint),
        // cache.go:1032 — the goroutine running fn; closure [RDX+8] = res *sharedResult.
        ProbeDef::new(
            Role::Exec,
            "dagql.(*cache).GetOrInitCall.func3",
            At::EntryPoint,
        )
        .entry(&[
            word("ongoing", REG_RDX, &[8]),
            word("creator_goid", REG_G, &[G_PARENT_GOID]),
            // The call key it runs (res *sharedResult, callKey +24/+32): in --light, which does not
            // probe `wait`, it names the first caller's call.
            string("call_key", REG_RDX, &[8], 24),
        ])
        .default_entry(2),
        // cache.go:312 — res RAX: refCount +208 (before the decrement), callKey +24/+32.
        ProbeDef::new(
            Role::Release,
            "dagql.(*sharedResult).release",
            At::EntryPoint,
        )
        .entry(&[
            word("refcount", RAX, &[208]),
            string("digest", RAX, &[], 24),
        ])
        // --light does not follow references.
        .light(Light::Drop),
    ];
    probes.extend(session_layer_probes());
    probes.extend(filesync::probes());
    Profile {
        id: "L1",
        variant: "v0.20.x",
        description: "v0.20.x: SessionCache over one cache mutex, refcounted results",
        probes,
        // §3: ongoingCalls 8, completedCalls 16, completedCallsByContent 24,
        // ongoingArbitraryCalls 32, completedArbitraryCalls 40. Size() sums list entries
        // under each key; the map counts are the keys.
        cache_entry_maps: EntryMaps::Fixed(&[8, 16, 24, 32, 40]),
        locks: &[
            LockName {
                waiter_prefix: "dagql.(*cache).",
                rwmutex: false,
                name: "dagql cache mu",
            },
            LockName {
                waiter_prefix: "dagql.(*sharedResult).release",
                rwmutex: false,
                name: "dagql cache mu",
            },
            LockName {
                waiter_prefix: "dagql.(*SessionCache).",
                rwmutex: false,
                name: "dagql SessionCache.mu",
            },
            filesync::LOCK,
        ],
        // §5: the base cache's one lock, mu c+0 (sema c+4), by offset from the receiver of
        // its GetOrInitCall; SessionCache.mu (one per session) stays named by its waiter.
        cache_locks: Some(CacheLocks {
            receiver_of: &["dagql.(*cache).GetOrInitCall"],
            locks: &[LockAt {
                offset: 0,
                rwmutex: false,
                name: "dagql cache mu",
            }],
        }),
        // No lookup function: a call that neither waited nor failed hit.
        sees_lookups: |_| false,
        decoder: |setup| session_cache::build(setup, &DESIGN),
    }
}

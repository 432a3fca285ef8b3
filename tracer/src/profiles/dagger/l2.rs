//! Code line L2: the egraph branch, commit 5c5fa454fe (the debugging guide's
//! commit; in no release). Registers, offsets and lines are from
//! shared/reference/engine-internals.md §1-§3, with its file:line references.
use tracer_common::{REG_G, REG_RDX, REG_RSP};

use super::{
    CacheLocks, EntryMaps, LockAt, LockName, Profile, Role, error_text, filesync,
    session_cache::{
        self, ContentKind, Design, WaitKind, light_join_probe, light_recursive_probe,
        session_layer_probes,
    },
};
use crate::profiles::{At, Cap, G_PARENT_GOID, Light, ProbeDef, string, word};

// Go ABI integer registers, in argument order.
const RAX: u8 = 0;
const RBX: u8 = 1;
const RCX: u8 = 2;
const RDI: u8 = 3;

/// `*call.ID` -> `pb *callpbv1.Call` (+0) -> `Digest string` (+120): the call digest.
const fn id_digest(name: &'static str, reg: u8) -> Cap {
    string(name, reg, &[0], 120)
}

static DESIGN: Design = Design {
    line: "L2",
    wait: WaitKind::CallSites {
        func: "dagql.(*cache).GetOrInitCall",
        file: "dagql/cache.go",
        join_line: 716,
        fresh_line: 749,
    },
    content: ContentKind::FallbackLine,
    recursive_error: "recursive call detected",
};

pub fn profile() -> Profile {
    let mut probes = vec![
        // session_cache.go:103 — c RAX; key.ID RDI; ConcurrencyKey RSI/R8; TTL R9;
        // DoNotCache R10B -> (AnyResult RAX,RBX; error RCX,RDI)
        // The session layer returns the base call's result as it is: its data pointer (RBX
        // at RET) points at Result{shared +0, id +8, hitCache +16}.
        ProbeDef::new(
            Role::SessionCall,
            "dagql.(*SessionCache).GetOrInitCall",
            At::Call,
        )
        // SessionCache.cache (the Cache interface at +0) holds the base *cache in its
        // data word (+8): the cache whose maps the entry metric reads.
        // Its returns are read in its callers (one emulated jump each) where they allow.
        .entry(&[
            id_digest("digest", RDI),
            word("cache", RAX, &[8]),
            word("return_address", REG_RSP, &[0]),
        ])
        .ret(&[
            error_text("error", RDI),
            string("returned_digest", RBX, &[8, 0], 120),
        ])
        .returns_at_callers(&[RAX, RBX, RCX, RDI])
        // --light: its entry only (one trap per call); a call that neither waited nor was
        // uncached or refused hit. Errors and references are not seen.
        .light(Light::EntryOnly)
        // --light reads the digest only (the return address serves the returns it skips;
        // the cache comes from the session's start or end).
        .light_entry(1),
        // --light: `return nil, ErrCacheRecursiveCall` in the base call (cache.go:608).
        light_recursive_probe(),
        // --light: the join's call of `wait` (cache.go:716); the first caller's miss comes from
        // its execution's start, one trap less per miss.
        light_join_probe(716),
        // The base call (cache.go:564) and its lookup (lookupCacheForID, cache_egraph.go:401)
        // are not probed: the session layer passes DoNotCache through unchanged (no forced
        // retry on this branch) and returns the base result as it is, a call that neither
        // waited nor failed hit, and the content fallback below names its call by the frame
        // around it. One trap at entry and one RET per call, where there were three of each.
        // cache_egraph.go:445 — the content-digest fallback (egraphTermsByOutputDigest).
        ProbeDef::new(
            Role::ContentFallback,
            "dagql.(*cache).lookupCacheForID",
            At::Line {
                file_suffix: "dagql/cache_egraph.go",
                line: 445,
            },
        ),
        // cache.go:752 — oc RDI; the return address tells the call site (716 / 749).
        ProbeDef::new(Role::Wait, "dagql.(*cache).wait", At::EntryPoint).entry(&[word(
            "return_address",
            REG_RSP,
            &[0],
        )]),
        // cache.go:741 — the goroutine running fn; closure [RDX+8] = *ongoingCall.
        ProbeDef::new(
            Role::Exec,
            "dagql.(*cache).GetOrInitCall.func3",
            At::EntryPoint,
        )
        .entry(&[
            word("ongoing", REG_RDX, &[8]),
            // The goroutine that started it, i.e. the call that missed.
            word("creator_goid", REG_G, &[G_PARENT_GOID]),
            // The call key it runs (*ongoingCall, callKey +0/+8): in --light, which does not
            // probe `wait`, it names the first caller's call.
            string("call_key", REG_RDX, &[8], 0),
        ])
        .default_entry(2),
        // cache.go:257 — res RAX; refCount +184 (before the decrement), outputDigest +72.
        ProbeDef::new(
            Role::Release,
            "dagql.(*sharedResult).release",
            At::EntryPoint,
        )
        .entry(&[
            word("refcount", RAX, &[184]),
            string("digest", RAX, &[], 72),
        ])
        // --light does not follow references.
        .light(Light::Drop),
    ];
    probes.extend(session_layer_probes());
    probes.extend(filesync::probes());
    Profile {
        id: "L2",
        variant: "egraph branch",
        description: "egraph branch 5c5fa454fe: e-graph lookups, callsMu/egraphMu",
        probes,
        // cache.go:159-189: ongoingCalls 32, egraphResultTerms 128, ongoingArbitraryCalls 152,
        // completedArbitraryCalls 160 — what Size() sums (cache.go:534-547).
        cache_entry_maps: EntryMaps::Fixed(&[32, 128, 152, 160]),
        // engine-internals §4: callsMu c+0, egraphMu c+8 (taken exclusively by lookups and by
        // sharedResult.release), SessionCache.mu sc+64, changeCache.mu.
        locks: &[
            LockName {
                waiter_prefix: "dagql.(*cache).",
                rwmutex: false,
                name: "dagql cache callsMu",
            },
            LockName {
                waiter_prefix: "dagql.(*cache).",
                rwmutex: true,
                name: "dagql cache egraphMu",
            },
            LockName {
                waiter_prefix: "dagql.(*sharedResult).release",
                rwmutex: true,
                name: "dagql cache egraphMu",
            },
            LockName {
                waiter_prefix: "dagql.(*SessionCache).",
                rwmutex: false,
                name: "dagql SessionCache.mu",
            },
            filesync::LOCK,
        ],
        // The same two by offset from the base cache, the receiver of its GetOrInitCall.
        cache_locks: Some(CacheLocks {
            receiver_of: &["dagql.(*cache).GetOrInitCall"],
            locks: &[
                LockAt {
                    offset: 0,
                    rwmutex: false,
                    name: "dagql cache callsMu",
                },
                LockAt {
                    offset: 8,
                    rwmutex: true,
                    name: "dagql cache egraphMu",
                },
            ],
        }),
        // No lookup RET: a call that neither waited nor failed hit.
        sees_lookups: |_| false,
        decoder: |setup| session_cache::build(setup, &DESIGN),
    }
}

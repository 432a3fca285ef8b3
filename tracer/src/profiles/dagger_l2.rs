//! Code line L2: the egraph branch, commit 5c5fa454fe (the debugging guide's
//! commit). Registers, offsets and lines are from
//! shared/reference/engine-internals.md §1-§3, with its file:line references.
use tracer_common::REG_RSP;
use tracer_common::{REG_G, REG_RDX};

use super::{
    At, Cap, G_PARENT_GOID, LockName, ProbeDef, Profile, Role, Site, at_entry, string, string_regs,
    word,
};

// Go ABI integer registers, in argument order.
const RAX: u8 = 0;
const RBX: u8 = 1;
const RCX: u8 = 2;
const RDI: u8 = 3;

/// `*call.ID` -> `pb *callpbv1.Call` (+0) -> `Digest string` (+120): the call digest.
const fn id_digest(name: &'static str, reg: u8) -> Cap {
    string(name, reg, &[0], 120)
}

/// The message of an error whose dynamic value starts with its text (errors.New,
/// fmt.Errorf): the interface's data pointer is in `reg`.
const fn error_text(name: &'static str, reg: u8) -> Cap {
    string(name, reg, &[], 0)
}

pub static PROFILE: Profile = Profile {
    id: "L2",
    description: "egraph branch (5c5fa454fe: e-graph lookups, callsMu/egraphMu)",
    probes: &[
        // session_cache.go:103 — c RAX; key.ID RDI; ConcurrencyKey RSI/R8; TTL R9;
        // DoNotCache R10B -> (AnyResult RAX,RBX; error RCX,RDI)
        ProbeDef {
            role: Role::SessionCall,
            light_entry_only: false,
            func: "dagql.(*SessionCache).GetOrInitCall",
            at: At::Call,
            entry: &[id_digest("digest", RDI)],
            ret: &[error_text("error", RDI)],
        },
        // cache.go:564 — same registers, c = *cache; result data ptr (RBX at RET)
        // points at Result{shared +0, id +8, hitCache +16}.
        ProbeDef {
            role: Role::CacheCall,
            light_entry_only: true,
            func: "dagql.(*cache).GetOrInitCall",
            at: At::Call,
            entry: &[id_digest("digest", RDI)],
            ret: &[
                string("returned_digest", RBX, &[8, 0], 120),
                word("hit_cache", RBX, &[16]),
                error_text("error", RDI),
            ],
        },
        // cache_egraph.go:401 — returns hit in CL.
        ProbeDef {
            role: Role::Lookup,
            light_entry_only: true,
            func: "dagql.(*cache).lookupCacheForID",
            at: At::Call,
            entry: &[],
            ret: &[],
        },
        // cache_egraph.go:445 — the content-digest fallback (egraphTermsByOutputDigest).
        ProbeDef {
            role: Role::ContentFallback,
            light_entry_only: false,
            func: "dagql.(*cache).lookupCacheForID",
            at: At::Line {
                file_suffix: "dagql/cache_egraph.go",
                line: 445,
            },
            entry: &[],
            ret: &[],
        },
        // cache.go:752 — oc RDI; the return address tells the call site (716 / 749).
        ProbeDef {
            role: Role::Wait,
            light_entry_only: false,
            func: "dagql.(*cache).wait",
            at: At::EntryPoint,
            entry: &[word("return_address", REG_RSP, &[0])],
            ret: &[],
        },
        // cache.go:741 — the goroutine running fn; closure [RDX+8] = *ongoingCall.
        ProbeDef {
            role: Role::Exec,
            light_entry_only: false,
            func: "dagql.(*cache).GetOrInitCall.func3",
            at: At::EntryPoint,
            entry: &[
                word("ongoing_call", REG_RDX, &[8]),
                // The goroutine that started it, i.e. the call that missed.
                word("creator_goid", REG_G, &[G_PARENT_GOID]),
            ],
            ret: &[],
        },
        // cache.go:257 — res RAX; refCount +184 (before the decrement), outputDigest +72.
        ProbeDef {
            role: Role::Release,
            light_entry_only: false,
            func: "dagql.(*sharedResult).release",
            at: At::EntryPoint,
            entry: &[
                word("refcount", RAX, &[184]),
                string("digest", RAX, &[], 72),
            ],
            ret: &[],
        },
        // session_cache.go:239 — c RAX.
        ProbeDef {
            role: Role::ReleaseAndClose,
            light_entry_only: false,
            func: "dagql.(*SessionCache).ReleaseAndClose",
            at: At::Call,
            entry: &[],
            ret: &[],
        },
        ProbeDef {
            role: Role::DbRead,
            light_entry_only: false,
            func: "dagql/db.(*Queries).SelectCall",
            at: At::EntryPoint,
            entry: &[],
            ret: &[],
        },
        ProbeDef {
            role: Role::DbWrite,
            light_entry_only: false,
            func: "dagql/db.(*Queries).SetExpiration",
            at: At::EntryPoint,
            // queries.go:18 — SetExpirationParams on the stack: CallKey [RSP+8],
            // StorageKey [RSP+24]: the storage key the TTL path computed.
            entry: &[string("storage_key", REG_RSP, &[], 24)],
            ret: &[],
        },
        // session.go:249 — sess RCX: sessionID +0, dagqlCache *SessionCache +280 (set
        // inside the function, so read at its RETs from the entry's RCX).
        ProbeDef {
            role: Role::InitSession,
            light_entry_only: false,
            func: "engine/server.(*Server).initializeDaggerSession",
            at: At::Call,
            // The id is set before the call; calls made during initialisation bind
            // the new SessionCache to it before the RET reports the pointer.
            entry: &[string("session_id", RCX, &[], 0)],
            ret: &[
                at_entry(string("session_id", RCX, &[], 0)),
                at_entry(word("session_cache", RCX, &[280])),
            ],
        },
        // session.go:320 — sess RDI.
        ProbeDef {
            role: Role::RemoveSession,
            light_entry_only: false,
            func: "engine/server.(*Server).removeDaggerSession",
            at: At::EntryPoint,
            entry: &[
                string("session_id", RDI, &[], 0),
                word("session_cache", RDI, &[280]),
            ],
            ret: &[],
        },
        // change_cache.go:38 — callKey RDI/RSI -> (*cachedChange RAX; error RBX,RCX).
        ProbeDef {
            role: Role::ChangeGetOrInit,
            light_entry_only: false,
            func: "engine/filesync.(*changeCache).getOrInit",
            at: At::Call,
            entry: &[string_regs("path", RDI)],
            ret: &[error_text("error", RCX)],
        },
        // change_cache.go:92 — call site 64 (join) or 89 (new).
        ProbeDef {
            role: Role::ChangeWait,
            light_entry_only: false,
            func: "engine/filesync.(*changeCache).wait",
            at: At::EntryPoint,
            entry: &[word("return_address", REG_RSP, &[0])],
            ret: &[],
        },
        // change_cache.go:147 — res RAX: callKey +8/+16, refCount +72 (before the decrement).
        ProbeDef {
            role: Role::ChangeRelease,
            light_entry_only: false,
            func: "engine/filesync.(*cachedChange).release",
            at: At::EntryPoint,
            entry: &[string("path", RAX, &[], 8), word("refcount", RAX, &[72])],
            ret: &[],
        },
        // localfs.go:909 — path RAX/RBX -> error RAX,RBX (non-nil = conflict).
        ProbeDef {
            role: Role::VerifyChange,
            light_entry_only: false,
            func: "engine/filesync.verifyExpectedChange",
            at: At::Call,
            entry: &[string_regs("path", RAX)],
            ret: &[error_text("error", RBX)],
        },
    ],
    join_site: Site {
        file_suffix: "dagql/cache.go",
        line: 716,
    },
    fresh_site: Site {
        file_suffix: "dagql/cache.go",
        line: 749,
    },
    change_join_site: Site {
        file_suffix: "engine/filesync/change_cache.go",
        line: 64,
    },
    change_new_site: Site {
        file_suffix: "engine/filesync/change_cache.go",
        line: 89,
    },
    recursive_error: "recursive call detected",
    // cache.go:159-189: ongoingCalls 32, egraphResultTerms 128, ongoingArbitraryCalls 152,
    // completedArbitraryCalls 160 — what Size() sums (cache.go:534-547).
    cache_entry_maps: &[32, 128, 152, 160],
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
        LockName {
            waiter_prefix: "engine/filesync.(*changeCache).",
            rwmutex: false,
            name: "filesync changeCache.mu",
        },
    ],
};

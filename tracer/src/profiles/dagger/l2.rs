//! Code line L2: the egraph branch, commit 5c5fa454fe (the debugging guide's
//! commit; in no release). Registers, offsets and lines are from
//! shared/reference/engine-internals.md §1-§3, with its file:line references.
use tracer_common::{REG_G, REG_RDX, REG_RSP};

use super::{
    EntryMaps, LockName, Profile, Role,
    session_cache::{self, ContentKind, Design, WaitKind},
};
use crate::profiles::{
    At, Cap, G_PARENT_GOID, Light, ProbeDef, at_entry, string, string_regs, word,
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
pub(super) const fn error_text(name: &'static str, reg: u8) -> Cap {
    string(name, reg, &[], 0)
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
    change_sites: (64, 89),
};

/// filesync's change cache: the same file in every code line (engine-l3-l4.md §2).
pub(super) fn filesync_probes() -> Vec<ProbeDef> {
    vec![
        // change_cache.go:38 — callKey RDI/RSI -> (*cachedChange RAX; error RBX,RCX).
        ProbeDef::new(
            Role::ChangeGetOrInit,
            "engine/filesync.(*changeCache).getOrInit",
            At::Call,
        )
        .entry(&[string_regs("path", RDI)])
        .ret(&[error_text("error", RCX)]),
        // change_cache.go:92 — call site 64 (join) or 89 (new).
        ProbeDef::new(
            Role::ChangeWait,
            "engine/filesync.(*changeCache).wait",
            At::EntryPoint,
        )
        .entry(&[word("return_address", REG_RSP, &[0])]),
        // change_cache.go:147 — res RAX: callKey +8/+16, refCount +72 (before the decrement).
        ProbeDef::new(
            Role::ChangeRelease,
            "engine/filesync.(*cachedChange).release",
            At::EntryPoint,
        )
        .entry(&[string("path", RAX, &[], 8), word("refcount", RAX, &[72])]),
        // verifyExpectedChange: path RAX/RBX -> error RAX,RBX (non-nil = conflict).
        ProbeDef::new(
            Role::VerifyChange,
            "engine/filesync.verifyExpectedChange",
            At::Call,
        )
        .entry(&[string_regs("path", RAX)])
        .ret(&[error_text("error", RBX)]),
    ]
}

pub fn profile() -> Profile {
    let mut probes = vec![
        // session_cache.go:103 — c RAX; key.ID RDI; ConcurrencyKey RSI/R8; TTL R9;
        // DoNotCache R10B -> (AnyResult RAX,RBX; error RCX,RDI)
        ProbeDef::new(
            Role::SessionCall,
            "dagql.(*SessionCache).GetOrInitCall",
            At::Call,
        )
        .entry(&[id_digest("digest", RDI)])
        .ret(&[error_text("error", RDI)]),
        // cache.go:564 — same registers, c = *cache; result data ptr (RBX at RET)
        // points at Result{shared +0, id +8, hitCache +16}.
        ProbeDef::new(Role::BaseCall, "dagql.(*cache).GetOrInitCall", At::Call)
            .entry(&[id_digest("digest", RDI)])
            .ret(&[
                string("returned_digest", RBX, &[8, 0], 120),
                error_text("error", RDI),
            ])
            .light(Light::EntryOnly),
        // cache_egraph.go:401 — returns hit in CL.
        ProbeDef::new(Role::Lookup, "dagql.(*cache).lookupCacheForID", At::Call)
            .light(Light::EntryOnly),
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
        ]),
        // cache.go:257 — res RAX; refCount +184 (before the decrement), outputDigest +72.
        ProbeDef::new(
            Role::Release,
            "dagql.(*sharedResult).release",
            At::EntryPoint,
        )
        .entry(&[
            word("refcount", RAX, &[184]),
            string("digest", RAX, &[], 72),
        ]),
        // session_cache.go:239 — c RAX.
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
        // queries.go:18 — SetExpirationParams on the stack: CallKey [RSP+8],
        // StorageKey [RSP+24]: the storage key the TTL path computed.
        ProbeDef::new(
            Role::DbWrite,
            "dagql/db.(*Queries).SetExpiration",
            At::EntryPoint,
        )
        .entry(&[string("storage_key", REG_RSP, &[], 24)]),
        // session.go:249 — sess RCX: sessionID +0, dagqlCache *SessionCache +280 (set
        // inside the function, so read at its RETs from the entry's RCX).
        ProbeDef::new(
            Role::InitSession,
            "engine/server.(*Server).initializeDaggerSession",
            At::Call,
        )
        .entry(&[string("session_id", RCX, &[], 0)])
        .ret(&[
            at_entry(string("session_id", RCX, &[], 0)),
            at_entry(word("session_cache", RCX, &[280])),
        ]),
        // session.go:320 — sess RDI.
        ProbeDef::new(
            Role::RemoveSession,
            "engine/server.(*Server).removeDaggerSession",
            At::EntryPoint,
        )
        .entry(&[
            string("session_id", RDI, &[], 0),
            word("session_cache", RDI, &[280]),
        ]),
    ];
    probes.extend(filesync_probes());
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
            FILESYNC_LOCK,
        ],
        // Light mode has no lookup RET: a call that neither waited nor failed hit.
        sees_lookups: |light| !light,
        decoder: |setup| session_cache::build(setup, &DESIGN),
    }
}

pub(super) const FILESYNC_LOCK: LockName = LockName {
    waiter_prefix: "engine/filesync.(*changeCache).",
    rwmutex: false,
    name: "filesync changeCache.mu",
};

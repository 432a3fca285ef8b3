//! Code line L4: v1.0.0-beta.4 onward and main (HEAD 13d493ee6e), the ownership
//! design with `getOrInitCallInner`, `wait`'s `joined` argument and the wcprof
//! profiler. Three variants read differently (engine-l3-l4.md §4, §8, §9):
//! beta.4-7 (no `CacheDecision`), beta.8-10 (`CacheDecision` at req+56), and main
//! after beta.10 (`releaseOngoingCallHandoff`, ongoingCall fields moved by 8).
use super::{
    EntryMaps, Profile,
    l3::{CACHE_LOCKS, L3_ENTRY_MAPS, LOCKS, Layout, probes},
    ownership::{self, Design, JoinedBy},
};

pub const BETA4: &str = "beta.4-7";
pub const BETA10: &str = "beta.8-10";
pub const HEAD: &str = "main after beta.10";

const HANDOFF: &str = "dagql.(*Cache).releaseOngoingCallHandoff";
const EVIDENCE: &str = "core.recordCacheEvidence";
const WCPROF: &str = "engine/wcprof.BeginOp";
const INNER_EXEC: &str = "dagql.(*Cache).getOrInitCallInner.func1";

static DESIGN_BETA4: Design = design("L4 (beta.4-7)");
static DESIGN_BETA10: Design = design("L4 (beta.8-10)");
static DESIGN_HEAD: Design = design("L4 (main after beta.10)");

const fn design(line: &'static str) -> Design {
    Design {
        line,
        joined_by: JoinedBy::Argument,
        recursive_error: "recursive call detected",
    }
}

/// Picks the variant from which functions the binary has, refusing combinations no
/// release has.
pub fn select(has: &dyn Fn(&str) -> bool) -> Result<Profile, String> {
    let mut missing: Vec<&str> = [WCPROF, INNER_EXEC]
        .into_iter()
        .filter(|f| !has(f))
        .collect();
    if !missing.is_empty() {
        missing.sort_unstable();
        return Err(format!(
            "it has dagql.(*Cache).getOrInitCallInner but not {}",
            missing.join(", ")
        ));
    }
    match (has(EVIDENCE), has(HANDOFF)) {
        (false, false) => Ok(profile(BETA4)),
        (true, false) => Ok(profile(BETA10)),
        (true, true) => Ok(profile(HEAD)),
        (false, true) => Err(format!(
            "it has {HANDOFF} (main after beta.10) but not {EVIDENCE} (beta.8 onward)"
        )),
    }
}

/// Every variant, for reading a recording by name.
pub(super) fn variants() -> Vec<Profile> {
    [BETA4, BETA10, HEAD].into_iter().map(profile).collect()
}

fn profile(variant: &'static str) -> Profile {
    // ongoingCall.waiters: 96 up to beta.10, 104 after (e77865adc7); the layout of
    // beta.4-7 keeps beta.10's offsets for the fields read here.
    let (waiters, evidence, handoff) = match variant {
        BETA4 => (BETA4_ONGOING_WAITERS, None, false),
        BETA10 => (96, Some(56), false),
        _ => (104, Some(56), true),
    };
    let layout = Layout {
        body_func: "dagql.(*Cache).getOrInitCallInner",
        exec_func: INNER_EXEC,
        exec_closure_ongoing: L4_EXEC_CLOSURE_ONGOING,
        ongoing_waiters: waiters,
        ownership_count: 264,
        cache_evidence: evidence,
        joined_argument: true,
        handoff_release: handoff,
    };
    Profile {
        id: "L4",
        variant,
        description: "v1.0 betas and main: getOrInitCallInner, wcprof",
        probes: probes(&layout),
        cache_entry_maps: match variant {
            BETA4 => EntryMaps::Fixed(L3_ENTRY_MAPS),
            BETA10 => EntryMaps::ByVersion(beta10_entry_maps),
            _ => EntryMaps::Fixed(HEAD_ENTRY_MAPS),
        },
        locks: LOCKS,
        cache_locks: Some(CACHE_LOCKS),
        sees_lookups: |_| true,
        decoder: match variant {
            BETA4 => |setup| ownership::build(setup, &DESIGN_BETA4),
            BETA10 => |setup| ownership::build(setup, &DESIGN_BETA10),
            _ => |setup| ownership::build(setup, &DESIGN_HEAD),
        },
    }
}

/// The cache grew by three maps in beta.10 (448 B): ongoingCalls 56,
/// resultOutputEqClasses 200, ongoingArbitraryCalls 272, completedArbitraryCalls 280.
const HEAD_ENTRY_MAPS: &[u64] = &[56, 200, 272, 280];

/// beta.8 and beta.9 have the 424-byte cache of L3, beta.10 the 448-byte one, and no
/// function tells them apart: only the version stamped in the build does.
fn beta10_entry_maps(version: Option<&str>) -> Option<&'static [u64]> {
    match version?.trim_start_matches('v') {
        "1.0.0-beta.8" | "1.0.0-beta.9" => Some(L3_ENTRY_MAPS),
        "1.0.0-beta.10" => Some(HEAD_ENTRY_MAPS),
        _ => None,
    }
}

/// `ongoingCall.waiters` in beta.4-7 (computed from v1.0.0-beta.7 dagql/cache.go).
const BETA4_ONGOING_WAITERS: i32 = 96;

/// Offset of `*ongoingCall` in `getOrInitCallInner.func1`'s closure context.
const L4_EXEC_CLOSURE_ONGOING: i32 = 8;

//! filesync's change cache, the same file (`engine/filesync/change_cache.go`) in every
//! code line (engine-l3-l4.md §2): its probes and their decoding, shared by every
//! line's decoder.
use std::ops::Range;

use rustc_hash::FxHashMap as HashMap;

use tracer_common::REG_RSP;

use super::{LineSites, LockName, Role, call_sites, cap, error_text, site_of, slot, text, word};
use crate::{
    model::{
        cache_events::CacheEvent,
        calls::{CallRecord, CallStatus, OpenFrame},
    },
    probes::Event,
    profiles::{At, ProbeDef, Profile, string, string_regs, word as word_cap},
};

const RAX: u8 = 0;
const RCX: u8 = 2;
const RBX: u8 = 1;
const RDI: u8 = 3;

const GET_OR_INIT: &str = "engine/filesync.(*changeCache).getOrInit";
/// `wait`'s call sites in `getOrInit`: joining an ongoing change, after starting one.
const JOIN_LINE: u32 = 64;
const NEW_LINE: u32 = 89;

pub(super) const LOCK: LockName = LockName {
    waiter_prefix: "engine/filesync.(*changeCache).",
    rwmutex: false,
    name: "filesync changeCache.mu",
};

pub(super) fn probes() -> Vec<ProbeDef> {
    vec![
        // change_cache.go:38 — callKey RDI/RSI -> (*cachedChange RAX; error RBX,RCX).
        ProbeDef::new(Role::ChangeGetOrInit, GET_OR_INIT, At::Call)
            .entry(&[string_regs("path", RDI)])
            .ret(&[error_text("error", RCX)]),
        // change_cache.go:92 — called from line 64 (join) or 89 (new).
        ProbeDef::new(
            Role::ChangeWait,
            "engine/filesync.(*changeCache).wait",
            At::EntryPoint,
        )
        .entry(&[word_cap("return_address", REG_RSP, &[0])]),
        // change_cache.go:147 — res RAX: callKey +8/+16, refCount +72 (before the decrement).
        ProbeDef::new(
            Role::ChangeRelease,
            "engine/filesync.(*cachedChange).release",
            At::EntryPoint,
        )
        .entry(&[
            string("path", RAX, &[], 8),
            word_cap("refcount", RAX, &[72]),
        ]),
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Site {
    Join,
    New,
}

/// Decodes the change-cache probes; the line's decoder hands it every hit of theirs.
pub(super) struct Filesync {
    sites: Vec<(Range<u64>, Site)>,
    /// The target's load bias: return addresses minus it are link-time addresses.
    pub(super) bias: u64,
    /// Open `getOrInit` calls and the `wait` call site seen inside each.
    open: HashMap<u64, Option<Site>>,
    get_path: Option<usize>,
    wait_return: Option<usize>,
    release_path: Option<usize>,
    release_refcount: Option<usize>,
    verify_path: Option<usize>,
    verify_error: Option<usize>,
}

impl Filesync {
    pub(super) fn new(sites: &dyn LineSites, p: &Profile) -> anyhow::Result<Filesync> {
        let sites = call_sites(
            sites,
            GET_OR_INIT,
            "engine/filesync/change_cache.go",
            [(JOIN_LINE, Site::Join), (NEW_LINE, Site::New)],
        )?;
        Ok(Filesync {
            sites,
            bias: 0,
            open: HashMap::default(),
            get_path: slot(p, Role::ChangeGetOrInit, "path", false),
            wait_return: slot(p, Role::ChangeWait, "return_address", false),
            release_path: slot(p, Role::ChangeRelease, "path", false),
            release_refcount: slot(p, Role::ChangeRelease, "refcount", false),
            verify_path: slot(p, Role::VerifyChange, "path", false),
            verify_error: slot(p, Role::VerifyChange, "error", true),
        })
    }

    /// Open `getOrInit` calls.
    pub(super) fn open_frames(&self) -> usize {
        self.open.len()
    }

    /// A call began; true if it was one of filesync's.
    pub(super) fn entered(&mut self, role: Role, f: &OpenFrame) -> bool {
        if role == Role::ChangeGetOrInit {
            self.open.insert(f.frame, None);
        }
        matches!(role, Role::ChangeGetOrInit | Role::VerifyChange)
    }

    /// A point probe fired; true if it was one of filesync's.
    pub(super) fn point(
        &mut self,
        role: Role,
        event: &Event,
        within: Option<u64>,
        out: &mut Vec<CacheEvent>,
    ) -> bool {
        let caps = &event.captures;
        match role {
            Role::ChangeWait => {
                let site = site_of(&self.sites, self.bias, word(caps, self.wait_return));
                if let Some(s) = within.and_then(|w| self.open.get_mut(&w)) {
                    *s = site;
                }
                true
            }
            Role::ChangeRelease => {
                let refcount = word(caps, self.release_refcount);
                out.push(CacheEvent::ChangeRelease {
                    path: text(cap(caps, self.release_path)),
                    refcount_after: refcount.map(|r| r as i64 - 1),
                });
                true
            }
            _ => false,
        }
    }

    /// A call ended; true if it was one of filesync's.
    pub(super) fn completed(
        &mut self,
        role: Role,
        rec: &CallRecord,
        out: &mut Vec<CacheEvent>,
    ) -> bool {
        let ret = rec.ret.unwrap_or_default();
        let returned = rec.status == CallStatus::Returned;
        match role {
            Role::ChangeGetOrInit => {
                let site = self.open.remove(&rec.frame).flatten();
                let outcome = if !returned {
                    "unfinished"
                } else if ret[1] != 0 {
                    "error"
                } else {
                    match site {
                        Some(Site::Join) => "join",
                        Some(Site::New) => "new",
                        None => "hit",
                    }
                };
                out.push(CacheEvent::Change {
                    path: text(cap(&rec.entry_captures, self.get_path)),
                    outcome,
                    goid: rec.goid.unwrap_or_default(),
                    duration_ns: rec.duration_ns(),
                });
                true
            }
            Role::VerifyChange => {
                if returned && ret[0] != 0 {
                    out.push(CacheEvent::Conflict {
                        path: text(cap(&rec.entry_captures, self.verify_path)),
                        error: text(cap(&rec.ret_captures, self.verify_error)),
                    });
                }
                true
            }
            _ => false,
        }
    }
}

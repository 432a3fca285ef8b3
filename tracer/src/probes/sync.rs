//! Probes on Go's sync slow paths, the scheduler's park/ready, and (optionally) the inlined
//! Mutex fast paths of chosen packages; and the decoding of their hits into [`SyncEvent`]s.
//!
//! What each probe costs is why the set is chosen per command: the slow paths only run
//! when a lock is contended, `gopark`/`ready` run on every block and wake-up, and a fast-path
//! site runs on every Lock/Unlock it was placed in.
use anyhow::Context;
use tracer_common::{CaptureSpec, ProbeKind, ProbeSpec, REG_FLAGS, capture_base, capture_kind};

use super::{
    Event,
    plan::{GOEXIT_PROBE_ID, PlanSet},
};
use crate::gobin::{CasResult, GoBinary, MutexSite, SiteAddress, SiteKind};

const LOCK_SLOW: u32 = 1;
const UNLOCK_SLOW: u32 = 2;
const SEMACQUIRE: u32 = 3;
const SEMRELEASE: u32 = 4;
const GOPARK: u32 = 5;
const READY: u32 = 6;
/// A method of the engine's cache: its receiver is the cache (a discovery probe).
const CACHE_RECEIVER: u32 = 7;
/// Probe ids from here on are fast-path sites (id - SITE_BASE = index into the sites).
const SITE_BASE: u32 = 0x1000;

/// Fast-path sites at most: each has a spec in the kernel's 4096-entry spec map, beside
/// the other probes'.
const MAX_SITES: usize = 3000;

/// ZF in RFLAGS: set after a `CMPXCHG` that swapped.
const FLAGS_ZF: u64 = 1 << 6;

/// Which families of probes to attach.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Mutex/RWMutex slow paths and the runtime semaphores, with the waiter's stack.
    pub contention: bool,
    /// `runtime.gopark` and `runtime.ready` (every block and wake-up), and goroutine exits.
    pub scheduler: bool,
    /// Packages whose inlined Mutex Lock/Unlock get probes (ownership).
    pub own: Option<regex::Regex>,
    /// Functions whose receiver (RAX at entry) is the engine's cache, probed until the
    /// first hit tells its address (full names; absent ones are skipped).
    pub cache_receivers: Vec<String>,
}

/// The kind of object a slow path waits on or releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prim {
    /// A `sync.Mutex` (also the writer mutex at the start of a `sync.RWMutex`).
    Mutex,
    /// A runtime semaphore (what RWMutex readers and writers sleep on).
    Sema,
}

/// One decoded hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEvent {
    /// `goid` entered a slow path to wait for `addr` (the mutex, or the semaphore).
    WaitStart {
        goid: u64,
        ts: u64,
        prim: Prim,
        addr: u64,
        stack: Vec<u64>,
    },
    /// The slow path returned: for a Mutex, `goid` now holds it.
    WaitEnd {
        goid: u64,
        ts: u64,
        prim: Prim,
    },
    /// `goid` released `addr` through a slow path (`unlockSlow`, `semrelease1`): every
    /// Mutex unlock while someone waits goes this way.
    Released {
        goid: u64,
        ts: u64,
        prim: Prim,
        addr: u64,
    },
    /// A probed fast-path site: `goid` took (`acquired`) or released the mutex at `addr`.
    Site {
        goid: u64,
        ts: u64,
        addr: u64,
        acquired: bool,
        site: usize,
    },
    Parked {
        goid: u64,
        ts: u64,
        reason: u8,
    },
    Readied {
        goid: u64,
        ts: u64,
    },
    Exited {
        goid: u64,
        ts: u64,
    },
    /// A method of the engine's cache was called on the cache at `addr`.
    CacheReceiver {
        addr: u64,
    },
}

/// The planned probes and what is needed to decode their hits.
pub struct SyncProbes {
    pub plan: PlanSet,
    pub sites: Vec<MutexSite>,
    /// Functions this Go version lacks or that were not found (reported, not fatal).
    pub missing: Vec<&'static str>,
}

impl SyncProbes {
    pub fn plan(binary: &GoBinary, options: &SyncOptions) -> anyhow::Result<SyncProbes> {
        let funcs = binary.sync_functions();
        let mut plan = PlanSet::default();
        let mut missing = Vec::new();
        let stack_spec = ProbeSpec {
            stack: 1,
            ..ProbeSpec::default()
        };
        if options.contention {
            let calls = [
                ("lockSlow", funcs.lock_slow, LOCK_SLOW),
                ("semacquire1", funcs.semacquire, SEMACQUIRE),
            ];
            for (name, f, id) in calls {
                let Some(f) = f else {
                    missing.push(name);
                    continue;
                };
                plan.add_call(binary, f, id, false)?;
                plan.spec(id, ProbeKind::FuncEntry, Some(stack_spec));
            }
            for (name, f, id) in [
                ("unlockSlow", funcs.unlock_slow, UNLOCK_SLOW),
                ("semrelease1", funcs.semrelease, SEMRELEASE),
            ] {
                match f {
                    Some(f) => plan.add_call(binary, f, id, true)?,
                    None => missing.push(name),
                }
            }
        }
        if options.scheduler {
            match funcs.gopark {
                Some(f) => plan.add_entry_point(binary, f, GOPARK)?,
                None => missing.push("gopark"),
            }
            match funcs.ready {
                Some(f) => {
                    plan.add_entry_point(binary, f, READY)?;
                    // runtime.ready runs on g0: the woken goroutine's id is gp.goid (RAX).
                    let goid = binary.goid_offset().offset as i32;
                    let mut spec = ProbeSpec {
                        ncaptures: 1,
                        ..ProbeSpec::default()
                    };
                    spec.captures[0] = word_capture(0, Some(goid));
                    plan.spec(READY, ProbeKind::Point, Some(spec));
                }
                None => missing.push("ready"),
            }
            plan.add_goexit(binary)?;
        }
        for name in &options.cache_receivers {
            if let Some(f) = binary.functions().iter().find(|f| &f.name == name) {
                plan.add_discovery_point(binary, f, CACHE_RECEIVER)?;
            }
        }
        let mut sites = Vec::new();
        if let Some(own) = &options.own {
            sites = binary.mutex_sites(own);
            if sites.len() > MAX_SITES {
                anyhow::bail!(
                    "`--own {}` matches {} Lock/Unlock sites, more than {MAX_SITES} (hint: name only the packages whose locks you suspect; each site costs a trap per Lock or Unlock)",
                    own.as_str(),
                    sites.len()
                );
            }
            for (i, site) in sites.iter().enumerate() {
                let id = SITE_BASE + i as u32;
                plan.add_point(binary, site.probe_pc, id)
                    .with_context(|| format!("fast-path site in {}", site.function))?;
                plan.spec(id, ProbeKind::Point, Some(site_spec(site)));
            }
        }
        Ok(SyncProbes {
            plan,
            sites,
            missing,
        })
    }

    /// The decoder of a replayed `tracer locks` recording (no probes, no fast-path sites).
    pub fn for_replay() -> SyncProbes {
        SyncProbes {
            plan: PlanSet::default(),
            sites: Vec::new(),
            missing: Vec::new(),
        }
    }

    /// Decodes one hit; `bias` is the target's load bias (for fixed site addresses).
    pub fn decode(&self, ev: Event, bias: u64) -> Option<SyncEvent> {
        let c = ev.call;
        let (goid, ts) = (c.goid, c.ts_ns);
        let kind = ProbeKind::from_u32(c.kind)?;
        Some(match (c.probe_id, kind) {
            (LOCK_SLOW | SEMACQUIRE, ProbeKind::FuncEntry) => SyncEvent::WaitStart {
                goid,
                ts,
                prim: prim_of(c.probe_id),
                addr: c.regs[0],
                stack: ev.stack,
            },
            (LOCK_SLOW | SEMACQUIRE, ProbeKind::FuncReturn) => SyncEvent::WaitEnd {
                goid,
                ts,
                prim: prim_of(c.probe_id),
            },
            (UNLOCK_SLOW, ProbeKind::FuncEntry) => SyncEvent::Released {
                goid,
                ts,
                prim: Prim::Mutex,
                addr: c.regs[0],
            },
            (SEMRELEASE, ProbeKind::FuncEntry) => SyncEvent::Released {
                goid,
                ts,
                prim: Prim::Sema,
                addr: c.regs[0],
            },
            (GOPARK, _) => SyncEvent::Parked {
                goid,
                ts,
                reason: c.regs[2] as u8,
            },
            (READY, _) => SyncEvent::Readied {
                goid: ev.capture(0)?.word()?,
                ts,
            },
            (GOEXIT_PROBE_ID, _) => SyncEvent::Exited { goid, ts },
            (CACHE_RECEIVER, _) => SyncEvent::CacheReceiver { addr: c.regs[0] },
            (id, ProbeKind::Point) if id >= SITE_BASE => {
                let index = (id - SITE_BASE) as usize;
                let site = self.sites.get(index)?;
                let reg = |i: usize| ev.capture(i).and_then(|c| c.word());
                let addr = match site.address {
                    SiteAddress::Fixed(a) => a.wrapping_add(bias),
                    SiteAddress::Regs {
                        index: idx, disp, ..
                    } => {
                        let mut a = reg(0)?.wrapping_add(disp as u64);
                        if let Some((_, scale)) = idx {
                            a = a.wrapping_add(reg(1)?.wrapping_mul(scale as u64));
                        }
                        a
                    }
                };
                let acquired = match (site.kind, site.success) {
                    (SiteKind::Release, _) => false,
                    (SiteKind::Acquire, CasResult::Zf) => reg(2)? & FLAGS_ZF != 0,
                    (SiteKind::Acquire, CasResult::LowByte(_)) => reg(2)? & 0xff != 0,
                    (SiteKind::Acquire, CasResult::None) => return None,
                };
                if !acquired {
                    // The CAS failed: the Lock goes on to its slow path, seen there.
                    return None;
                }
                SyncEvent::Site {
                    goid,
                    ts,
                    addr,
                    acquired,
                    site: index,
                }
            }
            _ => return None,
        })
    }
}

fn prim_of(probe_id: u32) -> Prim {
    if probe_id == LOCK_SLOW {
        Prim::Mutex
    } else {
        Prim::Sema
    }
}

/// Register `reg`, optionally dereferenced once at `offset`.
fn word_capture(reg: u8, offset: Option<i32>) -> CaptureSpec {
    let mut c = CaptureSpec {
        base: capture_base::REG,
        reg,
        kind: capture_kind::WORD,
        ..CaptureSpec::default()
    };
    if let Some(off) = offset {
        c.nderefs = 1;
        c.derefs[0] = off;
    }
    c
}

/// Captures of a site probe: 0 = base register, 1 = index register, 2 = the CAS result
/// (RFLAGS, or the SETE register). Unused slots have no base and read nothing.
fn site_spec(site: &MutexSite) -> ProbeSpec {
    let mut spec = ProbeSpec {
        ncaptures: 3,
        ..ProbeSpec::default()
    };
    if let SiteAddress::Regs { base, index, .. } = site.address {
        spec.captures[0] = word_capture(base, None);
        if let Some((reg, _)) = index {
            spec.captures[1] = word_capture(reg, None);
        }
    }
    match site.success {
        CasResult::Zf => spec.captures[2] = word_capture(REG_FLAGS, None),
        CasResult::LowByte(reg) => spec.captures[2] = word_capture(reg, None),
        CasResult::None => {}
    }
    spec
}

//! Go versions: parsing `go1.X.Y` strings, the supported range, and per-version offsets of
//! runtime structures for binaries without DWARF.

/// Supported Go minor versions (inclusive): go1.19 through go1.27.
pub const SUPPORTED_GO: (u32, u32) = (19, 27);

/// Parses a Go version string as found in `.go.buildinfo` or printed by `go version`:
/// `go1.26.6` → (1, 26, 6), `go1.21rc2` → (1, 21, 0), `go1.22.1 X:boringcrypto` → (1, 22, 1).
/// A `devel ` prefix is accepted (`devel go1.27-abc…`).
pub fn parse_go_version(s: &str) -> Option<(u32, u32, u32)> {
    let s = s.trim();
    let s = s.strip_prefix("devel ").unwrap_or(s);
    let rest = s.strip_prefix("go")?;
    let mut parts = [0u32; 3];
    let mut count = 0;
    for piece in rest.split('.') {
        let digits: &str = &piece[..piece
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(piece.len())];
        if digits.is_empty() || count == parts.len() {
            break;
        }
        parts[count] = digits.parse().ok()?;
        count += 1;
        // A suffix (rc1, -hash, " X:…") ends the numeric part.
        if digits.len() != piece.len() {
            break;
        }
    }
    (count >= 2).then_some((parts[0], parts[1], parts[2]))
}

/// True when the version's minor number is inside [`SUPPORTED_GO`] (and the major is 1).
pub(crate) fn is_supported(v: (u32, u32, u32)) -> bool {
    v.0 == 1 && (SUPPORTED_GO.0..=SUPPORTED_GO.1).contains(&v.1)
}

/// Byte offsets of fields of the Go runtime's `g` (goroutine) and `m` (thread) structs on
/// linux/amd64. All offsets are from the start of `g` unless the name says `m_`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GOffsets {
    /// `g.goid`: the goroutine id.
    pub goid: u64,
    /// `g.stack.lo` / `g.stack.hi`: bounds of the goroutine's stack.
    pub stack_lo: u64,
    pub stack_hi: u64,
    /// `g.m`: the thread (M) running the goroutine, if any.
    pub m: u64,
    /// `g.sched.sp` / `.pc` / `.bp`: registers saved when the goroutine is not running.
    pub sched_sp: u64,
    pub sched_pc: u64,
    pub sched_bp: u64,
    /// `g.atomicstatus` (uint32: _Grunnable, _Gwaiting, …).
    pub atomicstatus: u64,
    /// `g.waitreason` (uint8, meaning of values varies by version).
    pub waitreason: u64,
    /// `g.gopc`: PC of the `go` statement that created the goroutine.
    pub gopc: u64,
    /// `g.startpc`: PC of the goroutine's function.
    pub startpc: u64,
    /// `g.parentGoid` (Go 1.21+).
    pub parent_goid: Option<u64>,
    /// `m.curg`: the user goroutine an M is running (R14 is g0 on the system stack).
    pub m_curg: u64,
}

/// Offsets for binaries without DWARF, keyed by Go minor version.
///
/// Measured from the DWARF of unstripped linux/amd64 `CGO_ENABLED=0` builds of a small
/// program with go1.19.8, go1.21.13, go1.22.10, go1.23.9, go1.24.11, go1.25.5, go1.26.6 and
/// go1.27.3 (the tests rebuild it with every toolchain found and compare with DWARF).
/// go1.20 was not available as a toolchain: its entry is computed by hand from go1.20's
/// runtime/runtime2.go, whose `g` (and `m`, `gobuf`) layout equals go1.19's in every field
/// listed here (it differs only in field types: atomic.Uint32 status, uint64 goid).
pub(crate) fn g_offsets_for(minor: u32) -> Option<GOffsets> {
    Some(match minor {
        19 | 20 => GO_1_19,
        21 | 22 => GO_1_21,
        23 | 24 => GO_1_23,
        25 => GO_1_25,
        26 | 27 => GO_1_26,
        _ => return None,
    })
}

/// go1.19.8 DWARF (and go1.20 by source, see above).
const GO_1_19: GOffsets = GOffsets {
    goid: 152,
    stack_lo: 0,
    stack_hi: 8,
    m: 48,
    sched_sp: 56,
    sched_pc: 64,
    sched_bp: 104,
    atomicstatus: 144,
    waitreason: 176,
    gopc: 296,
    startpc: 312,
    parent_goid: None,
    m_curg: 192,
};

/// go1.21.13 and go1.22.10 DWARF: `parentGoid` added, the execution-trace fields before
/// `gopc` moved out of `g`.
const GO_1_21: GOffsets = GOffsets {
    gopc: 280,
    startpc: 296,
    parent_goid: Some(272),
    ..GO_1_19
};

/// go1.23.9 and go1.24.11 DWARF: `g.syscallbp` added before `goid`, shifting it to 160.
const GO_1_23: GOffsets = GOffsets {
    goid: 160,
    atomicstatus: 152,
    waitreason: 184,
    gopc: 288,
    startpc: 304,
    parent_goid: Some(280),
    ..GO_1_21
};

/// go1.25.5 DWARF: `gobuf.ret` removed, so `g.sched` (and `m.morebuf`) shrank by 8.
const GO_1_25: GOffsets = GOffsets {
    goid: 152,
    sched_bp: 96,
    atomicstatus: 144,
    waitreason: 176,
    gopc: 280,
    startpc: 296,
    parent_goid: Some(272),
    m_curg: 184,
    ..GO_1_23
};

/// go1.26.6 and go1.27.3 DWARF: the fields between `waitreason` and `parentGoid` grew by 8.
const GO_1_26: GOffsets = GOffsets {
    gopc: 288,
    startpc: 304,
    parent_goid: Some(280),
    ..GO_1_25
};

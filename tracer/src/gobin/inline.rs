//! Inlined frames from the pclntab inline tree: at a PC inside `f`, PCDATA table 2
//! (`_PCDATA_InlTreeIndex`) gives the index of the innermost inlined call in FUNCDATA 3
//! (`_FUNCDATA_InlTree`), each entry naming the inlined function and the PC in its parent
//! where the call was; repeating from that PC walks out to `f` itself (runtime/symtabinl.go).

use super::bytes::u32_at;
use super::pclntab::Header;
use super::{Function, GoBinary};

const PCDATA_INL_TREE_INDEX: u32 = 2;
pub(crate) const FUNCDATA_INL_TREE: u8 = 3;
/// Deeper chains than this mean a corrupt table (the compiler's inlining budget is far lower).
const MAX_INLINE_DEPTH: usize = 100;

/// One logical frame at a PC: an inlined call or the physical function itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFrame {
    pub func: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// True for a call the compiler inlined into its caller (not the physical function).
    pub inlined: bool,
}

/// An inline tree entry, in either format.
pub(crate) struct InlinedCall {
    nameoff: u32,
    parent_pc: u32,
}

impl GoBinary {
    /// The logical frames at `pc` in `f`, innermost first; the last is `f` itself. Use the
    /// PC of the instruction in question (for return addresses, `pc - 1`).
    pub fn frames_at(&self, f: &Function, pc: u64) -> Vec<InlineFrame> {
        if !self.owns(f) {
            return vec![InlineFrame {
                func: f.name.clone(),
                file: None,
                line: None,
                inlined: false,
            }];
        }
        let tab = &self.data[self.pclntab.clone()];
        let tree = self.inline_tree_base(f);
        frames(&self.header, tab, f, pc, |ix| {
            let (size, _, _) = entry_layout(self.header.go120);
            let at = tree?.checked_add(ix.checked_mul(size)?)?;
            inlined_call(&self.header, self.elf.read_vaddr(&self.data, at, size)?)
        })
    }

    /// Virtual address of `f`'s inline tree, if it has one.
    fn inline_tree_base(&self, f: &Function) -> Option<u64> {
        let tab = &self.data[self.pclntab.clone()];
        let off = self.header.funcdata_offset(tab, f, FUNCDATA_INL_TREE)?;
        let gofunc = self.gofunc()?;
        gofunc.checked_add(u64::from(off))
    }

    /// `moduledata.gofunc`, the address FUNCDATA offsets (inline trees) count from (cached).
    pub fn gofunc(&self) -> Option<u64> {
        *self.gofunc.get_or_init(|| {
            let off = super::runtime::moduledata_gofunc(self.minor())?;
            self.moduledata_word(off)
        })
    }
}

/// The logical frames at `pc` in `f` (see [`GoBinary::frames_at`]), with `entry(ix)` reading
/// entry `ix` of `f`'s inline tree wherever it lives.
pub(crate) fn frames(
    header: &Header,
    tab: &[u8],
    f: &Function,
    pc: u64,
    entry: impl Fn(u64) -> Option<InlinedCall>,
) -> Vec<InlineFrame> {
    let line_at = |pc: u64| {
        if pc < f.entry || pc >= f.end {
            return None;
        }
        header.source_line(tab, f, pc)
    };
    let mut out = Vec::new();
    let mut pc = pc;
    while out.len() < MAX_INLINE_DEPTH {
        let Some(ix) = header
            .pcdata_value(tab, f, PCDATA_INL_TREE_INDEX, pc)
            .filter(|&ix| ix >= 0)
        else {
            break;
        };
        let Some(call) = entry(ix as u64) else {
            break;
        };
        let line = line_at(pc);
        out.push(InlineFrame {
            func: header.name_at(tab, call.nameoff).unwrap_or("?").to_owned(),
            file: line.as_ref().map(|l| l.0.clone()),
            line: line.map(|l| l.1),
            inlined: true,
        });
        pc = f.entry.wrapping_add(u64::from(call.parent_pc));
    }
    let line = line_at(pc);
    out.push(InlineFrame {
        func: f.name.clone(),
        file: line.as_ref().map(|l| l.0.clone()),
        line: line.map(|l| l.1),
        inlined: false,
    });
    out
}

/// Entry size and the offsets of the name and parent PC in it: go1.20+ `inlinedCall`
/// {funcID u8, _ [3]u8, nameOff i32, parentPc i32, startLine i32} (16 bytes); go1.18/1.19
/// {parent i16, funcID u8, _ u8, file i32, line i32, func_ i32 (name offset), parentPc i32}
/// (20 bytes).
pub(crate) fn entry_layout(go120: bool) -> (u64, usize, usize) {
    if go120 { (16, 4, 8) } else { (20, 12, 16) }
}

/// Decodes one inline tree entry from its bytes.
pub(crate) fn inlined_call(header: &Header, bytes: &[u8]) -> Option<InlinedCall> {
    let (_, name_at, parent_at) = entry_layout(header.go120);
    Some(InlinedCall {
        nameoff: u32_at(bytes, name_at)?,
        parent_pc: u32_at(bytes, parent_at)?,
    })
}

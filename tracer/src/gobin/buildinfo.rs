//! `.go.buildinfo`: the Go version and module information that `go version -m` prints.
//!
//! Layout: a 32-byte header `"\xff Go buildinf:"`, pointer size (1 byte), flags (1 byte).
//! With flags bit 1 (Go 1.18+) the header is followed by two varint-length-prefixed strings,
//! the Go version and the module info. Older binaries instead hold, at offset 16, two
//! pointers to Go string headers; we read those only to name the version in an error.

use super::bytes::{to_usize, u64_at, uvarint_at};

pub(crate) const MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
const FLAG_INLINE_STRINGS: u8 = 2;
const FLAG_BIG_ENDIAN: u8 = 1;
/// The module info is framed by two 16-byte sentinels (cmd/go's infoStart / infoEnd).
const SENTINEL_LEN: usize = 16;

/// Build information embedded by the Go toolchain, as `go version -m` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildInfo {
    /// e.g. `go1.26.6`.
    pub go_version: String,
    /// Package path of the main package, e.g. `github.com/dagger/dagger/cmd/engine`.
    pub path: String,
    /// The main module (empty path when built outside a module).
    pub main: Module,
    pub deps: Vec<Module>,
    /// Build settings in order, e.g. (`-ldflags`, `-s -w`), (`CGO_ENABLED`, `0`), (`GOARCH`, `amd64`).
    pub settings: Vec<(String, String)>,
}

impl BuildInfo {
    /// The value of a build setting, e.g. `setting("GOARCH")`.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Module {
    pub path: String,
    pub version: String,
    pub sum: String,
    /// Set when a `replace` directive applied.
    pub replace: Option<Box<Module>>,
}

/// Whether `data` starts with something that looks like a .go.buildinfo header, for scans
/// of files without section headers (the magic alone also occurs in tools like this one).
pub(crate) fn plausible(data: &[u8]) -> bool {
    let inline_version_ok = || {
        varint_bytes(data, HEADER_LEN)
            .is_some_and(|(v, _)| v.starts_with(b"go") || v.starts_with(b"devel"))
    };
    data.len() >= HEADER_LEN
        && data.starts_with(MAGIC)
        && data[MAGIC.len()] == 8
        && data[MAGIC.len() + 1] & !(FLAG_INLINE_STRINGS | FLAG_BIG_ENDIAN) == 0
        && (data[MAGIC.len() + 1] & FLAG_INLINE_STRINGS == 0 || inline_version_ok())
}

/// Parses the section contents. `read_vaddr(addr, len)` resolves addresses for the
/// pre-1.18 pointer format.
pub(crate) fn parse(
    section: &[u8],
    read_vaddr: &dyn Fn(u64, u64) -> Option<Vec<u8>>,
) -> Result<BuildInfo, String> {
    if section.len() < HEADER_LEN || !section.starts_with(MAGIC) {
        return Err("the .go.buildinfo header is missing".into());
    }
    let ptr_size = section[MAGIC.len()];
    let flags = section[MAGIC.len() + 1];
    let (version, modinfo) = if flags & FLAG_INLINE_STRINGS != 0 {
        let (version, next) = varint_bytes(section, HEADER_LEN)
            .ok_or("the Go version string in .go.buildinfo is truncated")?;
        let modinfo = varint_bytes(section, next).map_or(&[][..], |(m, _)| m);
        (version.to_vec(), modinfo.to_vec())
    } else {
        if ptr_size != 8 || flags & FLAG_BIG_ENDIAN != 0 {
            return Err(format!(
                "unexpected .go.buildinfo pointer size {ptr_size} / flags {flags:#x} (not amd64?)"
            ));
        }
        let read_ptr_string = |at: usize| -> Option<Vec<u8>> {
            let header = read_vaddr(u64_at(section, at)?, 16)?;
            read_vaddr(u64_at(&header, 0)?, u64_at(&header, 8)?)
        };
        let version =
            read_ptr_string(16).ok_or("cannot resolve the Go version pointer in .go.buildinfo")?;
        (version, read_ptr_string(24).unwrap_or_default())
    };
    let mut info = parse_modinfo(&String::from_utf8_lossy(strip_sentinels(&modinfo)));
    info.go_version = String::from_utf8_lossy(&version).into_owned();
    Ok(info)
}

/// A varint-length-prefixed byte string at `off`, and the offset after it.
fn varint_bytes(data: &[u8], off: usize) -> Option<(&[u8], usize)> {
    let (len, n) = uvarint_at(data, off)?;
    let start = off + n;
    let end = start.checked_add(to_usize(len)?)?;
    Some((data.get(start..end)?, end))
}

/// The sentinels are binary, so this works on bytes, before any UTF-8 decoding.
fn strip_sentinels(modinfo: &[u8]) -> &[u8] {
    let n = modinfo.len();
    // Same test as debug/buildinfo: framed text ends with '\n' just before the end sentinel.
    if n > 2 * SENTINEL_LEN && modinfo[n - SENTINEL_LEN - 1] == b'\n' {
        &modinfo[SENTINEL_LEN..n - SENTINEL_LEN]
    } else {
        &[]
    }
}

/// Parses the text of `runtime/debug.BuildInfo.String()`: tab-separated lines
/// `path`, `mod`, `dep`, `=>` (replacement of the line before) and `build key=value`.
fn parse_modinfo(text: &str) -> BuildInfo {
    let mut info = BuildInfo::default();
    // Which module a following `=>` line replaces: None = main, Some(i) = deps[i].
    let mut last: Option<Option<usize>> = None;
    for line in text.lines() {
        let Some((kind, rest)) = line.split_once('\t') else {
            continue;
        };
        match kind {
            "path" => info.path = rest.to_owned(),
            "mod" => {
                info.main = module(rest);
                last = Some(None);
            }
            "dep" => {
                info.deps.push(module(rest));
                last = Some(Some(info.deps.len() - 1));
            }
            "=>" => {
                let target = match last {
                    Some(None) => Some(&mut info.main),
                    Some(Some(i)) => info.deps.get_mut(i),
                    None => None,
                };
                if let Some(m) = target {
                    m.replace = Some(Box::new(module(rest)));
                }
            }
            "build" => {
                if let Some(kv) = build_setting(rest) {
                    info.settings.push(kv);
                }
            }
            _ => {}
        }
    }
    info
}

fn module(fields: &str) -> Module {
    let mut f = fields.split('\t');
    let mut next = || f.next().unwrap_or("").to_owned();
    Module {
        path: next(),
        version: next(),
        sum: next(),
        replace: None,
    }
}

/// `key=value`, where key and value may be Go-quoted (`-ldflags="-s -w"`).
fn build_setting(kv: &str) -> Option<(String, String)> {
    let (key, rest) = if kv.starts_with(['"', '`']) {
        let (key, len) = unquote_prefix(kv)?;
        (key, kv.get(len..)?.strip_prefix('=')?)
    } else {
        let (k, v) = kv.split_once('=')?;
        (k.to_owned(), v)
    };
    let value = if rest.starts_with(['"', '`']) {
        unquote_prefix(rest)?.0
    } else {
        rest.to_owned()
    };
    Some((key, value))
}

/// Decodes a Go quoted string at the start of `s` (as written by `strconv.Quote`, or a raw
/// backquoted string); returns the text and the number of bytes consumed.
fn unquote_prefix(s: &str) -> Option<(String, usize)> {
    let mut chars = s.char_indices();
    let (_, quote) = chars.next()?;
    if quote == '`' {
        let end = s[1..].find('`')? + 1;
        return Some((s[1..end].to_owned(), end + 1));
    }
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 1)),
            '\\' => {
                let (_, e) = chars.next()?;
                let mut hex = |n: usize| -> Option<u32> {
                    let digits: String = (0..n).filter_map(|_| chars.next().map(|x| x.1)).collect();
                    u32::from_str_radix(&digits, 16).ok()
                };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\x07'),
                    'b' => out.push('\x08'),
                    'f' => out.push('\x0c'),
                    'v' => out.push('\x0b'),
                    'x' => out.push(char::from_u32(hex(2)?)?),
                    'u' => out.push(char::from_u32(hex(4)?)?),
                    'U' => out.push(char::from_u32(hex(8)?)?),
                    other => out.push(other),
                }
            }
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gobin_modinfo_lines() {
        let text = "path\texample.com/cmd/x\nmod\texample.com\t(devel)\t\n\
                    dep\tgolang.org/x/sys\tv0.1.0\th1:abc=\n=>\t../sys\t(devel)\t\n\
                    build\t-ldflags=\"-s -w\"\nbuild\tCGO_ENABLED=0\nbuild\t\"we ird\"=`v`\n";
        let info = parse_modinfo(text);
        assert_eq!(info.path, "example.com/cmd/x");
        assert_eq!(info.main.path, "example.com");
        assert_eq!(info.main.version, "(devel)");
        assert_eq!(info.deps.len(), 1);
        assert_eq!(info.deps[0].sum, "h1:abc=");
        assert_eq!(info.deps[0].replace.as_ref().unwrap().path, "../sys");
        assert_eq!(info.setting("-ldflags"), Some("-s -w"));
        assert_eq!(info.setting("CGO_ENABLED"), Some("0"));
        assert_eq!(info.setting("we ird"), Some("v"));
    }

    #[test]
    fn gobin_unquote() {
        assert_eq!(
            unquote_prefix(r#""a\"b\x41\u00e9"rest"#),
            Some(("a\"bAé".to_owned(), 16))
        );
        assert_eq!(unquote_prefix("\"unterminated"), None);
    }
}

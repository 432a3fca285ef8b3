//! A small allocation-free JSON-object writer for the hot per-event records.
//! serde_json stays in use for everything else; at hundreds of thousands of
//! records a second the generic path cost ~0.5 us of CPU per record, which on a
//! small machine is taken from the traced program.

/// Appends one JSON object to a byte buffer, field by field.
pub struct JsonObject<'a> {
    buf: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> JsonObject<'a> {
    pub fn begin(buf: &'a mut Vec<u8>) -> JsonObject<'a> {
        buf.push(b'{');
        JsonObject { buf, first: true }
    }

    /// An object whose first fields are already in `buf` (written raw).
    pub fn continued(buf: &'a mut Vec<u8>) -> JsonObject<'a> {
        JsonObject { buf, first: false }
    }

    /// The buffer, to continue a nested object written partly raw.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        self.buf
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    /// A value that is already JSON (e.g. a string escaped once up front).
    pub fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        self.key(key);
        self.buf.extend_from_slice(json.as_bytes());
        self
    }

    pub fn u64(&mut self, key: &str, v: u64) -> &mut Self {
        self.key(key);
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        self
    }

    pub fn opt_u64(&mut self, key: &str, v: Option<u64>) -> &mut Self {
        match v {
            Some(v) => self.u64(key, v),
            None => self.raw(key, "null"),
        }
    }

    pub fn opt_i64(&mut self, key: &str, v: Option<i64>) -> &mut Self {
        let Some(v) = v else {
            return self.raw(key, "null");
        };
        self.key(key);
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        self
    }

    pub fn opt_u64s(&mut self, key: &str, v: Option<&[u64]>) -> &mut Self {
        let Some(values) = v else {
            return self.raw(key, "null");
        };
        self.key(key);
        self.buf.push(b'[');
        let mut itoa = itoa::Buffer::new();
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            self.buf.extend_from_slice(itoa.format(*v).as_bytes());
        }
        self.buf.push(b']');
        self
    }

    pub fn bool(&mut self, key: &str, v: bool) -> &mut Self {
        self.raw(key, if v { "true" } else { "false" })
    }

    pub fn opt_bool(&mut self, key: &str, v: Option<bool>) -> &mut Self {
        match v {
            Some(v) => self.bool(key, v),
            None => self.raw(key, "null"),
        }
    }

    /// A string, escaped as serde_json escapes it.
    pub fn str(&mut self, key: &str, v: &str) -> &mut Self {
        self.key(key);
        string(self.buf, v);
        self
    }

    pub fn opt_str(&mut self, key: &str, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.str(key, v),
            None => self.raw(key, "null"),
        }
    }

    /// Any value, through serde_json (for the rare nested parts of a record).
    pub fn value<T: serde::Serialize + ?Sized>(&mut self, key: &str, v: &T) -> &mut Self {
        self.key(key);
        serde_json::to_writer(&mut *self.buf, v).expect("writing to a Vec cannot fail");
        self
    }

    /// Closes the object without ending the line (an object nested in another).
    pub fn close(&mut self) {
        self.buf.push(b'}');
    }

    /// Closes the object and ends the line.
    pub fn end(&mut self) {
        self.buf.extend_from_slice(b"}\n");
    }
}

/// Appends `s` as a JSON string. Digests and session ids need no escape: they are
/// copied as they are; anything else goes through serde_json (which escapes `"`, `\`
/// and the control characters below 0x20, and nothing else).
pub fn string(buf: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    if needs_escape(b) {
        serde_json::to_writer(&mut *buf, s).expect("writing to a Vec cannot fail");
    } else {
        buf.reserve(b.len() + 2);
        buf.push(b'"');
        buf.extend_from_slice(b);
        buf.push(b'"');
    }
}

/// Whether `s` holds a byte JSON escapes (a control character, `"` or `\\`), eight bytes
/// at a time: digests and session ids are most of the text a replay writes. A word-wise
/// test may say yes for a byte after a real one (borrows), never no for a real one; a
/// string it flags is escaped by serde_json, which writes plain text unchanged. The last
/// bytes are tested as one word too: the last eight (again in part), or, for a shorter
/// string, padded with spaces.
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // A byte of `x` below `n` (n <= 128).
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH != 0;
    let flagged =
        |x: u64| below(x, 0x20) || below(x ^ (ONES * 0x22), 1) || below(x ^ (ONES * 0x5c), 1);
    let word = |w: &[u8]| u64::from_ne_bytes(w.try_into().expect("8 bytes"));
    if s.len() < 8 {
        let mut padded = [b' '; 8];
        padded[..s.len()].copy_from_slice(s);
        return flagged(u64::from_ne_bytes(padded));
    }
    let mut at = 0;
    while at + 8 <= s.len() {
        if flagged(word(&s[at..at + 8])) {
            return true;
        }
        at += 8;
    }
    at < s.len() && flagged(word(&s[s.len() - 8..]))
}

/// A string as a JSON literal, for escaping names once rather than per record.
pub fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("strings always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_json() {
        let mut buf = Vec::new();
        JsonObject::begin(&mut buf)
            .raw("kind", &quoted("func_call"))
            .raw(
                "func",
                &quoted("main.(*T).M[go.shape.struct { F int \"json:\\\"f\\\"\" }]"),
            )
            .u64("pid", 7)
            .opt_u64("goid", None)
            .opt_u64s("args", Some(&[1, u64::MAX]))
            .opt_u64s("ret", None)
            .end();
        assert_eq!(buf.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["pid"], 7);
        assert!(v["goid"].is_null() && v["ret"].is_null());
        assert_eq!(v["args"][1].as_u64(), Some(u64::MAX));
        assert!(v["func"].as_str().unwrap().contains("json:\\\"f\\\""));
    }

    #[test]
    fn escapes_are_found_at_every_place() {
        for len in 1..40 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut s = vec![b'a'; len];
                    s[at] = b;
                    let want = b < 0x20 || b == b'"' || b == b'\\';
                    assert_eq!(needs_escape(&s), want, "{len} {at} {b}");
                }
            }
        }
        assert!(!needs_escape(
            "xxh3:3e5da85004feca5a é ü 日本 ~\u{7f}".as_bytes()
        ));
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for s in [
            "xxh3:3e5da85004feca5a",
            "",
            "a\"b",
            "back\\slash",
            "tab\there",
            "\u{1}\u{1f}\u{7f}",
            "é ü 日本",
            "line\n",
        ] {
            let mut buf = Vec::new();
            string(&mut buf, s);
            assert_eq!(buf, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }
}

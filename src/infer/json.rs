//! A bounded JSON scanner for safetensors headers, with no allocation: it walks the bytes
//! once and hands out borrowed string slices (escapes checked, decoded only on comparison).
//!
//! It reads what softnet's writer and Python's `safetensors` emit: objects, strings with
//! escapes (`\uXXXX` and surrogate pairs included), unsigned integers, arrays; any other
//! value (numbers with signs or fractions, `true`, `null`, nested containers up to
//! [`MAX_DEPTH`]) can be skipped. Every error is the byte offset and a reason.

/// Deepest nesting [`Scanner::skip_value`] follows (an adversarial header cannot recurse
/// the stack away).
pub(super) const MAX_DEPTH: usize = 16;

/// A JSON syntax error: the byte offset in the header and what was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct JsonError {
    pub at: usize,
    pub reason: &'static str,
}

/// A string's raw bytes between its quotes, escapes still in place (and already checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RawStr<'a> {
    raw: &'a [u8],
}

impl<'a> RawStr<'a> {
    /// The decoded characters.
    pub fn chars(self) -> Chars<'a> {
        Chars { raw: self.raw }
    }

    /// Whether the decoded string equals `s`.
    pub fn eq_str(self, s: &str) -> bool {
        if !self.raw.contains(&b'\\') {
            return self.raw == s.as_bytes();
        }
        self.chars().eq(s.chars())
    }

    /// Decodes into `buf`; None if it does not fit.
    pub fn decode_into(self, buf: &mut [u8]) -> Option<&str> {
        let mut n = 0;
        for c in self.chars() {
            let len = c.len_utf8();
            if n + len > buf.len() {
                return None;
            }
            c.encode_utf8(&mut buf[n..n + len]);
            n += len;
        }
        core::str::from_utf8(&buf[..n]).ok()
    }
}

/// The characters of a checked [`RawStr`].
#[derive(Debug, Clone)]
pub(super) struct Chars<'a> {
    raw: &'a [u8],
}

fn hex4(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &d in b.get(..4)? {
        v = v * 16 + char::from(d).to_digit(16)?;
    }
    Some(v)
}

impl Iterator for Chars<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        let (&first, rest) = self.raw.split_first()?;
        if first != b'\\' {
            // Valid UTF-8 (the whole header was checked): decode one character.
            let len = match first {
                0x00..=0x7f => 1,
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                _ => 4,
            };
            let len = len.min(self.raw.len());
            let c = core::str::from_utf8(&self.raw[..len])
                .ok()
                .and_then(|s| s.chars().next())
                .unwrap_or(char::REPLACEMENT_CHARACTER);
            self.raw = &self.raw[len..];
            return Some(c);
        }
        let (&e, rest) = rest.split_first()?;
        self.raw = rest;
        let c = match e {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            _ => {
                let hi = hex4(rest).unwrap_or(0xfffd);
                self.raw = rest.get(4..).unwrap_or(&[]);
                if (0xd800..0xdc00).contains(&hi) && self.raw.starts_with(b"\\u") {
                    let lo = hex4(&self.raw[2..]).unwrap_or(0);
                    if (0xdc00..0xe000).contains(&lo) {
                        self.raw = &self.raw[6..];
                        let c = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                        return Some(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
                    }
                }
                char::from_u32(hi).unwrap_or(char::REPLACEMENT_CHARACTER)
            }
        };
        Some(c)
    }
}

/// A cursor over a JSON text.
#[derive(Debug, Clone)]
pub(super) struct Scanner<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    pub fn new(s: &'a [u8]) -> Self {
        Scanner { s, pos: 0 }
    }

    fn error<T>(&self, reason: &'static str) -> Result<T, JsonError> {
        Err(JsonError {
            at: self.pos,
            reason,
        })
    }

    pub fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next non-space byte, not consumed.
    pub fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    /// Consumes `b` (after spaces) or fails with `reason`.
    pub fn expect(&mut self, b: u8, reason: &'static str) -> Result<(), JsonError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            self.error(reason)
        }
    }

    /// After an element of a container closed by `close`: true if another follows (a comma
    /// was consumed), false at the end (the closer was consumed).
    pub fn next_element(&mut self, close: u8) -> Result<bool, JsonError> {
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => self.error("expected ',' or the container's end"),
        }
    }

    /// After the opener: true if the container is empty (the closer was consumed).
    pub fn empty(&mut self, close: u8) -> bool {
        if self.peek() == Some(close) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// A string; escapes are checked, not decoded.
    pub fn string(&mut self) -> Result<RawStr<'a>, JsonError> {
        self.expect(b'"', "expected a string")?;
        let start = self.pos;
        loop {
            match self.s.get(self.pos) {
                None => return self.error("unterminated string"),
                Some(b'"') => break,
                Some(b'\\') => {
                    match self.s.get(self.pos + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 2
                        }
                        Some(b'u') => {
                            let digits = self.s.get(self.pos + 2..self.pos + 6);
                            if digits.and_then(hex4).is_none() {
                                return self.error("bad \\u escape");
                            }
                            self.pos += 6;
                        }
                        _ => return self.error("bad escape"),
                    }
                    continue;
                }
                Some(&c) if c < 0x20 => return self.error("control character in a string"),
                Some(_) => self.pos += 1,
            }
        }
        let raw = &self.s[start..self.pos];
        self.pos += 1;
        Ok(RawStr { raw })
    }

    /// An unsigned integer (no sign, fraction or exponent).
    pub fn u64(&mut self) -> Result<u64, JsonError> {
        self.skip_ws();
        let start = self.pos;
        let mut v: u64 = 0;
        while let Some(&d @ b'0'..=b'9') = self.s.get(self.pos) {
            v = match v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(d - b'0')))
            {
                Some(v) => v,
                None => return self.error("integer too large"),
            };
            self.pos += 1;
        }
        if self.pos == start {
            return self.error("expected an unsigned integer");
        }
        if let Some(b'.' | b'e' | b'E') = self.s.get(self.pos) {
            return self.error("expected an integer");
        }
        Ok(v)
    }

    /// `[u, u, ...]` into `out`; returns how many (more than `out` holds is an error).
    pub fn u64_array(&mut self, out: &mut [u64]) -> Result<usize, JsonError> {
        self.expect(b'[', "expected an array of integers")?;
        if self.empty(b']') {
            return Ok(0);
        }
        let mut n = 0;
        loop {
            let v = self.u64()?;
            if n == out.len() {
                return self.error("array too long");
            }
            out[n] = v;
            n += 1;
            if !self.next_element(b']')? {
                return Ok(n);
            }
        }
    }

    /// Skips one value of any kind, nested at most [`MAX_DEPTH`] deep.
    pub fn skip_value(&mut self) -> Result<(), JsonError> {
        self.skip_nested(0)
    }

    fn skip_nested(&mut self, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return self.error("nested too deep");
        }
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(open @ (b'{' | b'[')) => {
                self.pos += 1;
                let close = if open == b'{' { b'}' } else { b']' };
                if self.empty(close) {
                    return Ok(());
                }
                loop {
                    if open == b'{' {
                        self.string()?;
                        self.expect(b':', "expected ':'")?;
                    }
                    self.skip_nested(depth + 1)?;
                    if !self.next_element(close)? {
                        return Ok(());
                    }
                }
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') =
                    self.s.get(self.pos)
                {
                    self.pos += 1;
                }
                let text = core::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
                if text.parse::<f64>().is_err() {
                    return self.error("bad number");
                }
                Ok(())
            }
            _ => {
                for word in [&b"true"[..], b"false", b"null"] {
                    if self.s[self.pos..].starts_with(word) {
                        self.pos += word.len();
                        return Ok(());
                    }
                }
                self.error("expected a value")
            }
        }
    }

    /// Fails unless only spaces remain.
    pub fn end(&mut self) -> Result<(), JsonError> {
        if self.peek().is_some() {
            return self.error("trailing characters after the header");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_decode_escapes_and_compare() {
        let mut s = Scanner::new(br#" "a\"b\\c\u00e9\ud83d\ude00/" "#);
        let r = s.string().unwrap();
        assert!(r.eq_str("a\"b\\c\u{e9}\u{1f600}/"));
        assert!(!r.eq_str("a\"b\\c"));
        let mut buf = [0u8; 16];
        assert_eq!(r.decode_into(&mut buf), Some("a\"b\\c\u{e9}\u{1f600}/"));
        assert_eq!(r.decode_into(&mut buf[..3]), None);
        for bad in [&b"\"abc"[..], b"\"\\x\"", b"\"\\u12\"", b"\"a\nb\"", b"abc"] {
            assert!(Scanner::new(bad).string().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn integers_arrays_and_skipped_values() {
        let mut s = Scanner::new(b"[784, 10 ]");
        let mut out = [0u64; 4];
        assert_eq!(s.u64_array(&mut out), Ok(2));
        assert_eq!(out[..2], [784, 10]);
        assert!(Scanner::new(b"[1,2,3]").u64_array(&mut out[..2]).is_err());
        assert!(Scanner::new(b"[1.5]").u64_array(&mut out).is_err());
        assert!(Scanner::new(b"[-1]").u64_array(&mut out).is_err());
        assert!(Scanner::new(b"[99999999999999999999]")
            .u64_array(&mut out)
            .is_err());
        let mut s = Scanner::new(br#"{"a": [1, -2.5e3, true, null, {"b": "c"}], "d": {}} x"#);
        s.skip_value().unwrap();
        assert_eq!(
            s.end().unwrap_err().reason,
            "trailing characters after the header"
        );
        let deep = [b'['; 40];
        assert_eq!(
            Scanner::new(&deep).skip_value().unwrap_err().reason,
            "nested too deep"
        );
        assert!(Scanner::new(b"[1,]").skip_value().is_err());
        assert!(Scanner::new(b"{\"a\" 1}").skip_value().is_err());
    }
}

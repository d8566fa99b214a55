//! A scanner for the one shape most OTel GenAI message attributes have:
//! `[{"role": "...", "parts": [{"type": "...", "content": "..."}], "finish_reason": "..."}]`.
//!
//! It reads that shape straight off the text, without serde's machinery,
//! and borrows every string that has no escape (a string with escapes is
//! decoded by `serde_json`, so escapes mean exactly what they mean there).
//!
//! Invariant: [`scan`] returns `Some` only for texts that
//! `serde_json::from_str::<Vec<ScannedMessage>>` with `deny_unknown_fields`
//! would read (whitespace, `null` for the finish reason, no other keys, no
//! key twice, nothing after the array), and then the same values; anything
//! else (a key spelled with escapes, a number where a string belongs, bad
//! JSON) is `None`, and the caller reads the text the general way.
//! Property-tested against `serde_json` in `messages`.

use std::borrow::Cow;

/// One message as scanned: every part kept, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedMessage<'a> {
    pub role: Cow<'a, str>,
    /// `(type, content)` of each part.
    pub parts: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    pub finish_reason: Option<Cow<'a, str>>,
}

/// The messages of `json` when it has exactly the shape above.
pub fn scan(json: &str) -> Option<Vec<ScannedMessage<'_>>> {
    let mut s = Scanner { text: json, at: 0 };
    let out = s.array(Scanner::message)?;
    s.skip_ws();
    (s.at == json.len()).then_some(out)
}

struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    fn skip_ws(&mut self) {
        let bytes = self.text.as_bytes();
        while matches!(bytes.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// Skips whitespace, then takes `b` if it is next.
    fn eat(&mut self, b: u8) -> bool {
        self.skip_ws();
        if self.text.as_bytes().get(self.at) == Some(&b) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        self.eat(b).then_some(())
    }

    /// A JSON string: borrowed when it has no escape, else decoded by serde_json.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.expect(b'"')?;
        let start = self.at;
        let bytes = self.text.as_bytes();
        let mut escaped = false;
        loop {
            let rest = bytes.get(self.at..)?;
            let i = memchr::memchr2(b'"', b'\\', rest)?;
            if has_control(&rest[..i]) {
                // A raw control character: not JSON.
                return None;
            }
            self.at += i;
            if bytes[self.at] == b'"' {
                break;
            }
            // A backslash: skip it and the character it escapes (serde_json
            // checks the escape below).
            escaped = true;
            self.at += 2;
        }
        let end = self.at;
        self.at += 1;
        if escaped {
            // With its quotes, so that serde_json decodes the escapes (and
            // refuses bad ones).
            serde_json::from_str::<String>(self.text.get(start - 1..=end)?)
                .ok()
                .map(Cow::Owned)
        } else {
            self.text.get(start..end).map(Cow::Borrowed)
        }
    }

    /// A key of an object (with its colon); `None` for keys with escapes,
    /// which the general reader takes.
    fn key(&mut self) -> Option<&'a str> {
        match self.string()? {
            Cow::Borrowed(k) => {
                self.expect(b':')?;
                Some(k)
            }
            Cow::Owned(_) => None,
        }
    }

    /// An object's members, each handed to `field` (which returns `None` to
    /// refuse it); `{}` allowed.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            let key = self.key()?;
            field(self, key)?;
            if self.eat(b'}') {
                return Some(());
            }
            self.expect(b',')?;
        }
    }

    fn message(&mut self) -> Option<ScannedMessage<'a>> {
        let mut role = None;
        let mut parts = None;
        let mut finish_reason: Option<Option<Cow<'a, str>>> = None;
        self.object(|s, key| match key {
            "role" => fill(&mut role, s.string()),
            "parts" => fill(&mut parts, s.parts()),
            "finish_reason" => {
                let reason = if s.null() {
                    Some(None)
                } else {
                    s.string().map(Some)
                };
                fill(&mut finish_reason, reason)
            }
            _ => None,
        })?;
        Some(ScannedMessage {
            role: role?,
            parts: parts?,
            finish_reason: finish_reason.flatten(),
        })
    }

    fn parts(&mut self) -> Option<Vec<(Cow<'a, str>, Cow<'a, str>)>> {
        self.array(|s| {
            let mut kind = None;
            let mut content = None;
            s.object(|s, key| match key {
                "type" => fill(&mut kind, s.string()),
                "content" => fill(&mut content, s.string()),
                _ => None,
            })?;
            Some((kind?, content?))
        })
    }

    /// An array of items read by `item`; `[]` allowed.
    fn array<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        self.expect(b'[')?;
        let mut out = Vec::new();
        if self.eat(b']') {
            return Some(out);
        }
        loop {
            out.push(item(self)?);
            if self.eat(b']') {
                return Some(out);
            }
            self.expect(b',')?;
        }
    }

    /// Takes `null` if it is next.
    fn null(&mut self) -> bool {
        self.skip_ws();
        let next = self.text.as_bytes().get(self.at..).unwrap_or_default();
        if next.starts_with(b"null") {
            self.at += 4;
            true
        } else {
            false
        }
    }
}

/// An object member's value into its slot; `None` (refused) for a value
/// that did not read or a key given twice.
fn fill<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value?);
    Some(())
}

/// Whether any byte is a control character (below 0x20), eight at a time.
fn has_control(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = ONES * 0x80;
    let mut words = bytes.chunks_exact(8);
    let mut found = 0u64;
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        let w = u64::from_le_bytes(b);
        // Exact about whether some byte is below 0x20.
        found |= w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    }
    found != 0 || words.remainder().iter().any(|&b| b < 0x20)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    /// What `serde_json` reads of the same text, shaped like the scanner's result.
    fn oracle(json: &str) -> Option<Vec<ScannedMessage<'_>>> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Msg<'a> {
            #[serde(borrow)]
            role: Cow<'a, str>,
            #[serde(borrow)]
            parts: Vec<Part<'a>>,
            #[serde(borrow, default)]
            finish_reason: Option<Cow<'a, str>>,
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Part<'a> {
            #[serde(rename = "type", borrow)]
            kind: Cow<'a, str>,
            #[serde(borrow)]
            content: Cow<'a, str>,
        }
        let msgs: Vec<Msg<'_>> = serde_json::from_str(json).ok()?;
        Some(
            msgs.into_iter()
                .map(|m| ScannedMessage {
                    role: m.role,
                    parts: m.parts.into_iter().map(|p| (p.kind, p.content)).collect(),
                    finish_reason: m.finish_reason,
                })
                .collect(),
        )
    }

    /// A JSON string token for `text`, spelled canonically, with needless
    /// escapes, or (when `raw`) with the text's characters unescaped (not
    /// JSON when it holds a quote, backslash or control character).
    fn token(text: &str, style: u8) -> String {
        match style % 3 {
            0 => serde_json::to_string(text).unwrap(),
            1 => {
                let mut t = String::from("\"");
                for c in text.chars() {
                    match c {
                        'A'..='Z' | '/' => t.push_str(&format!("\\u{:04X}", c as u32)),
                        '"' => t.push_str("\\\""),
                        '\\' => t.push_str("\\\\"),
                        c if (c as u32) < 0x20 => t.push_str(&format!("\\u{:04x}", c as u32)),
                        c => t.push(c),
                    }
                }
                t.push('"');
                t
            }
            _ => format!("\"{text}\""),
        }
    }

    fn texts() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "",
            "user",
            "assistant",
            "text",
            "Hello, World/ok",
            "a\"b",
            "back\\slash",
            "line\nbreak",
            "tab\there",
            "é 日本 🙂",
            "\u{1}",
            "\u{7f}",
            "null",
            "CAPS",
        ])
        .prop_map(str::to_owned)
    }

    /// Whitespace (or nothing) between tokens.
    fn ws() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["", "", " ", "\n  ", "\t", "\r\n"])
    }

    /// Message-shaped JSON, sometimes broken: extra, missing or repeated
    /// keys, escaped keys, wrong types, nulls, cut short or with a tail.
    fn documents() -> impl Strategy<Value = String> {
        let part = (texts(), texts(), any::<u8>(), any::<u8>(), 0u8..12, ws()).prop_map(
            |(kind, content, s1, s2, shape, w)| {
                let t = token(&kind, s1);
                let c = token(&content, s2);
                match shape {
                    0 => format!("{{{w}\"content\"{w}:{w}{c},\"type\":{t}}}"),
                    1 => format!("{{\"type\":{t}}}"),
                    2 => format!("{{\"type\":{t},\"content\":{c},\"extra\":1}}"),
                    3 => format!("{{\"type\":{t},\"content\":5}}"),
                    4 => format!("{{\"t\\u0079pe\":{t},\"content\":{c}}}"),
                    5 => format!("{{\"type\":{t},\"type\":{t},\"content\":{c}}}"),
                    _ => format!("{{{w}\"type\"{w}:{w}{t}{w},{w}\"content\":{c}{w}}}"),
                }
            },
        );
        let message = (
            texts(),
            any::<u8>(),
            prop::collection::vec(part, 0..3),
            prop::option::of(texts()),
            0u8..14,
            ws(),
        )
            .prop_map(|(role, s, parts, finish, shape, w)| {
                let r = token(&role, s);
                let p = format!("[{w}{}{w}]", parts.join(&format!("{w},{w}")));
                let f = finish.map_or("null".to_owned(), |f| token(&f, s.wrapping_add(1)));
                match shape {
                    0 => format!("{{\"parts\":{p},\"role\":{r}}}"),
                    1 => format!("{{\"role\":{r}}}"),
                    2 => format!("{{\"role\":{r},\"parts\":{p},\"finish_reason\":{f},\"x\":null}}"),
                    3 => format!("{{\"role\":{r},\"parts\":{p},\"role\":{r}}}"),
                    4 => format!("{{\"r\\u006fle\":{r},\"parts\":{p}}}"),
                    5 => format!("{{\"role\":7,\"parts\":{p}}}"),
                    6 => format!("{{\"role\":{r},\"parts\":{p},\"finish_reason\":null}}"),
                    7 => "{}".to_owned(),
                    _ => format!(
                        "{{{w}\"role\"{w}:{w}{r},{w}\"parts\":{w}{p},\"finish_reason\":{f}{w}}}"
                    ),
                }
            });
        (
            prop::collection::vec(message, 0..4),
            ws(),
            0u8..10,
            any::<prop::sample::Index>(),
        )
            .prop_map(|(msgs, w, ending, cut)| {
                let doc = format!("{w}[{w}{}{w}]{w}", msgs.join(","));
                match ending {
                    0 => format!("{doc} x"),
                    1 => doc
                        .get(..cut.index(doc.len().max(1)))
                        .unwrap_or(&doc)
                        .to_owned(),
                    2 => format!("{doc}]"),
                    _ => doc,
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn reads_what_serde_json_reads_or_declines(doc in documents()) {
            let scanned = scan(&doc);
            let serde = oracle(&doc);
            if scanned.is_some() {
                prop_assert_eq!(&scanned, &serde, "{}", doc);
                // A borrowed string had no escape: it is the raw text itself.
                for m in scanned.iter().flatten() {
                    for (_, c) in &m.parts {
                        if let Cow::Borrowed(raw) = c {
                            prop_assert!(!raw.contains(['"', '\\']) && !raw.bytes().any(|b| b < 0x20));
                        }
                    }
                }
            } else if !doc.contains("\\u006fle") && !doc.contains("\\u0079pe") {
                // Only keys spelled with escapes may be declined when
                // serde_json reads the text.
                prop_assert!(serde.is_none(), "declined {}", doc);
            }
        }
    }

    #[test]
    fn the_generated_documents_are_read_and_refused_alike_often() {
        // The property above is only as good as its documents: both readers
        // must accept many of them and refuse many others.
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut both, mut neither) = (0, 0);
        for _ in 0..2000 {
            let doc = documents().new_tree(&mut runner).unwrap().current();
            match (scan(&doc).is_some(), oracle(&doc).is_some()) {
                (true, true) => both += 1,
                (false, false) => neither += 1,
                _ => {}
            }
        }
        assert!(
            both > 200 && neither > 200,
            "both {both}, neither {neither}"
        );
    }

    #[test]
    fn the_common_shape_is_read_and_its_plain_strings_borrowed() {
        let doc = r#" [{"role":"user","parts":[{"type":"text","content":"Hi\nthere"},{"type":"text","content":"plain"}]},
            {"role":"assistant","parts":[],"finish_reason":"stop"}] "#;
        let m = scan(doc.trim_start()).unwrap();
        assert_eq!(m.len(), 2);
        assert!(matches!(m[0].parts[0].1, Cow::Owned(ref s) if s == "Hi\nthere"));
        assert!(matches!(m[0].parts[1].1, Cow::Borrowed("plain")));
        assert_eq!(m[1].finish_reason.as_deref(), Some("stop"));
        assert_eq!(scan("[]"), Some(vec![]));
        for bad in [
            "",
            "[",
            "[]x",
            "{}",
            "[{\"role\":\"a\",\"parts\":[]},]",
            "[{\"role\":\"a\nb\",\"parts\":[]}]",
        ] {
            assert_eq!(scan(bad), None, "{bad:?}");
        }
    }
}

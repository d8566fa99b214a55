//! List-view previews of message bodies: one line, at most [`PREVIEW_CHARS`]
//! characters, of the last user message of an input or the first message of
//! an output (its tool calls when it has no text).
//!
//! A preview is taken from the messages while ingest holds them parsed, not
//! by parsing the stored JSON again: [`source`] keeps the chosen text on the
//! span (whole, or for long texts a prefix that still holds
//! [`SOURCE_MARGIN`] characters past the preview); redaction treats it like
//! the bodies; the row makes it one line with [`single_line`]. Bodies that
//! arrive without a source are previewed from their JSON ([`from_json`]),
//! with the same result.
//!
//! Invariant: a preview is never less redacted than its body. When redaction
//! changes a body, its source is dropped and the row previews the redacted
//! body (a cut source may end inside a secret that a pattern only matches
//! whole, such as a PEM block without its END line); otherwise the source is
//! redacted itself, and the [`SOURCE_MARGIN`] keeps a secret that starts in
//! the preview long enough in the source for the patterns to see it.

use std::borrow::Cow;
use std::sync::LazyLock;

use memchr::memmem;

use serde::Deserialize;

use crate::messages::MessageList;
use crate::span::Message;

/// Characters kept in list-view previews of bodies.
pub const PREVIEW_CHARS: usize = 240;
/// Characters kept past the preview in a cut source, for redaction.
pub const SOURCE_MARGIN: usize = 256;
/// Texts up to this many bytes are kept whole as sources (no walk to cut them).
const WHOLE_SOURCE_BYTES: usize = 4 * (PREVIEW_CHARS + SOURCE_MARGIN);

/// The preview source of a message list (empty when it has no text and no
/// tool calls).
pub fn source(messages: &[Message], last_user: bool) -> String {
    pick(messages, last_user, |m| m.role == "user").map_or_else(String::new, |m| {
        let text = text_of(
            &m.content,
            m.tool_calls.iter().map(|c| (&*c.name, &*c.arguments)),
        );
        cut(&text).to_owned()
    })
}

/// [`source`] of any message list.
pub fn source_of(messages: &MessageList<'_>, last_user: bool) -> String {
    match messages {
        MessageList::General(v) => source(v, last_user),
        // Text messages have no tool calls: the text is the content.
        MessageList::Text(v) => pick(v, last_user, |m| m.role() == "user")
            .map_or_else(String::new, |m| cut(m.content()).to_owned()),
    }
}

/// What a preview reads of a stored message; borrowed from the JSON where it can be.
#[derive(Deserialize)]
struct StoredMessage<'a> {
    #[serde(borrow, default)]
    role: Cow<'a, str>,
    #[serde(borrow, default)]
    content: Cow<'a, str>,
    #[serde(borrow, default)]
    tool_calls: Vec<StoredCall<'a>>,
}

#[derive(Deserialize)]
struct StoredCall<'a> {
    #[serde(borrow, default)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    arguments: Cow<'a, str>,
}

/// The finished preview of a stored message list (canonical JSON); empty
/// when it does not parse.
pub fn from_json(messages_json: &str, last_user: bool) -> String {
    let Ok(messages) = serde_json::from_str::<Vec<StoredMessage<'_>>>(messages_json) else {
        return String::new();
    };
    pick(&messages, last_user, |m| m.role == "user").map_or_else(String::new, |m| {
        single_line(&text_of(
            &m.content,
            m.tool_calls.iter().map(|c| (&*c.name, &*c.arguments)),
        ))
    })
}

/// What a message shows: its text, else its tool calls as `name(arguments), ...`.
fn text_of<'a>(content: &'a str, calls: impl Iterator<Item = (&'a str, &'a str)>) -> Cow<'a, str> {
    if !content.is_empty() {
        return Cow::Borrowed(content);
    }
    Cow::Owned(
        calls
            .map(|(name, args)| format!("{name}({args})"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// The last message that `is_user` (else the last) for inputs, the first for outputs.
fn pick<T>(messages: &[T], last_user: bool, is_user: impl Fn(&T) -> bool) -> Option<&T> {
    if last_user {
        messages
            .iter()
            .rev()
            .find(|m| is_user(m))
            .or_else(|| messages.last())
    } else {
        messages.first()
    }
}

/// `text` whole when short, else a prefix from which [`single_line`] still
/// makes [`PREVIEW_CHARS`] + [`SOURCE_MARGIN`] characters.
fn cut(text: &str) -> &str {
    if text.len() <= WHOLE_SOURCE_BYTES {
        return text;
    }
    let keep = PREVIEW_CHARS + SOURCE_MARGIN;
    let mut chars = 0usize;
    let mut in_space = true;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            in_space = true;
            continue;
        }
        // A collapsed space is counted with the character that follows it.
        chars += if in_space && chars > 0 { 2 } else { 1 };
        in_space = false;
        if chars > keep {
            return text.get(..i).unwrap_or(text);
        }
    }
    text
}

/// Whitespace runs collapsed to one space, cut after [`PREVIEW_CHARS`]
/// characters with an ellipsis; reads only as much of `text` as it keeps.
pub fn single_line(text: &str) -> String {
    let mut out = String::with_capacity(PREVIEW_CHARS + 8);
    let mut chars = 0usize;
    let mut pending_space = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c.is_whitespace() {
            pending_space = chars > 0;
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if chars == PREVIEW_CHARS {
            out.push('…');
            return out;
        }
        if pending_space {
            out.push(' ');
            chars += 1;
            pending_space = false;
            if chars == PREVIEW_CHARS {
                out.push('…');
                return out;
            }
        }
        // Most text is plain: copy it up to the next irregular whitespace
        // or the limit at once.
        let run = plain_run(rest.as_bytes(), PREVIEW_CHARS - chars);
        if run > 0 {
            out.push_str(&rest[..run]);
            chars += run;
            rest = &rest[run..];
        } else {
            out.push(c);
            chars += 1;
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Length of the longest prefix of at most `room` bytes that
/// [`single_line`] copies as it is: printable ASCII words with single spaces
/// between them, ending on a word (0 unless `bytes` starts with one).
fn plain_run(bytes: &[u8], room: usize) -> usize {
    static DOUBLE_SPACE: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"  "));
    let bytes = bytes.get(..room).unwrap_or(bytes);
    let printable = printable_prefix(bytes);
    let seg = &bytes[..printable];
    match DOUBLE_SPACE.find(seg) {
        Some(at) => at,
        None if seg.last() == Some(&b' ') => printable - 1,
        None => printable,
    }
}

/// Length of the prefix of bytes in `' '..='~'`, eight at a time.
fn printable_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = ONES * 0x80;
    let mut n = 0;
    while let Some(chunk) = bytes.get(n..n + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let w = u64::from_le_bytes(w);
        // Some byte below 0x20, or above 0x7e (DEL and every non-ASCII
        // byte): both tests are exact about whether such a byte exists.
        let below = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
        let above = (w.wrapping_add(ONES) | w) & HIGHS;
        if below | above != 0 {
            break;
        }
        n += 8;
    }
    n + bytes[n..]
        .iter()
        .take_while(|b| (b' '..=b'~').contains(*b))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::ToolCall;

    fn msg(role: &str, content: &str) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
            ..Default::default()
        }
    }

    /// The plain definition: collapse every whitespace run, then cut.
    fn reference(t: &str) -> String {
        let flat = t.split_whitespace().collect::<Vec<_>>().join(" ");
        match flat.char_indices().nth(PREVIEW_CHARS) {
            Some((i, _)) => format!("{}…", &flat[..i]),
            None => flat,
        }
    }

    /// Mixed ASCII, multi-byte text and whitespace of every kind, short and
    /// long enough to be cut.
    fn texts() -> impl Iterator<Item = String> {
        let pieces = [
            "word",
            " ",
            "\n\t ",
            "é",
            "日本語",
            "x",
            "  ",
            "🙂",
            "\u{a0}",
            "\u{1}",
        ];
        (0..400usize).map(move |seed| {
            let mut t = String::new();
            let mut k = seed;
            let target = if seed % 3 == 0 {
                2500
            } else {
                200 + seed % 120
            };
            while t.chars().count() < target {
                t.push_str(pieces[k % pieces.len()]);
                k = k.wrapping_mul(31).wrapping_add(7) % 1009;
            }
            t
        })
    }

    #[test]
    fn previews_pick_the_right_message_and_stay_short() {
        let messages = vec![
            msg("system", "be brief"),
            msg("user", "first"),
            msg("assistant", "ok"),
            msg("user", &"x ".repeat(400)),
        ];
        let json = serde_json::to_string(&messages).unwrap();
        let p = from_json(&json, true);
        assert!(p.starts_with("x x"));
        assert_eq!(p.chars().count(), PREVIEW_CHARS + 1);
        assert_eq!(single_line(&source(&messages, true)), p);
        assert_eq!(from_json(&json, false), "be brief");
        assert_eq!(source(&messages, false), "be brief");
        assert_eq!(from_json("not json", true), "");
        assert_eq!(source(&[], true), "");

        let calls = vec![Message {
            role: "assistant".into(),
            tool_calls: vec![ToolCall {
                id: "c1".into(),
                name: "get_weather".into(),
                arguments: "{\"city\": \"Paris\"}".into(),
            }],
            ..Default::default()
        }];
        let json = serde_json::to_string(&calls).unwrap();
        assert_eq!(
            from_json(&json, false),
            "get_weather({\"city\": \"Paris\"})"
        );
        assert_eq!(single_line(&source(&calls, false)), from_json(&json, false));
    }

    #[test]
    fn plain_texts_around_the_limit_are_cut_like_any_other() {
        for word in 1..8 {
            for len in PREVIEW_CHARS - 12..PREVIEW_CHARS + 12 {
                let mut t = String::new();
                while t.len() < len {
                    t.push_str(&"w".repeat(word));
                    t.push(' ');
                }
                for tail in ["", " ", "  x", "\n", "\u{a0}y", "é"] {
                    let text = format!("{}{tail}", &t[..len]);
                    assert_eq!(single_line(&text), reference(&text), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn printable_prefix_stops_at_the_first_byte_outside_space_to_tilde() {
        for b in 0..=255u8 {
            for at in 0..20 {
                let mut t = vec![b'a'; 20];
                t[at] = b;
                let want = if (b' '..=b'~').contains(&b) { 20 } else { at };
                assert_eq!(printable_prefix(&t), want, "byte {b:#x} at {at}");
            }
        }
    }

    #[test]
    fn single_line_collapses_then_cuts() {
        for t in texts() {
            assert_eq!(single_line(&t), reference(&t), "{t:?}");
        }
        assert_eq!(single_line("  a \n\t b  "), "a b");
        let exact = "y".repeat(PREVIEW_CHARS);
        assert_eq!(single_line(&exact), exact);
        assert_eq!(
            single_line(&format!("{exact} z")),
            format!("{exact}…"),
            "a word past the limit is cut"
        );
    }

    #[test]
    fn a_source_makes_the_same_preview_and_keeps_the_margin() {
        let mut cut_some = false;
        for t in texts() {
            let src = source(&[msg("user", &t)], true);
            assert!(t.starts_with(&src));
            assert_eq!(single_line(&src), reference(&t), "{t:?}");
            if src.len() < t.len() {
                cut_some = true;
                // The margin past the preview, less the one character a
                // collapsed space may take.
                let flat = src.split_whitespace().collect::<Vec<_>>().join(" ");
                assert!(flat.chars().count() >= PREVIEW_CHARS + SOURCE_MARGIN - 1);
            }
        }
        assert!(cut_some, "some texts are long enough to be cut");
    }
}

//! Model-name normalisation: the names spans carry → the keys the price table uses.
//!
//! Pure and table-tested. Strips what does not change the price: provider path
//! prefixes (`openai/`, `models/`, `meta-llama/`), Bedrock ids
//! (`us.anthropic.claude-…-v1:0`), Vertex `@date` versions, routing suffixes (`:free`),
//! and date-stamped snapshots (`-2024-08-06`, `-20251001`, `-0613`, `-08-2024`,
//! `-001`, `-latest`). Never strips anything else: `gpt-4o` and `gpt-4o-mini` stay
//! distinct, and so do `o3` and `o3-mini`.
//!
//! [`model_keys`] lists lookup keys from most to least specific, so a table entry
//! for one snapshot (say `gpt-4o-2024-05-13`, priced differently) wins over the
//! family entry.

/// Bedrock inference-profile region prefixes (`us.anthropic.…`).
const BEDROCK_REGIONS: &[&str] = &[
    "us.", "eu.", "apac.", "global.", "us-gov.", "ca.", "jp.", "au.",
];
/// Bedrock model-id vendor prefixes (`anthropic.claude-…`).
const BEDROCK_VENDORS: &[&str] = &[
    "anthropic.",
    "meta.",
    "amazon.",
    "cohere.",
    "mistral.",
    "ai21.",
    "deepseek.",
    "writer.",
    "openai.",
];

/// Lookup keys for a raw model name, most specific first, without duplicates.
pub fn model_keys(raw: &str) -> Vec<String> {
    let base = strip_prefixes(raw);
    let mut keys = vec![base.clone()];
    let dateless = strip_snapshot(&base);
    if dateless != base && !dateless.is_empty() {
        keys.push(dateless);
    }
    keys.retain(|k| !k.is_empty());
    keys
}

/// The family name of a model (its least specific lookup key).
pub fn normalize_model(raw: &str) -> String {
    model_keys(raw).pop().unwrap_or_default()
}

fn strip_prefixes(raw: &str) -> String {
    let mut s = raw.trim().to_ascii_lowercase();
    // Path-style names: keep the last segment.
    if let Some(i) = s.rfind('/') {
        s = s[i + 1..].to_owned();
    }
    // Vertex publishes `claude-3-5-haiku@20241022`: the `@` part is the snapshot date.
    if let Some(i) = s.find('@') {
        let (name, date) = s.split_at(i);
        s = format!("{name}-{}", &date[1..]);
    }
    let mut bedrock = false;
    for r in BEDROCK_REGIONS {
        if let Some(rest) = s.strip_prefix(r)
            && BEDROCK_VENDORS.iter().any(|v| rest.starts_with(v))
        {
            s = rest.to_owned();
        }
    }
    for v in BEDROCK_VENDORS {
        if let Some(rest) = s.strip_prefix(v) {
            s = rest.to_owned();
            bedrock = true;
            break;
        }
    }
    // `:0` (Bedrock version), `:free` / `:beta` (routers): not part of the model.
    if let Some(i) = s.find(':') {
        s.truncate(i);
    }
    if bedrock {
        s = strip_suffix_matching(&s, |tail| {
            tail.len() >= 2
                && tail.starts_with('v')
                && tail[1..].bytes().all(|b| b.is_ascii_digit())
        });
    }
    s
}

/// Remove one trailing date / version stamp.
fn strip_snapshot(s: &str) -> String {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = s.strip_suffix("-latest") {
        return rest.to_owned();
    }
    let parts: Vec<&str> = s.split('-').collect();
    let n = parts.len();
    // -YYYY-MM-DD
    if n >= 4
        && parts[n - 3].len() == 4
        && digits(parts[n - 3])
        && parts[n - 2].len() == 2
        && digits(parts[n - 2])
        && parts[n - 1].len() == 2
        && digits(parts[n - 1])
    {
        return parts[..n - 3].join("-");
    }
    // -MM-YYYY (Cohere: command-r-08-2024)
    if n >= 3
        && parts[n - 2].len() == 2
        && digits(parts[n - 2])
        && parts[n - 1].len() == 4
        && digits(parts[n - 1])
    {
        return parts[..n - 2].join("-");
    }
    // -YYYYMMDD, -MMDD / -YYMM (gpt-4-0613, mistral-large-2411)
    if n >= 2 && digits(parts[n - 1]) && matches!(parts[n - 1].len(), 4 | 8) {
        return parts[..n - 1].join("-");
    }
    // -001 / -002: Gemini's stable versions (elsewhere a 3-digit tail is part of the
    // name, as in text-embedding-004).
    if n >= 2 && s.starts_with("gemini-") && digits(parts[n - 1]) && parts[n - 1].len() == 3 {
        return parts[..n - 1].join("-");
    }
    s.to_owned()
}

fn strip_suffix_matching(s: &str, is_tail: impl Fn(&str) -> bool) -> String {
    match s.rsplit_once('-') {
        Some((head, tail)) if is_tail(tail) => head.to_owned(),
        _ => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_names() {
        for (raw, want) in [
            ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
            ("gpt-4o-2024-08-06", "gpt-4o"),
            ("gpt-4o", "gpt-4o"),
            ("gpt-4o-mini", "gpt-4o-mini"),
            ("openai/gpt-4o-mini", "gpt-4o-mini"),
            ("o4-mini-2025-04-16", "o4-mini"),
            ("o3-mini", "o3-mini"),
            ("o3", "o3"),
            ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
            ("gpt-4-0613", "gpt-4"),
            ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
            ("claude-haiku-4-5", "claude-haiku-4-5"),
            ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"),
            ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
            (
                "anthropic.claude-3-5-haiku-20241022-v1:0",
                "claude-3-5-haiku",
            ),
            (
                "us.anthropic.claude-sonnet-4-20250514-v1:0",
                "claude-sonnet-4",
            ),
            ("claude-3-5-haiku@20241022", "claude-3-5-haiku"),
            ("models/gemini-2.0-flash-001", "gemini-2.0-flash"),
            ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
            ("models/text-embedding-004", "text-embedding-004"),
            ("mistral-large-2411", "mistral-large"),
            ("command-r-08-2024", "command-r"),
            (
                "meta-llama/Llama-3.3-70B-Instruct-Turbo",
                "llama-3.3-70b-instruct-turbo",
            ),
            ("meta.llama3-3-70b-instruct-v1:0", "llama3-3-70b-instruct"),
            ("deepseek/deepseek-chat:free", "deepseek-chat"),
            ("text-embedding-3-small", "text-embedding-3-small"),
            ("GPT-4o-Mini", "gpt-4o-mini"),
            ("", ""),
        ] {
            assert_eq!(normalize_model(raw), want, "{raw}");
        }
    }

    #[test]
    fn snapshots_are_tried_before_families() {
        assert_eq!(
            model_keys("gpt-4o-2024-05-13"),
            ["gpt-4o-2024-05-13", "gpt-4o"]
        );
        assert_eq!(model_keys("gpt-4o"), ["gpt-4o"]);
        assert!(model_keys("   ").is_empty());
    }
}

//! Progress lines for the `logs` exchange: routing keys and safe rendering of names.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Routing keys `<hostname>.worker.<level>` for the `logs` topic exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingKeys {
    /// Every step of every image.
    pub debug: String,
    /// One line per image, once the database was updated.
    pub info: String,
    /// A message put back for a later attempt.
    pub warning: String,
    /// A message dead-lettered.
    pub error: String,
}

impl RoutingKeys {
    /// Keys for `host` (dots in the host name are kept: consumers bind `#.worker.info`).
    pub fn for_host(host: &str) -> Self {
        Self {
            debug: format!("{host}.worker.debug"),
            info: format!("{host}.worker.info"),
            warning: format!("{host}.worker.warning"),
            error: format!("{host}.worker.error"),
        }
    }
}

/// This machine's host name (the pod name on Kubernetes).
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned())
}

/// Renders untrusted text (image names) for a log line: control characters become
/// escapes such as `\n` or `\u{1b}`, so a name can neither forge a line nor drive a terminal.
/// Line and paragraph separators and bidirectional controls are escaped too (see
/// [`needs_escape`]).
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Characters a name must not carry into a log line as they are: C0/C1 controls, U+2028
/// and U+2029 (line breaks to JavaScript and to some log viewers, so they can forge a
/// line), and the bidirectional controls, which reorder what a reader sees (U+202E makes
/// `gpj.exe` look like `exe.jpg`; "Trojan Source", CVE-2021-42574).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' // line and paragraph separators
                | '\u{202A}'..='\u{202E}' // embeddings and overrides: LRE RLE PDF LRO RLO
                | '\u{2066}'..='\u{2069}' // isolates: LRI RLI FSI PDI
                | '\u{200E}' | '\u{200F}' | '\u{061C}' // marks: LRM RLM ALM
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_borrowed() {
        assert_eq!(escape("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
        assert!(matches!(escape("plain ünïcode"), Cow::Borrowed(_)));
    }

    #[test]
    fn separators_and_bidi_controls_are_escaped() {
        assert_eq!(escape("a\u{2028}b\u{2029}c"), "a\\u{2028}b\\u{2029}c");
        assert_eq!(escape("photo\u{202E}gpj.exe"), "photo\\u{202e}gpj.exe");
        for c in ['\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}'] {
            assert_eq!(escape(&c.to_string()), format!("\\u{{{:x}}}", c as u32));
        }
        for c in ['\u{200E}', '\u{200F}', '\u{061C}'] {
            assert!(!escape(&c.to_string()).contains(c));
        }
        // Right-to-left text itself is data, not a control.
        assert!(matches!(escape("שלום مرحبا"), Cow::Borrowed(_)));
    }

    #[test]
    fn keys_follow_the_seed_scheme() {
        let k = RoutingKeys::for_host("w1");
        assert_eq!(k.debug, "w1.worker.debug");
        assert_eq!(k.info, "w1.worker.info");
    }
}

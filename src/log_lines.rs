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
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
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
    fn keys_follow_the_seed_scheme() {
        let k = RoutingKeys::for_host("w1");
        assert_eq!(k.debug, "w1.worker.debug");
        assert_eq!(k.info, "w1.worker.info");
    }
}

//! Connection settings that carry credentials: built from flags, environment variables and
//! mounted files, and never printed with their secrets.

use std::fmt;

/// A credential: usable, but shown as `***` by `Debug` and `Display`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The credential itself: pass it on, never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a credential from a mounted file (a Kubernetes secret), trimming the newline.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn from_file(path: &std::path::Path) -> Result<Self, String> {
        std::fs::read_to_string(path)
            .map(|s| Self(s.trim_end_matches(['\n', '\r']).to_owned()))
            .map_err(|e| format!("reading secret file {}: {e}", path.display()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `scheme://user:password@host...` with the password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => url.to_owned(),
    }
}

/// The host (and port) part of a URL, for "Connecting to ..." lines.
pub fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    authority.rsplit_once('@').map_or(authority, |(_, h)| h).to_owned()
}

/// Percent-encodes a user name or password for a URL's userinfo.
pub fn encode_userinfo(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_survive_redaction() {
        assert_eq!(redact_url("amqp://guest:s3cr3t@rabbit:5672/%2f"), "amqp://guest:***@rabbit:5672/%2f");
        assert_eq!(redact_url("rediss://:p%40ss@redis:6380"), "rediss://:***@redis:6380");
        assert_eq!(redact_url("redis://redis:6379"), "redis://redis:6379");
        assert_eq!(format!("{:?} {}", Secret::new("x"), Secret::new("x")), "Secret(***) ***");
        assert_eq!(url_host("amqp://u:p@rabbit:5672/vh"), "rabbit:5672");
    }

    #[test]
    fn userinfo_is_percent_encoded() {
        assert_eq!(encode_userinfo("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
    }
}

//! Settings that carry credentials, and the one error type for configuration mistakes.
//!
//! URLs are parsed with the `url` crate and redacted by structure (the password component
//! is replaced), never by searching strings, so passwords holding `/`, `#`, `?` or `@`
//! are hidden too. A [`ConfigError`] is never retried: the binary prints its one line and
//! exits with status 2.

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration mistake: a malformed setting, a missing file, contradictory flags.
/// Each names the setting (flag / environment variable) to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value that cannot be used.
    #[error("{setting}: {reason}")]
    Invalid {
        /// The setting, e.g. `REDIS_URL`.
        setting: &'static str,
        /// What is wrong with it (never the secret itself).
        reason: String,
    },
    /// A file named by a setting cannot be read.
    #[error("{setting}: cannot read {}: {source}", path.display())]
    File {
        /// The setting, e.g. `REDIS_PASSWORD_FILE`.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl ConfigError {
    /// Shorthand for [`ConfigError::Invalid`].
    pub fn invalid(setting: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid { setting, reason: reason.into() }
    }
}

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
    /// [`ConfigError::File`] naming `setting` when the file cannot be read.
    pub fn from_file(setting: &'static str, path: &Path) -> Result<Self, ConfigError> {
        std::fs::read_to_string(path)
            .map(|s| Self(s.trim_end_matches(['\n', '\r']).to_owned()))
            .map_err(|source| ConfigError::File { setting, path: path.to_owned(), source })
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    /// For flags and environment variables: the value is kept, never shown.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
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

/// A server URL (`amqp`, `amqps`, `redis`, `rediss`) that may hold a password. `Debug` and
/// `Display` show it with the password replaced by `***`; only [`ServiceUrl::expose`]
/// gives the whole URL, to hand to a driver.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceUrl(url::Url);

impl ServiceUrl {
    /// Parses `text` as the value of `setting`, accepting only `schemes` and requiring a host.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `setting`; the message never repeats the URL.
    pub fn parse(setting: &'static str, text: &str, schemes: &[&str]) -> Result<Self, ConfigError> {
        let url =
            url::Url::parse(text.trim()).map_err(|e| ConfigError::invalid(setting, format!("not a URL ({e})")))?;
        if !schemes.contains(&url.scheme()) {
            return Err(ConfigError::invalid(
                setting,
                format!("scheme {:?} is not one of {}", url.scheme(), schemes.join(", ")),
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(ConfigError::invalid(setting, "the URL has no host"));
        }
        Ok(Self(url))
    }

    /// Builds `scheme://[user][:password@]host:port[/path]` from parts, percent-encoding
    /// the user name and password.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `setting` when the host is not a valid host.
    pub fn from_parts(
        setting: &'static str,
        scheme: &str,
        host: &str,
        port: u16,
        user: Option<&str>,
        password: Option<&Secret>,
        path: &str,
    ) -> Result<Self, ConfigError> {
        let mut url = url::Url::parse(&format!("{scheme}://placeholder")).expect("static URL");
        url.set_host(Some(host)).map_err(|e| ConfigError::invalid(setting, format!("host {host:?}: {e}")))?;
        url.set_port(Some(port)).map_err(|()| ConfigError::invalid(setting, "port cannot be set"))?;
        if let Some(user) = user {
            url.set_username(user).map_err(|()| ConfigError::invalid(setting, "user name cannot be set"))?;
        }
        if let Some(password) = password {
            url.set_password(Some(password.expose()))
                .map_err(|()| ConfigError::invalid(setting, "password cannot be set"))?;
        }
        url.set_path(path);
        Ok(Self(url))
    }

    /// Whether the URL names a user.
    pub fn has_user(&self) -> bool {
        !self.0.username().is_empty()
    }

    /// This URL with `user` and `password` (percent-encoded).
    pub fn with_credentials(&self, user: &str, password: &Secret) -> Self {
        let mut url = self.0.clone();
        let _ = url.set_username(user);
        let _ = url.set_password(Some(password.expose()));
        Self(url)
    }

    /// The whole URL, password included: pass it to a driver, never log it.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// This URL with `key=value` added to its query, unless the query already sets `key`.
    #[must_use]
    pub fn with_query_default(&self, key: &str, value: &str) -> Self {
        if self.0.query_pairs().any(|(k, _)| k == key) {
            return self.clone();
        }
        let mut url = self.0.clone();
        url.query_pairs_mut().append_pair(key, value);
        Self(url)
    }

    /// The host, for "Connecting to ..." lines.
    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }

    /// `host:port` (or the host alone).
    pub fn host_port(&self) -> String {
        let host = self.0.host_str().unwrap_or_default();
        match self.0.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    /// The URL with the password replaced by `***`.
    pub fn redacted(&self) -> String {
        let mut shown = self.0.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("***"));
        }
        shown.to_string()
    }
}

impl fmt::Debug for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceUrl({})", self.redacted())
    }
}

impl fmt::Display for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMES: &[&str] = &["amqp", "amqps", "redis", "rediss"];

    fn url(text: &str) -> ServiceUrl {
        ServiceUrl::parse("TEST_URL", text, SCHEMES).unwrap()
    }

    #[test]
    fn a_query_default_is_added_unless_the_url_sets_it() {
        let plain = url("amqp://u:p@host:5672/%2f");
        assert_eq!(plain.with_query_default("frame_max", "16384").expose(), "amqp://u:p@host:5672/%2f?frame_max=16384");
        let set = url("amqp://host/v?heartbeat=5&frame_max=8192");
        assert_eq!(set.with_query_default("frame_max", "16384").expose(), "amqp://host/v?heartbeat=5&frame_max=8192");
        let other = url("amqp://host/v?heartbeat=5");
        assert_eq!(
            other.with_query_default("frame_max", "16384").expose(),
            "amqp://host/v?heartbeat=5&frame_max=16384"
        );
    }

    #[test]
    fn passwords_never_survive_redaction() {
        for (text, shown) in [
            ("amqp://guest:s3cr3t@rabbit:5672/%2f", "amqp://guest:***@rabbit:5672/%2f"),
            ("rediss://:p%40ss@redis:6380", "rediss://:***@redis:6380"),
            ("redis://redis:6379", "redis://redis:6379"),
            ("amqp://guest:Pa%2Fss%23Secret1@host/", "amqp://guest:***@host/"),
        ] {
            let u = url(text);
            assert_eq!(u.redacted(), shown);
            assert_eq!(format!("{u}"), shown);
            assert_eq!(format!("{u:?}"), format!("ServiceUrl({shown})"));
        }
        assert_eq!(format!("{:?} {}", Secret::new("x"), Secret::new("x")), "Secret(***) ***");
        assert_eq!(url("amqp://u:p@rabbit:5672/vh").host_port(), "rabbit:5672");
    }

    #[test]
    fn parts_are_percent_encoded_and_hidden() {
        let password = Secret::new("Pa/ss#Secret1?@x");
        let u = ServiceUrl::from_parts("RABBITMQ_HOST", "amqp", "rabbit", 5672, Some("guest"), Some(&password), "/%2f")
            .unwrap();
        assert_eq!(u.expose(), "amqp://guest:Pa%2Fss%23Secret1%3F%40x@rabbit:5672/%2f");
        assert!(!format!("{u} {u:?}").contains("Secret1"));
    }

    #[test]
    fn malformed_urls_name_the_setting_without_the_secret() {
        for bad in ["redis://bad host:x", "redis://:Secret1@host:x", "http://host", "redis://", "not a url"] {
            let e = ServiceUrl::parse("REDIS_URL", bad, SCHEMES).unwrap_err().to_string();
            assert!(e.starts_with("REDIS_URL: "), "{e}");
            assert!(!e.contains("Secret1"), "{e}");
        }
    }
}

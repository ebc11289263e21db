//! [`SafeFetcher`]: downloads an image for `POST /scan/url` without becoming a proxy into
//! the server's own network (server-side request forgery).
//!
//! Each hop (the URL and at most [`FetchPolicy::max_redirects`] redirects): the scheme must
//! be http or https; the host is resolved once, *every* address is checked with
//! [`refusal`], and the connection goes to exactly those checked addresses (ureq is handed
//! a resolver pinned to them), so a second DNS answer cannot swap in another address.
//! Connect, read and total times are bounded, the body is capped at the worker's image
//! limit, and it must sniff as an image.

use super::ports::{FetchError, UrlFetcher};
use async_trait::async_trait;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs as _};
use std::sync::Arc;
use std::time::Duration;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};
use url::{Host, Url};

/// Longest URL accepted, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

/// Why an address may not be contacted for a client, or `None` when it may.
/// IPv4-mapped and IPv4-compatible IPv6 addresses are judged as the IPv4 address they carry.
pub fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return refusal_v4(v4).map(|_| "IPv4-mapped private");
            }
            refusal_v6(v6)
        }
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("multicast or reserved")
    } else if ip.is_documentation() || (a == 192 && b == 0 && ip.octets()[2] == 0) || (a == 198 && (b & 0xfe) == 18) {
        Some("special-purpose")
    } else {
        None
    }
}

fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if (s[0] & 0xfe00) == 0xfc00 {
        Some("unique-local")
    } else if (s[0] & 0xffc0) == 0xfe80 || (s[0] & 0xffc0) == 0xfec0 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if s[0..6] == [0, 0, 0, 0, 0, 0] {
        // IPv4-compatible (deprecated): ::a.b.c.d
        Some("IPv4-compatible")
    } else if s[0] == 0x64 && s[1] == 0xff9b {
        // NAT64 reaches IPv4 space the checks above cannot see.
        Some("NAT64")
    } else if s[0] == 0x2002 || (s[0] == 0x2001 && s[1] == 0) || (s[0] == 0x2001 && s[1] == 0xdb8) {
        Some("6to4, Teredo or documentation")
    } else {
        None
    }
}

/// Host names to addresses; replaced in tests by a table.
pub trait Resolve: Send + Sync + 'static {
    /// Every address of `host`.
    ///
    /// # Errors
    /// The name does not resolve.
    fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>>;
}

/// The system's resolver (`getaddrinfo`).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolve;

impl Resolve for SystemResolve {
    fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>> {
        Ok((host, port).to_socket_addrs()?.map(|a| a.ip()).collect())
    }
}

/// What [`SafeFetcher`] allows.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// Allow loopback, private, link-local ... addresses (`FACEREC_API_ALLOW_PRIVATE_URLS`;
    /// local development and tests only).
    pub allow_private: bool,
    /// Exact addresses (IP and port) exempt from the check: an image server inside the
    /// network that the operator trusts, or a test's origin. Redirects from it are still
    /// checked.
    pub trusted: Vec<SocketAddr>,
    /// Largest body, in bytes (the worker's image limit).
    pub max_bytes: usize,
    /// Redirects followed at most, each checked like the first URL.
    pub max_redirects: u32,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time between bytes received.
    pub read_timeout: Duration,
    /// Time for the whole fetch, redirects included.
    pub total_timeout: Duration,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            allow_private: false,
            trusted: Vec::new(),
            max_bytes: crate::decode::DecodeLimits::default().max_bytes,
            max_redirects: 3,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(30),
        }
    }
}

/// The production [`UrlFetcher`].
#[derive(Clone)]
pub struct SafeFetcher {
    policy: FetchPolicy,
    resolver: Arc<dyn Resolve>,
}

impl SafeFetcher {
    /// A fetcher using the system's resolver.
    pub fn new(policy: FetchPolicy) -> Self {
        Self::with_resolver(policy, Arc::new(SystemResolve))
    }

    /// A fetcher using `resolver` (tests: a fixed table).
    pub fn with_resolver(policy: FetchPolicy, resolver: Arc<dyn Resolve>) -> Self {
        Self { policy, resolver }
    }

    /// The fetch, on the calling (blocking) thread.
    ///
    /// # Errors
    /// See [`FetchError`].
    pub fn fetch_blocking(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        if url.len() > MAX_URL_BYTES {
            return Err(FetchError::InvalidUrl(format!("the URL is longer than {MAX_URL_BYTES} bytes")));
        }
        let mut url = Url::parse(url).map_err(|e| FetchError::InvalidUrl(format!("{e}")))?;
        let started = std::time::Instant::now();
        for _ in 0..=self.policy.max_redirects {
            let addrs = self.checked_addresses(&url)?;
            let left = self.policy.total_timeout.saturating_sub(started.elapsed());
            let config = ureq::Agent::config_builder()
                .max_redirects(0)
                .http_status_as_error(false)
                .proxy(None)
                .user_agent("facerec-api")
                .timeout_connect(Some(self.policy.connect_timeout))
                .timeout_recv_response(Some(self.policy.read_timeout))
                .timeout_per_read(Some(self.policy.read_timeout))
                .timeout_global(Some(left.max(Duration::from_millis(1))))
                .build();
            let agent = ureq::Agent::with_parts(config, DefaultConnector::new(), Pinned(addrs));
            let response = agent.get(url.as_str()).call().map_err(unreachable)?;
            let status = response.status().as_u16();
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| FetchError::BadResponse(format!("{status} without a Location")))?;
                url =
                    url.join(location).map_err(|e| FetchError::InvalidUrl(format!("redirect to {location:?}: {e}")))?;
                continue;
            }
            if status != 200 {
                return Err(FetchError::BadResponse(status.to_string()));
            }
            let body =
                response.into_body().into_with_config().limit(self.policy.max_bytes as u64).read_to_vec().map_err(
                    |e| match e {
                        ureq::Error::BodyExceedsLimit(_) => FetchError::TooLarge { limit: self.policy.max_bytes },
                        other => unreachable(other),
                    },
                )?;
            return if is_image(&body) { Ok(body) } else { Err(FetchError::NotAnImage) };
        }
        Err(FetchError::BadResponse(format!("more than {} redirects", self.policy.max_redirects)))
    }

    /// The URL's addresses, every one of them allowed, with the port to connect to.
    fn checked_addresses(&self, url: &Url) -> Result<Vec<SocketAddr>, FetchError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::InvalidUrl(format!("scheme {:?}: only http and https are fetched", url.scheme())));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FetchError::InvalidUrl("URLs with credentials are not fetched".into()));
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let ips = match url.host() {
            None => return Err(FetchError::InvalidUrl("the URL has no host".into())),
            Some(Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
            Some(Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
            Some(Host::Domain(name)) => self
                .resolver
                .resolve(name, port)
                .map_err(|e| FetchError::Unreachable(format!("{name} does not resolve: {e}")))?,
        };
        if ips.is_empty() {
            return Err(FetchError::Unreachable(format!("{} has no address", url.host_str().unwrap_or(""))));
        }
        if !self.policy.allow_private {
            for ip in &ips {
                if self.policy.trusted.contains(&SocketAddr::new(*ip, port)) {
                    continue;
                }
                if let Some(class) = refusal(*ip) {
                    return Err(FetchError::Refused(format!(
                        "{} resolves to {ip}, a {class} address; the server fetches only public addresses",
                        url.host_str().unwrap_or("")
                    )));
                }
            }
        }
        Ok(ips.into_iter().take(16).map(|ip| SocketAddr::new(ip, port)).collect())
    }
}

#[async_trait]
impl UrlFetcher for SafeFetcher {
    async fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let this = self.clone();
        let url = url.to_owned();
        tokio::task::spawn_blocking(move || this.fetch_blocking(&url))
            .await
            .map_err(|e| FetchError::Unreachable(format!("fetch task failed: {e}")))?
    }
}

/// Whether `bytes` start like an image format the worker decodes.
pub fn is_image(bytes: &[u8]) -> bool {
    use image::ImageFormat::{Bmp, Gif, Jpeg, Png, WebP};
    matches!(image::guess_format(bytes), Ok(Jpeg | Png | Gif | Bmp | WebP))
}

fn unreachable(e: ureq::Error) -> FetchError {
    FetchError::Unreachable(e.to_string())
}

/// A ureq resolver that answers only the addresses already checked.
#[derive(Debug)]
struct Pinned(Vec<SocketAddr>);

impl Resolver for Pinned {
    fn resolve(
        &self,
        _uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut out = self.empty();
        for a in &self.0 {
            out.push(*a);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refused_class_is_refused_and_public_addresses_pass() {
        for (ip, class) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast or reserved"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00::1", "unique-local"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "IPv4-mapped private"),
            ("::ffff:169.254.169.254", "IPv4-mapped private"),
            ("64:ff9b::7f00:1", "NAT64"),
        ] {
            assert_eq!(refusal(ip.parse().unwrap()), Some(class), "{ip}");
        }
        for ip in ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert_eq!(refusal(ip.parse().unwrap()), None, "{ip}");
        }
    }
}

//! The fetcher refuses every private address class, checks every resolved address, pins
//! the connection to the checked address (no DNS rebinding), re-checks each redirect, and
//! bounds size, time and content. Origins are loopback servers counting their connections.

use facerec::api::fetch::{FetchPolicy, Resolve, SafeFetcher};
use facerec::api::ports::FetchError;
use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A loopback HTTP server: one canned raw response per path, connections counted.
struct Origin {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl Origin {
    fn start(ip: &str, routes: Vec<(&'static str, Vec<u8>)>) -> Self {
        Self::start_on(format!("{ip}:0").parse().unwrap(), routes)
    }

    fn start_on(addr: SocketAddr, routes: Vec<(&'static str, Vec<u8>)>) -> Self {
        let listener = TcpListener::bind(addr).unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        let routes: HashMap<_, _> = routes.into_iter().collect();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                if path == "/hang" {
                    std::thread::sleep(Duration::from_secs(3));
                    continue;
                }
                let response = routes.get(path.as_str()).cloned().unwrap_or_else(|| respond("404 Not Found", b"no"));
                let _ = stream.write_all(&response);
            }
        });
        Self { addr, connections }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn respond(status: &str, body: &[u8]) -> Vec<u8> {
    let mut r =
        format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

fn redirect(to: &str) -> Vec<u8> {
    format!("HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").into_bytes()
}

fn png() -> Vec<u8> {
    super::png("origin")
}

/// Names to addresses; `rebind` answers its first address once, then the second forever.
#[derive(Default)]
struct Table {
    names: HashMap<&'static str, Vec<IpAddr>>,
    rebind: Mutex<Vec<IpAddr>>,
    calls: AtomicUsize,
}

impl Resolve for Table {
    fn resolve(&self, host: &str, _port: u16) -> std::io::Result<Vec<IpAddr>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if host == "rebind.test" {
            let mut answers = self.rebind.lock().unwrap();
            let first = answers[0];
            if answers.len() > 1 {
                answers.remove(0);
            }
            return Ok(vec![first]);
        }
        self.names.get(host).cloned().ok_or_else(|| std::io::Error::other("no such host"))
    }
}

fn table(entries: &[(&'static str, &[&str])]) -> Table {
    let names = entries.iter().map(|(n, ips)| (*n, ips.iter().map(|i| i.parse().unwrap()).collect())).collect();
    Table { names, ..Table::default() }
}

fn fetcher(table: Table, policy: FetchPolicy) -> SafeFetcher {
    SafeFetcher::with_resolver(policy, Arc::new(table))
}

fn strict() -> FetchPolicy {
    FetchPolicy { read_timeout: Duration::from_millis(500), ..FetchPolicy::default() }
}

fn refused(r: Result<Vec<u8>, FetchError>, what: &str) -> String {
    match r {
        Err(FetchError::Refused(detail)) => detail,
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

#[test]
fn every_private_address_class_is_refused_and_never_connected() {
    let origin = Origin::start("127.0.0.1", vec![("/a.png", respond("200 OK", &png()))]);
    let port = origin.addr.port();
    let t = table(&[
        ("loopback.test", &["127.0.0.1"]),
        ("private10.test", &["10.0.0.5"]),
        ("private172.test", &["172.20.1.1"]),
        ("private192.test", &["192.168.0.10"]),
        ("metadata.test", &["169.254.169.254"]),
        ("ula.test", &["fd12:3456::1"]),
        ("linklocal6.test", &["fe80::1"]),
        ("mapped.test", &["::ffff:127.0.0.1"]),
        ("multicast.test", &["224.0.0.251"]),
        ("unspecified.test", &["0.0.0.0"]),
        ("unspecified6.test", &["::"]),
        ("loopback6.test", &["::1"]),
        // One bad address among public ones is enough to refuse.
        ("mixed.test", &["93.184.215.14", "127.0.0.1"]),
    ]);
    let f = fetcher(t, strict());
    for (host, class) in [
        ("loopback.test", "loopback"),
        ("private10.test", "private"),
        ("private172.test", "private"),
        ("private192.test", "private"),
        ("metadata.test", "link-local"),
        ("ula.test", "unique-local"),
        ("linklocal6.test", "link-local"),
        ("mapped.test", "IPv4-mapped"),
        ("multicast.test", "multicast"),
        ("unspecified.test", "unspecified"),
        ("unspecified6.test", "unspecified"),
        ("loopback6.test", "loopback"),
        ("mixed.test", "loopback"),
    ] {
        let detail = refused(f.fetch_blocking(&format!("http://{host}:{port}/a.png")), host);
        assert!(detail.contains(class), "{host}: {detail}");
    }
    for literal in [
        origin.url("/a.png"),
        format!("http://[::1]:{port}/a.png"),
        "http://169.254.169.254/latest/meta-data/".into(),
        format!("http://[::ffff:7f00:1]:{port}/a.png"),
        format!("http://2130706433:{port}/a.png"), // 127.0.0.1 as one number
        format!("http://0x7f.1:{port}/a.png"),
    ] {
        refused(f.fetch_blocking(&literal), &literal);
    }
    assert_eq!(origin.connections(), 0, "a refused address is never connected to");
}

#[test]
fn only_http_and_https_urls_without_credentials_are_fetched() {
    let f = fetcher(Table::default(), strict());
    for url in ["file:///etc/passwd", "ftp://example.com/a.png", "gopher://x/", "not a url", "http://user:pw@x.test/"] {
        assert!(matches!(f.fetch_blocking(url), Err(FetchError::InvalidUrl(_))), "{url}");
    }
    let long = format!("http://x.test/{}", "a".repeat(3000));
    assert!(matches!(f.fetch_blocking(&long), Err(FetchError::InvalidUrl(_))));
}

#[test]
fn a_hostname_resolving_to_127_0_0_1_is_refused_but_allowed_in_development() {
    let origin = Origin::start("127.0.0.1", vec![("/a.png", respond("200 OK", &png()))]);
    let url = format!("http://images.test:{}/a.png", origin.addr.port());
    let t = || table(&[("images.test", &["127.0.0.1"])]);
    refused(fetcher(t(), strict()).fetch_blocking(&url), "images.test");
    assert_eq!(origin.connections(), 0);
    let dev = fetcher(t(), FetchPolicy { allow_private: true, ..strict() });
    assert_eq!(dev.fetch_blocking(&url).unwrap(), png());
}

fn trusting(origin: &Origin) -> FetchPolicy {
    FetchPolicy { trusted: vec![origin.addr], ..strict() }
}

#[test]
fn each_redirect_is_checked_again() {
    let inner = Origin::start("127.0.0.1", vec![("/secret.png", respond("200 OK", &png()))]);
    let outer = Origin::start(
        "127.0.0.1",
        vec![
            ("/to-loopback", redirect(&inner.url("/secret.png"))),
            ("/to-metadata", redirect("http://169.254.169.254/latest/meta-data/")),
            ("/to-private-name", redirect(&format!("http://intranet.test:{}/secret.png", inner.addr.port()))),
            ("/to-file", redirect("file:///etc/passwd")),
            ("/to-self", redirect("/image.png")),
            ("/image.png", respond("200 OK", &png())),
            ("/loop", redirect("/loop")),
        ],
    );
    let t = || table(&[("public.test", &["127.0.0.1"]), ("intranet.test", &["10.1.1.1"])]);
    // The outer origin is trusted (it stands for a public server); its redirects are not.
    let f = fetcher(t(), trusting(&outer));
    let host = format!("http://public.test:{}", outer.addr.port());
    for path in ["/to-loopback", "/to-metadata", "/to-private-name"] {
        let detail = refused(f.fetch_blocking(&format!("{host}{path}")), path);
        assert!(detail.contains("address"), "{detail}");
    }
    assert!(matches!(f.fetch_blocking(&format!("{host}/to-file")), Err(FetchError::InvalidUrl(_))));
    assert_eq!(inner.connections(), 0, "a redirect to a private address is never followed");
    assert_eq!(
        f.fetch_blocking(&format!("{host}/to-self")).unwrap(),
        png(),
        "a redirect to a checked address is followed"
    );
    assert!(
        matches!(f.fetch_blocking(&format!("{host}/loop")), Err(FetchError::BadResponse(d)) if d.contains("redirects"))
    );
    // With private addresses allowed (development) the same redirect is followed.
    let dev = fetcher(t(), FetchPolicy { allow_private: true, ..strict() });
    assert_eq!(dev.fetch_blocking(&format!("{host}/to-loopback")).unwrap(), png());
    assert_eq!(inner.connections(), 1);
}

#[test]
fn the_connection_goes_to_the_checked_address_even_if_dns_changes_its_answer() {
    let good = Origin::start("127.0.0.1", vec![("/a.png", respond("200 OK", &png()))]);
    // A second server on another loopback address and the same port: where a re-resolving
    // client would end up.
    let Ok(evil_addr) = format!("127.0.0.2:{}", good.addr.port()).parse::<SocketAddr>() else { unreachable!() };
    let evil = Origin::start_on(evil_addr, vec![("/a.png", respond("200 OK", b"GIF89a secret"))]);
    let t = Table {
        rebind: Mutex::new(vec!["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()]),
        ..Table::default()
    };
    let f = fetcher(t, trusting(&good));
    let url = format!("http://rebind.test:{}/a.png", good.addr.port());
    assert_eq!(f.fetch_blocking(&url).unwrap(), png());
    assert_eq!((good.connections(), evil.connections()), (1, 0));
    // The next fetch resolves again, gets the untrusted address, and is refused.
    refused(f.fetch_blocking(&url), "rebound");
    assert_eq!(evil.connections(), 0);
}

#[test]
fn size_time_status_and_content_are_bounded() {
    let big = [png(), vec![0u8; 5000]].concat();
    let origin = Origin::start(
        "127.0.0.1",
        vec![
            ("/a.png", respond("200 OK", &png())),
            ("/big.png", respond("200 OK", &big)),
            ("/page.html", respond("200 OK", b"<html>hello</html>")),
            ("/missing", respond("404 Not Found", b"")),
        ],
    );
    let f = fetcher(Table::default(), FetchPolicy { max_bytes: 1000, ..trusting(&origin) });
    assert_eq!(f.fetch_blocking(&origin.url("/a.png")).unwrap(), png());
    assert_eq!(f.fetch_blocking(&origin.url("/big.png")), Err(FetchError::TooLarge { limit: 1000 }));
    assert_eq!(f.fetch_blocking(&origin.url("/page.html")), Err(FetchError::NotAnImage));
    assert!(matches!(f.fetch_blocking(&origin.url("/missing")), Err(FetchError::BadResponse(s)) if s == "404"));
    let started = Instant::now();
    assert!(matches!(f.fetch_blocking(&origin.url("/hang")), Err(FetchError::Unreachable(_))));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    let unresolvable = f.fetch_blocking("http://nowhere.test/a.png");
    assert!(matches!(unresolvable, Err(FetchError::Unreachable(_))), "{unresolvable:?}");
}

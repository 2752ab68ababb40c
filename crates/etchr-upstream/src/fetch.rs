//! Fetching `http(s)` images on a client's behalf, safely.
//!
//! A sidecar that fetches URLs its clients name is a server-side request forgery risk: a client
//! could make it read cloud metadata (`169.254.169.254`), admin ports on loopback or services
//! on the private network. [`ImageFetcher`] therefore only fetches from an allowlist of hosts,
//! and refuses private, loopback, link-local and other non-public addresses *after* DNS
//! resolution, inside the connector's own resolver, so a name that resolves (or re-resolves,
//! "DNS rebinding") to a private address is refused on the connection actually made. IP
//! literals in URLs and redirects are checked too (they bypass the resolver), proxies from the
//! environment are ignored (a proxy would resolve the name itself), and every fetch has a size
//! and time limit.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::CONTENT_LENGTH;
use reqwest::Url;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// What may be fetched, and how much.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchPolicy {
    /// Host names that may be fetched from: `images.example.com` (exactly that host) or
    /// `*.example.com` (any subdomain, not the bare domain). `*` alone allows any host (the
    /// address checks still apply). Empty allows nothing.
    pub allowed_hosts: Vec<String>,
    /// Largest image, in bytes.
    pub max_bytes: u64,
    /// The whole fetch (connect, redirects, body).
    pub timeout: Duration,
    /// Most redirects followed; each target is checked like the original URL.
    pub max_redirects: usize,
    /// Allow private, loopback and link-local addresses. Only for tests and fully trusted
    /// networks: it re-opens the SSRF hole this module closes.
    pub allow_private_addresses: bool,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            max_bytes: 20 * 1024 * 1024,
            timeout: Duration::from_secs(10),
            max_redirects: 3,
            allow_private_addresses: false,
        }
    }
}

/// Why a fetch did not return an image. The messages are safe to show the client: they name
/// the URL the client sent and nothing from our network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// Not an absolute `http(s)` URL.
    InvalidUrl(String),
    /// The host is not on the allowlist.
    HostNotAllowed(String),
    /// The host is, or resolves to, a private, loopback or otherwise non-public address.
    AddressNotAllowed(String),
    /// The image is larger than `max_bytes`.
    TooLarge(String),
    /// The fetch took longer than its time limit.
    Timeout(String),
    /// Connection failure or a non-2xx answer.
    Failed(String),
}

impl FetchError {
    pub fn message(&self) -> &str {
        match self {
            FetchError::InvalidUrl(m)
            | FetchError::HostNotAllowed(m)
            | FetchError::AddressNotAllowed(m)
            | FetchError::TooLarge(m)
            | FetchError::Timeout(m)
            | FetchError::Failed(m) => m,
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for FetchError {}

/// Fetches images under a [`FetchPolicy`]. Cheap to clone.
#[derive(Clone)]
pub struct ImageFetcher {
    client: reqwest::Client,
    policy: Arc<FetchPolicy>,
}

impl fmt::Debug for ImageFetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageFetcher")
            .field("policy", &self.policy)
            .finish()
    }
}

impl ImageFetcher {
    pub fn new(policy: FetchPolicy) -> Result<Self, String> {
        let policy = Arc::new(policy);
        let redirect_policy = policy.clone();
        let client = reqwest::Client::builder()
            // A proxy would resolve names itself, past our resolver.
            .no_proxy()
            .dns_resolver(PublicOnlyResolver {
                allow_private: policy.allow_private_addresses,
            })
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > redirect_policy.max_redirects {
                    return attempt.error(FetchError::Failed(format!(
                        "more than {} redirects",
                        redirect_policy.max_redirects
                    )));
                }
                match check_url(attempt.url(), &redirect_policy) {
                    Ok(()) => attempt.follow(),
                    Err(e) => attempt.error(e),
                }
            }))
            .connect_timeout(policy.timeout)
            .user_agent(concat!("etchr/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the image-fetching HTTP client: {e}"))?;
        Ok(Self { client, policy })
    }

    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// Fetches `url`, or says why not. Never reads more than `max_bytes` (plus one chunk).
    pub async fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let parsed = Url::parse(url.trim())
            .map_err(|e| FetchError::InvalidUrl(format!("invalid image URL {url:?}: {e}")))?;
        check_url(&parsed, &self.policy)?;
        let shown = shown_url(&parsed);
        let timeout = self.policy.timeout;
        match tokio::time::timeout(timeout, self.get(parsed, &shown)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout(format!(
                "fetching the image at {shown} took longer than {:.1} s",
                timeout.as_secs_f64()
            ))),
        }
    }

    async fn get(&self, url: Url, shown: &str) -> Result<Vec<u8>, FetchError> {
        let mut resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| classify(&e, shown))?;
        if !resp.status().is_success() {
            return Err(FetchError::Failed(format!(
                "fetching the image at {shown} failed with HTTP {}",
                resp.status().as_u16()
            )));
        }
        let max = self.policy.max_bytes;
        let too_large = || {
            FetchError::TooLarge(format!(
                "the image at {shown} is larger than the limit of {max} bytes"
            ))
        };
        let declared = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max) {
            return Err(too_large());
        }
        let mut body = Vec::with_capacity(declared.unwrap_or(0).min(max) as usize);
        while let Some(chunk) = resp.chunk().await.map_err(|e| classify(&e, shown))? {
            if body.len() as u64 + chunk.len() as u64 > max {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The URL as shown in messages: without credentials, query or fragment (which may hold tokens).
fn shown_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// Scheme, allowlist and IP-literal checks, for the first URL and every redirect target.
fn check_url(url: &Url, policy: &FetchPolicy) -> Result<(), FetchError> {
    let shown = shown_url(url);
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::InvalidUrl(format!(
            "only http and https image URLs are fetched, not {shown}"
        )));
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.trim_end_matches('.').to_ascii_lowercase(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => {
            return Err(FetchError::InvalidUrl(format!(
                "the image URL {shown} has no host"
            )))
        }
    };
    if !host_allowed(&host, &policy.allowed_hosts) {
        return Err(FetchError::HostNotAllowed(format!(
            "fetching images from {host} is not allowed (not on the fetch allowlist)"
        )));
    }
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        _ => None,
    };
    if let Some(ip) = literal {
        if !policy.allow_private_addresses && !is_public(ip) {
            return Err(address_refused(&host));
        }
    }
    Ok(())
}

fn address_refused(host: &str) -> FetchError {
    FetchError::AddressNotAllowed(format!(
        "refusing to fetch from {host}: it is (or resolves to) a private, loopback or \
         link-local address"
    ))
}

/// `host` (lower case) against the allowlist entries.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|pattern| {
        let pattern = pattern.trim().trim_end_matches('.').to_ascii_lowercase();
        if pattern == "*" {
            return true;
        }
        match pattern.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
            None => host == pattern,
        }
    })
}

/// Whether `ip` is a public unicast address: not loopback, private, link-local, shared (CGNAT),
/// unspecified, broadcast, multicast, documentation, benchmarking or reserved — and for IPv6
/// the same, including IPv4-mapped and IPv4-compatible forms.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            is_public_v6(v6)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 (embeds IPv4)
        || (s[0] == 0x2002) // 6to4 (embeds IPv4)
        || (s[0..6] == [0, 0, 0, 0, 0, 0])) // IPv4-compatible (deprecated)
}

/// Resolves with the system resolver, then drops every non-public address; a name with only
/// non-public addresses is an error, so the connector never dials one.
struct PublicOnlyResolver {
    allow_private: bool,
}

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(address_refused(&host)) as Box<_>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// A reqwest error as a [`FetchError`], keeping our own refusals (from the resolver or the
/// redirect policy) as they were.
fn classify(err: &reqwest::Error, shown: &str) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(ours) = e.downcast_ref::<FetchError>() {
            return ours.clone();
        }
        source = e.source();
    }
    if err.is_timeout() {
        return FetchError::Timeout(format!("fetching the image at {shown} timed out"));
    }
    FetchError::Failed(format!(
        "fetching the image at {shown} failed: {}",
        if err.is_connect() {
            "could not connect"
        } else if err.is_redirect() {
            "bad redirect"
        } else {
            "the transfer failed"
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_recognised() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip(s)), "{s} must not count as public");
        }
        for s in [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip(s)), "{s} is public");
        }
    }

    #[test]
    fn allowlist_matches_hosts_and_subdomains() {
        let allowed = vec!["images.example.com".to_string(), "*.cdn.test".to_string()];
        assert!(host_allowed("images.example.com", &allowed));
        assert!(!host_allowed("evil.images.example.com", &allowed));
        assert!(!host_allowed("example.com", &allowed));
        assert!(host_allowed("a.cdn.test", &allowed));
        assert!(host_allowed("a.b.cdn.test", &allowed));
        assert!(!host_allowed("cdn.test", &allowed));
        assert!(!host_allowed("evilcdn.test", &allowed));
        assert!(host_allowed("anything", &["*".to_string()]));
        assert!(!host_allowed("anything", &[]));
    }

    #[test]
    fn urls_are_checked_before_any_connection() {
        let policy = FetchPolicy {
            allowed_hosts: vec!["*".into()],
            ..FetchPolicy::default()
        };
        let check = |u: &str| check_url(&Url::parse(u).unwrap(), &policy);
        assert!(matches!(
            check("file:///etc/passwd"),
            Err(FetchError::InvalidUrl(_))
        ));
        assert!(matches!(
            check("http://169.254.169.254/latest/meta-data/"),
            Err(FetchError::AddressNotAllowed(_))
        ));
        assert!(matches!(
            check("http://[::ffff:7f00:1]:8080/"),
            Err(FetchError::AddressNotAllowed(_))
        ));
        assert!(matches!(
            check("http://2130706433/"), // 127.0.0.1 as a bare number
            Err(FetchError::AddressNotAllowed(_))
        ));
        assert!(check("https://images.example.com/a.png").is_ok());
        let closed = FetchPolicy::default();
        assert!(matches!(
            check_url(&Url::parse("https://a.example/x.png").unwrap(), &closed),
            Err(FetchError::HostNotAllowed(_))
        ));
    }

    #[test]
    fn shown_urls_drop_credentials_and_queries() {
        let u = Url::parse("https://user:pw@a.example/x.png?token=secret#f").unwrap();
        assert_eq!(shown_url(&u), "https://a.example/x.png");
    }
}

//! Which push endpoints Herald will POST to.
//!
//! A push endpoint is a URL a browser (so, any user) hands the server, and the
//! worker POSTs to it: accepting any URL would let a user make Herald send
//! requests into its own network (SSRF). So an endpoint must be `https`, its host
//! must be on the allowed list (the browsers' push services by default), and every
//! address the host resolves to must be public. The address check runs when a
//! subscription is stored and again, through [`EndpointPolicy::resolver`], for
//! every connection the push client opens, so a DNS answer that changes between
//! the two (DNS rebinding) is caught too; the client follows no redirects.
//!
//! For tests only, `allow_insecure` admits `http` and non-public addresses (a push
//! service stand-in on loopback), still for listed hosts only.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.example.com`: any subdomain (not the domain itself).
    Subdomains(String),
}

impl HostPattern {
    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(h) => host == h,
            Self::Subdomains(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
        }
    }
}

/// The rules an endpoint must pass.
#[derive(Debug, Clone)]
pub struct EndpointPolicy {
    hosts: Vec<HostPattern>,
    allow_insecure: bool,
}

impl EndpointPolicy {
    /// `hosts`: comma-separated exact hosts or `*.domain` patterns.
    pub fn parse(hosts: &str, allow_insecure: bool) -> Result<Self, String> {
        let mut out = Vec::new();
        for raw in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            let lower = raw.to_ascii_lowercase();
            let pattern = match lower.strip_prefix("*.") {
                Some(rest) if !rest.is_empty() && !rest.contains('*') => {
                    HostPattern::Subdomains(format!(".{rest}"))
                }
                None if !lower.contains(['*', '/', ':', ' ']) || lower.parse::<IpAddr>().is_ok() => {
                    HostPattern::Exact(lower)
                }
                _ => return Err(format!("`{raw}` is not a host or `*.domain` pattern")),
            };
            out.push(pattern);
        }
        if out.is_empty() {
            return Err("list at least one push service host".into());
        }
        Ok(Self {
            hosts: out,
            allow_insecure,
        })
    }

    /// Checks an endpoint's form: an absolute URL, `https` (or `http` when
    /// insecure endpoints are allowed), no credentials, a listed host, and, for
    /// an IP address as host, a public one. Returns the URL.
    pub fn check(&self, endpoint: &str) -> Result<url::Url, String> {
        // The URL parser strips or encodes control characters, but the
        // endpoint is stored as given: refuse them rather than store text
        // other than what was checked.
        if endpoint.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        let url = url::Url::parse(endpoint).map_err(|_| "must be an absolute URL".to_owned())?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_insecure => {}
            _ => return Err("must be an https URL".into()),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".into());
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err("must have a host".into()),
        };
        if !self.hosts.iter().any(|p| p.matches(&host)) {
            return Err(format!(
                "`{host}` is not an allowed push service (HERALD_PUSH_ALLOWED_HOSTS)"
            ));
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            if !self.allow_insecure && !is_public(ip) {
                return Err(format!("`{host}` is not a public address"));
            }
        }
        Ok(url)
    }

    /// Resolves `url`'s host as the push client will, and fails unless every
    /// address is public (when insecure endpoints are not allowed).
    pub async fn resolve(&self, url: &url::Url) -> Result<Vec<SocketAddr>, String> {
        let host = url.host_str().ok_or("must have a host")?;
        let port = url.port_or_known_default().unwrap_or(443);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("`{host}` does not resolve: {e}"))?
            .collect();
        public_only(addrs, self.allow_insecure).map_err(|e| format!("`{host}` {e}"))
    }

    /// A DNS resolver for the push client that refuses hosts resolving to any
    /// address that is not public (unless insecure endpoints are allowed).
    pub fn resolver(&self) -> Arc<PublicResolver> {
        Arc::new(PublicResolver {
            allow_private: self.allow_insecure,
        })
    }
}

fn public_only(addrs: Vec<SocketAddr>, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
    if addrs.is_empty() {
        return Err("resolves to no address".into());
    }
    if !allow_private {
        if let Some(a) = addrs.iter().find(|a| !is_public(a.ip())) {
            return Err(format!("resolves to {}, which is not a public address", a.ip()));
        }
    }
    Ok(addrs)
}

/// See [`EndpointPolicy::resolver`].
#[derive(Debug)]
pub struct PublicResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ok = public_only(addrs, allow_private).map_err(|e| format!("`{host}` {e}"))?;
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether `ip` is an address on the public Internet: not loopback, private,
/// link-local, shared (CGNAT), documentation, benchmarking, multicast,
/// broadcast, reserved or unspecified; IPv4-mapped IPv6 judged as IPv4.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240) // reserved
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || (first == 0x0064 && v6.segments()[1] == 0xff9b)) // NAT64 (maps IPv4, maybe private)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is a failed test

    use super::*;

    #[test]
    fn only_https_endpoints_of_listed_push_services_pass() {
        // The default HERALD_PUSH_ALLOWED_HOSTS (herald_platform::config).
        let hosts = "fcm.googleapis.com,updates.push.services.mozilla.com,*.push.services.mozilla.com,*.notify.windows.com,web.push.apple.com";
        let p = EndpointPolicy::parse(hosts, false).unwrap();
        for ok in [
            "https://fcm.googleapis.com/fcm/send/abc:def",
            "https://updates.push.services.mozilla.com/wpush/v2/gAAA",
            "https://wns2-by3p.notify.windows.com/w/?token=x",
            "https://web.push.apple.com/QGm3",
        ] {
            assert!(p.check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://fcm.googleapis.com/fcm/send/abc",
            "https://evil.example.com/push",
            "https://fcm.googleapis.com.evil.example/x",
            "https://notify.windows.com/x",
            "https://user:pw@fcm.googleapis.com/x",
            "ftp://fcm.googleapis.com/x",
            "https://127.0.0.1/x",
            "https://[::1]/x",
            "https://169.254.169.254/latest/meta-data",
            "fcm.googleapis.com/x",
            "",
            // Control characters, which the URL parser would strip or encode
            // (the endpoint is stored as given).
            "https://fcm.googleapis.com/fcm/send/a\u{0}b",
            "https://fcm.googleapis.com/fcm/send/a\tb",
            "\u{1f}https://fcm.googleapis.com/fcm/send/ab",
        ] {
            assert!(p.check(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn insecure_mode_admits_loopback_http_for_listed_hosts_only() {
        let p = EndpointPolicy::parse("127.0.0.1", true).unwrap();
        assert!(p.check("http://127.0.0.1:8000/push/1").is_ok());
        assert!(p.check("http://10.0.0.1/push/1").is_err(), "not listed");
        let strict = EndpointPolicy::parse("127.0.0.1", false).unwrap();
        assert!(strict.check("http://127.0.0.1:8000/push/1").is_err());
        assert!(
            strict.check("https://127.0.0.1:8000/push/1").is_err(),
            "not public"
        );
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "142.250.1.1", "2a00:1450:4001::200e", "::ffff:8.8.8.8"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn patterns_are_hosts_or_subdomain_wildcards() {
        assert!(EndpointPolicy::parse("", false).is_err());
        assert!(EndpointPolicy::parse("*", false).is_err());
        assert!(EndpointPolicy::parse("a.*.com", false).is_err());
        assert!(EndpointPolicy::parse("https://x.com", false).is_err());
        assert!(EndpointPolicy::parse("push.example.com, *.example.net", false).is_ok());
    }
}

//! The client's address behind a reverse proxy.
//!
//! Per-address limits (failed logins and enrollments) key on the address a request came
//! from. Behind a reverse proxy every connection comes from the proxy, so the proxy says
//! whom it forwarded for, in `X-Forwarded-For` (de facto) or `Forwarded` (RFC 7239). Anyone
//! can send those headers, so they are believed only on a connection from a configured
//! trusted proxy ([`TrustedProxies`]); otherwise the connection's own address is the
//! client's and the headers are ignored. Each proxy appends the address it received the
//! request from, so the list is read from the right: the client is the right-most entry
//! that is not itself a trusted proxy (entries to its left were written by the client and
//! prove nothing).

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;

/// An IP address or a CIDR block (`10.0.0.0/8`, `::1`, `2001:db8::/32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpBlock {
    addr: IpAddr,
    prefix: u8,
}

/// A `--trusted-proxy` that is not an address or CIDR block.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// Not an IP address, or a prefix length beyond the address's bits.
    #[error("`{0}` is not an IP address or CIDR block (e.g. 127.0.0.1, 10.0.0.0/8, ::1)")]
    NotABlock(String),
}

impl FromStr for IpBlock {
    type Err = ProxyError;
    fn from_str(s: &str) -> Result<Self, ProxyError> {
        let bad = || ProxyError::NotABlock(s.to_string());
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(IpBlock { addr, prefix })
    }
}

impl IpBlock {
    /// Whether `ip` is in the block. An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`,
    /// as a dual-stack socket reports it) is compared as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Which header a trusted proxy names the client in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx's `$proxy_add_x_forwarded_for`,
    /// Caddy, most load balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

/// The proxies whose word about the client's address is taken. Only one header is read:
/// a proxy that appends to one and passes the other through unchanged would otherwise let
/// a client choose its own address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    /// The trusted addresses and blocks; empty (the default): no proxy is trusted.
    pub blocks: Vec<IpBlock>,
    /// The header they write.
    pub header: ForwardedHeader,
}

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.blocks.iter().any(|b| b.contains(ip))
    }

    /// The client's address for a connection from `peer` carrying `headers`: `peer`
    /// itself unless it is a trusted proxy; then the right-most forwarded entry that is not
    /// a trusted proxy (or the left-most entry, if every one is). An entry that is not an
    /// address (`unknown`, an obfuscated RFC 7239 name, garbage) stops the walk at the hop
    /// that reported it: nothing to its left can be believed.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let entries = match self.header {
            ForwardedHeader::XForwardedFor => list(headers, "x-forwarded-for", xff_entry),
            ForwardedHeader::Forwarded => list(headers, "forwarded", forwarded_entry),
        };
        let mut current = peer;
        for entry in entries.iter().rev() {
            match entry {
                Some(ip) if self.trusts(*ip) => current = *ip,
                Some(ip) => return *ip,
                None => return current,
            }
        }
        current
    }
}

/// Every comma-separated element of every `name` header, in order, each parsed by `parse`.
fn list(headers: &HeaderMap, name: &str, parse: fn(&str) -> Option<IpAddr>) -> Vec<Option<IpAddr>> {
    let mut out = Vec::new();
    for value in headers.get_all(name) {
        let Ok(text) = value.to_str() else {
            // A header that is not text: believe nothing in it or to its left.
            out.clear();
            out.push(None);
            continue;
        };
        out.extend(text.split(',').map(str::trim).filter(|e| !e.is_empty()).map(parse));
    }
    out
}

/// One `X-Forwarded-For` element: an address, possibly `[v6]` or with a port.
fn xff_entry(e: &str) -> Option<IpAddr> {
    host_of(e)
}

/// The `for=` of one RFC 7239 forwarded-element (`for=192.0.2.60;proto=http`,
/// `for="[2001:db8:cafe::17]:4711"`).
fn forwarded_entry(e: &str) -> Option<IpAddr> {
    e.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then(|| host_of(v.trim().trim_matches('"')))?
    })
}

/// An address written bare, as `[v6]`, `[v6]:port` or `v4:port`.
fn host_of(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (inner, _) = rest.split_once(']')?;
        return inner.parse().ok().map(canonical);
    }
    let (host, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(name, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(blocks: &[&str], header: ForwardedHeader) -> TrustedProxies {
        TrustedProxies { blocks: blocks.iter().map(|b| b.parse().unwrap()).collect(), header }
    }

    #[test]
    fn blocks_parse_and_contain() {
        let b: IpBlock = "10.1.0.0/16".parse().unwrap();
        assert!(b.contains(ip("10.1.200.3")) && !b.contains(ip("10.2.0.1")));
        assert!(!b.contains(ip("::1")));
        let one: IpBlock = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        assert!(one.contains(ip("::ffff:127.0.0.1")), "an IPv4-mapped peer is its IPv4 address");
        let all: IpBlock = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        let v6: IpBlock = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
        for bad in ["", "10.0.0.0/33", "::/129", "example.org", "10.0.0.0/x"] {
            assert!(bad.parse::<IpBlock>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_proxy() {
        let t = proxies(&["127.0.0.1", "10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let h = headers("x-forwarded-for", &["198.51.100.7, 203.0.113.5"]);
        // Not from a proxy: the header is ignored, whatever it says.
        assert_eq!(t.client(ip("192.0.2.1"), &h), ip("192.0.2.1"));
        // From the proxy: the right-most entry that is not a proxy.
        assert_eq!(t.client(ip("127.0.0.1"), &h), ip("203.0.113.5"));
        // Through two trusted proxies (the inner one appended the outer one's address).
        let h = headers("x-forwarded-for", &["6.6.6.6, 203.0.113.5", "10.0.0.2"]);
        assert_eq!(t.client(ip("127.0.0.1"), &h), ip("203.0.113.5"));
        // No header: the proxy itself.
        assert_eq!(t.client(ip("127.0.0.1"), &HeaderMap::new()), ip("127.0.0.1"));
        // Garbage where the proxy's entry should be: stop at the proxy.
        let h = headers("x-forwarded-for", &["203.0.113.5, not-an-address"]);
        assert_eq!(t.client(ip("127.0.0.1"), &h), ip("127.0.0.1"));
        // Ports and brackets.
        let h = headers("x-forwarded-for", &["[2001:db8::7]:443"]);
        assert_eq!(t.client(ip("127.0.0.1"), &h), ip("2001:db8::7"));
        let h = headers("x-forwarded-for", &["203.0.113.5:51000"]);
        assert_eq!(t.client(ip("127.0.0.1"), &h), ip("203.0.113.5"));
        // With no proxy configured, nothing is believed.
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("127.0.0.1"), &h), ip("127.0.0.1"));
    }

    #[test]
    fn forwarded_is_read_only_when_chosen() {
        let xff = proxies(&["127.0.0.1"], ForwardedHeader::XForwardedFor);
        let fwd = proxies(&["127.0.0.1"], ForwardedHeader::Forwarded);
        let h = headers(
            "forwarded",
            &[r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https;by=10.0.0.1"#],
        );
        assert_eq!(fwd.client(ip("127.0.0.1"), &h), ip("2001:db8:cafe::17"));
        assert_eq!(xff.client(ip("127.0.0.1"), &h), ip("127.0.0.1"), "Forwarded not chosen");
        let h = headers("forwarded", &["for=_hidden, for=192.0.2.60"]);
        assert_eq!(fwd.client(ip("127.0.0.1"), &h), ip("192.0.2.60"));
        let h = headers("forwarded", &["for=192.0.2.60, for=unknown"]);
        assert_eq!(fwd.client(ip("127.0.0.1"), &h), ip("127.0.0.1"));
    }
}

//! Enrollment links: one text carrying everything a device needs to enroll.
//!
//! ```text
//! https://custody.example:8443/enroll#token=<64 hex>&fp=<server key fingerprint>
//! ```
//!
//! The server URL is everything before `/enroll`. The secret (the one-time token) and the
//! fingerprint of the server key the device must find are in the URL fragment, which a
//! browser never sends to a server (RFC 3986 §3.5): opening the link on a phone fetches the
//! enrollment page without putting the token in any access log, proxy or `Referer`. The CLI
//! (`custody enroll LINK`) and the phone page both read this form; `custody admin
//! enroll-token --link URL` writes it. Specified in `docs/api.md`, "Enrollment links".

use custody_format::ids::{Fingerprint, PublicKey};

/// The path an enrollment link's URL ends in, before the fragment.
pub const LINK_PATH: &str = "/enroll";

/// A parsed enrollment link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollLink {
    /// The server's base URL (`https://host:port`, maybe with a path prefix), no trailing
    /// slash: API routes are below it (`{server}/v1/enroll`).
    pub server: String,
    /// The one-time token's 32 bytes.
    pub token: [u8; 32],
    /// The fingerprint of the server key: the device enrolls only with a server whose key
    /// has it.
    pub fingerprint: Fingerprint,
}

/// Why a text is not an enrollment link.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// Not `https://` (or `http://`) followed by a host.
    #[error("an enrollment link starts with https:// and the server's address")]
    Scheme,
    /// The part before the fragment does not end in `/enroll`, or has a query.
    #[error("an enrollment link's address ends in /enroll, followed by #token=…&fp=…")]
    Path,
    /// No fragment, or a fragment parameter missing, repeated or unknown.
    #[error("an enrollment link ends in #token=<64 hex digits>&fp=<fingerprint>: {0}")]
    Fragment(&'static str),
    /// The token is not 64 hex digits.
    #[error("the link's token must be 64 hex digits")]
    Token,
    /// The fingerprint does not parse.
    #[error("the link's fp is not a key fingerprint (four groups of five characters)")]
    Fingerprint,
}

impl EnrollLink {
    /// The link for `server` (its base URL), `token` and the server key `server_key`.
    pub fn new(server: &str, token: [u8; 32], server_key: &PublicKey) -> EnrollLink {
        EnrollLink {
            server: server.trim().trim_end_matches('/').to_string(),
            token,
            fingerprint: server_key.fingerprint(),
        }
    }

    /// Parses a link, as typed or pasted (surrounding white space is ignored; the token's
    /// hex and the fingerprint may be in either case).
    pub fn parse(text: &str) -> Result<EnrollLink, LinkError> {
        let text = text.trim();
        let (address, fragment) = text.split_once('#').ok_or(LinkError::Fragment("no fragment"))?;
        let scheme = ["https://", "http://"]
            .into_iter()
            .find(|p| address.starts_with(p))
            .ok_or(LinkError::Scheme)?;
        if address[scheme.len()..].is_empty() || address[scheme.len()..].starts_with('/') {
            return Err(LinkError::Scheme);
        }
        if address.contains('?') || address.chars().any(char::is_whitespace) {
            return Err(LinkError::Path);
        }
        let server = address.strip_suffix(LINK_PATH).ok_or(LinkError::Path)?;
        if server.len() <= scheme.len() || server.ends_with('/') {
            return Err(LinkError::Path);
        }
        let (mut token, mut fp) = (None, None);
        for pair in fragment.split('&') {
            let (k, v) =
                pair.split_once('=').ok_or(LinkError::Fragment("a parameter without ="))?;
            let slot = match k {
                "token" => &mut token,
                "fp" => &mut fp,
                _ => return Err(LinkError::Fragment("an unknown parameter")),
            };
            if slot.replace(v).is_some() {
                return Err(LinkError::Fragment("a parameter given twice"));
            }
        }
        let token = token.ok_or(LinkError::Fragment("no token"))?;
        let fp = fp.ok_or(LinkError::Fragment("no fp"))?;
        let token: [u8; 32] =
            hex::decode(token).ok().and_then(|b| b.try_into().ok()).ok_or(LinkError::Token)?;
        let fingerprint = Fingerprint::parse(fp).map_err(|_| LinkError::Fingerprint)?;
        Ok(EnrollLink { server: server.to_string(), token, fingerprint })
    }

    /// The token as the 64 hex digits `custody enroll` takes.
    pub fn token_hex(&self) -> String {
        hex::encode(self.token)
    }

    /// Whether `server_key` is the key this link names.
    pub fn names(&self, server_key: &PublicKey) -> bool {
        server_key.fingerprint() == self.fingerprint
    }
}

impl std::fmt::Display for EnrollLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{LINK_PATH}#token={}&fp={}",
            self.server,
            hex::encode(self.token),
            self.fingerprint
        )
    }
}

impl std::str::FromStr for EnrollLink {
    type Err = LinkError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EnrollLink::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_format::testkit;

    fn link() -> EnrollLink {
        EnrollLink::new("https://custody.example:8443/", [0xab; 32], &testkit::public("server"))
    }

    #[test]
    fn a_link_reads_back_what_it_writes() {
        let l = link();
        let text = l.to_string();
        assert!(text.starts_with("https://custody.example:8443/enroll#token=abab"), "{text}");
        assert_eq!(EnrollLink::parse(&text), Ok(l.clone()));
        assert!(l.names(&testkit::public("server")));
        assert!(!l.names(&testkit::public("device")));
        // Pasted with spaces, upper-case hex, a lower-case fingerprint without dashes.
        let fp = l.fingerprint.to_string().replace('-', "").to_lowercase();
        let loose =
            format!("  https://custody.example:8443/enroll#fp={fp}&token={}\n", "AB".repeat(32));
        assert_eq!(EnrollLink::parse(&loose), Ok(l));
    }

    #[test]
    fn a_path_prefix_stays_in_the_server_url() {
        let l = EnrollLink::new("http://127.0.0.1:9/custody", [1; 32], &testkit::public("server"));
        let back = EnrollLink::parse(&l.to_string()).unwrap();
        assert_eq!(back.server, "http://127.0.0.1:9/custody");
    }

    #[test]
    fn malformed_links_say_what_is_wrong() {
        let good = link().to_string();
        let (addr, frag) = good.split_once('#').unwrap();
        let cases = [
            (addr.to_string(), LinkError::Fragment("no fragment")),
            (good.replace("https://", "ftp://"), LinkError::Scheme),
            (format!("https:///enroll#{frag}"), LinkError::Scheme),
            (good.replace("/enroll#", "/join#"), LinkError::Path),
            (good.replace("/enroll#", "/enroll?x=1#"), LinkError::Path),
            (format!("{good}&token=00"), LinkError::Fragment("a parameter given twice")),
            (format!("{good}&x=1"), LinkError::Fragment("an unknown parameter")),
            (good.replace("token=", "tok="), LinkError::Fragment("an unknown parameter")),
            (format!("{addr}#token={}", "ab".repeat(32)), LinkError::Fragment("no fp")),
            (good.replace("token=abab", "token=zz"), LinkError::Token),
            (good.replace("&fp=", "&fp=U"), LinkError::Fingerprint),
        ];
        for (text, want) in cases {
            assert_eq!(EnrollLink::parse(&text), Err(want.clone()), "{text}");
        }
    }
}

//! RFC 3161 time-stamp tokens over the custody log's signed heads, checked offline.
//!
//! A server run with `custody serve --tsa URL` asks a time-stamp authority for a token over
//! its latest signed tree head and logs the token as a type-10 entry (`docs/format.md`): the
//! entry's `tree_head` holds the head exactly as signed, its `tsa_token` the DER
//! TimeStampToken (RFC 3161 §2.4.2, a CMS SignedData, RFC 5652). One valid token proves that
//! every log entry under that head, so every record the head's `tree_size` covers, existed
//! by the token's `genTime`, by the word of a party that is neither the device nor the
//! legal team.
//!
//! What is checked, per token ([`check_token`]):
//! - the stamped head: readable, signed by the bundle's server key, and signed before the
//!   entry that carries its token (`tree_size` ≤ the entry's log index);
//! - the TSTInfo (RFC 3161 §2.4.2): version 1, a policy (reported), a `messageImprint` that
//!   is SHA-256 over the `tree_head` bytes, `genTime`, `accuracy`;
//! - the CMS signature (RFC 5652 §5.4): signed attributes present, `content-type`
//!   id-ct-TSTInfo, `message-digest` the digest of the eContent, and the SignerInfo's
//!   signature over the DER of the signed attributes — checked by **rustls-webpki**
//!   (`EndEntityCert::verify_signature`) with **ring**'s RSA PKCS#1 and ECDSA P-256/P-384
//!   algorithms; no signature arithmetic is written here;
//! - the ESS signing-certificate attribute (RFC 2634 §5.4 v1 with SHA-1, RFC 5035 §3 v2 with
//!   its hash algorithm) names the signer's certificate, by hash and issuer/serial: written
//!   here ([`ess`]), since no crate does it, and it must be done (RFC 3161 §2.4.1: without
//!   it a certificate with the same key could be substituted);
//! - the signer's certificate: the timeStamping extended key usage, alone and critical
//!   (RFC 3161 §2.3), and a path to a trust root valid **at genTime**, with the token's other
//!   certificates as intermediates — **rustls-webpki** `verify_for_usage` with
//!   `KeyUsage::required_if_present(id-kp-timeStamping)` (the signer's own EKU is required
//!   by hand: rustls-webpki would require it of the intermediates too) and the time set to
//!   genTime. A certificate
//!   valid then and expired since is fine (that is what a time-stamp is for) and is said so.
//!
//! Revocation (CRL, OCSP) needs the network and so is never checked: every report with a
//! token says so (`time.tsa.revocation`). Parsing uses the RustCrypto types: `cms` 0.2,
//! `x509-tsp` 0.1, `x509-cert` 0.2 and `der` 0.7 (the TSTInfo itself is `x509-tsp`'s but
//! for `genTime`, whose fractional seconds `der` 0.7 refuses: see `tsa/tst_info.rs`).

use std::time::Duration;

use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use custody_format::ids::PublicKey;
use custody_format::log::{EntryType, LogEntry, TreeHead};
use custody_format::record::Hash;
use custody_format::report::{code, Check};
use custody_format::signed::Signed;
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, UnixTime};
use serde::Serialize;
use x509_cert::Certificate;

pub mod ess;
mod tst_info;

use tst_info::TstInfo;

/// id-signedData, RFC 5652 §5.1.
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// id-ct-TSTInfo, RFC 3161 §2.4.2.
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
/// id-contentType, RFC 5652 §11.1.
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
/// id-messageDigest, RFC 5652 §11.2.
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
/// id-ce-extKeyUsage, RFC 5280 §4.2.1.12.
const ID_CE_EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
/// id-ce-subjectKeyIdentifier, RFC 5280 §4.2.1.2.
const ID_CE_SUBJECT_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
/// id-kp-timeStamping, RFC 5280 §4.2.1.12.
const ID_KP_TIME_STAMPING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");
/// The DER contents of id-kp-timeStamping, as rustls-webpki's `KeyUsage::required` takes it.
const ID_KP_TIME_STAMPING_DER: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08];
/// id-at-commonName, X.520.
const ID_AT_COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// Hash algorithms, by OID (RFC 5754 §2, and RFC 3279 §2.2 for SHA-1).
pub(crate) fn digest(alg: &ObjectIdentifier, data: &[u8]) -> Option<Vec<u8>> {
    let alg = match alg.to_string().as_str() {
        "1.3.14.3.2.26" => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        "2.16.840.1.101.3.4.2.1" => &ring::digest::SHA256,
        "2.16.840.1.101.3.4.2.2" => &ring::digest::SHA384,
        "2.16.840.1.101.3.4.2.3" => &ring::digest::SHA512,
        _ => return None,
    };
    Some(ring::digest::digest(alg, data).as_ref().to_vec())
}

/// The OID of SHA-256, the imprint's hash (`docs/format.md`, log entry type 10).
const ID_SHA256: &str = "2.16.840.1.101.3.4.2.1";

/// Every algorithm a certificate in a TSA's path may be signed with: ring's, as
/// rustls-webpki names them.
static CHAIN_ALGS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    webpki::ring::ED25519,
];

/// The algorithms a SignerInfo's signature may be, from its `signatureAlgorithm` and
/// `digestAlgorithm` (RFC 5754 §3: RSA is often named `rsaEncryption` with the hash in the
/// digest algorithm; ECDSA names its hash, and the curve is the certificate's, so both
/// curves are offered and rustls-webpki keeps the one matching the key).
fn signer_algs(
    signature: &ObjectIdentifier,
    digest: &ObjectIdentifier,
) -> &'static [&'static dyn SignatureVerificationAlgorithm] {
    const RSA256: &[&dyn SignatureVerificationAlgorithm] =
        &[webpki::ring::RSA_PKCS1_2048_8192_SHA256];
    const RSA384: &[&dyn SignatureVerificationAlgorithm] =
        &[webpki::ring::RSA_PKCS1_2048_8192_SHA384];
    const RSA512: &[&dyn SignatureVerificationAlgorithm] =
        &[webpki::ring::RSA_PKCS1_2048_8192_SHA512];
    const EC256: &[&dyn SignatureVerificationAlgorithm] =
        &[webpki::ring::ECDSA_P256_SHA256, webpki::ring::ECDSA_P384_SHA256];
    const EC384: &[&dyn SignatureVerificationAlgorithm] =
        &[webpki::ring::ECDSA_P384_SHA384, webpki::ring::ECDSA_P256_SHA384];
    match (signature.to_string().as_str(), digest.to_string().as_str()) {
        ("1.2.840.113549.1.1.1", "2.16.840.1.101.3.4.2.1") | ("1.2.840.113549.1.1.11", _) => RSA256,
        ("1.2.840.113549.1.1.1", "2.16.840.1.101.3.4.2.2") | ("1.2.840.113549.1.1.12", _) => RSA384,
        ("1.2.840.113549.1.1.1", "2.16.840.1.101.3.4.2.3") | ("1.2.840.113549.1.1.13", _) => RSA512,
        ("1.2.840.10045.4.3.2", _) => EC256,
        ("1.2.840.10045.4.3.3", _) => EC384,
        _ => &[],
    }
}

/// Where the TSA trust roots came from: the report says which, since roots shipped in the
/// bundle come from one side of the case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RootOrigin {
    /// Given to the verifier (`custody verify --tsa-trust`).
    Given,
    /// `custody/tsa-roots.pem` in the bundle: the roots the legal team shipped with it.
    Bundle,
}

/// Trust roots for TSA certificates, with where they came from.
#[derive(Clone, Debug)]
pub struct Roots {
    certs: Vec<CertificateDer<'static>>,
    origin: RootOrigin,
}

/// A file of trust roots that is neither PEM certificates nor one DER certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RootsError {
    /// Not one DER certificate, and no PEM `CERTIFICATE` block in it.
    #[error(
        "holds no certificate (PEM `-----BEGIN CERTIFICATE-----` blocks, or one DER certificate)"
    )]
    Empty,
    /// A certificate in it cannot be read as X.509 (RFC 5280).
    #[error("certificate {index} cannot be read: {reason}")]
    Unreadable {
        /// Its position in the file, from 1.
        index: usize,
        /// The parser's reason.
        reason: String,
    },
}

impl Roots {
    /// Roots of `origin` from certificates, DER each.
    pub fn new(certs: Vec<Vec<u8>>, origin: RootOrigin) -> Roots {
        Roots { certs: certs.into_iter().map(CertificateDer::from).collect(), origin }
    }

    /// The DER certificates a roots file holds: concatenated PEM `CERTIFICATE` blocks, or one
    /// DER certificate. Each must read as X.509, so a wrong file is refused here and not
    /// reported later as an untrusted TSA.
    pub fn parse_file(bytes: &[u8]) -> Result<Vec<Vec<u8>>, RootsError> {
        use rustls_pki_types::pem::PemObject;
        let certs: Vec<Vec<u8>> = if bytes.first() == Some(&0x30) {
            vec![bytes.to_vec()]
        } else {
            CertificateDer::pem_slice_iter(bytes)
                .enumerate()
                .map(|(i, c)| {
                    c.map(|c| c.to_vec())
                        .map_err(|e| RootsError::Unreadable { index: i + 1, reason: e.to_string() })
                })
                .collect::<Result<_, _>>()?
        };
        if certs.is_empty() {
            return Err(RootsError::Empty);
        }
        for (i, c) in certs.iter().enumerate() {
            if let Err(e) = Certificate::from_der(c) {
                return Err(RootsError::Unreadable { index: i + 1, reason: e.to_string() });
            }
        }
        Ok(certs)
    }

    /// Where they came from.
    pub fn origin(&self) -> RootOrigin {
        self.origin
    }
}

/// What one verified token proves: the head of `tree_size` entries existed by `gen_time_us`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stamp {
    /// The log index of the type-10 entry carrying the token.
    pub log_index: u64,
    /// The stamped head's `tree_size`: entries `0..tree_size` existed by `gen_time_us`.
    pub tree_size: u64,
    /// The token's genTime, µs since the epoch (UTC).
    pub gen_time_us: i64,
    /// The token's accuracy, µs, if it states one.
    pub accuracy_us: Option<i64>,
    /// The time-stamp authority: its certificate's subject common name, or the entry's
    /// label when it has none.
    pub tsa: String,
    /// The entry's label: the TSA's URL.
    pub label: String,
    /// The TSA policy the token was issued under (RFC 3161 §2.4.2), dotted.
    pub policy: String,
    /// Which roots its certificate chains to.
    pub roots: RootOrigin,
}

/// One type-10 log entry's parts.
#[derive(Clone, Copy, Debug)]
pub struct TokenEntry<'a> {
    /// Its log index.
    pub log_index: u64,
    /// The server's time of logging it, µs.
    pub logged_at_us: i64,
    /// Its label (the TSA's URL).
    pub label: &'a str,
    /// The signed tree head object stamped (kind 17).
    pub tree_head: &'a [u8],
    /// The DER TimeStampToken.
    pub token: &'a [u8],
}

/// How far the server's clock and genTime may disagree beyond the token's accuracy before
/// it is reported: a request's round trip and a retry's wait, not clock error.
pub const CLOCK_SLACK_US: i64 = 5_000_000;

/// A failed check: its code and sentence.
struct Problem(&'static str, String);

fn problem(code: &'static str, message: impl Into<String>) -> Problem {
    Problem(code, message.into())
}

/// What a token says and who signed it, once its signature and ESS attribute are checked.
struct Examined {
    head: TreeHead,
    tst: TstInfo,
    gen_time_us: i64,
    accuracy_us: Option<i64>,
    signer: Certificate,
    signer_der: Vec<u8>,
    others: Vec<Vec<u8>>,
}

/// Checks one type-10 entry's token; pushes its checks and returns what it proves when
/// every check passed and its certificate chains to `roots` (without roots, `None` and a
/// not-checked line). `now_us` is the verifier's clock, only to say that a certificate has
/// expired since.
pub fn check_token(
    entry: &TokenEntry<'_>,
    server_key: Option<&PublicKey>,
    roots: Option<&Roots>,
    now_us: i64,
    checks: &mut Vec<Check>,
) -> Option<Stamp> {
    let at = format!("the time-stamp token in log entry {}", entry.log_index);
    let ex = match examine(entry, server_key) {
        Ok(ex) => ex,
        Err(Problem(c, m)) => {
            checks.push(Check::new(c, format!("{at}: {m}")));
            return None;
        }
    };
    if let Err(Problem(c, m)) = check_eku(&ex.signer) {
        checks.push(Check::new(c, format!("{at}: {m}")));
        return None;
    }
    let tsa = common_name(&ex.signer).unwrap_or_else(|| entry.label.to_string());
    let policy = ex.tst.policy.to_string();
    let when = crate::facts::Moment::new(ex.gen_time_us, None).text();
    let accuracy = ex.accuracy_us.map_or_else(
        || "no accuracy stated".to_string(),
        |a| format!("accuracy ±{}", crate::facts::seconds(a)),
    );
    let not_after = unix_us_of(&ex.signer.tbs_certificate.validity.not_after);
    let Some(roots) = roots else {
        checks.push(Check::new(
            code::TIME_TSA_NO_ROOTS,
            format!(
                "{at} is signed by \"{tsa}\" and over the signed head of {} entries, but no TSA \
                 root was given (`--tsa-trust`) and the bundle ships none: who signed it is not \
                 confirmed",
                ex.head.tree_size
            ),
        ));
        return None;
    };
    if let Err(Problem(c, m)) = check_path(&ex, roots) {
        checks.push(Check::new(c, format!("{at} (\"{tsa}\"): {m}")));
        return None;
    }
    if not_after < now_us {
        checks.push(Check::new(
            code::TIME_TSA_EXPIRED_SINCE,
            format!(
                "{at}: the certificate of \"{tsa}\" was valid at genTime ({when}) and has \
                 expired since ({}): that is what a time-stamp is for, and the token stands",
                crate::facts::Moment::new(not_after, None).text()
            ),
        ));
    }
    let (c, whose) = match roots.origin {
        RootOrigin::Given => (code::TIME_TSA_OK, "a TSA root given with --tsa-trust"),
        RootOrigin::Bundle => (
            code::TIME_TSA_BUNDLE_ROOTS,
            "only roots the legal team shipped with the bundle (custody/tsa-roots.pem); give \
             `--tsa-trust` a root obtained independently to confirm it",
        ),
    };
    checks.push(Check::new(
        c,
        format!(
            "{at}: the log's first {} entries existed by {when} ({accuracy}), according to \
             time-stamp authority \"{tsa}\" (policy {policy}; its certificate chains to {whose})",
            ex.head.tree_size
        ),
    ));
    // The server signed the head before asking, and logged the token after it came back.
    let slack = ex.accuracy_us.unwrap_or(0).saturating_add(CLOCK_SLACK_US);
    let server_early = ex.head.timestamp_us.saturating_sub(ex.gen_time_us);
    let server_late = ex.gen_time_us.saturating_sub(entry.logged_at_us);
    if server_early > slack || server_late > slack {
        let (by, how) = if server_early > slack {
            (server_early, "signed the stamped head after the TSA's genTime")
        } else {
            (server_late, "logged the token before the TSA's genTime")
        };
        checks.push(Check::new(
            code::TIME_TSA_CLOCK_DISAGREES,
            format!(
                "{at}: the server's clock and \"{tsa}\" disagree by {}: the server {how} \
                 (more than the token's accuracy and {} s of slack); the TSA's time is the \
                 independent one",
                crate::facts::seconds(by),
                CLOCK_SLACK_US / 1_000_000
            ),
        ));
    }
    Some(Stamp {
        log_index: entry.log_index,
        tree_size: ex.head.tree_size,
        gen_time_us: ex.gen_time_us,
        accuracy_us: ex.accuracy_us,
        tsa,
        label: entry.label.to_string(),
        policy,
        roots: roots.origin,
    })
}

fn unix_us_of(t: &x509_cert::time::Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_micros()).unwrap_or(i64::MAX)
}

/// Checks every type-10 entry among the proven `entries`; the stamps of those that verify,
/// in log order. With at least one token, one `time.tsa.revocation` line says what cannot
/// be checked offline.
pub fn check_all(
    entries: &[(u64, LogEntry, Hash)],
    server_key: Option<&PublicKey>,
    roots: Option<&Roots>,
    now_us: i64,
    checks: &mut Vec<Check>,
) -> Vec<Stamp> {
    let mut stamps = Vec::new();
    let mut any = false;
    for (i, e, _) in entries.iter().filter(|(_, e, _)| e.entry_type == EntryType::TimeStampToken) {
        any = true;
        let (Some(head), Some(token)) = (&e.tree_head, &e.tsa_token) else {
            checks.push(Check::new(
                code::TIME_TSA_PARSE,
                format!("log entry {i} is a time-stamp token entry without its head or token"),
            ));
            continue;
        };
        let entry = TokenEntry {
            log_index: *i,
            logged_at_us: e.at_us,
            label: e.label.as_deref().unwrap_or_default(),
            tree_head: head,
            token,
        };
        stamps.extend(check_token(&entry, server_key, roots, now_us, checks));
    }
    if any {
        checks.push(Check::new(
            code::TIME_TSA_REVOCATION,
            "whether a time-stamp authority's certificate was revoked (CRL, OCSP) cannot be \
             checked offline; a certificate revoked before genTime would make its token \
             worthless",
        ));
    }
    stamps
}

/// The earliest proven time by which the record at `log_index` existed: the stamp with the
/// earliest genTime whose head covers that index (`tree_size > log_index`).
pub fn bound_for(stamps: &[Stamp], log_index: u64) -> Option<&Stamp> {
    stamps.iter().filter(|s| s.tree_size > log_index).min_by_key(|s| s.gen_time_us)
}

/// Everything up to the certificate path: the head, the TSTInfo, the CMS signature and the
/// ESS attribute.
fn examine(entry: &TokenEntry<'_>, server_key: Option<&PublicKey>) -> Result<Examined, Problem> {
    // The stamped head.
    let head = Signed::<TreeHead>::parse(entry.tree_head).map_err(|e| {
        problem(code::TIME_TSA_HEAD, format!("the stamped head cannot be read ({e})"))
    })?;
    if server_key.is_some_and(|k| !head.verify(k)) {
        return Err(problem(
            code::TIME_TSA_HEAD,
            "the stamped head is not signed by the server key",
        ));
    }
    let head = head.value().clone();
    if head.tree_size > entry.log_index {
        return Err(problem(
            code::TIME_TSA_HEAD,
            format!(
                "the stamped head of {} entries cannot have been signed before the entry at \
                 index {} that carries it",
                head.tree_size, entry.log_index
            ),
        ));
    }

    // The token: ContentInfo → SignedData → TSTInfo.
    let parse = |what: &str, e: der::Error| {
        problem(code::TIME_TSA_PARSE, format!("{what} cannot be read ({e})"))
    };
    let info = ContentInfo::from_der(entry.token).map_err(|e| parse("the token", e))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(problem(code::TIME_TSA_PARSE, "the token is not a CMS SignedData"));
    }
    let sd: SignedData = info.content.decode_as().map_err(|e| parse("its SignedData", e))?;
    if sd.encap_content_info.econtent_type != ID_CT_TST_INFO {
        return Err(problem(code::TIME_TSA_PARSE, "the token's content is not a TSTInfo"));
    }
    let econtent = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| problem(code::TIME_TSA_PARSE, "the token carries no TSTInfo"))?;
    let tst_der = econtent
        .decode_as::<OctetString>()
        .map_err(|e| parse("its TSTInfo octets", e))?
        .into_bytes();
    // Version 1 is the only one `TspVersion` decodes.
    let tst = TstInfo::from_der(&tst_der).map_err(|e| parse("its TSTInfo", e))?;

    // The imprint: SHA-256 over the exact head bytes.
    if tst.message_imprint.hash_algorithm.oid.to_string() != ID_SHA256 {
        return Err(problem(
            code::TIME_TSA_IMPRINT,
            format!(
                "the imprint is hashed with {}, not SHA-256",
                tst.message_imprint.hash_algorithm.oid
            ),
        ));
    }
    let expected = ring::digest::digest(&ring::digest::SHA256, entry.tree_head);
    if tst.message_imprint.hashed_message.as_bytes() != expected.as_ref() {
        return Err(problem(
            code::TIME_TSA_IMPRINT,
            "the token is over another imprint than the SHA-256 of the head it is logged with",
        ));
    }
    let gen_time_us = tst.gen_time.unix_us;
    let accuracy_us = tst.accuracy.as_ref().map(|a| {
        let s = i64::try_from(a.seconds.unwrap_or(0)).unwrap_or(i64::MAX / 2);
        s.saturating_mul(1_000_000)
            .saturating_add(i64::from(a.millis.unwrap_or(0)) * 1000)
            .saturating_add(i64::from(a.micros.unwrap_or(0)))
    });

    // The signer and its certificate.
    let signers: Vec<&SignerInfo> = sd.signer_infos.0.iter().collect();
    let [si] = signers.as_slice() else {
        return Err(problem(
            code::TIME_TSA_SIGNATURE,
            format!("the token has {} signers, not the one TSA", signers.len()),
        ));
    };
    let certs: Vec<(Certificate, Vec<u8>)> = sd
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => Some(c.clone()),
            CertificateChoices::Other(_) => None,
        })
        .filter_map(|c| c.to_der().ok().map(|d| (c, d)))
        .collect();
    let position = certs.iter().position(|(c, _)| identifies(&si.sid, c)).ok_or_else(|| {
        problem(
            code::TIME_TSA_SIGNATURE,
            "the token does not carry its signer's certificate (the request asks for it)",
        )
    })?;
    let (signer, signer_der) = certs[position].clone();
    let others: Vec<Vec<u8>> = certs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != position)
        .map(|(_, c)| c.1.clone())
        .collect();

    // The signed attributes, then the signature over their DER.
    let attrs = si.signed_attrs.as_ref().ok_or_else(|| {
        problem(code::TIME_TSA_SIGNATURE, "the signer has no signed attributes (RFC 5652 §5.3)")
    })?;
    let one = |oid: ObjectIdentifier| {
        attrs.iter().find(|a| a.oid == oid).and_then(|a| a.values.iter().next())
    };
    let content_type = one(ID_CONTENT_TYPE).and_then(|v| v.decode_as::<ObjectIdentifier>().ok());
    if content_type != Some(ID_CT_TST_INFO) {
        return Err(problem(
            code::TIME_TSA_SIGNATURE,
            "the signed content-type attribute is absent or not id-ct-TSTInfo",
        ));
    }
    let digest_alg = &si.digest_alg.oid;
    let econtent_digest = digest(digest_alg, &tst_der).ok_or_else(|| {
        problem(code::TIME_TSA_SIGNATURE, format!("unsupported digest algorithm {digest_alg}"))
    })?;
    let signed_digest = one(ID_MESSAGE_DIGEST).and_then(|v| v.decode_as::<OctetString>().ok());
    if signed_digest.as_ref().map(OctetString::as_bytes) != Some(econtent_digest.as_slice()) {
        return Err(problem(
            code::TIME_TSA_SIGNATURE,
            "the signed message-digest attribute does not match the TSTInfo (altered)",
        ));
    }
    let message = attrs.to_der().map_err(|e| parse("its signed attributes", e))?;
    let algs = signer_algs(&si.signature_algorithm.oid, digest_alg);
    if algs.is_empty() {
        return Err(problem(
            code::TIME_TSA_SIGNATURE,
            format!("unsupported signature algorithm {}", si.signature_algorithm.oid),
        ));
    }
    let cert_der = CertificateDer::from(signer_der.as_slice());
    let ee = webpki::EndEntityCert::try_from(&cert_der).map_err(|e| {
        problem(code::TIME_TSA_CHAIN, format!("the signer's certificate cannot be used ({e})"))
    })?;
    let signature = si.signature.as_bytes();
    if !algs.iter().any(|alg| ee.verify_signature(*alg, &message, signature).is_ok()) {
        return Err(problem(
            code::TIME_TSA_SIGNATURE,
            "the signature does not verify with the signer's certificate",
        ));
    }

    // ESS: the signed attributes name this very certificate.
    ess::check(attrs, &signer, &signer_der)
        .map_err(|e| problem(code::TIME_TSA_ESS, e.to_string()))?;

    Ok(Examined { head, tst, gen_time_us, accuracy_us, signer, signer_der, others })
}

/// Whether `sid` names `cert` (RFC 5652 §5.3).
fn identifies(sid: &SignerIdentifier, cert: &Certificate) -> bool {
    let tbs = &cert.tbs_certificate;
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(isn) => {
            isn.issuer == tbs.issuer && isn.serial_number == tbs.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => tbs
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == ID_CE_SUBJECT_KEY_ID)
            .and_then(|e| OctetString::from_der(e.extn_value.as_bytes()).ok())
            .is_some_and(|v| v.as_bytes() == ski.0.as_bytes()),
    }
}

/// RFC 3161 §2.3: the signer's certificate has one extended key usage extension, critical,
/// with id-kp-timeStamping as its only purpose.
fn check_eku(cert: &Certificate) -> Result<(), Problem> {
    let ekus: Vec<_> = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == ID_CE_EXT_KEY_USAGE)
        .collect();
    let [eku] = ekus.as_slice() else {
        return Err(problem(
            code::TIME_TSA_EKU,
            "the signer's certificate does not have the timeStamping extended key usage: it \
             is not a time-stamping certificate (RFC 3161 §2.3)",
        ));
    };
    let purposes = x509_cert::ext::pkix::ExtendedKeyUsage::from_der(eku.extn_value.as_bytes())
        .map_err(|e| {
            problem(code::TIME_TSA_EKU, format!("its extended key usage cannot be read ({e})"))
        })?;
    if purposes.0 != [ID_KP_TIME_STAMPING] || !eku.critical {
        return Err(problem(
            code::TIME_TSA_EKU,
            "the signer's certificate's extended key usage is not timeStamping alone and \
             critical (RFC 3161 §2.3)",
        ));
    }
    Ok(())
}

/// The certificate path from the signer to a root, valid at genTime, for timeStamping.
fn check_path(ex: &Examined, roots: &Roots) -> Result<(), Problem> {
    let anchors: Vec<_> =
        roots.certs.iter().filter_map(|c| webpki::anchor_from_trusted_cert(c).ok()).collect();
    let intermediates: Vec<CertificateDer<'_>> =
        ex.others.iter().map(|d| CertificateDer::from(d.as_slice())).collect();
    let cert_der = CertificateDer::from(ex.signer_der.as_slice());
    let ee = webpki::EndEntityCert::try_from(&cert_der).map_err(|e| {
        problem(code::TIME_TSA_CHAIN, format!("the signer's certificate cannot be used ({e})"))
    })?;
    let secs = u64::try_from(ex.gen_time_us / 1_000_000).unwrap_or(0);
    let at = UnixTime::since_unix_epoch(Duration::from_secs(secs));
    let result = ee.verify_for_usage(
        CHAIN_ALGS,
        &anchors,
        &intermediates,
        at,
        // rustls-webpki applies the usage to every certificate of the path, and a CA
        // certificate rarely lists purposes: `required_if_present` lets an intermediate
        // without the extension pass and still refuses one that restricts itself to other
        // purposes; the signer's own EKU, required, is `check_eku`'s (RFC 3161 §2.3).
        webpki::KeyUsage::required_if_present(ID_KP_TIME_STAMPING_DER),
        None,
        None,
    );
    let which = match roots.origin {
        RootOrigin::Given => "the TSA roots given with --tsa-trust",
        RootOrigin::Bundle => "the TSA roots the bundle ships",
    };
    match result {
        Ok(_) => Ok(()),
        Err(webpki::Error::UnknownIssuer) => Err(problem(
            code::TIME_TSA_UNTRUSTED,
            format!(
                "its certificate does not chain to any of {which}: its time is not vouched for"
            ),
        )),
        Err(e @ (webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. })) => {
            Err(problem(
                code::TIME_TSA_NOT_VALID_AT_GENTIME,
                format!(
                    "a certificate of its path was not valid at genTime ({}): {e}",
                    crate::facts::Moment::new(ex.gen_time_us, None).text()
                ),
            ))
        }
        Err(e @ webpki::Error::RequiredEkuNotFoundContext(_)) => {
            Err(problem(code::TIME_TSA_EKU, format!("its path is not for time-stamping ({e})")))
        }
        Err(e) => Err(problem(
            code::TIME_TSA_CHAIN,
            format!("its certificate path to {which} does not validate ({e})"),
        )),
    }
}

/// The subject common name of `cert`, if it has one in a string type.
fn common_name(cert: &Certificate) -> Option<String> {
    cert.tbs_certificate.subject.0.iter().flat_map(|rdn| rdn.0.iter()).find_map(|atv| {
        if atv.oid != ID_AT_COMMON_NAME {
            return None;
        }
        let v = &atv.value;
        der::asn1::Utf8StringRef::try_from(v)
            .map(|s| s.as_str().to_string())
            .or_else(|_| der::asn1::PrintableStringRef::try_from(v).map(|s| s.as_str().to_string()))
            .or_else(|_| der::asn1::Ia5StringRef::try_from(v).map(|s| s.as_str().to_string()))
            .ok()
    })
}

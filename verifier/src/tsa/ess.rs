//! The ESS signing-certificate check (RFC 2634 §5.4, RFC 5035 §3), by hand: no crate does it.
//!
//! A CMS signature covers the signed attributes, not the certificate the signer identifier
//! points to; without this attribute, anyone with a certificate for the same key (a twin
//! issued by another CA, or the same CA for another purpose) could present it as the
//! signer's. RFC 3161 §2.4.1 therefore requires the TSA to name its certificate in a
//! signed `signingCertificate` (v1: SHA-1 hash) or `signingCertificateV2` (v2: a hash
//! algorithm of its choice, SHA-256 by default) attribute, and a verifier to check it. The
//! first `ESSCertID` names the signing certificate: its hash must be the certificate's,
//! and its `issuerSerial`, when present, the certificate's issuer and serial number.

use cms::signed_data::SignedAttributes;
use der::asn1::{Any, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Sequence};
use x509_cert::ext::pkix::name::{GeneralName, GeneralNames};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

/// id-aa-signingCertificate, RFC 2634 §5.4.
pub const ID_AA_SIGNING_CERTIFICATE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.12");
/// id-aa-signingCertificateV2, RFC 5035 §3.
pub const ID_AA_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// `IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber CertificateSerialNumber }`.
#[derive(Clone, Debug, Sequence)]
struct IssuerSerial {
    issuer: GeneralNames,
    serial_number: SerialNumber,
}

/// `ESSCertID ::= SEQUENCE { certHash Hash (SHA-1), issuerSerial IssuerSerial OPTIONAL }`.
#[derive(Clone, Debug, Sequence)]
struct EssCertId {
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<IssuerSerial>,
}

/// `SigningCertificate ::= SEQUENCE { certs SEQUENCE OF ESSCertID, policies … OPTIONAL }`.
#[derive(Clone, Debug, Sequence)]
struct SigningCertificate {
    certs: Vec<EssCertId>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

/// `ESSCertIDv2 ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier DEFAULT sha256,
/// certHash Hash, issuerSerial IssuerSerial OPTIONAL }`.
#[derive(Clone, Debug, Sequence)]
struct EssCertIdV2 {
    #[asn1(optional = "true")]
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<IssuerSerial>,
}

/// `SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2, policies … OPTIONAL }`.
#[derive(Clone, Debug, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

/// Why the ESS attribute does not name the signer's certificate.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EssError {
    /// Neither `signingCertificate` nor `signingCertificateV2` is among the signed
    /// attributes.
    #[error("the signed attributes carry no ESS signing-certificate attribute (RFC 3161 §2.4.1 requires one)")]
    Missing,
    /// The attribute is there more than once, or has other than one value.
    #[error("the ESS signing-certificate attribute is not a single value")]
    Ambiguous,
    /// The attribute cannot be read as its ASN.1 type, or lists no certificate.
    #[error("the ESS signing-certificate attribute cannot be read ({0})")]
    Malformed(String),
    /// Its hash algorithm is not one this verifier knows.
    #[error(
        "the ESS signing-certificate attribute hashes with {0}, which this verifier does not know"
    )]
    UnknownHash(String),
    /// The hash it gives is not the signer's certificate's: it names another certificate.
    #[error("the ESS signing-certificate attribute names another certificate than the one the signature is checked with (hash differs)")]
    HashMismatch,
    /// The issuer and serial number it gives are not the signer's certificate's.
    #[error("the ESS signing-certificate attribute names another certificate than the one the signature is checked with (issuer or serial number differs)")]
    IssuerSerialMismatch,
}

/// The one value of the attribute `oid`, if present.
fn value(attrs: &SignedAttributes, oid: ObjectIdentifier) -> Result<Option<&Any>, EssError> {
    let found: Vec<_> = attrs.iter().filter(|a| a.oid == oid).collect();
    match found.as_slice() {
        [] => Ok(None),
        [a] if a.values.len() == 1 => Ok(a.values.iter().next()),
        _ => Err(EssError::Ambiguous),
    }
}

fn issuer_serial_matches(is: &IssuerSerial, cert: &Certificate) -> bool {
    let tbs = &cert.tbs_certificate;
    is.serial_number == tbs.serial_number
        && is.issuer.iter().any(|g| matches!(g, GeneralName::DirectoryName(n) if *n == tbs.issuer))
}

/// Checks that the ESS attribute among `attrs` names `cert` (whose DER is `cert_der`). A v2
/// attribute is preferred when both are present (RFC 5035 §3: v1 then only for old
/// verifiers); each must agree when present.
pub fn check(
    attrs: &SignedAttributes,
    cert: &Certificate,
    cert_der: &[u8],
) -> Result<(), EssError> {
    let v1 = value(attrs, ID_AA_SIGNING_CERTIFICATE)?;
    let v2 = value(attrs, ID_AA_SIGNING_CERTIFICATE_V2)?;
    if v1.is_none() && v2.is_none() {
        return Err(EssError::Missing);
    }
    let malformed = |e: der::Error| EssError::Malformed(e.to_string());
    if let Some(v) = v2 {
        let sc =
            SigningCertificateV2::from_der(&v.to_der().map_err(malformed)?).map_err(malformed)?;
        let first =
            sc.certs.first().ok_or(EssError::Malformed("it lists no certificate".into()))?;
        let alg = first.hash_algorithm.as_ref().map_or(ID_SHA256, |a| a.oid);
        let hash = super::digest(&alg, cert_der).ok_or(EssError::UnknownHash(alg.to_string()))?;
        matches(first.cert_hash.as_bytes(), &hash, first.issuer_serial.as_ref(), cert)?;
    }
    if let Some(v) = v1 {
        let sc =
            SigningCertificate::from_der(&v.to_der().map_err(malformed)?).map_err(malformed)?;
        let first =
            sc.certs.first().ok_or(EssError::Malformed("it lists no certificate".into()))?;
        let hash =
            super::digest(&ID_SHA1, cert_der).ok_or(EssError::UnknownHash("SHA-1".into()))?;
        matches(first.cert_hash.as_bytes(), &hash, first.issuer_serial.as_ref(), cert)?;
    }
    Ok(())
}

fn matches(
    given: &[u8],
    hash: &[u8],
    issuer_serial: Option<&IssuerSerial>,
    cert: &Certificate,
) -> Result<(), EssError> {
    if given != hash {
        return Err(EssError::HashMismatch);
    }
    if issuer_serial.is_some_and(|is| !issuer_serial_matches(is, cert)) {
        return Err(EssError::IssuerSerialMismatch);
    }
    Ok(())
}

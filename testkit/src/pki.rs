//! The test CA, the TSA certificates and the tokens, all made by the `openssl` CLI.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{der, Error};

/// The policy every test TSA stamps under (an OID in a private arc; RFC 3161 §2.4.2 requires
/// one, the verifier reports it).
pub const POLICY: &str = "1.3.6.1.4.1.99999.3161.1";

/// Which TSA certificate signs. Every variant but [`Variant::Untrusted`] chains to
/// [`Pki::root_der`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Variant {
    /// RSA 2048 with SHA-256, issued by the root, critical timeStamping EKU, valid from a
    /// day ago for ten years: the TSA a verifier should accept.
    Good,
    /// A second certificate for [`Variant::Good`]'s key (same subject and issuer, another
    /// serial): the substitute an ESS signing-certificate check exists to catch.
    GoodTwin,
    /// ECDSA P-256 with SHA-384, issued by an intermediate CA (P-384) under the root; the
    /// token carries the intermediate, so a verifier must build the path through it.
    Intermediate,
    /// ECDSA P-256, issued by another root that a verifier is not given.
    Untrusted,
    /// ECDSA P-256 from the root, valid only during 2020: expired at any genTime now.
    Expired,
    /// ECDSA P-256 from the root without the timeStamping EKU. `openssl ts` refuses to
    /// sign with it, so its tokens are the good TSA's TSTInfo re-signed with
    /// `openssl cms -sign -cades` (which adds an ESS signing-certificate-v2 attribute).
    NoEku,
}

impl Variant {
    const ALL: [Variant; 6] = [
        Variant::Good,
        Variant::GoodTwin,
        Variant::Intermediate,
        Variant::Untrusted,
        Variant::Expired,
        Variant::NoEku,
    ];

    fn stem(self) -> &'static str {
        match self {
            Variant::Good => "good",
            Variant::GoodTwin => "twin",
            Variant::Intermediate => "viainter",
            Variant::Untrusted => "untrusted",
            Variant::Expired => "expired",
            Variant::NoEku => "noeku",
        }
    }

    /// The subject common name of the variant's certificate.
    pub fn common_name(self) -> &'static str {
        match self {
            Variant::Good | Variant::GoodTwin => "Custody Test TSA",
            Variant::Intermediate => "Custody Test TSA via Intermediate",
            Variant::Untrusted => "Custody Untrusted TSA",
            Variant::Expired => "Custody Expired TSA",
            Variant::NoEku => "Custody TSA without timeStamping EKU",
        }
    }
}

/// Which ESS signing-certificate attribute `openssl ts` puts in the signed attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ess {
    /// `signingCertificate` (RFC 2634 §5.4): a SHA-1 hash of the certificate.
    V1Sha1,
    /// `signingCertificateV2` (RFC 5035 §3) with SHA-256.
    V2Sha256,
}

struct Inner {
    dir: tempfile::TempDir,
    /// `openssl ts` keeps its serial number in a file and `openssl ca` its database: one
    /// command at a time.
    lock: Mutex<u64>,
}

impl Inner {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, Error> {
        Ok(std::fs::read(self.path(name))?)
    }

    fn openssl(&self, args: &[&str]) -> Result<(), Error> {
        openssl_in(self.dir.path(), args)
    }
}

fn openssl_in(dir: &Path, args: &[&str]) -> Result<(), Error> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .env("OPENSSL_CONF", dir.join("openssl.cnf"))
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Openssl {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// A test public-key infrastructure in a temporary directory (removed on drop): a root CA,
/// another root nobody trusts, an intermediate, and one TSA certificate per [`Variant`].
/// Cheap to clone.
#[derive(Clone)]
pub struct Pki {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").field("dir", &self.inner.dir.path()).finish()
    }
}

const CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
default_ca = test_ca
[test_ca]
database = ca/index.txt
serial = ca/serial
new_certs_dir = ca
default_md = sha256
policy = any_name
unique_subject = no
copy_extensions = none
email_in_dn = no
[any_name]
commonName = supplied
[root_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[inter_ext]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[tsa_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,nonRepudiation
extendedKeyUsage = critical,timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[noeku_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,nonRepudiation
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

impl Pki {
    /// Makes the keys and certificates with `openssl` (which must be on `PATH`; `cargo
    /// xtask` installs it).
    pub fn new() -> Result<Pki, Error> {
        let dir = tempfile::Builder::new().prefix("custody-testkit-").tempdir()?;
        let d = dir.path();
        std::fs::write(d.join("openssl.cnf"), CONFIG)?;
        std::fs::create_dir(d.join("ca"))?;
        std::fs::write(d.join("ca/index.txt"), b"")?;
        std::fs::write(d.join("ca/serial"), b"1000\n")?;
        std::fs::write(d.join("tsaserial"), b"01\n")?;
        let inner = Inner { dir, lock: Mutex::new(0) };
        let ec256 = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
        let ec384 = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"];
        let rsa = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
        for (name, cn) in [("root", "Custody Test TSA Root"), ("other", "Custody Other Root")] {
            genkey(&inner, name, &ec256)?;
            inner.openssl(&[
                "req",
                "-x509",
                "-new",
                "-key",
                &format!("{name}.key"),
                "-subj",
                &format!("/CN={cn}"),
                "-days",
                "3650",
                "-sha256",
                "-extensions",
                "root_ext",
                "-config",
                "openssl.cnf",
                "-out",
                &format!("{name}.pem"),
            ])?;
        }
        genkey(&inner, "inter", &ec384)?;
        issue(&inner, "inter", "Custody Test TSA Intermediate", "root", "inter_ext", None)?;
        let now = unix_now();
        let recent = (asn1_time(now - 86_400), asn1_time(now + 3650 * 86_400));
        let old = ("20200101000000Z".to_owned(), "20210101000000Z".to_owned());
        for v in Variant::ALL {
            let stem = v.stem();
            match v {
                Variant::Good => genkey(&inner, stem, &rsa)?,
                Variant::GoodTwin => {
                    std::fs::copy(inner.path("good.key"), inner.path("twin.key"))?;
                }
                _ => genkey(&inner, stem, &ec256)?,
            }
            let (issuer, ext, dates) = match v {
                Variant::Good | Variant::GoodTwin => ("root", "tsa_ext", &recent),
                Variant::Intermediate => ("inter", "tsa_ext", &recent),
                Variant::Untrusted => ("other", "tsa_ext", &recent),
                Variant::Expired => ("root", "tsa_ext", &old),
                Variant::NoEku => ("root", "noeku_ext", &recent),
            };
            issue(&inner, stem, v.common_name(), issuer, ext, Some(dates))?;
            // The certificates a reply carries besides the signer's own (which certReq
            // brings): the intermediate, for the variant that needs it. Listing the signer
            // here too would carry it twice, a SET OF with a duplicate that DER forbids.
            let chain =
                if v == Variant::Intermediate { inner.read("inter.pem")? } else { Vec::new() };
            std::fs::write(inner.path(&format!("{stem}.chain.pem")), chain)?;
        }
        for name in ["root", "other"] {
            pem_to_der(&inner, name)?;
        }
        for v in Variant::ALL {
            pem_to_der(&inner, v.stem())?;
        }
        pem_to_der(&inner, "inter")?;
        Ok(Pki { inner: Arc::new(inner) })
    }

    /// The test root CA's certificate, DER: the trust anchor for every variant but
    /// [`Variant::Untrusted`].
    pub fn root_der(&self) -> Result<Vec<u8>, Error> {
        self.inner.read("root.der")
    }

    /// The test root CA's certificate, PEM (what `--tsa-trust` or a bundle's
    /// `custody/tsa-roots.pem` holds).
    pub fn root_pem(&self) -> Result<Vec<u8>, Error> {
        self.inner.read("root.pem")
    }

    /// The other root's certificate (the issuer of [`Variant::Untrusted`]), DER.
    pub fn other_root_der(&self) -> Result<Vec<u8>, Error> {
        self.inner.read("other.der")
    }

    /// The other root's certificate, PEM.
    pub fn other_root_pem(&self) -> Result<Vec<u8>, Error> {
        self.inner.read("other.pem")
    }

    /// The intermediate CA's certificate (issuer of [`Variant::Intermediate`]), DER.
    pub fn intermediate_der(&self) -> Result<Vec<u8>, Error> {
        self.inner.read("inter.der")
    }

    /// A TSA signing with the variant's certificate and ESS signing-certificate v1.
    pub fn tsa(&self, variant: Variant) -> Tsa {
        Tsa { inner: Arc::clone(&self.inner), variant, ess: Ess::V1Sha1, precision: 0 }
    }
}

fn genkey(inner: &Inner, name: &str, alg: &[&str]) -> Result<(), Error> {
    let out = format!("{name}.key");
    let mut args = vec!["genpkey"];
    args.extend_from_slice(alg);
    args.extend_from_slice(&["-out", &out]);
    inner.openssl(&args)
}

fn issue(
    inner: &Inner,
    name: &str,
    cn: &str,
    issuer: &str,
    ext: &str,
    dates: Option<&(String, String)>,
) -> Result<(), Error> {
    let csr = format!("{name}.csr");
    inner.openssl(&[
        "req",
        "-new",
        "-key",
        &format!("{name}.key"),
        "-subj",
        &format!("/CN={cn}"),
        "-config",
        "openssl.cnf",
        "-out",
        &csr,
    ])?;
    let cert = format!("{issuer}.pem");
    let key = format!("{issuer}.key");
    let out = format!("{name}.pem");
    let mut args = vec![
        "ca",
        "-batch",
        "-config",
        "openssl.cnf",
        "-cert",
        &cert,
        "-keyfile",
        &key,
        "-in",
        &csr,
        "-out",
        &out,
        "-extensions",
        ext,
        "-notext",
    ];
    match dates {
        Some((start, end)) => args.extend_from_slice(&["-startdate", start, "-enddate", end]),
        None => args.extend_from_slice(&["-days", "3650"]),
    }
    inner.openssl(&args)
}

fn pem_to_der(inner: &Inner, name: &str) -> Result<(), Error> {
    inner.openssl(&[
        "x509",
        "-in",
        &format!("{name}.pem"),
        "-outform",
        "DER",
        "-out",
        &format!("{name}.der"),
    ])
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// `YYYYMMDDHHMMSSZ` for `openssl ca -startdate/-enddate` (OpenSSL 3.0 has no
/// `x509 -not_before`), from Unix seconds, with the format crate's calendar
/// ([`custody_format::time::civil`]).
fn asn1_time(unix: i64) -> String {
    let c = custody_format::time::civil(unix.saturating_mul(1_000_000));
    format!("{:04}{:02}{:02}{:02}{:02}{:02}Z", c.year, c.month, c.day, c.hour, c.minute, c.second)
}

/// One test TSA: a certificate of the [`Pki`] and `openssl ts -reply` configured to sign
/// with it. Cheap to clone.
#[derive(Clone)]
pub struct Tsa {
    inner: Arc<Inner>,
    variant: Variant,
    ess: Ess,
    precision: u8,
}

impl std::fmt::Debug for Tsa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tsa").field("variant", &self.variant).field("ess", &self.ess).finish()
    }
}

impl Tsa {
    /// The same TSA with another ESS signing-certificate attribute ([`Variant::NoEku`]'s
    /// tokens always carry `signingCertificateV2` with SHA-256, from `cms -cades`).
    pub fn with_ess(mut self, ess: Ess) -> Tsa {
        self.ess = ess;
        self
    }

    /// The same TSA stamping `genTime` with `digits` (up to 6) decimals of a second, and an
    /// accuracy of 10 ms: RFC 3161 allows fractional seconds, and TSAs with sub-second
    /// clocks send them (`openssl ts` `clock_precision_digits`).
    pub fn with_precision(mut self, digits: u8) -> Tsa {
        self.precision = digits.min(6);
        self
    }

    /// Which certificate signs.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// The signing certificate, DER.
    pub fn cert_der(&self) -> Result<Vec<u8>, Error> {
        self.inner.read(&format!("{}.der", self.variant.stem()))
    }

    /// The signing certificate, PEM.
    pub fn cert_pem(&self) -> Result<Vec<u8>, Error> {
        self.inner.read(&format!("{}.pem", self.variant.stem()))
    }

    /// The DER TimeStampResp (RFC 3161 §2.4.2) `openssl ts -reply` gives for a DER
    /// TimeStampReq: a token over the query's imprint (with its nonce, the signing
    /// certificate when the query asks for it, policy [`POLICY`], accuracy 1 s), or a
    /// refusal response for a query it cannot honour (an unsupported hash, say). An
    /// `Err` only when the query is not one at all.
    pub fn reply(&self, query_der: &[u8]) -> Result<Vec<u8>, Error> {
        let mut n = self.inner.lock.lock().map_err(|_| Error::Malformed("lock poisoned"))?;
        *n += 1;
        let q = format!("query-{n}.der");
        let r = format!("reply-{n}.der");
        std::fs::write(self.inner.path(&q), query_der)?;
        let result = self.reply_files(&q, &r, *n);
        let out = result.and_then(|()| self.inner.read(&r));
        for f in [&q, &r] {
            let _ = std::fs::remove_file(self.inner.path(f));
        }
        out
    }

    fn reply_files(&self, q: &str, r: &str, n: u64) -> Result<(), Error> {
        let signer = match self.variant {
            Variant::NoEku => Variant::Good,
            v => v,
        };
        let section = self.write_config(signer)?;
        if self.variant != Variant::NoEku {
            return self.inner.openssl(&[
                "ts",
                "-reply",
                "-config",
                "tsa.cnf",
                "-section",
                &section,
                "-queryfile",
                q,
                "-out",
                r,
            ]);
        }
        // openssl ts checks the signer's EKU, so sign the good TSA's TSTInfo again with
        // openssl cms, as an authority with a misissued certificate would.
        let good = format!("good-{n}.der");
        let tst = format!("tst-{n}.der");
        let token = format!("token-{n}.der");
        let result = (|| {
            self.inner.openssl(&[
                "ts",
                "-reply",
                "-config",
                "tsa.cnf",
                "-section",
                &section,
                "-queryfile",
                q,
                "-token_out",
                "-out",
                &good,
            ])?;
            self.inner.openssl(&[
                "cms",
                "-verify",
                "-noverify",
                "-binary",
                "-inform",
                "DER",
                "-in",
                &good,
                "-out",
                &tst,
            ])?;
            self.inner.openssl(&[
                "cms",
                "-sign",
                "-binary",
                "-nodetach",
                "-in",
                &tst,
                "-econtent_type",
                "1.2.840.113549.1.9.16.1.4",
                "-signer",
                "noeku.pem",
                "-inkey",
                "noeku.key",
                "-md",
                "sha256",
                "-cades",
                "-nosmimecap",
                "-outform",
                "DER",
                "-out",
                &token,
            ])?;
            let token = self.inner.read(&token)?;
            std::fs::write(self.inner.path(r), der::granted(&token))?;
            Ok(())
        })();
        for f in [&good, &tst, &token] {
            let _ = std::fs::remove_file(self.inner.path(f));
        }
        result
    }

    fn write_config(&self, signer: Variant) -> Result<String, Error> {
        let stem = signer.stem();
        let section = format!("tsa_{stem}");
        let alg = match self.ess {
            Ess::V1Sha1 => "sha1",
            Ess::V2Sha256 => "sha256",
        };
        let digest = if signer == Variant::Intermediate { "sha384" } else { "sha256" };
        let certs = if signer == Variant::Intermediate {
            format!("certs = {stem}.chain.pem\n")
        } else {
            String::new()
        };
        let accuracy =
            if self.precision > 0 { "accuracy = millisecs:10" } else { "accuracy = secs:1" };
        let mut cfg = String::from("[tsa]\n");
        let _ = write!(
            cfg,
            "default_tsa = {section}\n[{section}]\nserial = tsaserial\n\
             signer_cert = {stem}.pem\n{certs}signer_key = {stem}.key\n\
             signer_digest = {digest}\ndefault_policy = {POLICY}\n\
             other_policies = {POLICY}\ndigests = sha256, sha384, sha512\n\
             {accuracy}\nordering = no\ntsa_name = yes\ness_cert_id_chain = no\n\
             ess_cert_id_alg = {alg}\ncrypto_device = builtin\n\
             clock_precision_digits = {}\n",
            self.precision
        );
        std::fs::write(self.inner.path("tsa.cnf"), cfg)?;
        Ok(section)
    }

    /// A DER TimeStampReq (RFC 3161 §2.4.1) for a SHA-256 imprint, made by `openssl ts
    /// -query`: a random 64-bit nonce, certReq TRUE, no policy — what custody's server asks.
    pub fn query(&self, sha256: &[u8; 32]) -> Result<Vec<u8>, Error> {
        let mut n = self.inner.lock.lock().map_err(|_| Error::Malformed("lock poisoned"))?;
        *n += 1;
        let q = format!("made-query-{n}.der");
        let hex: String = sha256.iter().map(|b| format!("{b:02x}")).collect();
        let result = self
            .inner
            .openssl(&["ts", "-query", "-digest", &hex, "-sha256", "-cert", "-out", &q])
            .and_then(|()| self.inner.read(&q));
        let _ = std::fs::remove_file(self.inner.path(&q));
        result
    }

    /// A DER TimeStampToken over a SHA-256 imprint: [`Tsa::query`], [`Tsa::reply`], and the
    /// token out of the response.
    pub fn token(&self, sha256: &[u8; 32]) -> Result<Vec<u8>, Error> {
        der::token_of_reply(&self.reply(&self.query(sha256)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asn1_times() {
        assert_eq!(asn1_time(0), "19700101000000Z");
        assert_eq!(asn1_time(951_782_400), "20000229000000Z");
        assert_eq!(asn1_time(1_577_836_800 + 3661), "20200101010101Z");
    }
}

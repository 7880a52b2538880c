//! Time-stamp tokens made by a real TSA (`openssl ts -reply`, custody-testkit) over a real
//! signed head, checked by `custody_verifier::tsa`: the good ones pass, each broken one
//! fails with its own code.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use custody_format::ids::PublicKey;
use custody_format::log::{EntryType, LogEntry, TreeHead};
use custody_format::report::{code, Check, CheckState};
use custody_format::signed::Signed;
use custody_testkit::{Ess, Pki, Variant};
use custody_verifier::tsa::{self, RootOrigin, Roots, Stamp, TokenEntry};
use der::{Any, Decode, Encode};
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| Pki::new().unwrap())
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as i64
}

fn server_key() -> SigningKey {
    SigningKey::from_bytes(&[5; 32])
}

/// A head of 37 entries signed by the server a second ago, as `custody/tree-head.bin`
/// holds one.
fn head(size: u64) -> Vec<u8> {
    let h = TreeHead { tree_size: size, root_hash: [9; 32], timestamp_us: now_us() - 1_000_000 };
    Signed::sign(h, &server_key()).to_bytes()
}

fn token_over(variant: Variant, bytes: &[u8]) -> Vec<u8> {
    pki().tsa(variant).token(&Sha256::digest(bytes).into()).unwrap()
}

fn given() -> Roots {
    Roots::new(vec![pki().root_der().unwrap()], RootOrigin::Given)
}

struct Outcome {
    stamp: Option<Stamp>,
    checks: Vec<Check>,
}

impl Outcome {
    fn codes(&self) -> Vec<&'static str> {
        self.checks.iter().map(|c| c.code).collect()
    }
}

fn check_with(head: &[u8], token: &[u8], roots: Option<&Roots>, now: i64) -> Outcome {
    let key = PublicKey::from(server_key().verifying_key());
    let entry = TokenEntry {
        log_index: 40,
        logged_at_us: now_us() + 1_000_000,
        label: "http://127.0.0.1/tsa",
        tree_head: head,
        token,
    };
    let mut checks = Vec::new();
    let stamp = tsa::check_token(&entry, Some(&key), roots, now, &mut checks);
    Outcome { stamp, checks }
}

fn check(head: &[u8], token: &[u8]) -> Outcome {
    check_with(head, token, Some(&given()), now_us())
}

#[test]
fn a_good_token_proves_its_head_existed_by_gen_time() {
    let h = head(37);
    for (variant, ess) in [
        (Variant::Good, Ess::V1Sha1),
        (Variant::Good, Ess::V2Sha256),
        (Variant::Intermediate, Ess::V1Sha1),
    ] {
        let before = now_us();
        let token = pki().tsa(variant).with_ess(ess).token(&Sha256::digest(&h).into()).unwrap();
        let out = check(&h, &token);
        assert_eq!(out.codes(), [code::TIME_TSA_OK], "{variant:?} {ess:?}: {:?}", out.checks);
        let s = out.stamp.unwrap();
        assert_eq!(s.tree_size, 37);
        assert_eq!(s.log_index, 40);
        assert_eq!(s.tsa, variant.common_name());
        assert_eq!(s.policy, "1.3.6.1.4.1.99999.3161.1");
        assert_eq!(s.accuracy_us, Some(1_000_000));
        assert_eq!(s.roots, RootOrigin::Given);
        // genTime is whole seconds, at or after the second the token was asked for.
        assert!(s.gen_time_us >= before / 1_000_000 * 1_000_000 && s.gen_time_us <= now_us());
        assert!(out.checks[0].message.contains("first 37 entries existed by"));
    }
}

#[test]
fn a_token_over_another_head_is_refused() {
    let h = head(37);
    let other = head(38);
    let out = check(&h, &token_over(Variant::Good, &other));
    assert_eq!(out.codes(), [code::TIME_TSA_IMPRINT]);
    assert!(out.stamp.is_none());
}

#[test]
fn a_head_not_signed_by_the_server_key_or_signed_after_its_token_is_refused() {
    let forged = Signed::sign(
        TreeHead { tree_size: 37, root_hash: [9; 32], timestamp_us: now_us() },
        &SigningKey::from_bytes(&[6; 32]),
    )
    .to_bytes();
    let out = check(&forged, &token_over(Variant::Good, &forged));
    assert_eq!(out.codes(), [code::TIME_TSA_HEAD]);
    // A head larger than the log was when its token was logged (entry 40).
    let later = head(41);
    let out = check(&later, &token_over(Variant::Good, &later));
    assert_eq!(out.codes(), [code::TIME_TSA_HEAD]);
}

#[test]
fn an_untrusted_tsa_proves_nothing_and_says_so() {
    let h = head(37);
    let out = check(&h, &token_over(Variant::Untrusted, &h));
    assert_eq!(out.codes(), [code::TIME_TSA_UNTRUSTED]);
    assert_eq!(out.checks[0].state, CheckState::Warning);
    assert!(out.stamp.is_none());
    // Trusting its root instead, the same token verifies.
    let other = Roots::new(vec![pki().other_root_der().unwrap()], RootOrigin::Given);
    let out = check_with(&h, &token_over(Variant::Untrusted, &h), Some(&other), now_us());
    assert_eq!(out.codes(), [code::TIME_TSA_OK]);
}

#[test]
fn a_certificate_expired_at_gen_time_fails() {
    let h = head(37);
    let out = check(&h, &token_over(Variant::Expired, &h));
    assert_eq!(out.codes(), [code::TIME_TSA_NOT_VALID_AT_GENTIME]);
    assert_eq!(out.checks[0].state, CheckState::Failure);
}

#[test]
fn a_certificate_valid_at_gen_time_and_expired_since_is_fine_and_said_so() {
    let h = head(37);
    let token = token_over(Variant::Good, &h);
    // The good certificate is valid for ten years; verify as if in 2040.
    let in_2040 = 2_208_988_800_000_000;
    let out = check_with(&h, &token, Some(&given()), in_2040);
    assert_eq!(out.codes(), [code::TIME_TSA_EXPIRED_SINCE, code::TIME_TSA_OK]);
    assert_eq!(out.checks[0].state, CheckState::Ok);
    assert!(out.stamp.is_some());
}

#[test]
fn a_certificate_without_the_time_stamping_eku_fails() {
    let h = head(37);
    let out = check(&h, &token_over(Variant::NoEku, &h));
    assert_eq!(out.codes(), [code::TIME_TSA_EKU]);
    // Without roots too: the key usage is the certificate's own.
    let out = check_with(&h, &token_over(Variant::NoEku, &h), None, now_us());
    assert_eq!(out.codes(), [code::TIME_TSA_EKU]);
}

/// The good token with its signer identifier pointed at the twin certificate (same key,
/// another serial), which it now carries too: the signature still verifies with the
/// twin's key, and only the ESS attribute still names the original.
fn substituted(token: &[u8]) -> Vec<u8> {
    let twin = x509_cert::Certificate::from_der(&pki().tsa(Variant::GoodTwin).cert_der().unwrap())
        .unwrap();
    let info = ContentInfo::from_der(token).unwrap();
    let mut sd: SignedData = info.content.decode_as().unwrap();
    let mut infos: Vec<_> = sd.signer_infos.0.iter().cloned().collect();
    match &mut infos[0].sid {
        SignerIdentifier::IssuerAndSerialNumber(isn) => {
            isn.serial_number = twin.tbs_certificate.serial_number.clone();
        }
        SignerIdentifier::SubjectKeyIdentifier(_) => {
            unreachable!("openssl names issuer and serial")
        }
    }
    sd.signer_infos.0 = infos.try_into().unwrap();
    let mut certs: Vec<_> = sd.certificates.as_ref().unwrap().0.iter().cloned().collect();
    certs.push(CertificateChoices::Certificate(twin));
    sd.certificates.as_mut().unwrap().0 = certs.try_into().unwrap();
    ContentInfo { content_type: info.content_type, content: Any::encode_from(&sd).unwrap() }
        .to_der()
        .unwrap()
}

#[test]
fn an_ess_attribute_naming_another_certificate_fails() {
    let h = head(37);
    for ess in [Ess::V1Sha1, Ess::V2Sha256] {
        let token =
            pki().tsa(Variant::Good).with_ess(ess).token(&Sha256::digest(&h).into()).unwrap();
        let out = check(&h, &substituted(&token));
        assert_eq!(out.codes(), [code::TIME_TSA_ESS], "{ess:?}: {:?}", out.checks);
    }
}

#[test]
fn ess_check_by_hand() {
    use custody_verifier::tsa::ess::{check, EssError};
    let der = pki().tsa(Variant::Good).cert_der().unwrap();
    let cert = x509_cert::Certificate::from_der(&der).unwrap();
    let none = der::asn1::SetOfVec::new();
    assert_eq!(check(&none, &cert, &der), Err(EssError::Missing));
    // The good token's own attributes name its certificate, and not the twin's.
    let h = head(37);
    let token = token_over(Variant::Good, &h);
    let sd: SignedData = ContentInfo::from_der(&token).unwrap().content.decode_as().unwrap();
    let attrs = sd.signer_infos.0.iter().next().unwrap().signed_attrs.clone().unwrap();
    assert_eq!(check(&attrs, &cert, &der), Ok(()));
    let twin_der = pki().tsa(Variant::GoodTwin).cert_der().unwrap();
    let twin = x509_cert::Certificate::from_der(&twin_der).unwrap();
    assert_eq!(check(&attrs, &twin, &twin_der), Err(EssError::HashMismatch));
}

#[test]
fn a_tampered_token_fails() {
    let h = head(37);
    let token = token_over(Variant::Good, &h);
    // Its last byte is in the signature value.
    let mut t = token.clone();
    *t.last_mut().unwrap() ^= 1;
    assert_eq!(check(&h, &t).codes(), [code::TIME_TSA_SIGNATURE]);
    // The policy is inside the signed TSTInfo: the message digest no longer matches.
    let policy = der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.99999.3161.1");
    let at = token.windows(policy.as_bytes().len()).position(|w| w == policy.as_bytes()).unwrap();
    let mut t = token.clone();
    t[at + policy.as_bytes().len() - 1] ^= 3;
    let out = check(&h, &t);
    assert_eq!(out.codes(), [code::TIME_TSA_SIGNATURE]);
    assert!(out.checks[0].message.contains("message-digest"), "{}", out.checks[0].message);
    // Cut short: not a token at all.
    assert_eq!(check(&h, &token[..token.len() / 2]).codes(), [code::TIME_TSA_PARSE]);
}

#[test]
fn bundle_roots_are_reported_as_the_legal_teams_and_no_roots_as_not_checked() {
    let h = head(37);
    let token = token_over(Variant::Good, &h);
    let shipped =
        Roots::new(Roots::parse_file(&pki().root_pem().unwrap()).unwrap(), RootOrigin::Bundle);
    let out = check_with(&h, &token, Some(&shipped), now_us());
    assert_eq!(out.codes(), [code::TIME_TSA_BUNDLE_ROOTS]);
    assert_eq!(out.checks[0].state, CheckState::Warning);
    assert!(out.checks[0].message.contains("roots the legal team shipped with the bundle"));
    assert_eq!(out.stamp.unwrap().roots, RootOrigin::Bundle);
    let out = check_with(&h, &token, None, now_us());
    assert_eq!(out.codes(), [code::TIME_TSA_NO_ROOTS]);
    assert!(out.stamp.is_none());
}

#[test]
fn roots_files_are_pem_or_der_and_anything_else_is_refused() {
    let mut two = pki().root_pem().unwrap();
    two.extend(pki().other_root_pem().unwrap());
    assert_eq!(Roots::parse_file(&two).unwrap().len(), 2);
    assert_eq!(Roots::parse_file(&pki().root_der().unwrap()).unwrap(), [pki().root_der().unwrap()]);
    assert!(Roots::parse_file(b"not a certificate").is_err());
    assert!(Roots::parse_file(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
}

#[test]
fn a_server_clock_far_from_gen_time_is_a_warning() {
    let h = head(37);
    let token = token_over(Variant::Good, &h);
    let key = PublicKey::from(server_key().verifying_key());
    // Logged an hour before the TSA's genTime: the server's clock is behind.
    let entry = TokenEntry {
        log_index: 40,
        logged_at_us: now_us() - 3_600_000_000,
        label: "http://127.0.0.1/tsa",
        tree_head: &h,
        token: &token,
    };
    let mut checks = Vec::new();
    let stamp = tsa::check_token(&entry, Some(&key), Some(&given()), now_us(), &mut checks);
    let codes: Vec<_> = checks.iter().map(|c| c.code).collect();
    assert_eq!(codes, [code::TIME_TSA_OK, code::TIME_TSA_CLOCK_DISAGREES]);
    assert!(stamp.is_some());
}

#[test]
fn every_logged_token_is_checked_revocation_is_said_and_the_earliest_covering_bound_wins() {
    let key = PublicKey::from(server_key().verifying_key());
    let entry = |size: u64, index: u64, h: &[u8], token: Vec<u8>| {
        let mut e = LogEntry::new(EntryType::TimeStampToken, now_us() + 1_000_000);
        e.label = Some("http://127.0.0.1/tsa".into());
        e.tree_head = Some(h.to_vec());
        e.tsa_token = Some(token);
        let _ = size;
        (index, e, [0u8; 32])
    };
    let h10 = head(10);
    let t10 = token_over(Variant::Good, &h10);
    let h20 = head(20);
    let t20 = token_over(Variant::Good, &h20);
    let entries = vec![entry(10, 12, &h10, t10), entry(20, 25, &h20, t20)];
    let mut checks = Vec::new();
    let stamps = tsa::check_all(&entries, Some(&key), Some(&given()), now_us(), &mut checks);
    let codes: Vec<_> = checks.iter().map(|c| c.code).collect();
    assert_eq!(codes, [code::TIME_TSA_OK, code::TIME_TSA_OK, code::TIME_TSA_REVOCATION]);
    assert_eq!(stamps.len(), 2);
    assert_eq!(tsa::bound_for(&stamps, 3).unwrap().tree_size, 10);
    assert_eq!(tsa::bound_for(&stamps, 10).unwrap().tree_size, 20);
    assert!(tsa::bound_for(&stamps, 20).is_none());
    // No token: no line at all.
    let mut none = Vec::new();
    assert!(tsa::check_all(&[], Some(&key), Some(&given()), now_us(), &mut none).is_empty());
    assert!(none.is_empty());
}

/// The custody-bundle 3 vector with a token (tests/vectors/bundles/tsa-clean), through
/// `verify`: the report's words and each segment's bound, with the roots it ships and with
/// the same root given as `--tsa-trust`.
#[test]
fn a_version_3_bundle_says_by_when_its_segments_existed_and_whose_roots_vouch() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors/bundles/tsa-clean/bundle");
    let source = custody_verifier::source::open(&dir).unwrap();
    let trust = custody_format::testkit::public("server");
    let shipped = custody_verifier::verify(
        source.as_ref(),
        &custody_verifier::Options { trust: Some(trust), ..Default::default() },
    )
    .unwrap();
    assert_eq!(shipped.verdict, custody_format::report::Verdict::IntactComplete);
    let codes: Vec<_> = shipped.checks.iter().map(|c| c.code).collect();
    assert!(codes.contains(&code::TIME_TSA_BUNDLE_ROOTS), "{codes:?}");
    assert!(codes.contains(&code::TIME_TSA_REVOCATION), "{codes:?}");
    assert!(!codes.contains(&code::TIME_TSA_OK), "{codes:?}");
    let words = &shipped.independent_time;
    assert!(words.starts_with("Segments 1\u{2013}"), "{words}");
    assert!(words.contains("existed by "), "{words}");
    assert!(words.contains("according to time-stamp authority Custody Test TSA"), "{words}");
    assert!(words.contains("roots the legal team shipped with the bundle"), "{words}");
    let stamp = &shipped.time_stamps[0];
    assert!(shipped.segments.iter().all(|s| s.existed_by_us == Some(stamp.gen_time_us)));
    assert_eq!(stamp.roots, RootOrigin::Bundle);

    // The same root, given by the verifier: ok, and the words no longer hedge.
    let root = std::fs::read(dir.join("custody/tsa-roots.pem")).unwrap();
    let given = custody_verifier::verify(
        source.as_ref(),
        &custody_verifier::Options {
            trust: Some(trust),
            tsa_trust: Roots::parse_file(&root).unwrap(),
            ..Default::default()
        },
    )
    .unwrap();
    let codes: Vec<_> = given.checks.iter().map(|c| c.code).collect();
    assert!(codes.contains(&code::TIME_TSA_OK), "{codes:?}");
    assert!(!codes.contains(&code::TIME_TSA_BUNDLE_ROOTS), "{codes:?}");
    assert!(given.independent_time.ends_with("(independent of the device and of the legal team)."));

    // Another root given: the token is untrusted, no bound is claimed, the verdict stands.
    let other = custody_verifier::verify(
        source.as_ref(),
        &custody_verifier::Options {
            trust: Some(trust),
            tsa_trust: vec![pki().other_root_der().unwrap()],
            ..Default::default()
        },
    )
    .unwrap();
    let codes: Vec<_> = other.checks.iter().map(|c| c.code).collect();
    assert!(codes.contains(&code::TIME_TSA_UNTRUSTED), "{codes:?}");
    assert_eq!(other.verdict, custody_format::report::Verdict::IntactComplete);
    assert!(other.independent_time.starts_with("No independent time was proven"));
    assert!(other.segments.iter().all(|s| s.existed_by_us.is_none()));
}

/// A bundle without tokens says so in the report's words, and its checks are untouched.
#[test]
fn a_bundle_without_tokens_says_no_independent_time_was_obtained() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors/bundles/clean-complete/bundle");
    let source = custody_verifier::source::open(&dir).unwrap();
    let r = custody_verifier::verify(
        source.as_ref(),
        &custody_verifier::Options {
            trust: Some(custody_format::testkit::public("server")),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        r.independent_time,
        "No independent time was obtained: times come from the device and the legal team's server."
    );
    assert!(r.checks.iter().all(|c| !c.code.starts_with("time.tsa.")));
    assert!(r.time_stamps.is_empty());
}

mod fuzz_check {
    include!("../../fuzz/checks/tsa_token.rs");
}

/// The fuzz target's seeds (real tokens over its fixed head, from the testkit's TSA) and
/// any input it once failed on pass its check, and the seeds are accepted, so the fuzzer
/// starts from tokens that reach every check. `CUSTODY_REGENERATE_SEEDS=1` makes the seeds
/// again (then run once more: the check includes the root at compile time).
#[test]
fn the_tsa_token_fuzz_seeds_and_kept_inputs_pass_its_check() {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let seeds = base.join("fuzz/seeds/tsa_token");
    if std::env::var_os("CUSTODY_REGENERATE_SEEDS").is_some() {
        std::fs::write(seeds.join("root.der.bin"), pki().root_der().unwrap()).unwrap();
        let h = fuzz_check::head();
        let d: [u8; 32] = Sha256::digest(&h).into();
        for (name, tsa) in [
            ("good-ess-v1.der", pki().tsa(Variant::Good)),
            ("good-ess-v2.der", pki().tsa(Variant::Good).with_ess(Ess::V2Sha256)),
            ("intermediate.der", pki().tsa(Variant::Intermediate)),
        ] {
            std::fs::write(seeds.join(name), tsa.token(&d).unwrap()).unwrap();
        }
        return;
    }
    let mut seen = 0;
    for dir in [seeds, base.join("tests/fuzz-regressions/tsa_token")] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "bin") {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            fuzz_check::check(&data);
            if path.starts_with(base.join("fuzz/seeds")) {
                let head = fuzz_check::head();
                let roots = Roots::new(vec![fuzz_check::ROOT.to_vec()], RootOrigin::Given);
                let entry = TokenEntry {
                    log_index: 40,
                    logged_at_us: 1_764_000_001_000_000,
                    label: "seed",
                    tree_head: &head,
                    token: &data,
                };
                let mut checks = Vec::new();
                let key = custody_format::testkit::public("server");
                let stamp = tsa::check_token(&entry, Some(&key), Some(&roots), 0, &mut checks);
                assert!(stamp.is_some(), "{}: {checks:?}", path.display());
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 3, "the three seed tokens");
}

/// RFC 3161 allows genTime fractional seconds (a TSA with a sub-second clock sends them);
/// `der` 0.7's GeneralizedTime refuses them, so the verifier reads genTime itself.
#[test]
fn a_gen_time_with_fractional_seconds_is_read_to_the_microsecond() {
    let h = head(37);
    let mut fractions = 0;
    for _ in 0..3 {
        let token =
            pki().tsa(Variant::Good).with_precision(3).token(&Sha256::digest(&h).into()).unwrap();
        let out = check(&h, &token);
        assert_eq!(out.codes(), [code::TIME_TSA_OK], "{:?}", out.checks);
        let s = out.stamp.unwrap();
        assert_eq!(s.accuracy_us, Some(10_000));
        assert_eq!(s.gen_time_us % 1000, 0, "milliseconds only");
        if s.gen_time_us % 1_000_000 != 0 {
            fractions += 1;
        }
    }
    // A fraction of exactly .000 is written without one: three in a row is one in 10^9.
    assert!(fractions > 0);
}

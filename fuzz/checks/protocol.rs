// The protocol target's check, shared by fuzz/fuzz_targets/protocol.rs and the regression
// test that replays tests/fuzz-regressions/protocol/ (protocol/tests/fuzz_regressions.rs).
use custody_protocol::body::{
    ConsistencyProof, EnrollAnswer, EnrollRequest, InclusionProof, LogHead, ReceiptsAnswer,
    RecipientsAnswer, RecordingList, RecordingState, RevokeAnswer, RevokeRequest, ServerInfo,
    WhoAmI,
};
use custody_protocol::code::{Code, Refusal};
use custody_protocol::request::{SignedHeaders, H_DEVICE, H_NONCE, H_SIGNATURE, H_TIMESTAMP};
use custody_protocol::EnrollLink;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// What a client or the server reads off the wire: the `Custody-*` signature headers, every
/// JSON body, refusals and their codes, and enrollment links. The first byte picks which;
/// the rest is the input. Nothing panics, and whatever is read writes back to a form that
/// reads as the same value.
pub fn check(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else { return };
    match pick % 16 {
        0 => headers(rest),
        1 => link(rest),
        2 => refusal(rest),
        3 => json::<ServerInfo>(rest, |_| {}),
        4 => json::<EnrollRequest>(rest, |r| {
            if let Ok(claim) = r.claim() {
                let _ = claim.proof_verifies();
            }
        }),
        5 => json::<EnrollAnswer>(rest, |a| {
            let _ = a.certificate();
            if let Ok(key) = a.server_key() {
                let _ = a.case_recipients(&key);
            }
        }),
        6 => json::<RecipientsAnswer>(rest, |a| {
            // Any valid key will do (the Ed25519 base point): checking must not panic.
            let key = "ed25519:5866666666666666666666666666666666666666666666666666666666666666";
            if let Ok(key) = custody_format::ids::PublicKey::parse(key) {
                let _ = a.checked(&key);
            }
        }),
        7 => json::<RecordingState>(rest, |_| {}),
        8 => json::<ReceiptsAnswer>(rest, |a| {
            for r in &a.receipts {
                let _ = r.receipt();
            }
        }),
        9 => json::<WhoAmI>(rest, |w| {
            let _ = w.server_key();
        }),
        10 => json::<RecordingList>(rest, |l| {
            for s in &l.recordings {
                let _ = s.state.as_str();
            }
        }),
        11 => json::<RevokeRequest>(rest, |_| {}),
        12 => json::<RevokeAnswer>(rest, |_| {}),
        13 => json::<LogHead>(rest, |h| {
            let _ = h.signed();
        }),
        14 => json::<ConsistencyProof>(rest, |_| {}),
        _ => json::<InclusionProof>(rest, |_| {}),
    }
}

/// Reads `bytes` as a `T`; what reads writes back to JSON that reads as the same value.
fn json<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(
    bytes: &[u8],
    then: impl Fn(&T),
) {
    if let Ok(v) = serde_json::from_slice::<T>(bytes) {
        then(&v);
        let text = serde_json::to_vec(&v).expect("a read body writes back");
        assert_eq!(serde_json::from_slice::<T>(&text).ok().as_ref(), Some(&v));
    }
}

/// The four signature headers, separated by `\n` (a missing line, or one that is exactly
/// `-`, is an absent header): parsed, they write back to values that parse the same; a
/// refusal is `auth.missing` only when a header is absent.
fn headers(bytes: &[u8]) {
    let mut lines = bytes.split(|&b| b == b'\n').map(|l| (l != b"-").then_some(l));
    let values: [Option<&[u8]>; 4] = std::array::from_fn(|_| lines.next().flatten());
    match SignedHeaders::parse(values[0], values[1], values[2], values[3]) {
        Ok(h) => {
            let pairs = h.to_pairs();
            let names: Vec<&str> = pairs.iter().map(|(n, _)| *n).collect();
            assert_eq!(names, [H_DEVICE, H_TIMESTAMP, H_NONCE, H_SIGNATURE]);
            let back = SignedHeaders::from_lookup(|n| {
                pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_bytes())
            });
            assert_eq!(back.as_ref(), Ok(&h));
        }
        Err(e) => {
            if e.code() == Code::AuthMissing {
                assert!(values.iter().any(Option::is_none), "auth.missing with every header: {e}");
            } else {
                assert_eq!(e.code(), Code::AuthMalformed);
            }
        }
    }
}

/// Enrollment links: what parses prints as a link that parses to the same link.
fn link(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    if let Ok(l) = EnrollLink::parse(text) {
        let printed = l.to_string();
        assert_eq!(EnrollLink::parse(&printed).as_ref(), Ok(&l), "printed as {printed:?}");
    }
}

/// Refusal bodies and codes: a code's text reads back as that code; a refusal body that
/// reads writes back to one that reads the same.
fn refusal(bytes: &[u8]) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        if let Some(code) = Code::parse(text) {
            assert_eq!(code.as_str(), text);
        }
    }
    if let Some(r) = Refusal::from_body(bytes) {
        assert_eq!(Refusal::from_body(r.to_body().as_bytes()).as_ref(), Some(&r));
        if let Some(code) = r.code() {
            assert_eq!(code.as_str(), r.code);
        }
    }
}

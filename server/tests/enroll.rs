//! Enrollment over real HTTP on loopback: certificates, one-time tokens, proofs.

mod common;

use std::time::Duration;

use common::*;
use custody_format::cert::DeviceCertificate;
use custody_format::ids::PublicKey;
use custody_format::signed::Signed;

#[tokio::test]
async fn a_device_enrolls_once_per_token_and_reuse_is_refused_and_logged() {
    let ts = start(test_limits()).await;
    let c = client();
    let token =
        custody_server::issue_token(ts.dir.path(), "observer-7", Duration::from_secs(60)).unwrap();
    let d = Device::new("device");
    let log_before = ts.server.log_len();

    let s = d.enroll(&c, &ts.base, &token).await;
    assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
    let v: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
    let server_key = PublicKey::parse(v["server_key"].as_str().unwrap()).unwrap();
    assert_eq!(server_key, ts.server.public_key());
    let cert = Signed::<DeviceCertificate>::parse(
        &hex::decode(v["certificate"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert!(cert.verify(&server_key));
    assert_eq!(cert.value().device_key, d.public);
    assert_eq!(cert.value().label, "observer-7");
    assert_eq!(v["label"], "observer-7");
    assert!(v["recipients"][0].as_str().unwrap().starts_with("age1"));
    assert!(v["tls_sha256"].is_null(), "plain HTTP has no certificate to pin");
    assert_eq!(ts.server.log_len(), log_before + 1);

    // The same token again, even for another device: refused, and the refusal logged.
    let other = Device::new("other");
    let s = other.enroll(&c, &ts.base, &token).await;
    assert_eq!((s.status, s.code().as_str()), (403, "enroll.token_used"));
    assert_eq!(ts.server.log_len(), log_before + 2);
    assert!(ts.server.device(&other.public).is_none());

    // A token never issued is refused and not logged (anybody could fill the log).
    let s = other.enroll(&c, &ts.base, &"ab".repeat(32)).await;
    assert_eq!((s.status, s.code().as_str()), (403, "enroll.token_unknown"));
    assert_eq!(ts.server.log_len(), log_before + 2);
}

#[tokio::test]
async fn a_wrong_proof_of_possession_is_refused_without_spending_the_token() {
    let ts = start(test_limits()).await;
    let c = client();
    let token = custody_server::issue_token(ts.dir.path(), "obs", Duration::from_secs(60)).unwrap();
    let d = Device::new("device");
    let mut body = d.enroll_body(&token);
    // Claim another key with this device's proof.
    body["device_key"] = serde_json::Value::String(Device::new("victim").public.to_string());
    let r = c.post(format!("{}/v1/enroll", ts.base)).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "enroll.proof");
    // The token still works for its holder.
    assert_eq!(d.enroll(&c, &ts.base, &token).await.status, 200);
}

#[tokio::test]
async fn an_expired_token_is_refused_and_logged() {
    let ts = start(test_limits()).await;
    let c = client();
    let token = custody_server::issue_token(ts.dir.path(), "obs", Duration::ZERO).unwrap();
    // The token expires the microsecond it is issued; make sure the clock has moved on.
    let issued = now_us();
    while now_us() <= issued + 1 {
        std::hint::spin_loop();
    }
    let before = ts.server.log_len();
    let s = Device::new("d").enroll(&c, &ts.base, &token).await;
    assert_eq!((s.status, s.code().as_str()), (403, "enroll.token_expired"));
    assert_eq!(ts.server.log_len(), before + 1);
}

#[tokio::test]
async fn malformed_enrollment_is_refused_with_its_code() {
    let ts = start(test_limits()).await;
    let r = client().post(format!("{}/v1/enroll", ts.base)).body("{not json").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "enroll.malformed");
}

#[tokio::test]
async fn over_tls_the_device_learns_and_pins_the_servers_certificate() {
    let ts = start_with(tempfile::tempdir().unwrap(), test_limits(), false).await;
    let pin: [u8; 32] = hex::decode(ts.server.tls_sha256()).unwrap().try_into().unwrap();
    let base = ts.base.replace("127.0.0.1", "localhost");
    let token = custody_server::issue_token(ts.dir.path(), "tls", Duration::from_secs(60)).unwrap();
    let s = Device::new("d").enroll(&pinned_client(pin), &base, &token).await;
    assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
    let v: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
    assert_eq!(v["tls_sha256"], ts.server.tls_sha256());
    // A client pinned to any other certificate does not get through the handshake.
    let e = pinned_client([7; 32]).get(format!("{base}/v1/server")).send().await.unwrap_err();
    assert!(e.is_connect(), "not a refused handshake: {e:?}");
    assert!(format!("{e:?}").contains("pinned"), "not refused for its pin: {e:?}");
    // Nor does plain HTTP reach a TLS server: no HTTP answer at all comes back.
    let e = client()
        .get(ts.base.replace("https", "http") + "/v1/server")
        .send()
        .await
        .map(|r| r.status())
        .unwrap_err();
    assert!(e.is_request() || e.is_connect(), "{e:?}");
    assert!(e.status().is_none(), "{e:?}");
}

/// Failed enrollments count against the address as failed logins do: once an address has
/// failed `MAX_FAILURES` times within the window, its failing enrollments are refused
/// unlogged — so a seized phone's spent token cannot fill the custody log with refusals —
/// while a right token from the same address is still taken. Another address is not
/// affected.
#[tokio::test]
async fn an_address_that_keeps_failing_to_enroll_is_held_off() {
    let ts = start(test_limits()).await;
    let c = client();
    let spent = custody_server::issue_token(ts.dir.path(), "obs", Duration::from_secs(60)).unwrap();
    assert_eq!(Device::new("first").enroll(&c, &ts.base, &spent).await.status, 200);
    let fresh =
        custody_server::issue_token(ts.dir.path(), "obs2", Duration::from_secs(60)).unwrap();

    let log_before = ts.server.log_len();
    let max = u64::from(custody_server::members::MAX_FAILURES);
    for n in 0..max {
        let s = Device::new("thief").enroll(&c, &ts.base, &spent).await;
        assert_eq!((s.status, s.code().as_str()), (403, "enroll.token_used"), "attempt {n}");
    }
    assert_eq!(ts.server.log_len(), log_before + max, "each refusal logged, up to the limit");
    for _ in 0..3 {
        let s = Device::new("thief").enroll(&c, &ts.base, &spent).await;
        assert_eq!((s.status, s.code().as_str()), (429, "auth.rate_limited"));
    }
    // Malformed requests are held off too, and nothing more reached the log.
    let r = c.post(format!("{}/v1/enroll", ts.base)).body("{not json").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(ts.server.log_len(), log_before + max, "nothing more reached the log");
    // A right token from this address is taken (issue 16: never refused for other
    // requests' failures).
    let s = Device::new("late").enroll(&c, &ts.base, &fresh).await;
    assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));

    // A client from another loopback address (127.0.0.2) is answered as before.
    let other =
        custody_server::issue_token(ts.dir.path(), "obs3", Duration::from_secs(60)).unwrap();
    let elsewhere = client_from(std::net::IpAddr::from([127, 0, 0, 2]));
    let s = Device::new("later").enroll(&elsewhere, &ts.base, &other).await;
    assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
}

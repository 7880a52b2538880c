//! `--trusted-proxy` over real loopback HTTP: the per-address limit on failed logins keys
//! on the address a trusted proxy (127.0.0.1 here) names in X-Forwarded-For, and on the
//! connection's own address when the connection is not from a trusted proxy (the header
//! is then ignored, so a client cannot pick a fresh address per guess).

use std::net::{IpAddr, SocketAddr};

use custody_server::members::MAX_FAILURES;
use custody_server::proxy::TrustedProxies;
use custody_server::{Config, Server};

async fn start(trusted: &[&str]) -> (SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.insecure_http = true;
    config.trusted_proxies = TrustedProxies {
        blocks: trusted.iter().map(|b| b.parse().unwrap()).collect(),
        ..TrustedProxies::default()
    };
    let (server, _) = Server::open(config).unwrap();
    let (addr, _task) =
        custody_server::serve::spawn(server, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    (addr, dir)
}

/// A client whose connections come from `from` (a loopback address).
fn client(from: &str) -> reqwest::Client {
    // Plain HTTP, but reqwest's TLS back-end wants a provider chosen all the same.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().local_address(from.parse::<IpAddr>().unwrap()).build().unwrap()
}

/// A login with a wrong token, claiming to be forwarded for `client_addr`; the code.
async fn bad_login(c: &reqwest::Client, addr: SocketAddr, client_addr: &str) -> String {
    let r = c
        .get(format!("http://{addr}/v1/whoami"))
        .bearer_auth("00".repeat(32))
        .header("X-Forwarded-For", format!("198.51.100.1, {client_addr}"))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    v["error"]["code"].as_str().unwrap_or_else(|| panic!("{v}")).to_string()
}

#[tokio::test]
async fn a_trusted_proxys_client_address_is_the_one_limited() {
    let (addr, _dir) = start(&["127.0.0.1"]).await;
    let proxy = client("127.0.0.1");
    for _ in 0..MAX_FAILURES {
        assert_eq!(bad_login(&proxy, addr, "203.0.113.5").await, "auth.token");
    }
    assert_eq!(bad_login(&proxy, addr, "203.0.113.5").await, "auth.rate_limited");
    // Another client behind the same proxy is not held to the first one's failures.
    assert_eq!(bad_login(&proxy, addr, "203.0.113.6").await, "auth.token");
    // A connection from elsewhere (127.0.0.2, not a trusted proxy) is keyed on its own
    // address: claiming the limited client's address neither limits nor frees it.
    let other = client("127.0.0.2");
    assert_eq!(bad_login(&other, addr, "203.0.113.5").await, "auth.token");
}

#[tokio::test]
async fn without_a_trusted_proxy_the_header_is_ignored() {
    let (addr, _dir) = start(&[]).await;
    let c = client("127.0.0.1");
    for i in 0..MAX_FAILURES {
        // A fresh claimed address every time: all are counted against 127.0.0.1.
        assert_eq!(bad_login(&c, addr, &format!("203.0.113.{i}")).await, "auth.token");
    }
    assert_eq!(bad_login(&c, addr, "192.0.2.99").await, "auth.rate_limited");

    // Trusting only 127.0.0.2 does not make 127.0.0.1's header believed either.
    let (addr, _dir2) = start(&["127.0.0.2"]).await;
    for i in 0..MAX_FAILURES {
        assert_eq!(bad_login(&c, addr, &format!("203.0.113.{i}")).await, "auth.token");
    }
    assert_eq!(bad_login(&c, addr, "192.0.2.99").await, "auth.rate_limited");
    // The trusted one is believed.
    assert_eq!(bad_login(&client("127.0.0.2"), addr, "192.0.2.99").await, "auth.token");
}

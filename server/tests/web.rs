//! The capture page as the server serves it: the security headers on every answer, content
//! types, ETag re-validation, the 503 page of a server built without the page, and the
//! same over real loopback HTTP with whatever page this binary embeds. No browser needed.

mod common;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use custody_server::web::{Pages, CONTENT_SECURITY_POLICY, NOT_BUILT_PAGE, PERMISSIONS_POLICY};
use http_body_util::BodyExt;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; \
    worker-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

fn built() -> Pages {
    Pages::from_static([
        ("index.html", &b"<!doctype html><script type=module src=/capture/app-1.js></script>"[..]),
        ("app-1.js", &b"console.log(1)"[..]),
        ("style-1.css", &b"body{}"[..]),
        ("manifest.webmanifest", &b"{}"[..]),
        ("sw.js", &b"self"[..]),
        ("icons/icon.svg", &b"<svg/>"[..]),
    ])
}

/// The headers every page answer carries, whatever its status.
fn assert_page_headers(h: &HeaderMap, what: &str) {
    let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert_eq!(get("content-security-policy"), CSP, "{what}");
    assert_eq!(get("permissions-policy"), "camera=(self), microphone=(self)", "{what}");
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(get("cache-control"), "no-cache", "{what}");
}

async fn body(resp: Response) -> Vec<u8> {
    resp.into_body().collect().await.unwrap().to_bytes().to_vec()
}

#[test]
fn the_policy_constants_are_the_documented_ones() {
    assert_eq!(CONTENT_SECURITY_POLICY, CSP);
    assert_eq!(PERMISSIONS_POLICY, "camera=(self), microphone=(self)");
}

#[tokio::test]
async fn every_asset_has_its_type_the_headers_and_an_etag() {
    let pages = built();
    let none = HeaderMap::new();
    for (path, ty) in [
        ("", "text/html; charset=utf-8"),
        ("index.html", "text/html; charset=utf-8"),
        ("app-1.js", "text/javascript; charset=utf-8"),
        ("style-1.css", "text/css; charset=utf-8"),
        ("manifest.webmanifest", "application/manifest+json"),
        ("sw.js", "text/javascript; charset=utf-8"),
        ("icons/icon.svg", "image/svg+xml"),
    ] {
        let resp = pages.answer(path, &none);
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_page_headers(resp.headers(), path);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], ty, "{path}");
        let etag = resp.headers()[header::ETAG].to_str().unwrap().to_string();
        assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() == 34, "{etag}");
    }
    assert_eq!(body(pages.answer("", &none)).await, body(pages.answer("index.html", &none)).await);
    // Different bytes, different tags.
    let a = pages.answer("app-1.js", &none).headers()[header::ETAG].clone();
    let b = pages.answer("style-1.css", &none).headers()[header::ETAG].clone();
    assert_ne!(a, b);
}

#[tokio::test]
async fn a_matching_etag_is_not_modified_and_another_is_sent_again() {
    let pages = built();
    let etag = pages.answer("app-1.js", &HeaderMap::new()).headers()[header::ETAG].clone();
    let mut same = HeaderMap::new();
    same.insert(header::IF_NONE_MATCH, etag.clone());
    let resp = pages.answer("app-1.js", &same);
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert_page_headers(resp.headers(), "304");
    assert_eq!(resp.headers()[header::ETAG], etag);
    assert!(body(resp).await.is_empty());

    let mut listed = HeaderMap::new();
    let list = format!("\"0000\", W/{}", etag.to_str().unwrap());
    listed.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&list).unwrap());
    assert_eq!(pages.answer("app-1.js", &listed).status(), StatusCode::NOT_MODIFIED);

    let mut other = HeaderMap::new();
    other.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"0123\""));
    let resp = pages.answer("app-1.js", &other);
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body(resp).await, b"console.log(1)");
}

#[tokio::test]
async fn an_unknown_file_is_404_with_the_headers() {
    let pages = built();
    for path in ["nope.js", "../Cargo.toml", "icons/", "icons"] {
        let resp = pages.answer(path, &HeaderMap::new());
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        assert_page_headers(resp.headers(), path);
    }
}

#[tokio::test]
async fn without_the_page_every_path_is_503_saying_how_to_build_it() {
    let pages = Pages::from_static([]);
    assert!(!pages.is_built());
    // Files but no index.html is not a built page either.
    assert!(!Pages::from_static([("app.js", &b"x"[..])]).is_built());
    for path in ["", "index.html", "app-1.js"] {
        let resp = pages.answer(path, &HeaderMap::new());
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_page_headers(resp.headers(), path);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let text = String::from_utf8(body(resp).await).unwrap();
        assert_eq!(text, NOT_BUILT_PAGE);
        assert!(text.contains("cargo xtask web"), "{text}");
        assert!(text.contains("not built"), "{text}");
    }
}

/// What this binary embeds, served by the real server over loopback HTTP.
#[tokio::test]
async fn the_server_serves_the_page_it_embeds_at_capture_and_enroll() {
    let t = common::start(common::test_limits()).await;
    let client = common::client();
    let built = Pages::embedded().is_built();
    let expected = if built { 200 } else { 503 };

    let capture = client.get(format!("{}/capture/", t.base)).send().await.unwrap();
    assert_eq!(capture.status().as_u16(), expected);
    let h = capture.headers().clone();
    for (name, value) in [
        ("content-security-policy", CSP),
        ("permissions-policy", "camera=(self), microphone=(self)"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-cache"),
        ("content-type", "text/html; charset=utf-8"),
    ] {
        assert_eq!(h.get(name).and_then(|v| v.to_str().ok()), Some(value), "{name}");
    }
    let page = capture.text().await.unwrap();

    // The enrollment link's path is the same page (its fragment never reaches us).
    let enroll = client.get(format!("{}/enroll", t.base)).send().await.unwrap();
    assert_eq!(enroll.status().as_u16(), expected);
    assert_eq!(enroll.headers().get("content-security-policy").unwrap(), CSP);
    assert_eq!(enroll.text().await.unwrap(), page);

    // `/capture` is redirected to `/capture/` (the client follows it).
    let bare = client.get(format!("{}/capture", t.base)).send().await.unwrap();
    assert_eq!(bare.url().path(), "/capture/");
    assert_eq!(bare.status().as_u16(), expected);

    // The API beside it is untouched.
    let info = client.get(format!("{}/v1/server", t.base)).send().await.unwrap();
    assert_eq!(info.status(), reqwest::StatusCode::OK);
    assert_eq!(info.headers()["content-type"], "application/json");

    if built {
        assert!(page.contains("<script"), "{page}");
        // The policy forbids inline script and style: the page must have none.
        for inline in ["<script>", "<style", " style=", "onclick=", "onload=", "javascript:"] {
            assert!(!page.contains(inline), "index.html holds {inline:?}, which the CSP blocks");
        }
        let etag = h.get("etag").unwrap().clone();
        let again = client
            .get(format!("{}/capture/", t.base))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), reqwest::StatusCode::NOT_MODIFIED);
        for asset in ["sw.js", "manifest.webmanifest"] {
            let r = client.get(format!("{}/capture/{asset}", t.base)).send().await.unwrap();
            assert_eq!(r.status(), reqwest::StatusCode::OK, "{asset}");
            assert_eq!(r.headers().get("content-security-policy").unwrap(), CSP);
        }
    } else {
        assert!(page.contains("cargo xtask web"), "{page}");
    }
}

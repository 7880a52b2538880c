//! The capture page: the phone's recorder, served by the server itself (one binary to
//! deploy).
//!
//! `build.rs` embeds every file of `web/dist` (built by `cargo xtask web`). The page is
//! served at `/capture/` (its assets beside it) and at `/enroll`, the path of the
//! enrollment link (`/enroll#token=…&fp=…`: the fragment stays in the browser and never
//! reaches the server). Every answer carries a strict Content-Security-Policy (the page
//! talks only to this origin; no inline script or style, no frames), a Permissions-Policy
//! that lets only this origin use the camera and microphone, and `Cache-Control: no-cache`
//! with an ETag, so the browser re-validates the page on every load and a new server's
//! page replaces the old one at once. A server built where node was absent has no page and
//! answers 503 with a short page saying how to build it; the API works either way.
//!
//! The service worker (`/capture/sw.js`) has the default scope `/capture/`, so it needs no
//! `Service-Worker-Allowed` header and cannot see the API under `/v1/`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use custody_format::primitives::sha256;

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// The Content-Security-Policy of every page answer: only this origin's scripts, styles,
/// workers and API; images and media also from the page's own blobs (the camera preview
/// and the photo); no plugins, frames, forms or `<base>`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; \
    connect-src 'self'; worker-src 'self'; manifest-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// Only this origin may ask for the camera and the microphone.
pub const PERMISSIONS_POLICY: &str = "camera=(self), microphone=(self)";

/// What `/capture/` answers (503) when the server was built without the page.
pub const NOT_BUILT_PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head>\
<meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
<title>custody: capture page not built</title></head><body>\
<h1>The capture page was not built into this server</h1>\
<p>This custody server was compiled without the phone capture page (node and npm were \
absent, or <code>cargo xtask web</code> had not been run), so there is no page to record \
from here. The API under /v1/ works as usual: laptops can still enroll and upload.</p>\
<p>To add the page: install node and npm (Debian: <code>apt install nodejs npm</code>), \
run <code>cargo xtask web</code> in the source tree, then build the server again \
(<code>cargo build --release -p custody-cli</code>).</p></body></html>\n";

/// One file of the page.
#[derive(Debug)]
struct Asset {
    bytes: &'static [u8],
    etag: HeaderValue,
    content_type: &'static str,
}

/// The files of the capture page, by their path under `/capture/`.
#[derive(Debug, Default)]
pub struct Pages {
    files: BTreeMap<String, Asset>,
}

impl Pages {
    /// The page embedded in this binary at build time (empty when it was not built).
    pub fn embedded() -> &'static Pages {
        static PAGES: OnceLock<Pages> = OnceLock::new();
        PAGES.get_or_init(|| Pages::from_static(EMBEDDED.iter().copied()))
    }

    /// Pages made of these files (path under `/capture/`, bytes); for tests and for the
    /// embedded table.
    pub fn from_static(files: impl IntoIterator<Item = (&'static str, &'static [u8])>) -> Pages {
        let files = files
            .into_iter()
            .map(|(path, bytes)| {
                let digest = sha256(&[bytes]);
                // The value is hex in quotes, always a valid header value.
                let etag = HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..16])))
                    .unwrap_or_else(|_| HeaderValue::from_static("\"\""));
                (path.to_string(), Asset { bytes, etag, content_type: content_type(path) })
            })
            .collect();
        Pages { files }
    }

    /// Whether the page was built into these files (it has an `index.html`).
    pub fn is_built(&self) -> bool {
        self.files.contains_key("index.html")
    }

    /// The answer to a GET of `path` (relative to `/capture/`; `""` is the page itself).
    pub fn answer(&self, path: &str, request: &HeaderMap) -> Response {
        if !self.is_built() {
            return page_response(
                StatusCode::SERVICE_UNAVAILABLE,
                NOT_BUILT_PAGE.as_bytes(),
                "text/html; charset=utf-8",
                None,
            );
        }
        let path = if path.is_empty() { "index.html" } else { path };
        let Some(asset) = self.files.get(path) else {
            return page_response(
                StatusCode::NOT_FOUND,
                b"no such file of the capture page\n",
                "text/plain; charset=utf-8",
                None,
            );
        };
        let fresh = request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|tag| {
                let tag = tag.trim();
                tag == "*" || tag.trim_start_matches("W/") == asset.etag
            });
        if fresh {
            return page_response(
                StatusCode::NOT_MODIFIED,
                b"",
                asset.content_type,
                Some(&asset.etag),
            );
        }
        page_response(StatusCode::OK, asset.bytes, asset.content_type, Some(&asset.etag))
    }
}

/// The routes of the page: `/capture` (redirected to `/capture/`), `/capture/`, its
/// assets, and `/enroll`. HEAD is answered too (axum answers it from GET).
pub fn routes<S: Clone + Send + Sync + 'static>(pages: &'static Pages) -> Router<S> {
    Router::new()
        .route(
            "/capture",
            get(|| async {
                // Relative asset paths and the service worker's scope need the slash.
                (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, "/capture/")]).into_response()
            }),
        )
        .route("/capture/", get(move |h: HeaderMap| async move { pages.answer("", &h) }))
        .route(
            "/capture/{*path}",
            get(move |Path(path): Path<String>, h: HeaderMap| async move { pages.answer(&path, &h) }),
        )
        .route("/enroll", get(move |h: HeaderMap| async move { pages.answer("", &h) }))
}

fn page_response(
    status: StatusCode,
    body: &'static [u8],
    content_type: &'static str,
    etag: Option<&HeaderValue>,
) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert("permissions-policy", HeaderValue::from_static(PERMISSIONS_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Some(etag) = etag {
        h.insert(header::ETAG, etag.clone());
    }
    resp
}

/// The media type of a page file, from its name.
fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        "map" => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_by_name() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("app-1234.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("manifest.webmanifest"), "application/manifest+json");
        assert_eq!(content_type("icons/icon.svg"), "image/svg+xml");
        assert_eq!(content_type("README"), "application/octet-stream");
    }
}

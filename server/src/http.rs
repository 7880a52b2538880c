//! The HTTP API (specified in `docs/api.md`): routes, device authentication, limits.
//!
//! There is deliberately no device route that reads back or deletes a segment or a
//! record: devices can only add. The legal team reads evidence through the member routes
//! (`member_api`), with a member's bearer token; every access is logged first. Nothing
//! deletes.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use custody_format::ids::{PublicKey, RecordingId};
use custody_format::primitives::sha256;
use http_body_util::BodyExt;
use tokio::sync::OwnedSemaphorePermit;

use custody_protocol::body::{EnrollRequest, ServerInfo};

use crate::auth;
use crate::error::{ApiError, Code};
use crate::server::{lock, Server};

/// Largest enrollment request body.
const MAX_ENROLL_BODY: usize = 16 << 10;
/// Largest body of a signed request other than an upload (they carry none: the signature
/// covers the empty body), so that no device route but ingest reads more than this.
const MAX_OTHER_BODY: usize = 16 << 10;

/// The recording id in a route: only its canonical form, 32 lower-case hex digits
/// (docs/format.md); any other spelling is refused, saying why.
pub(crate) fn route_id(s: &str) -> Result<RecordingId, ApiError> {
    RecordingId::parse(s).map_err(|e| {
        let shown: String = s.chars().take(40).collect();
        ApiError::new(Code::NotFound, format!("{shown:?} is not a recording id: {e}"))
    })
}

/// The router for `server`.
pub fn router(server: Server) -> Router {
    Router::new()
        .route("/v1/server", get(server_info))
        .route("/v1/enroll", post(enroll))
        .route("/v1/recordings/{id}", get(recording_state))
        .route("/v1/recordings/{id}/records/{seq}", put(put_record))
        .route("/v1/recordings/{id}/receipts", get(recording_receipts))
        .route("/v1/recipients", get(recipients))
        .route("/v1/whoami", get(crate::member_api::whoami))
        .route("/v1/status", get(crate::tsa::status_route))
        .route("/v1/recordings", get(crate::member_api::list))
        .route("/v1/recordings/{id}/bundle", get(crate::member_api::bundle))
        .route("/v1/devices/revoke", post(crate::member_api::revoke))
        .route("/v1/log/head", get(crate::log_api::head))
        .route("/v1/log/consistency", get(crate::log_api::consistency))
        .route("/v1/log/inclusion", get(crate::log_api::inclusion))
        // The capture page (`web`): `/capture/` and `/enroll`.
        .merge(crate::web::routes(crate::web::Pages::embedded()))
        .fallback(|| async { ApiError::new(Code::NotFound, "no such route").into_response() })
        .layer(axum::middleware::from_fn_with_state(
            server.clone(),
            crate::log_damage::refuse_appends,
        ))
        // Outermost: the events a request causes may name its address (if asked for).
        .layer(axum::middleware::from_fn(|req: Request, next: axum::middleware::Next| {
            let peer = req.extensions().get::<crate::members::Peer>().map(|p| p.0.ip());
            crate::events::serving_for(peer, next.run(req))
        }))
        .with_state(server)
}

/// A JSON answer: one of the protocol's body types (`custody_protocol::body`).
pub(crate) fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    let text = match serde_json::to_string(value) {
        Ok(t) => t,
        Err(e) => return ApiError::internal("answering", e).into_response(),
    };
    let mut resp = (status, text).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Reads a body of at most `limit` bytes within the body timeout. An oversized body is
/// still read (and thrown away) up to four times the limit, so that the client is sure to
/// receive the refusal instead of a reset connection.
pub(crate) async fn read_body(
    server: &Server,
    body: Body,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let timeout = server.config().limits.body_timeout;
    let read = async move {
        let mut body = body;
        let mut buf = Vec::new();
        let mut seen = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                ApiError::new(Code::BodyRead, format!("the body could not be read: {e}"))
            })?;
            if let Ok(data) = frame.into_data() {
                seen = seen.saturating_add(data.len());
                if seen <= limit {
                    buf.extend_from_slice(&data);
                } else if seen > limit.saturating_mul(4) {
                    break;
                }
            }
        }
        if seen > limit {
            return Err(ApiError::new(
                Code::BodyTooLarge,
                format!("the body is larger than the {limit} bytes accepted"),
            ));
        }
        Ok(buf)
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| {
        ApiError::new(
            Code::BodyTimeout,
            format!("the body did not arrive within {} s", timeout.as_secs()),
        )
    })?
}

impl Server {
    pub(crate) fn permit(&self, device: &PublicKey) -> Result<OwnedSemaphorePermit, ApiError> {
        let n = self.config().limits.per_device_concurrency;
        let sem = lock(&self.inner.device_permits)
            .entry(device.to_bytes())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(n)))
            .clone();
        sem.try_acquire_owned().map_err(|_| {
            ApiError::new(
                Code::DeviceBusy,
                format!("this device already has {n} requests in progress; retry later"),
            )
        })
    }

    /// Authenticates a device request other than an upload and reads its body (at most
    /// `MAX_OTHER_BODY` bytes; uploads are received by `upload`). The cheap checks
    /// (headers, enrolment, clock) come before the body is read, so that an unenrolled
    /// client cannot make the server read and hash a body.
    pub(crate) async fn authenticate(
        &self,
        parts: &Parts,
        body: Body,
    ) -> Result<(PublicKey, OwnedSemaphorePermit, Vec<u8>), ApiError> {
        let claimed = auth::claimed(&parts.headers)?;
        let limits = &self.config().limits;
        auth::check_fresh(&claimed, crate::now_us(), limits.clock_skew)?;
        match self.device_now(&claimed.device).await {
            None => {
                return Err(ApiError::new(
                    Code::AuthUnknownDevice,
                    format!("device {} is not enrolled here", claimed.device),
                ))
            }
            Some(d) if d.revoked => {
                // Read (and drop) what it sends before refusing: a client still writing its
                // body when the connection closes sees a broken pipe, not this answer, and a
                // revoked device must learn why it is refused. It is a device the server
                // knew, held to one body limit and its concurrency permits, not a stranger.
                let _permit = self.permit(&claimed.device)?;
                let _ = read_body(self, body, MAX_OTHER_BODY).await;
                return Err(ApiError::new(
                    Code::AuthRevoked,
                    format!("device {} has been revoked", claimed.device),
                ));
            }
            Some(_) => {}
        }
        let permit = self.permit(&claimed.device)?;
        let body = read_body(self, body, MAX_OTHER_BODY).await?;
        let path = parts.uri.path_and_query().map_or(parts.uri.path(), |p| p.as_str());
        auth::check_signature(
            &claimed,
            &self.public_key(),
            parts.method.as_str(),
            path,
            &sha256(&[&body]),
        )?;
        let fresh = self
            .nonce_is_fresh(&claimed.device, claimed.nonce, claimed.timestamp_us)
            .await
            .map_err(|e| ApiError::internal("reading the nonce cache", e))?;
        if !fresh {
            return Err(ApiError::new(Code::AuthReplayed, "this request was already received"));
        }
        Ok((claimed.device, permit, body))
    }
}

pub(crate) async fn with_timeout(
    server: &Server,
    fut: impl std::future::Future<Output = Result<Response, ApiError>>,
) -> Response {
    let t = server.config().limits.request_timeout;
    match tokio::time::timeout(t, fut).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => e.into_response(),
        Err(_) => {
            ApiError::new(Code::Timeout, format!("the request took longer than {} s", t.as_secs()))
                .into_response()
        }
    }
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let peer = crate::events::current_peer();
    tokio::task::spawn_blocking(move || crate::events::blocking_for(peer, f))
        .await
        .map_err(|e| ApiError::internal("a worker", e))?
}

async fn server_info(State(server): State<Server>) -> Response {
    let head = server.tree_head();
    json(
        StatusCode::OK,
        &ServerInfo {
            server_key: server.public_key().to_string(),
            tls_sha256: (!server.config().insecure_http).then(|| server.tls_sha256()),
            tree_head: hex::encode(head.to_bytes()),
        },
    )
}

async fn enroll(State(server): State<Server>, req: Request) -> Response {
    let s = server.clone();
    with_timeout(&server, async move {
        let peer = req.extensions().get::<crate::members::Peer>().map(|p| p.0.ip());
        let body = read_body(&s, req.into_body(), MAX_ENROLL_BODY).await?;
        let req = serde_json::from_slice::<EnrollRequest>(&body).map_err(|e| {
            ApiError::new(Code::EnrollMalformed, format!("the enrollment request: {e}"))
        });
        let s2 = s.clone();
        let answer = blocking(move || s2.enroll_from(req, peer)).await?;
        Ok(json(StatusCode::OK, &answer))
    })
    .await
}

async fn put_record(
    State(server): State<Server>,
    Path((id, seq)): Path<(String, String)>,
    req: Request,
) -> Response {
    let s = server.clone();
    let mut resp = with_timeout(&server, async move {
        let (parts, body) = req.into_parts();
        let id = route_id(&id)?;
        let Ok(seq) = seq.parse::<u64>() else {
            return Err(ApiError::new(Code::NotFound, "not a record position"));
        };
        let receipt = s.receive_record(&parts, body, id, seq).await?;
        let mut resp = (StatusCode::OK, receipt).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        Ok(resp)
    })
    .await;
    // `server.busy` and `storage.full`: when to try again (RFC 9110 §10.2.3).
    if matches!(resp.status().as_u16(), 503 | 507) {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(crate::upload::RETRY_AFTER_S));
    }
    resp
}

async fn recording_state(
    State(server): State<Server>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let s = server.clone();
    with_timeout(&server, async move {
        let (parts, body) = req.into_parts();
        let id = route_id(&id)?;
        let (device, _permit, _) = s.authenticate(&parts, body).await?;
        let s2 = s.clone();
        let value = blocking(move || s2.recording_state(&device, &id)).await?;
        Ok(json(StatusCode::OK, &value))
    })
    .await
}

/// `GET /v1/recipients`: the case recipients, signed by the server (unauthenticated: they
/// are public keys, and a device checks the signature with the key it pinned).
async fn recipients(State(server): State<Server>) -> Response {
    let signed = server.case_recipients();
    json(
        StatusCode::OK,
        &custody_protocol::body::RecipientsAnswer {
            case_recipients: hex::encode(signed.to_bytes()),
            recipients: signed.value().recipients.clone(),
        },
    )
}

/// `GET /v1/recordings/{id}/receipts`: the receipts of one of the requesting device's
/// recordings, so that a device that lost them can have them again without re-uploading.
async fn recording_receipts(
    State(server): State<Server>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let s = server.clone();
    with_timeout(&server, async move {
        let (parts, body) = req.into_parts();
        let id = route_id(&id)?;
        let (device, _permit, _) = s.authenticate(&parts, body).await?;
        let s2 = s.clone();
        let answer = blocking(move || s2.recording_receipts(&device, &id)).await?;
        Ok(json(StatusCode::OK, &answer))
    })
    .await
}

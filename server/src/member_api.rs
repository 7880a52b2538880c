//! The legal team's routes (specified in `docs/api.md`): who am I, list recordings, take
//! a recording out as an evidence bundle, revoke a device. Every one needs a member's
//! bearer token; a device key is refused on all of them. Every listing and every bundle
//! retrieval is logged (`Access`) before anything is answered, and every bundle transfer
//! again when it ends: how many bytes went out, and whether that was all of them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use custody_format::ids::{PublicKey, RecordingId};
use custody_format::receipt::Receipt;
use custody_format::record::{kind, Origin, Record, SignedRecord};
use custody_format::signed::Signed;
use custody_protocol::body::{
    self, RecordingList, RecordingSummary, RevokeAnswer, RevokeRequest, WhoAmI,
};
use http_body::{Frame, SizeHint};

use crate::error::{ApiError, Code};
use crate::http::{blocking, json, read_body, with_timeout};
use crate::members::{Member, Peer, Role};
use crate::server::{parse_id, Server};

/// The request header naming the access (log index) a resumed bundle download continues.
pub use custody_protocol::request::H_BUNDLE_ACCESS;
/// Largest revocation request body.
const MAX_REVOKE_BODY: usize = 16 << 10;

async fn member(server: &Server, parts: &Parts) -> Result<Member, ApiError> {
    let peer = parts.extensions.get::<Peer>().map(|p| p.0.ip());
    let headers = parts.headers.clone();
    let s = server.clone();
    blocking(move || s.authenticate_member(&headers, peer)).await
}

/// `GET /v1/whoami`.
pub(crate) async fn whoami(State(server): State<Server>, req: Request) -> Response {
    let s = server.clone();
    with_timeout(&server, async move {
        let (parts, _) = req.into_parts();
        let m = member(&s, &parts).await?;
        let key = s.public_key();
        Ok(json(
            StatusCode::OK,
            &WhoAmI {
                name: m.name,
                role: match m.role {
                    Role::Admin => body::Role::Admin,
                    Role::Member => body::Role::Member,
                },
                server_key: key.to_string(),
                server_fingerprint: key.fingerprint().to_string(),
                tls_sha256: (!s.config().insecure_http).then(|| s.tls_sha256()),
            },
        ))
    })
    .await
}

/// `GET /v1/recordings`.
pub(crate) async fn list(State(server): State<Server>, req: Request) -> Response {
    let s = server.clone();
    with_timeout(&server, async move {
        let (parts, _) = req.into_parts();
        let m = member(&s, &parts).await?;
        let s2 = s.clone();
        let recordings = blocking(move || {
            s2.log_access(&m.name, None, "listed recordings".into())?;
            s2.recording_summaries()
        })
        .await?;
        Ok(json(StatusCode::OK, &RecordingList { recordings }))
    })
    .await
}

fn parse_range(value: Option<&HeaderValue>, total: u64) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(v) = value else { return Ok(None) };
    let bad = || {
        ApiError::new(
            Code::RangeInvalid,
            format!("Range must be one `bytes=START-[END]` inside the bundle's {total} bytes"),
        )
    };
    let text = v.to_str().map_err(|_| bad())?;
    let (a, b) = text.strip_prefix("bytes=").and_then(|r| r.split_once('-')).ok_or_else(bad)?;
    let start: u64 = a.trim().parse().map_err(|_| bad())?;
    let end: u64 = match b.trim() {
        "" => total,
        b => b.parse::<u64>().map_err(|_| bad())?.saturating_add(1).min(total),
    };
    if start >= end {
        return Err(bad());
    }
    Ok(Some((start, end)))
}

/// The archive, streamed from a blocking writer through a small channel: at most a few
/// chunks are in memory whatever the recording's size.
///
/// It counts the bytes it hands to the connection and logs the delivery (see
/// [`Delivery`]) when the transfer ends. A transfer that completes is logged before its last
/// chunk is handed over, so that a client holding every byte knows the delivery is in the
/// log; one that does not (the client went away and the connection dropped the body, or the
/// stream failed) is logged when the body is dropped, the one end every transfer has.
/// "Handed over" is what the count means: the connection may still lose what it buffers,
/// and a client gone during that last append leaves "complete" one chunk early.
struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    len: u64,
    sent: u64,
    delivery: Option<Delivery>,
    /// The last chunk, held back until the completed delivery is logged.
    last: Option<(tokio::task::JoinHandle<()>, Bytes)>,
}

/// Who is being sent which bundle, to log its delivery.
struct Delivery {
    server: Server,
    member: String,
    id: RecordingId,
}

impl Delivery {
    /// The second access entry of a transfer: `delivered <sent> of <len> bytes, complete`
    /// (or `incomplete`). It comes after the bundle's own head, so no bundle carries its
    /// own delivery; later bundles of the recording do.
    fn log(self, sent: u64, len: u64) {
        let done = if sent == len { "complete" } else { "incomplete" };
        let detail = format!("delivered {sent} of {len} bytes, {done}");
        if let Err(e) = self.server.log_access(&self.member, Some(&self.id), detail) {
            eprintln!("custody-server: logging the delivery of {}: {e}", self.id);
        }
    }

    /// Logs it off the async workers (an append fsyncs), when there is a runtime.
    fn spawn(self, sent: u64, len: u64) -> Option<tokio::task::JoinHandle<()>> {
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => Some(rt.spawn_blocking(move || self.log(sent, len))),
            Err(_) => {
                self.log(sent, len);
                None
            }
        }
    }
}

impl Drop for ChannelBody {
    fn drop(&mut self) {
        if let Some(delivery) = self.delivery.take() {
            drop(delivery.spawn(self.sent, self.len));
        }
    }
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        if let Some((logging, _)) = &mut this.last {
            // The delivery is logged (or failed to be, which it says on stderr): hand over
            // the last chunk.
            if Pin::new(logging).poll(cx).is_pending() {
                return Poll::Pending;
            }
            let Some((_, b)) = this.last.take() else { return Poll::Ready(None) };
            this.sent += b.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        match this.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => {
                let n = b.len() as u64;
                if this.sent + n == this.len {
                    if let Some(logging) =
                        this.delivery.take().and_then(|d| d.spawn(this.len, this.len))
                    {
                        this.last = Some((logging, b));
                        return Pin::new(this).poll_frame(cx);
                    }
                }
                this.sent += n;
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            other => other.map(|o| o.map(|r| r.map(Frame::data))),
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

/// `GET /v1/recordings/{id}/bundle`.
pub(crate) async fn bundle(
    State(server): State<Server>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let s = server.clone();
    with_timeout(&server, async move {
        let (parts, _) = req.into_parts();
        let id = parse_id(&id).ok_or_else(|| {
            ApiError::new(Code::NotFound, "not a recording id (32 lower-case hex digits)")
        })?;
        let m = member(&s, &parts).await?;
        let resumed = match parts.headers.get(H_BUNDLE_ACCESS) {
            None => None,
            Some(v) => Some(
                v.to_str().ok().and_then(|t| t.trim().parse::<u64>().ok()).ok_or_else(|| {
                    ApiError::new(
                        Code::BundleAccess,
                        format!("{H_BUNDLE_ACCESS} must be a log index"),
                    )
                })?,
            ),
        };
        let range = parts.headers.get(header::RANGE).cloned();
        let member_name = m.name.clone();
        let s2 = s.clone();
        let (plan, span) = blocking(move || {
            if s2
                .inner
                .index
                .owner(&id)
                .map_err(|e| ApiError::internal("reading the index", e))?
                .is_none()
            {
                return Err(ApiError::new(
                    Code::NotFound,
                    format!("no recording {id} on this server"),
                ));
            }
            let access = match resumed {
                Some(i) => i,
                None => s2.log_bundle_access(&m.name, &id)?,
            };
            let plan = s2.plan_bundle(&id, access, &m.name)?;
            let span = parse_range(range.as_ref(), plan.total)?;
            if resumed.is_some() {
                let (a, b) = span.unwrap_or((0, plan.total));
                s2.log_access(
                    &m.name,
                    Some(&id),
                    format!("bundle continued: access {access}, bytes {a}-{}", b - 1),
                )?;
            }
            Ok((plan, span))
        })
        .await?;
        let total = plan.total;
        let (start, end) = span.unwrap_or((0, total));
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let s3 = s.clone();
        let access = plan.access;
        tokio::task::spawn_blocking(move || {
            let mut send = |b: &[u8]| {
                tx.blocking_send(Ok(Bytes::copy_from_slice(b)))
                    .map_err(|_| std::io::Error::other("the client went away"))
            };
            if let Err(e) = plan.write_range(s3.storage(), start, end, &mut send) {
                eprintln!("custody-server: streaming the bundle of {}: {e}", plan.id);
                let _ = tx.blocking_send(Err(e));
            }
        });
        let status = if span.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
        let delivery = Delivery { server: s.clone(), member: member_name, id };
        let body =
            ChannelBody { rx, len: end - start, sent: 0, delivery: Some(delivery), last: None };
        let mut resp = (status, Body::new(body)).into_response();
        let h = resp.headers_mut();
        let mut set = |name: &str, value: String| {
            if let (Ok(n), Ok(v)) =
                (header::HeaderName::try_from(name), HeaderValue::try_from(value))
            {
                h.insert(n, v);
            }
        };
        set("content-type", "application/x-tar".into());
        set("content-length", (end - start).to_string());
        set("accept-ranges", "bytes".into());
        set(H_BUNDLE_ACCESS, access.to_string());
        set("etag", format!("\"custody-access-{access}\""));
        set("content-disposition", format!("attachment; filename=\"custody-bundle-{id}.tar\""));
        if span.is_some() {
            set("content-range", format!("bytes {start}-{}/{total}", end - 1));
        }
        Ok(resp)
    })
    .await
}

/// `POST /v1/devices/revoke` (admins only).
pub(crate) async fn revoke(State(server): State<Server>, req: Request) -> Response {
    let s = server.clone();
    with_timeout(&server, async move {
        let (parts, body) = req.into_parts();
        let m = member(&s, &parts).await?;
        if m.role != Role::Admin {
            return Err(ApiError::new(
                Code::AuthRole,
                format!("revoking a device needs the admin role; {} is a member", m.name),
            ));
        }
        let body = read_body(&s, body, MAX_REVOKE_BODY).await?;
        let r: RevokeRequest = serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(Code::RevokeMalformed, format!("the revocation request: {e}"))
        })?;
        let reason = r.reason.trim().to_string();
        if reason.is_empty() || reason.len() > 1000 {
            return Err(ApiError::new(
                Code::RevokeMalformed,
                "a reason of 1 to 1000 bytes is needed",
            ));
        }
        let s2 = s.clone();
        let value = blocking(move || {
            let key = s2.resolve_device(r.device.trim())?;
            // One admin action at a time, so two revocations of one key log it once.
            let _held = crate::server::lock(&s2.inner.token_lock);
            let dev = s2.device(&key).ok_or_else(|| {
                ApiError::new(Code::DeviceUnknown, format!("device {key} is not enrolled here"))
            })?;
            let already = dev.revoked;
            if !already {
                s2.revoke(&key, &m.name, &reason)
                    .map_err(|e| ApiError::internal("logging the revocation", e))?;
            }
            Ok(RevokeAnswer {
                device_key: key.to_string(),
                fingerprint: key.fingerprint().to_string(),
                label: dev.label,
                revoked: true,
                already_revoked: already,
            })
        })
        .await?;
        Ok(json(StatusCode::OK, &value))
    })
    .await
}

impl Server {
    /// An enrolled device by its key (`ed25519:<hex>`) or its fingerprint.
    fn resolve_device(&self, text: &str) -> Result<PublicKey, ApiError> {
        if let Ok(k) = PublicKey::parse(text) {
            return Ok(k);
        }
        let devices = self.inner.devices.read().unwrap_or_else(|p| p.into_inner());
        devices
            .keys()
            .filter_map(|k| PublicKey::from_bytes(k).ok())
            .find(|k| k.fingerprint().to_string().eq_ignore_ascii_case(text))
            .ok_or_else(|| {
                ApiError::new(
                    Code::DeviceUnknown,
                    format!("no enrolled device has the key or fingerprint {text:?}"),
                )
            })
    }

    /// One line per recording, for the legal team. Blocking.
    pub(crate) fn recording_summaries(&self) -> Result<Vec<RecordingSummary>, ApiError> {
        let index = &self.inner.index;
        let ierr = |e| ApiError::internal("reading the index", e);
        let serr = |e| ApiError::internal("reading storage", e);
        let now = crate::now_us();
        let mut out = Vec::new();
        for id in self.storage().recordings().map_err(serr)? {
            let Some(owner) = index.owner(&id).map_err(ierr)? else { continue };
            let Ok(key) = PublicKey::from_bytes(&owner) else { continue };
            let positions = index.positions(&id).map_err(ierr)?;
            let record = |seq: u64| -> Option<Record> {
                let bytes = self.storage().record(&id, seq).ok()??;
                SignedRecord::parse(&bytes).ok().map(|r| r.record().clone())
            };
            let mut gaps = Vec::new();
            let mut expect = 0u64;
            for (s, _) in &positions {
                if *s > expect {
                    gaps.push([expect, s - 1]);
                }
                expect = s + 1;
            }
            let header = match record(0) {
                Some(Record::Header(h)) => Some(h),
                _ => None,
            };
            let started = header.as_ref().map(|h| h.started_at_us);
            let imported = header.as_ref().filter(|h| h.origin == Origin::Imported).map(|h| {
                body::ImportedSummary {
                    file_name: h.input.clone(),
                    sha256: h
                        .imported_file
                        .as_ref()
                        .map(|f| hex::encode(f.sha256))
                        .unwrap_or_default(),
                    len: h.imported_file.as_ref().map_or(0, |f| f.len),
                    damaged: None,
                }
            });
            let end =
                positions.iter().find(|(_, st)| st.kind == kind::END).and_then(|(s, _)| record(*s));
            let mut imported = imported;
            if let (Some(i), Some(Record::End(e))) = (imported.as_mut(), &end) {
                // The verifier's words, so the list and the report say the same.
                i.damaged = custody_verifier::imported::sentence(true, e);
            }
            let last_seg = positions
                .iter()
                .rev()
                .find(|(_, st)| st.kind == kind::SEGMENT)
                .and_then(|(s, _)| record(*s));
            let finished = match (&end, &last_seg) {
                (Some(Record::End(e)), _) => Some(e.ended_at_us),
                (_, Some(Record::Segment(s))) => Some(s.wall_last_us),
                _ => None,
            };
            let last_receipt = positions
                .iter()
                .filter_map(|(_, st)| st.receipt.as_deref())
                .filter_map(|h| hex::decode(h).ok())
                .filter_map(|b| Signed::<Receipt>::parse(&b).ok())
                .map(|r| r.value().received_at_us)
                .max();
            let segment_us = match &last_seg {
                Some(Record::Segment(s)) => Some(s.media_end_us - s.media_start_us),
                _ => None,
            };
            let (state, silent_for_us) = self.config().liveness.status(
                end.is_some(),
                !gaps.is_empty(),
                last_receipt,
                segment_us,
                now,
            );
            let device = self.device(&key);
            out.push(RecordingSummary {
                recording_id: id.to_string(),
                device_key: key.to_string(),
                device_fingerprint: key.fingerprint().to_string(),
                device_label: device.as_ref().map(|d| d.label.clone()),
                device_revoked: device.is_some_and(|d| d.revoked),
                started_at_us: started,
                duration_us: match (&imported, &end, &last_seg) {
                    // An import is sealed as fast as the file is read, so its device times
                    // span the sealing (0.0 s): its length is the media's.
                    (Some(_), Some(Record::End(e)), _) => {
                        Some(i64::try_from(e.media_duration_us).unwrap_or(i64::MAX))
                    }
                    (Some(_), _, Some(Record::Segment(s))) => Some(s.media_end_us.max(0)),
                    _ => started.zip(finished).map(|(a, b)| (b - a).max(0)),
                },
                state,
                segments: positions.iter().filter(|(_, st)| st.kind == kind::SEGMENT).count()
                    as u64,
                records: positions.len() as u64,
                gaps,
                last_receipt_at_us: last_receipt,
                silent_for_us,
                imported,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_stay_inside() {
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(parse_range(None, 100).unwrap(), None);
        assert_eq!(parse_range(Some(&h("bytes=10-")), 100).unwrap(), Some((10, 100)));
        assert_eq!(parse_range(Some(&h("bytes=10-19")), 100).unwrap(), Some((10, 20)));
        assert_eq!(parse_range(Some(&h("bytes=10-500")), 100).unwrap(), Some((10, 100)));
        for bad in ["bytes=100-", "bytes=-5", "items=0-1", "bytes=5-2", "bytes=0-1,4-5"] {
            assert_eq!(
                parse_range(Some(&h(bad)), 100).unwrap_err().code,
                Code::RangeInvalid,
                "{bad}"
            );
        }
    }
}

//! Receiving an upload (`PUT /v1/recordings/{id}/records/{seq}`) in bounded memory and
//! disk.
//!
//! An enrolled device's key may be in an adversary's hands (seized, not yet revoked), so
//! an upload is held to what its own signed record says before the server takes more of
//! it: the body must declare its length (`Content-Length`, RFC 9110 §8.6), at most the
//! configured maximum ([`crate::Limits::max_body_bytes`]); the signed record is read
//! first (at most [`MAX_RECORD_LEN`] bytes) and the declared length must be the record's
//! plus its `ciphertext_len`, all before a byte of the sealed segment is read. The segment
//! is then streamed to storage while it is hashed ([`crate::storage::StagedSegment`]),
//! never held whole. Every upload in progress holds its declared length from one budget
//! ([`crate::Limits::max_inflight_bytes`]) that bounds the memory and the temporary disk
//! of all uploads together; over it, an upload is refused with `server.busy` (503, with
//! `Retry-After`) before its body is read.
//!
//! A body small enough to be a record alone (at most [`MAX_RECORD_LEN`] bytes) is read
//! whole and checked in the order of `docs/api.md` ("Request signatures", then "Ingest"),
//! as before. A larger one is a segment upload: its record is checked first, its request
//! signature and nonce once the whole body has passed through the hash.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, request::Parts};
use custody_format::encoding::{HEADER_LEN, MAX_OBJECT_LEN};
use custody_format::ids::RecordingId;
use custody_format::primitives::sha256;
use custody_format::record::{Record, SignedRecord};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::{self, Claimed};
use crate::error::{ApiError, Code};
use crate::http::blocking;
use crate::server::Server;
use crate::storage::StagedSegment;

/// The largest signed record: an object of at most `MAX_OBJECT_LEN` bytes and its 64-byte
/// signature (format.md §2, §5).
pub const MAX_RECORD_LEN: usize = MAX_OBJECT_LEN + 64;
/// Sealed-segment bytes gathered in memory before each write to storage.
const WRITE_CHUNK: usize = 128 << 10;
/// The unit the in-flight budget counts in (1 KiB), so that a `u32` count of permits
/// covers any body.
const BUDGET_UNIT: u64 = 1 << 10;
/// Refused bodies read and thrown away at once at most, so that their senders read the
/// refusal rather than a reset connection (each costs a connection buffer, not a body).
const LINGERING: usize = 16;
/// The most of a refused body read and thrown away; past it, the connection is closed.
const LINGER_MAX: u64 = 16 << 20;
/// What `Retry-After` says to a refused upload, seconds.
pub const RETRY_AFTER_S: u64 = 2;

/// The server's uploads in progress: the budget they draw on, and counters.
#[derive(Debug)]
pub(crate) struct Uploads {
    budget: Arc<Semaphore>,
    budget_units: u64,
    lingering: Arc<Semaphore>,
    /// Body bytes read by uploads (not counting refused bodies thrown away).
    read: AtomicU64,
}

impl Uploads {
    /// Uploads drawing on `max_inflight` bytes (raised to `max_body` if lower, so that a
    /// body the server accepts can always be received).
    pub(crate) fn new(max_inflight: u64, max_body: u64) -> Uploads {
        let units = max_inflight.max(max_body).div_ceil(BUDGET_UNIT).clamp(1, u64::from(u32::MAX));
        Uploads {
            budget: Arc::new(Semaphore::new(units as usize)),
            budget_units: units,
            lingering: Arc::new(Semaphore::new(LINGERING)),
            read: AtomicU64::new(0),
        }
    }
}

/// A request body read frame by frame, within one deadline, counted.
struct Incoming<'a> {
    body: Body,
    deadline: tokio::time::Instant,
    timeout_s: u64,
    read: &'a AtomicU64,
    got: u64,
}

impl Incoming<'_> {
    /// The next bytes of the body, or `None` at its end.
    async fn next(&mut self) -> Result<Option<axum::body::Bytes>, ApiError> {
        loop {
            let frame = match tokio::time::timeout_at(self.deadline, self.body.frame()).await {
                Err(_) => {
                    return Err(ApiError::new(
                        Code::BodyTimeout,
                        format!("the body did not arrive within {} s", self.timeout_s),
                    ))
                }
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => {
                    return Err(ApiError::new(
                        Code::BodyRead,
                        format!("the body could not be read: {e}"),
                    ))
                }
                Ok(Some(Ok(f))) => f,
            };
            if let Ok(data) = frame.into_data() {
                self.got = self.got.saturating_add(data.len() as u64);
                self.read.fetch_add(data.len() as u64, Ordering::Relaxed);
                return Ok(Some(data));
            }
        }
    }

    /// Reads until at least `n` bytes (or the whole body) are in `buf`.
    async fn fill(&mut self, buf: &mut Vec<u8>, n: usize) -> Result<(), ApiError> {
        while buf.len() < n {
            match self.next().await? {
                Some(data) => buf.extend_from_slice(&data),
                None => break,
            }
        }
        Ok(())
    }
}

/// The body's declared length.
fn declared_len(parts: &Parts) -> Result<u64, ApiError> {
    parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError::new(
                Code::BodyLength,
                "an upload must declare its length (Content-Length: the signed record's \
                 length plus its ciphertext_len)",
            )
        })
}

/// A record carries nothing, or exactly its `ciphertext_len` bytes of sealed segment,
/// after it: the refusal when `rest` bytes follow it instead.
pub(crate) fn check_rest_len(record: &SignedRecord, rest: u64) -> Result<(), ApiError> {
    match record.record() {
        Record::Segment(s) if rest != s.ciphertext_len => Err(ApiError::new(
            Code::SegmentLength,
            format!("the sealed segment is {rest} bytes; its record says {}", s.ciphertext_len),
        )),
        Record::Segment(_) => Ok(()),
        _ if rest != 0 => Err(ApiError::new(
            Code::RecordMalformed,
            format!("{rest} bytes follow a record that carries no segment"),
        )),
        _ => Ok(()),
    }
}

fn malformed(e: custody_format::encoding::DecodeError) -> ApiError {
    ApiError::new(Code::RecordMalformed, format!("the body's record cannot be read: {e}"))
}

impl Server {
    /// Body bytes read by uploads since the server started (refused bodies thrown away to
    /// let their senders read the refusal are not counted): for monitoring, and for the
    /// tests that show a refused upload is refused before its body is read.
    pub fn upload_bytes_read(&self) -> u64 {
        self.inner.uploads.read.load(Ordering::Relaxed)
    }

    /// Reads what is left of a refused body and throws it away, in the background, so that
    /// its sender reads the refusal rather than a reset connection: only up to
    /// [`LINGER_MAX`] bytes, within the body timeout, and [`LINGERING`] bodies at once;
    /// otherwise the connection is simply closed.
    fn linger(&self, mut body: Body, left: u64) {
        if left == 0 || left > LINGER_MAX {
            return;
        }
        let Ok(slot) = self.inner.uploads.lingering.clone().try_acquire_owned() else { return };
        let timeout = self.config().limits.body_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tokio::time::timeout(timeout, async move {
                let mut n = 0u64;
                while let Some(Ok(frame)) = body.frame().await {
                    if let Ok(d) = frame.into_data() {
                        n = n.saturating_add(d.len() as u64);
                        if n > LINGER_MAX {
                            break;
                        }
                    }
                }
            })
            .await;
        });
    }

    /// Draws `len` bytes from the in-flight budget, or refuses with `server.busy`.
    fn draw_budget(&self, len: u64) -> Result<OwnedSemaphorePermit, ApiError> {
        let u = &self.inner.uploads;
        let units = len.div_ceil(BUDGET_UNIT).clamp(1, u.budget_units);
        u.budget.clone().try_acquire_many_owned(units as u32).map_err(|_| {
            ApiError::new(
                Code::ServerBusy,
                format!(
                    "the server is receiving {} MiB of uploads already; retry in {RETRY_AFTER_S} s",
                    self.config().limits.max_inflight_bytes >> 20
                ),
            )
        })
    }

    /// Checks a request's signature over the body whose SHA-256 is `body_sha256`, and that
    /// its nonce is new.
    async fn check_request(
        &self,
        claimed: &Claimed,
        parts: &Parts,
        body_sha256: &[u8; 32],
    ) -> Result<(), ApiError> {
        let path = parts.uri.path_and_query().map_or(parts.uri.path(), |p| p.as_str());
        auth::check_signature(
            claimed,
            &self.public_key(),
            parts.method.as_str(),
            path,
            body_sha256,
        )?;
        let fresh = self
            .nonce_is_fresh(&claimed.device, claimed.nonce, claimed.timestamp_us)
            .await
            .map_err(|e| ApiError::internal("reading the nonce cache", e))?;
        if !fresh {
            return Err(ApiError::new(Code::AuthReplayed, "this request was already received"));
        }
        Ok(())
    }

    /// Receives, checks, stores, logs and receipts the upload of record `seq` of `id`.
    /// Returns the receipt's bytes.
    pub(crate) async fn receive_record(
        &self,
        parts: &Parts,
        body: Body,
        id: RecordingId,
        seq: u64,
    ) -> Result<Vec<u8>, ApiError> {
        let claimed = auth::claimed(&parts.headers)?;
        let limits = &self.config().limits;
        auth::check_fresh(&claimed, crate::now_us(), limits.clock_skew)?;
        let device = claimed.device;
        let len = declared_len(parts)?;
        match self.device_now(&device).await {
            None => {
                return Err(ApiError::new(
                    Code::AuthUnknownDevice,
                    format!("device {device} is not enrolled here"),
                ))
            }
            Some(d) if d.revoked => {
                // A device the server knew, held to its permits: it learns why it is
                // refused (its body is thrown away, not read), a stranger does not.
                let _permit = self.permit(&device)?;
                self.linger(body, len);
                return Err(ApiError::new(
                    Code::AuthRevoked,
                    format!("device {device} has been revoked"),
                ));
            }
            Some(_) => {}
        }
        let _permit = self.permit(&device)?;
        let early = if len > limits.max_body_bytes as u64 {
            Err(ApiError::new(
                Code::BodyTooLarge,
                format!(
                    "the body is {len} bytes, larger than the {} bytes accepted",
                    limits.max_body_bytes
                ),
            ))
        } else {
            self.check_disk().and_then(|()| self.draw_budget(len))
        };
        let _budget = match early {
            Ok(b) => b,
            Err(e) => {
                self.linger(body, len);
                return Err(e);
            }
        };
        let mut incoming = Incoming {
            body,
            deadline: tokio::time::Instant::now() + limits.body_timeout,
            timeout_s: limits.body_timeout.as_secs(),
            read: &self.inner.uploads.read,
            got: 0,
        };
        let result = self.receive_within(&claimed, parts, &mut incoming, len, id, seq).await;
        if result.is_err() {
            let left = len.saturating_sub(incoming.got);
            self.linger(incoming.body, left);
        }
        result
    }

    async fn receive_within(
        &self,
        claimed: &Claimed,
        parts: &Parts,
        incoming: &mut Incoming<'_>,
        len: u64,
        id: RecordingId,
        seq: u64,
    ) -> Result<Vec<u8>, ApiError> {
        let device = claimed.device;
        // A body that may be a record alone is read whole; a larger one up to the end of its
        // record, whose object header says how long it is (format.md §2).
        let first = if len <= MAX_RECORD_LEN as u64 {
            len as usize
        } else {
            let mut head = Vec::with_capacity(HEADER_LEN);
            incoming.fill(&mut head, HEADER_LEN).await?;
            let body_len = head
                .get(6..10)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
            let need = HEADER_LEN.saturating_add(body_len).saturating_add(64).min(MAX_RECORD_LEN);
            let mut buf = head;
            buf.reserve(need.saturating_sub(buf.len()));
            incoming.fill(&mut buf, need).await?;
            return self.receive_segment(claimed, parts, incoming, len, id, seq, buf).await;
        };
        let mut buf = Vec::with_capacity(first);
        incoming.fill(&mut buf, first).await?;
        if incoming.got < first as u64 {
            return Err(ApiError::new(
                Code::BodyRead,
                format!("the body ended after {} of its {len} bytes", incoming.got),
            ));
        }
        // The whole body is in hand: the checks of a request, then of ingest, in order.
        self.check_request(claimed, parts, &sha256(&[&buf])).await?;
        let s = self.clone();
        blocking(move || s.ingest(&device, id, seq, &buf)).await
    }

    /// Receives a segment upload of `len` bytes, whose first bytes (the record, and maybe
    /// the start of the segment) are `buf`.
    #[allow(clippy::too_many_arguments)]
    async fn receive_segment(
        &self,
        claimed: &Claimed,
        parts: &Parts,
        incoming: &mut Incoming<'_>,
        len: u64,
        id: RecordingId,
        seq: u64,
        mut buf: Vec<u8>,
    ) -> Result<Vec<u8>, ApiError> {
        let device = claimed.device;
        let (record, rest) = SignedRecord::read(&buf).map_err(malformed)?;
        let record_len = buf.len() - rest.len();
        self.check_record(&device, id, seq, &record)?;
        check_rest_len(&record, len - record_len as u64)?;
        let Record::Segment(seg) = record.record() else {
            return Err(ApiError::internal("receiving a segment", "not a segment record"));
        };
        let (ct_len, ct_sha256) = (seg.ciphertext_len, seg.ciphertext_sha256);

        let mut body_hash = Sha256::new();
        body_hash.update(&buf);
        let mut ct_hash = Sha256::new();
        let mut chunk = buf.split_off(record_len);
        ct_hash.update(&chunk);
        let s = self.clone();
        let mut staged = blocking(move || {
            s.storage()
                .stage_segment(&id, seq, ct_len)
                .map_err(s.storage_failed("staging the segment"))
        })
        .await?;
        let mut got = chunk.len() as u64;
        while got < ct_len {
            let Some(data) = incoming.next().await? else {
                return Err(ApiError::new(
                    Code::BodyRead,
                    format!("the body ended after {} of its {len} bytes", incoming.got),
                ));
            };
            body_hash.update(&data);
            ct_hash.update(&data);
            got += data.len() as u64;
            chunk.extend_from_slice(&data);
            if chunk.len() >= WRITE_CHUNK {
                (staged, chunk) = write_chunk(self, staged, chunk).await?;
            }
        }
        if !chunk.is_empty() {
            (staged, _) = write_chunk(self, staged, chunk).await?;
        }
        self.check_request(claimed, parts, &body_hash.finalize().into()).await?;
        if <[u8; 32]>::from(ct_hash.finalize()) != ct_sha256 {
            return Err(ApiError::new(
                Code::SegmentHash,
                "the sealed segment's SHA-256 is not the one its record holds",
            ));
        }
        let s = self.clone();
        blocking(move || s.store_and_receipt(&device, &record, Some(staged))).await
    }
}

/// Writes `chunk` to `staged` on a blocking thread; gives both back (the chunk emptied).
async fn write_chunk(
    server: &Server,
    mut staged: StagedSegment,
    mut chunk: Vec<u8>,
) -> Result<(StagedSegment, Vec<u8>), ApiError> {
    let s = server.clone();
    blocking(move || {
        staged.write(&chunk).map_err(s.storage_failed("writing the segment"))?;
        chunk.clear();
        Ok((staged, chunk))
    })
    .await
}

//! Finding a stalled upload by its progress, not by a long timeout.
//!
//! An upload's body is handed to the connection in chunks, and each chunk the connection
//! takes is progress ([`TrackedBody`]). An upload is abandoned when the connection took
//! nothing for the `stall` period (the network or something in between stopped moving
//! bytes), or when no answer came within the `answer` period after the last chunk was
//! taken (something took the body and never answered) ([`watched`]). A slow link that keeps
//! moving bytes is never cut, however long the body takes; a dead one is found within
//! seconds, where a fixed timeout long enough for the slowest honest upload (it was 60 s)
//! would hold the record back for that long.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The size of the chunks a body is handed over in: small enough that a connection that
/// stops taking bytes is noticed, large enough to cost nothing per chunk.
const CHUNK: usize = 64 * 1024;

/// When a request's body last moved and when its last byte was taken, in µs after `start`
/// (`done_us` 0: not yet).
#[derive(Debug)]
pub(crate) struct Progress {
    start: Instant,
    last_us: AtomicU64,
    done_us: AtomicU64,
}

/// What [`watched`] gave up on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stalled {
    /// No byte of the body was taken for the stall period.
    NoProgress(Duration),
    /// The whole body was taken and no answer came within the answer period.
    NoAnswer(Duration),
}

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stalled::NoProgress(d) => {
                write!(f, "the upload made no progress for {:.1} s; abandoned", d.as_secs_f64())
            }
            Stalled::NoAnswer(d) => write!(
                f,
                "no answer within {:.1} s of the upload's last byte; abandoned",
                d.as_secs_f64()
            ),
        }
    }
}

impl Progress {
    /// A request about to start: its stall period runs from now.
    pub(crate) fn new() -> Arc<Progress> {
        Arc::new(Progress {
            start: Instant::now(),
            last_us: AtomicU64::new(0),
            done_us: AtomicU64::new(0),
        })
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX).max(1)
    }

    fn touch(&self) {
        self.last_us.store(self.now_us(), Ordering::Relaxed);
    }

    fn finish(&self) {
        let t = self.now_us();
        self.last_us.store(t, Ordering::Relaxed);
        self.done_us.store(t, Ordering::Relaxed);
    }

    /// When the request is to be given up as things stand now, and what it would be.
    fn deadline(&self, stall: Duration, answer: Duration) -> (Instant, Stalled) {
        let done = self.done_us.load(Ordering::Relaxed);
        if done > 0 {
            (self.start + Duration::from_micros(done) + answer, Stalled::NoAnswer(answer))
        } else {
            let last = self.last_us.load(Ordering::Relaxed);
            (self.start + Duration::from_micros(last) + stall, Stalled::NoProgress(stall))
        }
    }
}

/// A request body handed over in chunks, noting in [`Progress`] each chunk taken.
#[derive(Debug)]
pub(crate) struct TrackedBody {
    data: Bytes,
    pos: usize,
    progress: Arc<Progress>,
}

impl TrackedBody {
    pub(crate) fn new(data: Vec<u8>, progress: Arc<Progress>) -> TrackedBody {
        TrackedBody { data: Bytes::from(data), pos: 0, progress }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.pos >= this.data.len() {
            this.progress.finish();
            return Poll::Ready(None);
        }
        let end = this.pos.saturating_add(CHUNK).min(this.data.len());
        let chunk = this.data.slice(this.pos..end);
        this.pos = end;
        // The connection asks for the next chunk only once it has taken the one before.
        if end == this.data.len() {
            this.progress.finish();
        } else {
            this.progress.touch();
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.len().saturating_sub(self.pos) as u64)
    }
}

/// Runs `exchange` (a request and the reading of its answer) to its end, unless it stalls
/// as `progress` tells: no chunk taken for `stall`, or no end within `answer` of the last
/// chunk. Dropping the exchange closes its connection.
pub(crate) async fn watched<T>(
    progress: &Progress,
    stall: Duration,
    answer: Duration,
    exchange: impl Future<Output = T>,
) -> Result<T, Stalled> {
    tokio::pin!(exchange);
    loop {
        let (at, _) = progress.deadline(stall, answer);
        tokio::select! {
            out = &mut exchange => return Ok(out),
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {
                // Progress may have been made meanwhile: look again.
                let (at, why) = progress.deadline(stall, answer);
                if Instant::now() >= at {
                    return Err(why);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn poll(body: &mut TrackedBody) -> Option<usize> {
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(f))) => f.into_data().ok().map(|d| d.len()),
            _ => None,
        }
    }

    #[test]
    fn a_body_is_handed_over_in_chunks_and_its_last_chunk_starts_the_answer_period() {
        let p = Progress::new();
        let mut body = TrackedBody::new(vec![7; CHUNK * 2 + 10], p.clone());
        assert_eq!(body.size_hint().exact(), Some((CHUNK * 2 + 10) as u64));
        let s = Duration::from_secs(3);
        let a = Duration::from_secs(5);
        assert!(matches!(p.deadline(s, a).1, Stalled::NoProgress(_)));
        assert_eq!(poll(&mut body), Some(CHUNK));
        assert_eq!(poll(&mut body), Some(CHUNK));
        assert!(matches!(p.deadline(s, a).1, Stalled::NoProgress(_)));
        assert!(!body.is_end_stream());
        assert_eq!(poll(&mut body), Some(10));
        assert!(body.is_end_stream());
        let (at, why) = p.deadline(s, a);
        assert_eq!(why, Stalled::NoAnswer(a));
        assert!(at > Instant::now() + Duration::from_secs(4));
        assert_eq!(poll(&mut body), None);
    }

    #[tokio::test]
    async fn an_exchange_that_never_ends_is_given_up_and_one_that_ends_is_not() {
        let p = Progress::new();
        let ms = Duration::from_millis(50);
        let out = watched(&p, ms, ms, std::future::pending::<()>()).await;
        assert_eq!(out, Err(Stalled::NoProgress(ms)));
        let p = Progress::new();
        p.finish();
        let out = watched(&p, ms, ms, std::future::pending::<()>()).await;
        assert_eq!(out, Err(Stalled::NoAnswer(ms)));
        let p = Progress::new();
        assert_eq!(watched(&p, ms, ms, async { 5 }).await, Ok(5));
    }
}

//! The capture thread: input → lanes → interleaver → one muxer → segments on a channel.

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use custody_format::digest::{DigestStream, MediaKind, PacketDigest};
use ffmpeg_next as ff;

use crate::clock::WallClock;
use crate::digest_worker::DigestWorker;
use crate::input::{self, InputError, Read, Watchdog};
use crate::interleave::{Interleaver, Queued};
use crate::lane::{self, Lane, StreamError};
use crate::muxer::{MuxError, Muxer, OutStream};
use crate::segment::{Boundary, CutReason, End, EndReason, Event, Gap, Segment, Started};
use crate::settings::{Settings, Source};
use crate::sink::{Deferred, Hashed};

/// Why a recording ended in error (carried as text in [`EndReason::Error`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The input could not be opened.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The input's streams cannot be recorded.
    #[error(transparent)]
    Streams(#[from] StreamError),
    /// The segment muxer failed.
    #[error(transparent)]
    Mux(#[from] MuxError),
    /// Reading the input failed (a network error, a truncated or corrupt file).
    #[error("reading the input failed: {0}")]
    Read(ff::Error),
    /// The input sent nothing for the stall timeout.
    #[error("the input stalled: no packet for {0:?}")]
    Stalled(Duration),
    /// The thread computing the packet digest stopped; no digest can be vouched for.
    #[error("the packet digest thread stopped")]
    DigestThread,
    /// The input delivered no video keyframe and no audio to start the recording with.
    #[error("the input ended before a recordable packet (a video keyframe) arrived")]
    NothingRecorded,
    /// A file's data could not be read or recorded from this byte offset on (a truncated
    /// or corrupt file): where the damage is, so that the end record can say it.
    #[error("{source}, at byte {at_byte} of the file")]
    Damaged {
        /// Offset in the file of the packet that failed, or of the end of the last packet
        /// read whole when the read itself failed.
        at_byte: u64,
        /// What failed there.
        source: Box<CaptureError>,
    },
}

/// Stops a running capture from any thread (a Ctrl-C handler, a UI button).
#[derive(Clone, Debug)]
pub struct StopHandle(Arc<Watchdog>);

impl StopHandle {
    /// Asks the capture to stop: a blocked read is interrupted, the open segment is cut
    /// and emitted, and the end event says [`EndReason::Stopped`].
    pub fn stop(&self) {
        self.0.request_stop();
    }
}

/// A running capture: a bounded stream of [`Event`]s ending with [`Event::End`].
///
/// The capture thread waits when `channel_capacity` segments are waiting to be taken, so
/// memory stays bounded however long the recording; nothing is dropped. (A live network
/// input that is not read meanwhile may lose data in the kernel's socket buffer, so the
/// consumer should keep up: sealing a 2 s segment takes milliseconds.) Dropping the
/// `Capture` stops the recording and waits for its thread.
pub struct Capture {
    events: Option<Receiver<Event>>,
    stop: StopHandle,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    /// Starts recording `source` on a new thread.
    pub fn start(source: Source, settings: Settings) -> Capture {
        let watchdog = Watchdog::new();
        let (tx, rx) = std::sync::mpsc::sync_channel(settings.channel_capacity.max(1));
        let dog = Arc::clone(&watchdog);
        let fallback = tx.clone();
        let thread = match std::thread::Builder::new()
            .name("custody-capture".into())
            .spawn(move || run(&source, &settings, &dog, &tx))
        {
            Ok(thread) => Some(thread),
            Err(e) => {
                // Even a capture that never ran ends with an end event.
                let end = End {
                    reason: EndReason::Error,
                    detail: Some(format!("cannot start the capture thread: {e}")),
                    segments: 0,
                    end_utc_us: WallClock::start().now_utc_us(),
                };
                let _ = fallback.try_send(Event::End(end));
                None
            }
        };
        Capture { events: Some(rx), stop: StopHandle(watchdog), thread }
    }

    /// A handle that stops this capture.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// The next event, waiting for it; `None` once the end event has been taken.
    pub fn next_event(&self) -> Option<Event> {
        self.events.as_ref()?.recv().ok()
    }

    /// The next event, waiting at most `timeout`.
    pub fn next_event_timeout(&self, timeout: Duration) -> Result<Event, RecvTimeoutError> {
        match &self.events {
            Some(rx) => rx.recv_timeout(timeout),
            None => Err(RecvTimeoutError::Disconnected),
        }
    }
}

impl Iterator for Capture {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        self.next_event()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.stop();
        // Dropping the receiver first unblocks a capture thread waiting to send.
        self.events = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(source: &Source, settings: &Settings, watchdog: &Arc<Watchdog>, tx: &SyncSender<Event>) {
    crate::init();
    let clock = WallClock::start();
    // Segments go out through a finisher that waits for their SHA-256 and packet digest,
    // so the muxer never waits for the hashing threads at a cut and both cores stay busy.
    let (items, from_recording) = sync_channel::<Item>(FINISHER_QUEUE);
    let to_consumer = tx.clone();
    let finisher = std::thread::Builder::new()
        .name("custody-finisher".into())
        .spawn(move || finish_segments(from_recording, to_consumer, clock))
        .ok();
    let mut segments = 0;
    let (reason, detail) = if finisher.is_none() {
        (EndReason::Error, Some("could not start the segment finisher thread".into()))
    } else {
        // One recording per run of streams: a sender that comes back with other streams
        // ends one and starts the next, on the input it opened.
        let mut next = None;
        loop {
            segments = 0;
            match record(source, settings, watchdog, &items, &clock, &mut segments, next.take()) {
                Ok(Ended::Done(reason, detail)) => break (reason, detail),
                Ok(Ended::SenderChanged { detail, input }) => {
                    let end = End {
                        reason: EndReason::SenderChanged,
                        detail: Some(detail),
                        segments,
                        end_utc_us: clock.now_utc_us(),
                    };
                    if items.send(Item::Event(Event::End(end))).is_err() {
                        break (EndReason::Stopped, None);
                    }
                    next = Some(input);
                }
                Err(CaptureError::Input(InputError::Stopped)) => break (EndReason::Stopped, None),
                Err(e) => break (EndReason::Error, Some(e.to_string())),
            }
        }
    };
    let end = End { reason, detail, segments, end_utc_us: clock.now_utc_us() };
    match finisher {
        Some(thread) => {
            let _ = items.send(Item::Event(Event::End(end)));
            drop(items);
            let _ = thread.join();
        }
        None => {
            let _ = tx.send(Event::End(end));
        }
    }
}

/// Segments cut but still being hashed, at most: the muxer runs this far ahead.
const FINISHER_QUEUE: usize = 2;

/// What the recording hands to the finisher, in the order the consumer must see it.
// A handful of items per segment, so the size of an event is no cost worth a box.
#[allow(clippy::large_enum_variant)]
enum Item {
    Event(Event),
    Segment(Box<Pending>),
}

/// A cut segment whose SHA-256 and packet digest are still being computed (its bytes come
/// back from the hashing thread with their hash).
struct Pending {
    segment: Segment,
    bytes: Deferred<Hashed>,
    digest: Deferred<(PacketDigest, Vec<u64>)>,
}

/// Completes each segment as its hashes arrive and passes every event on, in order. If a
/// hashing thread died the segment cannot be vouched for: the recording ends there with an
/// error, and the finisher stops taking items, which stops the recording.
fn finish_segments(items: Receiver<Item>, tx: SyncSender<Event>, clock: WallClock) {
    for item in items {
        let event = match item {
            Item::Event(e) => e,
            Item::Segment(p) => {
                let Pending { mut segment, bytes, digest } = *p;
                match (bytes.wait(), digest.wait()) {
                    (Some((bytes, sha)), Some((packet_digest, counts))) => {
                        segment.bytes = bytes;
                        segment.sha256 = sha;
                        segment.packet_digest = packet_digest;
                        segment.packet_counts = counts;
                        segment.emitted_utc_us = clock.now_utc_us();
                        Event::Segment(segment)
                    }
                    (hashed, _) => {
                        let failed = if hashed.is_none() {
                            CaptureError::Mux(MuxError::HashThread)
                        } else {
                            CaptureError::DigestThread
                        };
                        let _ = tx.send(Event::End(End {
                            reason: EndReason::Error,
                            detail: Some(failed.to_string()),
                            segments: segment.seq - 1,
                            end_utc_us: clock.now_utc_us(),
                        }));
                        return;
                    }
                }
            }
        };
        // After a sender-changed end the next recording's events follow.
        let last = matches!(&event, Event::End(e) if e.reason != EndReason::SenderChanged);
        if tx.send(event).is_err() || last {
            return;
        }
    }
}

/// The segment being filled.
struct Open {
    boundary: Boundary,
    start_us: i64,
    end_us: i64,
    video_frames: u64,
    repaired_at_open: u64,
    first_wall_us: i64,
    last_wall_us: i64,
    gap: Option<Gap>,
}

/// How a recording ended: for good, or because a sender came back with other streams on
/// the input now open (which the next recording records).
enum Ended {
    Done(EndReason, Option<String>),
    SenderChanged { detail: String, input: ff::format::context::Input },
}

/// What one connection's reading ended with.
enum Pumped {
    Ended(EndReason, Option<String>),
    /// A live input's sender was lost (how), and the settings say to wait for it.
    Lost(String),
}

/// What a recording must see again in a sender that connects after a loss for the
/// recording to go on: the streams' kinds, codecs, sizes, rates and codec extradata.
#[derive(Clone, Debug, PartialEq, Eq)]
struct StreamSig {
    kind: MediaKind,
    codec: String,
    width: u32,
    height: u32,
    sample_rate: u32,
    channels: u32,
    extradata: Vec<u8>,
}

impl std::fmt::Display for StreamSig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            MediaKind::Video => write!(f, "{} {}x{}", self.codec, self.width, self.height),
            MediaKind::Audio => {
                write!(f, "{} {} Hz {} ch", self.codec, self.sample_rate, self.channels)
            }
            _ => write!(f, "{}", self.codec),
        }
    }
}

fn signatures(input: &ff::format::context::Input, lanes: &[Lane]) -> Vec<StreamSig> {
    lanes
        .iter()
        .map(|l| StreamSig {
            kind: l.kind,
            codec: l.params.codec.clone(),
            width: l.params.width,
            height: l.params.height,
            sample_rate: l.params.sample_rate,
            channels: l.params.channels,
            extradata: input
                .stream(l.input_index)
                // SAFETY: the parameters belong to the stream, alive while `input` is.
                .map(|s| unsafe { lane::extradata(s.parameters().as_ptr()) }.to_vec())
                .unwrap_or_default(),
        })
        .collect()
}

fn describe(sigs: &[StreamSig]) -> String {
    if sigs.is_empty() {
        return "no recordable stream".into();
    }
    sigs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// How timestamps of a connection after a loss are moved onto the recording's timeline.
struct Rebase {
    /// Added to the new connection's timestamps, µs; known at its first recordable packet
    /// (its first video keyframe, or first packet without video).
    shift_us: Option<i64>,
    /// Where the recording's media time had reached (input µs, before the origin): no
    /// packet of the new connection is placed before it.
    floor_us: i64,
}

/// `us` in `tb` units, rounded up (so a shifted time never lands before the floor).
fn to_time_base_ceil(us: i64, tb: ff::Rational) -> i64 {
    let num = i128::from(tb.numerator()).max(1) * 1_000_000;
    let v = i128::from(us) * i128::from(tb.denominator());
    let q = v.div_euclid(num) + i128::from(v.rem_euclid(num) != 0);
    i64::try_from(q).unwrap_or(if q < 0 { i64::MIN } else { i64::MAX })
}

struct Recording<'a> {
    settings: &'a Settings,
    clock: &'a WallClock,
    tx: &'a SyncSender<Item>,
    lanes: Vec<Lane>,
    lane_tb: Vec<ff::Rational>,
    mux_tb: Vec<ff::Rational>,
    digest: DigestWorker,
    has_video: bool,
    mux: Muxer,
    open: Option<Open>,
    /// Input presentation time of the packet that opened the recording: media times are
    /// relative to it, because containers shift timestamps when they remux (MPEG-TS by its
    /// mux delay, Matroska to avoid negative times) and the record must not depend on that.
    origin_us: Option<i64>,
    /// Wall time of the last packet released, so wall times never decrease in release order.
    last_wall_us: i64,
    /// Packets read before the first video keyframe, and so not recorded.
    dropped_before_start: u64,
    emitted: u64,
    consumer_gone: bool,
    /// The streams a sender coming back after a loss must have again.
    sigs: Vec<StreamSig>,
    /// The lanes were flushed when their connection was lost (a flushed filter takes no
    /// more packets).
    lanes_flushed: bool,
    /// Largest end time of a released packet, input µs before the origin.
    last_end_abs_us: i64,
    /// Set while a connection after a loss is being read.
    rebase: Option<Rebase>,
    /// Wall time of the last packet before a loss, until the segment after it opens.
    gap_from: Option<i64>,
}

fn record(
    source: &Source,
    settings: &Settings,
    watchdog: &Arc<Watchdog>,
    tx: &SyncSender<Item>,
    clock: &WallClock,
    segments: &mut u64,
    opened: Option<ff::format::context::Input>,
) -> Result<Ended, CaptureError> {
    if crate::settings::muxer_name(settings.container).is_none() {
        return Err(MuxError::UnsupportedContainer { container: settings.container }.into());
    }
    let first = opened.is_none();
    let input = match opened {
        Some(input) => input,
        None => input::open(source, settings, watchdog)?,
    };
    let mut notes = Vec::new();
    let mut lanes = lane::select(&input, settings, &mut notes)?;
    let mut outs = Vec::new();
    for l in &lanes {
        let stream = input.stream(l.input_index).ok_or(StreamError::NoMedia)?;
        outs.push(OutStream { parameters: l.output_parameters(&stream), time_base: l.time_base() });
    }
    let mux = Muxer::new(settings.container, &outs, segment_size(&input, settings))?;
    let mux_tb: Vec<_> = (0..lanes.len()).map(|i| mux.time_base(i)).collect();
    let mut streams = Vec::new();
    for (l, tb) in lanes.iter_mut().zip(&mux_tb) {
        l.params.time_base = (tb.numerator(), tb.denominator());
        streams.push(l.params.clone());
    }
    // A file states its duration (AV_TIME_BASE is microseconds); a live input has none.
    let declared = input.duration();
    let started = Started {
        source_duration_us: (!source.live && declared > 0).then_some(declared),
        start_utc_us: if first { clock.start_utc_us() } else { clock.now_utc_us() },
        input_format: input.format().name().to_owned(),
        container: settings.container,
        streams,
        notes,
        rotation: lanes
            .iter()
            .find(|l| l.kind == MediaKind::Video)
            .and_then(|l| input.stream(l.input_index))
            .and_then(|s| input::rotation(&s)),
        dropped_streams: input::dropped_streams(
            &input,
            &lanes.iter().map(|l| l.input_index).collect::<Vec<_>>(),
        ),
    };
    if tx.send(Item::Event(Event::Started(started))).is_err() {
        return Ok(Ended::Done(EndReason::Stopped, None));
    }
    let sigs = signatures(&input, &lanes);
    let mut rec = Recording {
        settings,
        clock,
        tx,
        lane_tb: lanes.iter().map(Lane::time_base).collect(),
        mux_tb,
        digest: DigestWorker::new(
            lanes
                .iter()
                .map(|l| DigestStream { kind: l.kind, codec: l.codec.clone(), framing: l.framing })
                .collect(),
        ),
        has_video: lanes.iter().any(|l| l.kind == MediaKind::Video),
        lanes,
        mux,
        open: None,
        origin_us: None,
        last_wall_us: i64::MIN,
        dropped_before_start: 0,
        emitted: 0,
        consumer_gone: false,
        sigs,
        lanes_flushed: false,
        last_end_abs_us: i64::MIN,
        rebase: None,
        gap_from: None,
    };
    let mut il = Interleaver::new(rec.lanes.len());
    let mut input = Some(input);
    let result = loop {
        let Some(open) = input.as_mut() else {
            break Ok(Ended::Done(EndReason::InputEnded, None));
        };
        match rec.pump(open, &mut il, watchdog, source.live) {
            Ok(Pumped::Lost(how)) => {
                if let Err(e) = rec.close_connection(&mut il) {
                    break Err(e);
                }
                // Closing the input closes the listener, so it can listen again there.
                drop(input.take());
                match rec.wait_for_sender(source, watchdog, how) {
                    Ok(Back::Same(again, lanes)) => {
                        rec.resume(lanes);
                        input = Some(again);
                    }
                    Ok(Back::Changed(again, detail)) => {
                        break Ok(Ended::SenderChanged { detail, input: again })
                    }
                    Ok(Back::Nobody(detail)) => {
                        break Ok(Ended::Done(EndReason::InputEnded, Some(detail)))
                    }
                    Ok(Back::Stopped) => break Ok(Ended::Done(EndReason::Stopped, None)),
                    Err(e) => break Err(e),
                }
            }
            Ok(Pumped::Ended(reason, detail)) => break Ok(Ended::Done(reason, detail)),
            Err(e) => break Err(e),
        }
    };
    // Whatever happened, what was read is muxed and emitted: a fault never costs the
    // footage before it.
    let finished = rec.finish(&mut il);
    *segments = rec.emitted;
    let ended = match (result, finished) {
        (Ok(ended), Ok(())) => ended,
        (Err(e), _) | (Ok(_), Err(e)) => return Err(e),
    };
    if rec.emitted == 0 && matches!(ended, Ended::Done(EndReason::InputEnded, _)) {
        return Err(CaptureError::NothingRecorded);
    }
    Ok(ended)
}

/// What a segment of `input` is expected to take: its declared bit rate over the target
/// duration, half as much again for the container and for segments that run long (0 when
/// the input declares no bit rate, as live inputs do), at most [`MAX_FIRST_BUFFER`].
fn segment_size(input: &ff::format::context::Input, settings: &Settings) -> usize {
    let bits = u128::try_from(input.bit_rate()).unwrap_or(0) * settings.target.as_millis() / 1000;
    usize::try_from(bits / 8 * 3 / 2).unwrap_or(usize::MAX).min(MAX_FIRST_BUFFER)
}

/// The most room a recording's first segment buffer is given up front (a bit rate read
/// from a file's header is not to be trusted with more).
const MAX_FIRST_BUFFER: usize = 64 << 20;

/// What listening again after a loss found.
enum Back {
    /// A sender with the same streams: the recording goes on with these lanes.
    Same(ff::format::context::Input, Vec<Lane>),
    /// A sender with other streams (what changed).
    Changed(ff::format::context::Input, String),
    /// Nobody within the wait (what to record as how the input ended).
    Nobody(String),
    /// The stop handle was used while waiting.
    Stopped,
}

/// Seconds as "0:14" (minutes and seconds), for what the capture reports.
fn clock_time(us: i64) -> String {
    let s = us.max(0) / 1_000_000;
    format!("{}:{:02}", s / 60, s % 60)
}

/// Errors with which network protocols report that the peer closed the connection.
fn is_hang_up(e: &ff::Error) -> bool {
    matches!(e, ff::Error::Other { errno: ff::ffi::EIO | ff::ffi::ECONNRESET | ff::ffi::EPIPE })
}

impl Recording<'_> {
    fn pump(
        &mut self,
        input: &mut ff::format::context::Input,
        il: &mut Interleaver<ff::Packet>,
        watchdog: &Watchdog,
        live: bool,
    ) -> Result<Pumped, CaptureError> {
        let lost = |how: String| {
            if live && !self.settings.reconnect_wait.is_zero() {
                Pumped::Lost(how)
            } else {
                Pumped::Ended(EndReason::InputEnded, Some(how))
            }
        };
        let mut ready = Vec::new();
        let stall = self.settings.stall_timeout;
        // For a file, the end of the last packet read whole: where damage begins if a read
        // fails (a live input has no offsets worth recording).
        let mut read_to = 0u64;
        let damaged = |at_byte: u64, e: CaptureError| {
            if live {
                e
            } else {
                CaptureError::Damaged { at_byte, source: Box::new(e) }
            }
        };
        loop {
            if self.consumer_gone || watchdog.stop_requested() {
                return Ok(Pumped::Ended(EndReason::Stopped, None));
            }
            let packet = match input::read(input, watchdog, stall) {
                Read::Packet(p) => p,
                // A sender that closes its stream cleanly ends it here too; while the
                // recording waits for senders to come back, that is a loss like any other.
                Read::End if live && !self.settings.reconnect_wait.is_zero() => {
                    return Ok(lost("the live input's sender closed the stream".into()));
                }
                Read::End => return Ok(Pumped::Ended(EndReason::InputEnded, None)),
                Read::Stopped => return Ok(Pumped::Ended(EndReason::Stopped, None)),
                // A live stream has no end-of-file: UDP just goes quiet, and RTMP and SRT
                // report the sender hanging up as an I/O error. That is how such a
                // recording ends (or, with a reconnect wait, how its sender is lost), so it
                // is recorded as the end of the input, with how.
                Read::Stalled if live => {
                    return Ok(lost(format!("the live input sent nothing for {stall:?}")));
                }
                Read::Failed(e) if live && is_hang_up(&e) => {
                    return Ok(lost(format!("the live input's connection closed ({e})")));
                }
                Read::Stalled => return Err(CaptureError::Stalled(stall)),
                Read::Failed(e) => return Err(damaged(read_to, CaptureError::Read(e))),
            };
            let at = u64::try_from(packet.position()).unwrap_or(read_to);
            read_to = read_to.max(at.saturating_add(packet.size() as u64));
            let wall = self.clock.now_utc_us();
            let Some(lane) = self.lanes.iter().position(|l| l.input_index == packet.stream())
            else {
                continue;
            };
            if !self.lanes[lane]
                .process(packet, &mut ready)
                .map_err(|e| damaged(at, CaptureError::from(e)))?
            {
                // No timestamp yet (RTSP before its first RTCP report): not recordable.
                self.dropped_before_start += 1;
            }
            self.queue(lane, &mut ready, wall, il);
            while let Some(q) = il.pop(false) {
                self.release(q)?;
            }
        }
    }

    fn queue(
        &mut self,
        lane: usize,
        ready: &mut Vec<ff::Packet>,
        wall: i64,
        il: &mut Interleaver<ff::Packet>,
    ) {
        let tb = self.lane_tb[lane];
        let is_video = self.lanes[lane].kind == MediaKind::Video;
        for mut packet in ready.drain(..) {
            let Some(dts) = packet.dts().or(packet.pts()) else { continue };
            let pts = packet.pts().unwrap_or(dts);
            // After a loss, the new connection's timestamps start anywhere: they are moved
            // so that its first recordable packet lands where the recording had reached,
            // and nothing of it before that (no overlap, no step back).
            let (pts, dts) = match self.rebase.as_mut() {
                None => (pts, dts),
                Some(r) => {
                    let shift_us = match r.shift_us {
                        Some(s) => s,
                        None if self.has_video && !(is_video && packet.is_key()) => {
                            self.dropped_before_start += 1;
                            continue;
                        }
                        None => {
                            let s = r.floor_us.saturating_sub(crate::recorder_time(dts, tb));
                            r.shift_us = Some(s);
                            s
                        }
                    };
                    let shift = to_time_base_ceil(shift_us, tb);
                    let (p, d) = (pts.saturating_add(shift), dts.saturating_add(shift));
                    if crate::recorder_time(d, tb) < r.floor_us.saturating_sub(1_000) {
                        self.dropped_before_start += 1;
                        continue;
                    }
                    packet.set_pts(Some(p));
                    packet.set_dts(Some(d));
                    (p, d)
                }
            };
            il.push(Queued {
                lane,
                is_video,
                is_key: packet.is_key(),
                pts_us: crate::recorder_time(pts, tb),
                dts_us: crate::recorder_time(dts, tb),
                end_us: crate::recorder_time(pts.saturating_add(packet.duration().max(0)), tb),
                wall_us: wall,
                size: packet.size(),
                packet,
            });
        }
    }

    fn release(&mut self, mut q: Queued<ff::Packet>) -> Result<(), CaptureError> {
        let end_abs_us = q.end_us;
        if let Some(origin) = self.origin_us {
            q.pts_us = q.pts_us.saturating_sub(origin);
            q.end_us = q.end_us.saturating_sub(origin);
        }
        let is_key_or_audio_only = q.is_key && (q.is_video || !self.has_video);
        let cut = match &self.open {
            // Join mid-stream: nothing is recorded before the first video keyframe (and no
            // audio from before it), so the first segment decodes alone.
            None if self.has_video && !(q.is_video && q.is_key) => {
                self.dropped_before_start += 1;
                return Ok(());
            }
            // After a loss the segment that opens next continues the timeline (already
            // moved onto it, origin and all).
            None if self.gap_from.is_some() && self.origin_us.is_some() => None,
            None if self.emitted > 0 => return Ok(()),
            None => {
                let origin = q.pts_us;
                self.origin_us = Some(origin);
                q.pts_us = 0;
                q.end_us = q.end_us.saturating_sub(origin);
                None
            }
            Some(open) => {
                let elapsed = q.pts_us.saturating_sub(open.boundary.start_us);
                let target = i64::try_from(self.settings.target.as_micros()).unwrap_or(i64::MAX);
                let cap = i64::try_from(self.settings.cap.as_micros()).unwrap_or(i64::MAX);
                if !self.has_video || q.is_video {
                    if is_key_or_audio_only && elapsed >= target {
                        Some(CutReason::Keyframe)
                    } else if elapsed >= cap {
                        Some(CutReason::ForcedCap)
                    } else {
                        None
                    }
                } else {
                    None
                }
            }
        };
        if let Some(reason) = cut {
            let bytes = self.mux.cut()?;
            self.emit(bytes, reason)?;
        }
        if self.open.is_none() {
            if self.emitted > 0 && self.consumer_gone {
                return Ok(());
            }
            self.open = Some(Open {
                boundary: Boundary { start_us: q.pts_us, at_keyframe: is_key_or_audio_only },
                start_us: q.pts_us,
                end_us: q.end_us,
                video_frames: 0,
                repaired_at_open: self.repaired(),
                first_wall_us: q.wall_us.max(self.last_wall_us),
                last_wall_us: q.wall_us.max(self.last_wall_us),
                gap: self.gap_from.take().map(|from| Gap {
                    wall_from_us: from,
                    wall_to_us: q.wall_us.max(self.last_wall_us),
                    media_offset_us: self.rebase.as_ref().and_then(|r| r.shift_us).unwrap_or(0),
                }),
            });
        }
        let Some(open) = self.open.as_mut() else { return Ok(()) };
        // Packets are read in one order and released in another (see `interleave`); the
        // wall time of a segment's packets must still never go backwards.
        let wall = q.wall_us.max(self.last_wall_us);
        self.last_wall_us = wall;
        open.last_wall_us = wall;
        let mut packet = q.packet;
        let key = packet.is_key();
        packet.rescale_ts(self.lane_tb[q.lane], self.mux_tb[q.lane]);
        packet.set_stream(q.lane);
        packet.set_position(-1);
        // Only what the muxer took is counted and digested: the record describes the bytes.
        self.mux.write(&mut packet)?;
        self.digest.push(q.lane, key, packet);
        self.last_end_abs_us = self.last_end_abs_us.max(end_abs_us);
        open.start_us = open.start_us.min(q.pts_us);
        open.end_us = open.end_us.max(q.end_us);
        if q.is_video {
            open.video_frames += 1;
        }
        Ok(())
    }

    /// After a loss: drains the lanes and the interleaver, cuts the open segment
    /// ([`CutReason::InputLost`]) and says what happened.
    fn close_connection(&mut self, il: &mut Interleaver<ff::Packet>) -> Result<(), CaptureError> {
        let mut ready = Vec::new();
        for lane in 0..self.lanes.len() {
            self.lanes[lane].flush(&mut ready)?;
            self.queue(lane, &mut ready, self.clock.now_utc_us(), il);
        }
        self.lanes_flushed = true;
        while let Some(q) = il.pop(true) {
            self.release(q)?;
        }
        if self.open.is_some() {
            let bytes = self.mux.cut()?;
            self.emit(bytes, CutReason::InputLost)?;
        }
        if self.emitted > 0 {
            self.gap_from = Some(self.last_wall_us);
        }
        Ok(())
    }

    /// Listens again for up to the reconnect wait; a sender that connects is compared with
    /// the recording's streams.
    fn wait_for_sender(
        &mut self,
        source: &Source,
        watchdog: &Arc<Watchdog>,
        how: String,
    ) -> Result<Back, CaptureError> {
        let wait = self.settings.reconnect_wait;
        let at_media_us = match self.origin_us {
            Some(origin) if self.last_end_abs_us > i64::MIN => {
                self.last_end_abs_us.saturating_sub(origin)
            }
            _ => 0,
        };
        let lost = std::time::Instant::now();
        let event = Event::InputLost { at_media_us, wait, how: how.clone() };
        if self.tx.send(Item::Event(event)).is_err() {
            self.consumer_gone = true;
            return Ok(Back::Stopped);
        }
        let deadline = lost + wait;
        let again = loop {
            if watchdog.stop_requested() {
                return Ok(Back::Stopped);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break None;
            }
            let settings = Settings { open_timeout: left, ..self.settings.clone() };
            match input::open(source, &settings, watchdog) {
                Ok(input) => break Some(input),
                Err(InputError::Stopped) => return Ok(Back::Stopped),
                Err(InputError::OpenTimeout { .. }) => break None,
                // A sender that connected and went again, or the address not free yet.
                Err(_) => std::thread::sleep(left.min(Duration::from_millis(250))),
            }
        };
        let Some(again) = again else {
            return Ok(Back::Nobody(format!(
                "{how} at {}; no sender connected again within {} s",
                clock_time(at_media_us),
                wait.as_secs()
            )));
        };
        let mut notes = Vec::new();
        let lanes = match lane::select(&again, self.settings, &mut notes) {
            Ok(lanes) => lanes,
            Err(e) => {
                let detail = format!(
                    "the sender came back with streams that cannot be recorded ({e}) after {}",
                    clock_time(at_media_us)
                );
                return Ok(Back::Changed(again, detail));
            }
        };
        let sigs = signatures(&again, &lanes);
        if sigs != self.sigs {
            let detail = format!(
                "a sender came back with other streams ({}; the recording had {}) after it was lost at {}",
                describe(&sigs),
                describe(&self.sigs),
                clock_time(at_media_us)
            );
            return Ok(Back::Changed(again, detail));
        }
        let event = Event::Reconnected { after: lost.elapsed() };
        if self.tx.send(Item::Event(event)).is_err() {
            self.consumer_gone = true;
        }
        Ok(Back::Same(again, lanes))
    }

    /// Reads the next connection with `lanes` (the same streams), moved onto the timeline.
    fn resume(&mut self, lanes: Vec<Lane>) {
        self.lane_tb = lanes.iter().map(Lane::time_base).collect();
        self.lanes = lanes;
        self.lanes_flushed = false;
        self.rebase =
            self.origin_us.map(|_| Rebase { shift_us: None, floor_us: self.last_end_abs_us });
    }

    fn repaired(&self) -> u64 {
        self.lanes.iter().map(|l| l.repaired).sum()
    }

    /// Turns the open segment into a [`Segment`] with these bytes and sends it.
    fn emit(&mut self, bytes: Deferred<Hashed>, cut: CutReason) -> Result<(), CaptureError> {
        let repaired_now = self.repaired();
        let Some(open) = self.open.take() else { return Ok(()) };
        let digest = self.digest.finish_segment();
        self.emitted += 1;
        // The bytes, hashes and emission time are filled in by the finisher.
        let segment = Segment {
            seq: self.emitted,
            bytes: Vec::new(),
            sha256: [0; 32],
            packet_digest: PacketDigest([0; 32]),
            boundary: open.boundary,
            media_start_us: open.start_us,
            media_end_us: open.end_us,
            packet_counts: Vec::new(),
            video_frames: open.video_frames,
            repaired_timestamps: repaired_now.saturating_sub(open.repaired_at_open),
            dropped_before: if self.emitted == 1 { self.dropped_before_start } else { 0 },
            first_packet_utc_us: open.first_wall_us,
            last_packet_utc_us: open.last_wall_us,
            emitted_utc_us: 0,
            cut,
            gap: open.gap,
        };
        let pending = Pending { segment, bytes, digest };
        if self.tx.send(Item::Segment(Box::new(pending))).is_err() {
            self.consumer_gone = true;
        }
        Ok(())
    }

    /// Drains the lanes and the interleaver, writes the trailer and emits the last segment.
    fn finish(&mut self, il: &mut Interleaver<ff::Packet>) -> Result<(), CaptureError> {
        let mut first_error = None;
        let mut ready = Vec::new();
        let lanes = if self.lanes_flushed { 0 } else { self.lanes.len() };
        self.lanes_flushed = true;
        for lane in 0..lanes {
            match self.lanes[lane].flush(&mut ready) {
                Ok(()) => self.queue(lane, &mut ready, self.clock.now_utc_us(), il),
                Err(e) => {
                    ready.clear();
                    first_error.get_or_insert(CaptureError::from(e));
                }
            }
        }
        while let Some(q) = il.pop(true) {
            if let Err(e) = self.release(q) {
                first_error.get_or_insert(e);
                break;
            }
        }
        let last = match self.mux.finish() {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                first_error.get_or_insert(e.into());
                // The trailer failed; what the muxer wrote before it is still the footage.
                if self.mux.pending() > 0 {
                    match self.mux.take_pending() {
                        Ok(last) => Some(last),
                        Err(e) => {
                            first_error.get_or_insert(e.into());
                            None
                        }
                    }
                } else {
                    None
                }
            }
        };
        if let (Some(bytes), true) = (last, self.open.is_some()) {
            if let Err(e) = self.emit(bytes, CutReason::Final) {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

//! Opening an input with bounded probing and an interrupt callback, and reading packets
//! from it with every error seen (FFmpeg's own packet iterator stops silently on any).

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ff::ffi;
use ffmpeg_next as ff;

use crate::settings::{Settings, Source};

/// Why an input could not be opened or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The URL, a format name or an option contains a NUL byte.
    #[error("{what} contains a NUL byte")]
    Nul {
        /// Which argument.
        what: &'static str,
    },
    /// FFmpeg has no demuxer or device of this name.
    #[error("unknown input format {0:?}")]
    UnknownFormat(String),
    /// The input could not be opened.
    #[error("cannot open {url:?}: {source}")]
    Open {
        /// The input's URL or path.
        url: String,
        /// FFmpeg's error.
        source: ff::Error,
    },
    /// Opening took longer than the open timeout (no sender connected, nothing to probe).
    #[error("opening {url:?} timed out after {timeout:?}")]
    OpenTimeout {
        /// The input's URL or path.
        url: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The input opened but its streams could not be identified.
    #[error("cannot identify the streams of {url:?}: {source}")]
    StreamInfo {
        /// The input's URL or path.
        url: String,
        /// FFmpeg's error.
        source: ff::Error,
    },
    /// The stop handle was used while the input was being opened.
    #[error("stopped while opening the input")]
    Stopped,
}

/// The state FFmpeg's interrupt callback looks at: a stop request and a deadline.
///
/// FFmpeg polls the callback inside blocking reads and connects, so a stop or an expired
/// deadline aborts even a read that is waiting on a silent network socket.
#[derive(Debug)]
pub(crate) struct Watchdog {
    stop: AtomicBool,
    /// Milliseconds after `base` when the current operation times out; 0 = no deadline.
    deadline_ms: AtomicU64,
    base: Instant,
}

impl Watchdog {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Watchdog {
            stop: AtomicBool::new(false),
            deadline_ms: AtomicU64::new(0),
            base: Instant::now(),
        })
    }

    pub(crate) fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Starts a deadline `timeout` from now.
    pub(crate) fn arm(&self, timeout: Duration) {
        let now = self.base.elapsed().as_millis();
        let at = u64::try_from(now.saturating_add(timeout.as_millis()).max(1)).unwrap_or(u64::MAX);
        self.deadline_ms.store(at, Ordering::SeqCst);
    }

    pub(crate) fn expired(&self) -> bool {
        let at = self.deadline_ms.load(Ordering::SeqCst);
        at != 0 && u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX) > at
    }

    fn should_abort(&self) -> bool {
        self.stop_requested() || self.expired()
    }
}

fn cstring(s: &str, what: &'static str) -> Result<CString, InputError> {
    CString::new(s).map_err(|_| InputError::Nul { what })
}

/// Opens `source`, probing at most `settings.analyze_duration` / `probe_size`, with the
/// watchdog armed for `settings.open_timeout`.
pub(crate) fn open(
    source: &Source,
    settings: &Settings,
    watchdog: &Arc<Watchdog>,
) -> Result<ff::format::context::Input, InputError> {
    let url = cstring(&source.url, "the input URL")?;
    let format = match &source.format {
        Some(name) => {
            let c = cstring(name, "the input format")?;
            // SAFETY: `c` is a valid C string; the result is a static or null.
            let fmt = unsafe { ffi::av_find_input_format(c.as_ptr()) };
            if fmt.is_null() {
                return Err(InputError::UnknownFormat(name.clone()));
            }
            fmt
        }
        None => std::ptr::null(),
    };
    let mut options = ff::Dictionary::new();
    options.set("analyzeduration", &settings.analyze_duration.as_micros().to_string());
    options.set("probesize", &settings.probe_size.max(32).to_string());
    for (k, v) in &source.options {
        cstring(k, "an option name")?;
        cstring(v, "an option value")?;
        options.set(k, v);
    }

    let dog = Arc::clone(watchdog);
    let interrupt = ff::util::interrupt::new(Box::new(move || dog.should_abort()));
    watchdog.arm(settings.open_timeout);
    let timed_out_or_stopped = |e: ff::Error| {
        if watchdog.stop_requested() {
            InputError::Stopped
        } else if watchdog.expired() {
            InputError::OpenTimeout { url: source.url.clone(), timeout: settings.open_timeout }
        } else {
            InputError::Open { url: source.url.clone(), source: e }
        }
    };
    // SAFETY: the raw calls follow libavformat's documented ownership: the context is
    // allocated here, handed to `avformat_open_input` (which frees it on failure), closed
    // with `avformat_close_input` if probing fails, and otherwise owned by the returned
    // `Input` together with the interrupt closure it points at.
    unsafe {
        let mut ps = ffi::avformat_alloc_context();
        if ps.is_null() {
            return Err(InputError::Open {
                url: source.url.clone(),
                source: ff::Error::Other { errno: ffi::ENOMEM },
            });
        }
        (*ps).interrupt_callback = interrupt.interrupt;
        let mut opts = options.disown();
        let res = ffi::avformat_open_input(&mut ps, url.as_ptr(), format, &mut opts);
        drop(ff::Dictionary::own(opts));
        if res < 0 {
            return Err(timed_out_or_stopped(ff::Error::from(res)));
        }
        if !source.live && complete_frames((*ps).iformat) {
            // Every packet of an MP4/MOV file is a whole frame with its timestamps and
            // keyframe flag in the sample tables: FFmpeg's parsers would only re-read the
            // headers of each frame (zeroing a frame-sized buffer for each, ~10% of the
            // segmenter's thread). The packets are the same either way — data, timestamps,
            // durations, flags (tests/file_input.rs compares them).
            (*ps).flags |= ffi::AVFMT_FLAG_NOPARSE;
        }
        let res = ffi::avformat_find_stream_info(ps, std::ptr::null_mut());
        if res < 0 {
            ffi::avformat_close_input(&mut ps);
            let err = timed_out_or_stopped(ff::Error::from(res));
            return Err(match err {
                InputError::Open { url, source } => InputError::StreamInfo { url, source },
                other => other,
            });
        }
        Ok(ff::format::context::Input::wrap_with_interrupt(ps, interrupt.guard))
    }
}

/// Whether `format` is a demuxer whose packets are always whole frames with explicit
/// timestamps (the MP4/MOV family), so that reading them needs no parser.
///
/// # Safety
/// `format` must be null or point at a demuxer description (they are static).
unsafe fn complete_frames(format: *const ffi::AVInputFormat) -> bool {
    if format.is_null() {
        return false;
    }
    // SAFETY: per the caller; `name` is a static C string.
    let name = unsafe { std::ffi::CStr::from_ptr((*format).name) };
    name.to_bytes().starts_with(b"mov,")
}

/// What one read attempt produced.
pub(crate) enum Read {
    /// A packet.
    Packet(ff::Packet),
    /// The input ended cleanly.
    End,
    /// The stop handle was used.
    Stopped,
    /// No packet for the stall timeout.
    Stalled,
    /// A read error the input cannot recover from.
    Failed(ff::Error),
}

/// Reads the next packet, retrying what FFmpeg says can be retried.
///
/// A fresh packet per read: `av_read_frame` does not release what a reused packet held.
pub(crate) fn read(
    input: &mut ff::format::context::Input,
    watchdog: &Watchdog,
    stall_timeout: Duration,
) -> Read {
    // Corrupt packets are skipped, but not forever: a stream of nothing but garbage is a
    // failure, not a recording.
    const MAX_CONSECUTIVE_INVALID: u32 = 1000;
    let mut invalid = 0;
    watchdog.arm(stall_timeout);
    loop {
        let mut packet = ff::Packet::empty();
        match packet.read(input) {
            Ok(()) => return Read::Packet(packet),
            Err(ff::Error::Eof) => return Read::End,
            Err(ff::Error::Exit) | Err(ff::Error::Other { errno: ffi::ETIMEDOUT })
                if watchdog.stop_requested() =>
            {
                return Read::Stopped
            }
            Err(ff::Error::Exit) | Err(ff::Error::Other { errno: ffi::ETIMEDOUT }) => {
                return Read::Stalled
            }
            Err(ff::Error::Other { errno: ffi::EAGAIN }) => {
                if watchdog.stop_requested() {
                    return Read::Stopped;
                }
                if watchdog.expired() {
                    return Read::Stalled;
                }
                // Devices answer EAGAIN until their next frame is ready; a short wait
                // keeps this from spinning a core.
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(ff::Error::InvalidData) if invalid < MAX_CONSECUTIVE_INVALID => invalid += 1,
            Err(e) => return Read::Failed(e),
        }
    }
}

/// Degrees clockwise `stream`'s pictures must be turned for display (0, 90, 180 or 270),
/// from its display matrix (what an MP4's track matrix or a `rotate` tag becomes); `None`
/// when it has none, or one that is not a quarter turn (a flip or a skew, which the
/// recording does not claim to keep).
pub(crate) fn rotation(stream: &ff::format::stream::Stream<'_>) -> Option<u16> {
    let mut size = 0usize;
    // SAFETY: `stream` wraps a live AVStream; the side data it returns is owned by it and
    // read here only while it is alive, and only when it is a whole 3x3 matrix.
    let counterclockwise = unsafe {
        let data = ffi::av_stream_get_side_data(
            stream.as_ptr(),
            ffi::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX,
            &mut size,
        );
        if data.is_null() || size < 9 * std::mem::size_of::<i32>() {
            return None;
        }
        ffi::av_display_rotation_get(data.cast::<i32>())
    };
    if !counterclockwise.is_finite() {
        return None;
    }
    let clockwise = (-counterclockwise).rem_euclid(360.0);
    let quarter = (clockwise / 90.0).round();
    if (clockwise - quarter * 90.0).abs() > 1.0 {
        return None;
    }
    Some(((quarter as u16) % 4) * 90)
}

/// The streams of `input` not among `kept` (input stream indices), as (kind, FFmpeg's
/// codec name): what a header lists as not recorded.
pub(crate) fn dropped_streams(
    input: &ff::format::context::Input,
    kept: &[usize],
) -> Vec<(custody_format::digest::MediaKind, String)> {
    use custody_format::digest::MediaKind;
    input
        .streams()
        .filter(|s| !kept.contains(&s.index()))
        .map(|s| {
            let par = s.parameters();
            let kind = match par.medium() {
                ff::media::Type::Video => MediaKind::Video,
                ff::media::Type::Audio => MediaKind::Audio,
                _ => MediaKind::Other,
            };
            let name = crate::lane::codec_name(par.id());
            // A data or timecode track FFmpeg has no decoder for is `none`: its tag says
            // what it is (`tmcd`, `bin_data` FFmpeg does name).
            let codec = if name == "none" { codec_tag(&par).unwrap_or(name) } else { name };
            (kind, codec)
        })
        .collect()
}

/// The four-character tag of a stream's codec, if it is printable.
fn codec_tag(par: &ff::codec::Parameters) -> Option<String> {
    // SAFETY: `par` wraps a live AVCodecParameters.
    let tag = unsafe { (*par.as_ptr()).codec_tag };
    let bytes = tag.to_le_bytes();
    (tag != 0 && bytes.iter().all(|b| b.is_ascii_graphic()))
        .then(|| String::from_utf8_lossy(&bytes).into_owned())
}

//! FFmpeg's own log, kept off the terminal.
//!
//! FFmpeg prints what its demuxers and devices notice (`[mov,mp4,m4a,3gp,3g2,mj2 @
//! 0x55d0c0] moov atom not found`, v4l2 notes) straight to stderr, in its words, over
//! custody's status line, with a pointer in it no observer can use. Here FFmpeg's log
//! callback (`av_log_set_callback`) keeps its last few warnings and errors in a bounded
//! buffer instead; custody folds what they mean into its own error ([`explain`]). Setting
//! `CUSTODY_FFMPEG_LOG=1` (or `custody --verbose`, through [`let_ffmpeg_log_through`])
//! lets them through to stderr as well, for debugging.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// How many of FFmpeg's last messages are kept.
const KEPT: usize = 16;
/// Longer messages are cut to this many bytes.
const LINE_MAX: usize = 512;

static LINES: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());
static THROUGH: AtomicBool = AtomicBool::new(false);

/// Whether FFmpeg's messages also go to stderr (for debugging); off unless
/// `CUSTODY_FFMPEG_LOG` is set to something other than `0` or this is called.
pub fn let_ffmpeg_log_through(on: bool) {
    THROUGH.store(on, Ordering::Relaxed);
    use ffmpeg_next::util::log::{set_level, Level};
    set_level(if on { Level::Info } else { Level::Error });
}

/// FFmpeg's last warnings and errors (at most 16), oldest first, each as FFmpeg wrote it.
pub fn ffmpeg_messages() -> Vec<String> {
    crate::init();
    LINES.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
}

/// What FFmpeg's messages mean for an observer, in custody's words, when one of them is
/// known to mean something: `moov atom not found` is an MP4/MOV file whose index was never
/// written or was cut off.
pub fn explain(messages: &[String]) -> Option<&'static str> {
    let has = |needle: &str| messages.iter().any(|m| m.contains(needle));
    if has("moov atom not found") {
        Some("the MP4 index (moov box) is missing")
    } else if has("Cannot open video device") || has("No such device") {
        Some("the video device cannot be opened")
    } else if has("Connection refused") {
        Some("the sender refused the connection")
    } else {
        None
    }
}

/// Installs the callback; called once, from [`crate::init`].
pub(crate) fn install() {
    if std::env::var_os("CUSTODY_FFMPEG_LOG").is_some_and(|v| !v.is_empty() && v != "0")
        || THROUGH.load(Ordering::Relaxed)
    {
        let_ffmpeg_log_through(true);
    }
    imp::install();
}

/// Keeps one line of FFmpeg's (and prints it when asked to).
fn keep(level: i32, line: &str) {
    let line = line.trim_end();
    if line.is_empty() {
        return;
    }
    if THROUGH.load(Ordering::Relaxed) {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "ffmpeg: {line}");
    }
    if level > ffmpeg_next::ffi::AV_LOG_WARNING {
        return;
    }
    push(&mut LINES.lock().unwrap_or_else(|e| e.into_inner()), line);
}

/// Adds `line` (cut to LINE_MAX bytes) to `lines`, dropping the oldest beyond KEPT.
fn push(lines: &mut VecDeque<String>, line: &str) {
    let mut cut = line.len().min(LINE_MAX);
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    if lines.len() >= KEPT {
        lines.pop_front();
    }
    lines.push_back(line[..cut].to_string());
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::cell::{Cell, RefCell};
    use std::ffi::{c_char, c_int, c_void};

    use ffmpeg_next::ffi;

    thread_local! {
        /// Whether FFmpeg's next piece starts a line (its `print_prefix`).
        static PREFIX: Cell<c_int> = const { Cell::new(1) };
        /// A line FFmpeg writes in several calls, until its newline.
        static PENDING: RefCell<String> = const { RefCell::new(String::new()) };
    }

    /// FFmpeg's log callback: formats the message (with FFmpeg's `[name @ 0x…]` prefix)
    /// and keeps it; never prints unless asked to.
    unsafe extern "C" fn callback(
        avcl: *mut c_void,
        level: c_int,
        fmt: *const c_char,
        vl: *mut ffi::__va_list_tag,
    ) {
        // Debug chatter is not even formatted unless it is let through.
        // SAFETY: reads one int.
        if level > unsafe { ffi::av_log_get_level() }.max(ffi::AV_LOG_WARNING) {
            return;
        }
        let mut buf = [0 as c_char; 1024];
        let mut prefix = PREFIX.with(Cell::get);
        // SAFETY: `fmt` and `vl` are the ones FFmpeg passed in, used once; the buffer's
        // size is given, and FFmpeg always terminates what it writes into it.
        let n = unsafe {
            ffi::av_log_format_line2(avcl, level, fmt, vl, buf.as_mut_ptr(), 1024, &mut prefix)
        };
        PREFIX.with(|p| p.set(prefix));
        if n < 0 {
            return;
        }
        // SAFETY: NUL-terminated by av_log_format_line2 (checked above that it ran).
        let text = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
        let whole = PENDING.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < super::LINE_MAX * 2 {
                p.push_str(&text);
            }
            if p.ends_with('\n') {
                Some(std::mem::take(&mut *p))
            } else {
                None
            }
        });
        if let Some(line) = whole {
            super::keep(level, &line);
        }
    }

    pub(super) fn install() {
        // SAFETY: the callback is a plain function that lives as long as the process.
        unsafe { ffi::av_log_set_callback(Some(callback)) };
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    /// Elsewhere the callback's `va_list` has another shape: FFmpeg is only made quiet.
    pub(super) fn install() {
        if !super::THROUGH.load(std::sync::atomic::Ordering::Relaxed) {
            ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Quiet);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_moov_is_explained_and_the_buffer_is_bounded() {
        let mut lines = VecDeque::new();
        for i in 0..40 {
            push(&mut lines, &format!("[mov @ 0x1] note {i}"));
        }
        push(&mut lines, &format!("[mov @ 0x1] {}", "é".repeat(LINE_MAX)));
        push(&mut lines, "[mov,mp4,m4a @ 0x55] moov atom not found");
        let m: Vec<String> = lines.into_iter().collect();
        assert_eq!(m.len(), KEPT);
        assert!(m[KEPT - 2].len() <= LINE_MAX);
        assert_eq!(m[KEPT - 1], "[mov,mp4,m4a @ 0x55] moov atom not found");
        assert_eq!(explain(&m), Some("the MP4 index (moov box) is missing"));
        assert_eq!(explain(&m[..KEPT - 1]), None);
    }

    /// A real FFmpeg error goes through the callback into the buffer.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn ffmpeg_errors_are_kept() {
        crate::init();
        let marker = "custody-ffmpeg-log-test 7f3a";
        let fmt = std::ffi::CString::new(format!("{marker} %d\n")).unwrap_or_default();
        // SAFETY: a format with one %d and one int.
        unsafe {
            ffmpeg_next::ffi::av_log(
                std::ptr::null_mut(),
                ffmpeg_next::ffi::AV_LOG_ERROR,
                fmt.as_ptr(),
                42 as std::ffi::c_int,
            )
        };
        assert!(ffmpeg_messages().iter().any(|m| m.contains(&format!("{marker} 42"))));
    }
}

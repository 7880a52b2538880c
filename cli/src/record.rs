//! `custody record` and `custody import`.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use custody_capture::{Capture, Container, Settings, Source};
use custody_format::record::{EndReason, Origin};
use custody_recorder::{self as recorder, Progress, Provenance};
use custody_vault::keys;
use custody_vault::seal::Sealer;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{ImportArgs, RecordArgs, SealArgs};
use crate::common::{device_key, open_vault, print, CliError};
use crate::live_upload::LiveUpload;
use crate::recordings::size;

/// The recipients for a new recording: the config's, the flags', and the observer's own
/// if asked for.
fn recipients(vault: &custody_vault::Vault, args: &SealArgs) -> Result<Vec<String>, CliError> {
    let mut list = vault.config()?.recipients;
    list.extend(args.recipients.iter().cloned());
    if args.self_recipient {
        list.push(keys::self_recipient(vault.dir())?);
    }
    list.sort();
    list.dedup();
    if list.is_empty() {
        return Err(CliError::cannot(
            "no recipients: segments must be encrypted to the legal team's case key",
        )
        .hint("give --recipient age1… or save one with `custody vault recipients --add age1…`"));
    }
    keys::parse_recipients(&list)?;
    Ok(list)
}

fn settings(args: &SealArgs) -> Result<Settings, CliError> {
    let secs = |v: f64, name: &str| {
        if v.is_finite() && v > 0.0 && v <= 3600.0 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(CliError::cannot(format!("--{name} must be between 0 and 3600 seconds")))
        }
    };
    let target = secs(args.segment_seconds, "segment-seconds")?;
    let cap = secs(args.max_segment_seconds, "max-segment-seconds")?;
    if cap < target {
        return Err(CliError::cannot(
            "--max-segment-seconds must not be shorter than --segment-seconds",
        ));
    }
    Ok(Settings {
        target,
        cap,
        container: if args.fmp4 { Container::FragmentedMp4 } else { Container::MpegTs },
        ..Settings::default()
    })
}

pub fn record(vault_dir: &Path, args: &RecordArgs) -> Result<(), CliError> {
    let mut source = match &args.format {
        Some(f) => Source::device(f.clone(), args.input.clone()),
        None if args.input.contains("://") => Source::network(args.input.clone()),
        None => Source::file(&args.input),
    };
    for (k, v) in &args.options {
        source = source.with_option(k.clone(), v.clone());
    }
    let input = match &args.format {
        Some(f) => format!("{f}:{}", recorder::redact_url(&args.input)),
        None => recorder::redact_url(&args.input),
    };
    let listener = match &args.format {
        Some(_) => None,
        None => Listener::of(&args.input, &args.options),
    };
    if !(args.reconnect_wait.is_finite() && (0.0..=86_400.0).contains(&args.reconnect_wait)) {
        return Err(CliError::cannot("--reconnect-wait must be between 0 and 86400 seconds"));
    }
    // Only a network stream's sender drops and comes back; a device or a filter graph that
    // ends has ended.
    let reconnect = if args.format.is_none() && args.input.contains("://") {
        Duration::from_secs_f64(args.reconnect_wait)
    } else {
        Duration::ZERO
    };
    run(
        vault_dir,
        &args.seal,
        source,
        Origin::Live,
        input,
        None,
        args.duration,
        listener.as_ref(),
        reconnect,
    )
}

pub fn import(vault_dir: &Path, args: &ImportArgs) -> Result<(), CliError> {
    if !args.file.is_file() {
        return Err(CliError::cannot(format!("{} is not a file", args.file.display())));
    }
    let file = recorder::hash_file(&args.file).map_err(|e| CliError::cannot(e.to_string()))?;
    if file.len == 0 {
        return Err(CliError::cannot(format!(
            "{} is empty (0 bytes): there is nothing to import",
            args.file.display()
        ))
        .hint("check that the copy from the phone finished"));
    }
    let name = args.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    run(
        vault_dir,
        &args.seal,
        Source::file(&args.file),
        Origin::Imported,
        name,
        Some(file),
        None,
        None,
        Duration::ZERO,
    )
}

#[allow(clippy::too_many_arguments)]
fn run(
    vault_dir: &Path,
    seal: &SealArgs,
    source: Source,
    origin: Origin,
    input: String,
    imported_file: Option<custody_format::record::ImportedFile>,
    duration: Option<f64>,
    listener: Option<&Listener>,
    reconnect_wait: Duration,
) -> Result<(), CliError> {
    if seal.verbose {
        // Before anything opens the input (container_for probes it).
        custody_capture::let_ffmpeg_log_through(true);
    }
    let vault = open_vault(vault_dir)?;
    let key = device_key(vault_dir)?;
    let recipients = recipients(&vault, seal)?;
    let sealer = Sealer::new(keys::parse_recipients(&recipients)?)
        .map_err(|e| CliError::cannot(e.to_string()))?;
    let mut settings = settings(seal)?;
    settings.reconnect_wait = reconnect_wait;
    if origin == Origin::Imported {
        // An import's segments come as fast as the file is read: a short queue keeps the
        // sealing threads busy and bounds the memory of the segments waiting in it and
        // being sealed (`recorder::IMPORT_QUEUE`).
        settings.channel_capacity = recorder::IMPORT_QUEUE;
    }
    if origin == Origin::Imported && !seal.fmp4 {
        // A browser's recording (Opus audio, VP8/VP9/AV1 video) goes into the container
        // that carries it; anything else stays MPEG-TS.
        if let Ok(c) = custody_capture::container_for(&source, &settings) {
            settings.container = c;
        }
    }
    if !(seal.upload_wait.is_finite() && (0.0..=3600.0).contains(&seal.upload_wait)) {
        return Err(CliError::cannot("--upload-wait must be between 0 and 3600 seconds"));
    }
    let provenance = Provenance {
        origin,
        input,
        imported_file,
        target_segment_ms: settings.target.as_millis().min(u128::from(u32::MAX)) as u32,
        max_segment_ms: settings.cap.as_millis().min(u128::from(u32::MAX)) as u32,
    };

    // Started before the capture so that the first record finds it running.
    let live =
        if seal.no_upload { None } else { LiveUpload::start(&vault, key.clone(), seal.json) };
    let mut current = None;
    let source_url = source.url.clone();
    let capture = Capture::start(source, settings);
    let stop = capture.stop_handle();
    let on_signal = stop.clone();
    // Whether the observer (Ctrl-C, or --duration running out) stopped the capture: a stop
    // before any media is then their choice, not a failing input.
    let stopped = Arc::new(AtomicBool::new(false));
    let by_signal = stopped.clone();
    // A second handler cannot be installed in one process; a failure here only loses Ctrl-C.
    let _ = ctrlc::set_handler(move || {
        by_signal.store(true, Ordering::SeqCst);
        on_signal.stop();
    });
    if let Some(secs) = duration {
        let timer = stop.clone();
        let by_timer = stopped.clone();
        let limit = Duration::from_secs_f64(secs.clamp(0.0, 86_400.0));
        std::thread::spawn(move || {
            std::thread::sleep(limit);
            by_timer.store(true, Ordering::SeqCst);
            timer.stop();
        });
    }
    if let Some(l) = listener {
        l.announce(seal.json);
    }

    let bar = ProgressBar::with_draw_target(
        None,
        if !seal.json && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let started = Instant::now();
    let mut sealed_bytes = 0u64;
    let mut count = 0u64;
    let quiet = seal.json;
    let outcome = recorder::record(&vault, capture, key, &recipients, sealer, &provenance, |p| {
        match p {
            Progress::Started { id, streams, notes } => {
                current = Some(*id);
                if let Some(l) = &live {
                    l.saved(*id, 0);
                }
                if quiet {
                    print(&format!(
                        "{}\n",
                        serde_json::json!({ "event": "started", "recording": id.to_string() })
                    ));
                } else {
                    let desc: Vec<String> = streams
                        .iter()
                        .map(|s| match s.kind {
                            custody_format::digest::MediaKind::Video => {
                                format!("{} {}x{}", s.codec, s.width, s.height)
                            }
                            _ => format!("{} {} Hz", s.codec, s.sample_rate),
                        })
                        .collect();
                    bar.println(format!("Recording {id} ({}); Ctrl-C stops.", desc.join(", ")));
                    for n in notes {
                        bar.println(format!("note: {n}"));
                    }
                }
            }
            Progress::Saved {
                seq,
                plaintext_len,
                ciphertext_len,
                media_end_us,
                seal_latency_us,
            } => {
                if quiet {
                    // One line per durable segment: a script (or a test) may rely on every
                    // segment reported here being saved.
                    print(&format!(
                        "{}\n",
                        serde_json::json!({
                            "event": "saved", "seq": seq, "plaintext_len": plaintext_len,
                            "ciphertext_len": ciphertext_len, "media_end_us": media_end_us,
                            "seal_latency_us": seal_latency_us,
                        })
                    ));
                }
                if let (Some(l), Some(id)) = (&live, current) {
                    l.saved(id, *seq);
                }
                count += 1;
                sealed_bytes += ciphertext_len;
                let elapsed = started.elapsed().as_secs_f64().max(0.001);
                let uploaded = live
                    .as_ref()
                    .map(|l| format!(" · {} receipted", l.receipted()))
                    .unwrap_or_default();
                bar.set_message(format!(
                    "{:02}:{:02} elapsed · {:.1} s of media · {count} segments sealed{uploaded} · {} · {:.2} Mbit/s",
                    elapsed as u64 / 60,
                    elapsed as u64 % 60,
                    *media_end_us as f64 / 1e6,
                    size(sealed_bytes),
                    sealed_bytes as f64 * 8.0 / elapsed / 1e6
                ));
            }
            Progress::InputLost { at_media_us, wait } => {
                let at = clock(*at_media_us);
                if quiet {
                    print(&format!(
                        "{}\n",
                        serde_json::json!({
                            "event": "sender-lost", "at_media_us": at_media_us,
                            "waiting_s": wait.as_secs_f64(),
                        })
                    ));
                } else {
                    bar.println(format!(
                        "sender lost at {at}; waiting up to {} s for it to connect again",
                        wait.as_secs()
                    ));
                }
            }
            Progress::Reconnected { after } => {
                if quiet {
                    print(&format!(
                        "{}\n",
                        serde_json::json!({
                            "event": "sender-back", "after_s": after.as_secs_f64(),
                        })
                    ));
                } else {
                    bar.println(format!(
                        "sender connected again after {:.1} s; the gap is recorded",
                        after.as_secs_f64()
                    ));
                }
            }
            Progress::Continued { ended, next } => {
                if let Some(l) = &live {
                    l.saved_end(ended.id, ended.segments + 1);
                }
                if quiet {
                    print(&format!(
                        "{}\n",
                        serde_json::json!({
                            "event": "ended", "recording": ended.id.to_string(),
                            "segments": ended.segments, "ended": "sender changed",
                            "message": ended.message, "continued_in": next.to_string(),
                        })
                    ));
                } else {
                    bar.println(format!(
                        "Recording {} ended: {}; recording {next} continues it.",
                        ended.id,
                        ended.message.as_deref().unwrap_or("the sender changed")
                    ));
                }
            }
        }
    });
    bar.finish_and_clear();
    if let (Ok(o), Some(l)) = (&outcome, &live) {
        // The end record is the last one, right after the last segment.
        l.saved_end(o.id, o.segments + 1);
    }
    let upload = live.map(|l| {
        if !seal.json && !std::io::stderr().is_terminal() {
            eprintln!("upload: waiting up to {} s for the last receipts", seal.upload_wait);
        }
        l.finish(Duration::from_secs_f64(seal.upload_wait))
    });
    if let (Err(e), true) = (&outcome, seal.json) {
        // Every recording that started ends with an `ended` event, whatever ended it (a full
        // disk, a failing input): a script reading the events learns how it ended.
        let id = match e {
            recorder::RecordError::Save { id, .. } => Some(*id),
            _ => current,
        };
        if let Some(id) = id {
            print(&format!(
                "{}\n",
                serde_json::json!({
                    "event": "ended",
                    "recording": id.to_string(),
                    "segments": count,
                    "ended": "error",
                    "message": e.to_string(),
                    "sealed_bytes": sealed_bytes,
                })
            ));
        }
    }
    if let (Err(recorder::RecordError::NothingRecorded(_)), Origin::Live, true) =
        (&outcome, origin, stopped.load(Ordering::SeqCst))
    {
        let what = if listener.is_some() { "the phone connected" } else { "any media came" };
        eprintln!("custody: stopped before {what}: nothing was recorded");
        return Ok(());
    }
    let outcome = outcome.map_err(|e| match e {
        recorder::RecordError::NothingRecorded(m) if origin == Origin::Imported => {
            unreadable_file(Path::new(&source_url), &m)
        }
        recorder::RecordError::NothingRecorded(m) => CliError::cannot(format!(
            "nothing was recorded: {m}{}",
            custody_capture::explain(&custody_capture::ffmpeg_messages())
                .map(|w| format!(" ({w})"))
                .unwrap_or_default()
        ))
        .hint(
            "check the input: is the device present, or is the sender streaming to this address?",
        ),
        other => CliError::failed(other.to_string()),
    })?;
    let reason = match outcome.reason {
        EndReason::Stopped => "stopped",
        EndReason::InputEnded => "input ended",
        EndReason::Error => "error",
        EndReason::SenderChanged => "sender changed",
    };
    if seal.json {
        print(&format!(
            "{}\n",
            serde_json::json!({
                "event": "ended",
                "recording": outcome.id.to_string(),
                "segments": outcome.segments,
                "ended": reason,
                "message": outcome.message,
                "sealed_bytes": sealed_bytes,
            })
        ));
    } else {
        print(&format!(
            "Recording {} saved: {} segments, {} sealed, ended: {reason}{}.\n",
            outcome.id,
            outcome.segments,
            size(sealed_bytes),
            outcome.message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default()
        ));
    }
    let inconsistent = match upload {
        Some(r) => crate::live_upload::report(&vault, &outcome.id, r, seal.json),
        None => None,
    };
    if outcome.reason == EndReason::Error {
        return Err(CliError::failed(format!(
            "the recording ended with an error: {}",
            outcome.message.unwrap_or_default()
        ))
        .hint("every segment saved before the error is valid and kept"));
    }
    if let Some(why) = inconsistent {
        return Err(CliError::failed(format!("{}: {why}", custody_client::log_check::CODE)).hint(
            "the server's custody log does not extend the one this device saw before; nothing more is sent to it. \
             Keep this device's vault as it is and tell the legal team (`custody status` shows the evidence)",
        ));
    }
    Ok(())
}

/// Why a file to import yielded nothing, in words: FFmpeg's "Invalid data found when
/// processing input" says neither that the file is not media at all nor that it is an
/// MP4/MOV whose index was never written.
fn unreadable_file(path: &Path, why: &str) -> CliError {
    let name = path.display();
    let unopenable = why.starts_with("cannot open") || why.starts_with("cannot identify");
    let mut head = [0u8; 8];
    let read = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    let message = if !unopenable && why.contains("no video or audio stream") {
        format!("{name} is not a video (no media streams found)")
    } else if !unopenable {
        format!("nothing was imported from {name}: {why}")
    } else if read == 8 && &head[4..8] == b"ftyp" {
        // FFmpeg's own words ("moov atom not found") are kept off the terminal; what they
        // mean is said here.
        let what = custody_capture::explain(&custody_capture::ffmpeg_messages())
            .unwrap_or("an MP4/MOV file without a readable index (its moov box)");
        format!(
            "{name} is damaged: {what}, as a recording that was never finished or a truncated \
             copy leaves it; nothing in it can be read"
        )
    } else {
        format!("{name} is not a video (no media streams found)")
    };
    CliError::cannot(message).hint("import the phone's original file, copied whole")
}

/// An input that waits for a sender (a phone) to connect to this machine: SRT in listener
/// mode, RTMP/RTSP/TCP with `listen`, or UDP (which always receives on a local port).
#[derive(Debug)]
pub(crate) struct Listener {
    /// `srt`, `rtmp`, `rtsp`, `tcp` or `udp`.
    scheme: String,
    /// The address it is bound to, when one (`None`: every address of this machine).
    bound: Option<String>,
    /// Which families "every address" covers: a bind to 0.0.0.0 takes no IPv6 sender.
    ipv6: bool,
    port: u16,
    /// The path the sender must name (RTMP's `/live/…`), without the query.
    path: String,
}

impl Listener {
    /// The listener `input` (with `-o` options) opens, if it is one.
    pub(crate) fn of(input: &str, options: &[(String, String)]) -> Option<Listener> {
        let (scheme, rest) = input.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        // SRT, TCP and UDP read their options from the URL's query too; RTMP and RTSP only
        // from the input options (`-o listen=1`): in their URL, `?listen=1` makes a caller.
        let mut params: Vec<(String, String)> = match scheme.as_str() {
            "srt" | "tcp" | "udp" => query
                .split('&')
                .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
                .collect(),
            _ => Vec::new(),
        };
        params.extend(options.iter().cloned());
        let param = |k: &str| params.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let listens = match scheme.as_str() {
            "srt" => param("mode") == Some("listener"),
            "rtmp" | "tcp" => param("listen").is_some_and(|v| v != "0"),
            "rtsp" => param("rtsp_flags").is_some_and(|v| v.split('+').any(|f| f == "listen")),
            "udp" => true,
            _ => false,
        };
        if !listens {
            return None;
        }
        let (authority, path) = match before_query.find('/') {
            Some(i) => (&before_query[..i], &before_query[i..]),
            None => (before_query, ""),
        };
        // udp://@:1234 (FFmpeg's "receive on every address") and user@host.
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, p) = v6.split_once(']')?;
            (h, p.strip_prefix(':').unwrap_or(""))
        } else {
            hostport.rsplit_once(':').unwrap_or((hostport, ""))
        };
        let port = match (port, scheme.as_str()) {
            ("", "rtmp") => 1935,
            ("", "rtsp") => 554,
            (p, _) => p.parse().ok()?,
        };
        let udp_local = if scheme == "udp" { param("localaddr") } else { None };
        let host = udp_local.unwrap_or(if scheme == "udp" { "" } else { host });
        let (bound, ipv6) = match host {
            "" | "::" => (None, true),
            "0.0.0.0" => (None, false),
            h => (Some(h.to_string()), h.contains(':')),
        };
        Some(Listener { scheme, bound, ipv6, port, path: path.to_string() })
    }

    /// The addresses a sender can reach this listener at: the one it is bound to, or every
    /// non-loopback address of this machine's interfaces that are up (IPv4 first).
    fn addresses(&self) -> Vec<String> {
        match &self.bound {
            Some(a) => vec![a.clone()],
            None => lan_addresses(self.ipv6).into_iter().map(|a| a.to_string()).collect(),
        }
    }

    /// The URL to type into the sending app for `addr`.
    fn url(&self, addr: &str) -> String {
        let host = if addr.contains(':') { format!("[{addr}]") } else { addr.to_string() };
        format!("{}://{host}:{}{}", self.scheme, self.port, self.path)
    }

    /// Says where the phone should send to: a `waiting` event with `--json`, else the
    /// addresses, the URLs and a QR code of the first on stderr.
    fn announce(&self, json: bool) {
        let addresses = self.addresses();
        let urls: Vec<String> = addresses.iter().map(|a| self.url(a)).collect();
        if json {
            print(&format!(
                "{}\n",
                serde_json::json!({
                    "event": "waiting", "protocol": self.scheme, "port": self.port,
                    "addresses": addresses, "urls": urls,
                })
            ));
            return;
        }
        let mut out = format!(
            "Waiting for the phone: {} on port {}.\n",
            self.scheme.to_ascii_uppercase(),
            self.port
        );
        if urls.is_empty() {
            out.push_str(
                "This computer has no network address a phone can reach: connect it to the \
                 phone's Wi-Fi or hotspot.\n",
            );
        } else {
            out.push_str("In the phone's streaming app, send to:\n");
            for u in &urls {
                out.push_str(&format!("  {u}\n"));
            }
            let colour = std::io::stderr().is_terminal();
            if let Ok(qr) = crate::qr::render(&urls[0], colour) {
                out.push_str(&format!("or scan this code for {}:\n{qr}", urls[0]));
            }
        }
        out.push_str("Ctrl-C stops.\n");
        use std::io::Write;
        let _ = std::io::stderr().write_all(out.as_bytes());
    }
}

/// This machine's addresses a phone on the same network can send to: IPv4 and (with
/// `ipv6`) global or unique-local IPv6 addresses of interfaces that are up, not loopback;
/// IPv6 link-local addresses are left out, as a URL cannot name their interface.
fn lan_addresses(ipv6: bool) -> Vec<std::net::IpAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return found;
    }
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        let flags = ifa.ifa_flags;
        if ifa.ifa_addr.is_null()
            || flags & libc::IFF_UP as u32 == 0
            || flags & libc::IFF_LOOPBACK as u32 != 0
        {
            continue;
        }
        // SAFETY: the family says which sockaddr this is.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        let ip = if family == libc::AF_INET {
            // SAFETY: an AF_INET address is a sockaddr_in.
            let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
            IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
        } else if family == libc::AF_INET6 && ipv6 {
            // SAFETY: an AF_INET6 address is a sockaddr_in6.
            let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
            let a = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            if (a.segments()[0] & 0xffc0) == 0xfe80 {
                continue;
            }
            IpAddr::V6(a)
        } else {
            continue;
        };
        if !ip.is_loopback() && !ip.is_unspecified() && !found.contains(&ip) {
            found.push(ip);
        }
    }
    // SAFETY: the list from getifaddrs above, freed once.
    unsafe { libc::freeifaddrs(list) };
    found.sort_by_key(|a| a.is_ipv6());
    found
}

/// Media time as "0:14" (minutes and seconds), as the terminal says where a sender was lost.
fn clock(us: i64) -> String {
    let s = us.max(0) / 1_000_000;
    format!("{}:{:02}", s / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::Listener;

    fn urls(input: &str, options: &[(&str, &str)]) -> Option<(Option<String>, bool, String)> {
        let o: Vec<(String, String)> =
            options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Listener::of(input, &o).map(|l| (l.bound.clone(), l.ipv6, l.url("192.0.2.7")))
    }

    #[test]
    fn listeners_are_told_from_callers_and_their_urls_are_what_a_phone_types() {
        assert_eq!(
            urls("srt://0.0.0.0:9000?mode=listener&latency=200000", &[]),
            Some((None, false, "srt://192.0.2.7:9000".into()))
        );
        assert_eq!(urls("srt://phone.example:9000", &[]), None);
        assert_eq!(urls("srt://:9000", &[("mode", "listener")]).map(|u| u.1), Some(true));
        assert_eq!(
            urls("rtmp://0.0.0.0/live/phone", &[("listen", "1")]),
            Some((None, false, "rtmp://192.0.2.7:1935/live/phone".into()))
        );
        assert_eq!(urls("rtmp://0.0.0.0/live/phone?listen=1", &[]), None);
        assert_eq!(urls("rtmp://server.example/live/x", &[]), None);
        assert_eq!(
            urls("tcp://127.0.0.1:5000?listen=1", &[]).map(|u| u.0),
            Some(Some("127.0.0.1".into()))
        );
        assert_eq!(urls("udp://@:1234", &[]), Some((None, true, "udp://192.0.2.7:1234".into())));
        assert_eq!(
            Listener::of("srt://[::1]:9000?mode=listener", &[]).map(|l| l.url("::1")),
            Some("srt://[::1]:9000".into())
        );
    }
}

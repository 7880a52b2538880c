//! `custody record` from a listener, while it waits for the phone: it says where to send
//! (this machine's addresses, the port, the URL, a QR code of it; a `waiting` event with
//! `--json`), and Ctrl-C before the phone connected is a clean exit. FFmpeg's own log lines
//! never reach the terminal: custody says what they mean.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::{decode_qr, Env};

/// How long the listener may take to say it is waiting, on a busy machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// A `custody record` of `input`, its stdout and stderr read line by line.
struct Waiting {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    seen_err: Vec<String>,
}

fn lines(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Waiting {
    fn start(env: &Env, input: &str, options: &[&str], json: bool) -> Waiting {
        let mut args = vec!["record", "--no-upload", "-r", &env.recipient, "--input", input];
        for o in options {
            args.extend(["-o", o]);
        }
        if json {
            args.push("--json");
        }
        let mut child =
            env.cmd().args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Waiting { child, stdout, stderr, seen_err: Vec::new() }
    }

    /// The stdout line `want` accepts (within PATIENCE).
    fn stdout_until(&mut self, want: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + PATIENCE;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.stdout.recv_timeout(left) {
                Ok(line) if want(&line) => return line,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        self.stop_now();
        panic!("not on stdout; stderr: {:?}", self.stderr.try_iter().collect::<Vec<_>>());
    }

    /// Stderr up to and including the line `last` accepts (within PATIENCE).
    fn stderr_until(&mut self, last: impl Fn(&str) -> bool) -> Vec<String> {
        let end = Instant::now() + PATIENCE;
        let mut got = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    let done = last(&line);
                    got.push(line);
                    if done {
                        self.seen_err.extend(got.iter().cloned());
                        return got;
                    }
                }
                Err(_) => break,
            }
        }
        self.stop_now();
        panic!("not on stderr: {got:?}");
    }

    fn stop_now(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Ctrl-C (SIGINT), then the exit status and everything it wrote to stderr.
    fn interrupt(mut self) -> (std::process::ExitStatus, String) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: a signal to our own child, still running (it has not been waited for).
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        let end = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > end {
                self.stop_now();
                panic!("still running {PATIENCE:?} after Ctrl-C");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = self.seen_err.join("\n");
        // The reader thread ends at EOF, which has come: the process exited.
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(10)) {
            err.push('\n');
            err.push_str(&line);
        }
        (status, err)
    }
}

/// A port nothing listens on now (UDP for SRT, TCP for RTMP).
fn free_port(udp: bool) -> u16 {
    if udp {
        UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    } else {
        TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }
}

/// This machine's IPv4 addresses of interfaces that are up, but loopback: read here with
/// getifaddrs, independently of the command.
fn lan_ipv4() -> Vec<Ipv4Addr> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: the list is walked before freeifaddrs frees it.
    unsafe {
        assert_eq!(libc::getifaddrs(&mut list), 0);
        let mut cur = list;
        while !cur.is_null() {
            let ifa = &*cur;
            cur = ifa.ifa_next;
            if ifa.ifa_addr.is_null()
                || i32::from((*ifa.ifa_addr).sa_family) != libc::AF_INET
                || ifa.ifa_flags & libc::IFF_UP as u32 == 0
            {
                continue;
            }
            let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
            let a = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            if !a.is_loopback() && !found.contains(&a) {
                found.push(a);
            }
        }
        libc::freeifaddrs(list);
    }
    found
}

fn assert_clean_stop(status: std::process::ExitStatus, err: &str) {
    assert!(status.success(), "Ctrl-C while waiting: {status:?}\n{err}");
    assert!(err.contains("stopped before the phone connected: nothing was recorded"), "{err}");
    assert!(!err.contains("is the device present"), "{err}");
    assert!(!err.contains("error"), "{err}");
}

/// Bound to one address, the `waiting` event names that one only; Ctrl-C then exits 0.
#[test]
fn a_listener_bound_to_one_address_names_it_and_ctrl_c_is_a_clean_exit() {
    let env = Env::new();
    let port = free_port(true);
    let mut rec = Waiting::start(&env, &format!("srt://127.0.0.1:{port}?mode=listener"), &[], true);
    let line = rec.stdout_until(|l| l.contains("\"waiting\""));
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["event"], "waiting");
    assert_eq!(event["port"], port);
    assert_eq!(event["addresses"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(event["urls"], serde_json::json!([format!("srt://127.0.0.1:{port}")]));
    let (status, err) = rec.interrupt();
    assert_clean_stop(status, &err);
}

/// On every address: each LAN address with the URL to type, a QR code of the first URL,
/// no loopback; the path RTMP needs is in the URL.
#[test]
fn a_listener_on_every_address_lists_each_url_and_a_qr_code_of_the_first() {
    let env = Env::new();
    let port = free_port(false);
    let input = format!("rtmp://0.0.0.0:{port}/live/phone");
    let mut rec = Waiting::start(&env, &input, &["listen=1"], false);
    let err = rec.stderr_until(|l| l.starts_with("Ctrl-C stops"));
    let urls: Vec<String> = err
        .iter()
        .filter_map(|l| l.trim().strip_prefix("rtmp://").map(|u| format!("rtmp://{u}")))
        .collect();
    let want: Vec<String> =
        lan_ipv4().iter().map(|a| format!("rtmp://{a}:{port}/live/phone")).collect();
    assert_eq!(urls, want, "{err:?}");
    assert!(!err.iter().any(|l| l.contains("127.0.0.1")), "{err:?}");
    if want.is_empty() {
        assert!(err.iter().any(|l| l.contains("no network address")), "{err:?}");
    } else {
        let qr: Vec<String> = err
            .iter()
            .skip_while(|l| !l.starts_with("or scan this code"))
            .skip(1)
            .take_while(|l| !l.starts_with("Ctrl-C"))
            .cloned()
            .collect();
        assert_eq!(decode_qr(&qr), want[0]);
    }
    let (status, err) = rec.interrupt();
    assert_clean_stop(status, &err);
}

/// An MP4 whose index (moov) is missing: FFmpeg's "[mov,mp4,… @ 0x…] moov atom not found"
/// stays off stderr, custody's sentence is there; CUSTODY_FFMPEG_LOG=1 or --verbose lets it
/// through.
#[test]
fn ffmpeg_log_lines_stay_off_the_terminal() {
    let env = Env::new();
    let clip = env.dir.path().join("clip.mp4");
    common::make_clip(&clip, 2, 1);
    let bytes = std::fs::read(&clip).unwrap();
    let moov = bytes.windows(4).position(|w| w == b"moov").expect("a moov box") - 4;
    let mdat = bytes.windows(4).position(|w| w == b"mdat").expect("an mdat box") - 4;
    // The file as a recording that was never finished leaves it: no index.
    let cut = env.dir.path().join("unfinished.mp4");
    std::fs::write(&cut, &bytes[..moov.max(mdat + 8)]).unwrap();
    let args = ["import", "--no-upload", "-r", &env.recipient, cut.to_str().unwrap()];

    let out = env.run(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("@ 0x"), "FFmpeg's own line on stderr: {err}");
    assert!(!err.contains("moov atom not found"), "{err}");
    assert!(err.contains("is damaged: the MP4 index (moov box) is missing"), "{err}");

    let out = env.cmd().args(args).env("CUSTODY_FFMPEG_LOG", "1").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("moov atom not found"), "let through for debugging: {err}");
    let out = env.cmd().args(args).arg("--verbose").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("moov atom not found"), "--verbose: {err}");
}

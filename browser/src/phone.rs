//! The capture page as an observer uses it: open the enrollment link, tap "Allow camera
//! and connect", tap Record, tap Stop, take a photo; and what the page says about it.
//!
//! Everything here goes through the page's own controls (taps are real input events) and
//! reads the page's state from what it shows and from `window.custodyStats`, the
//! read-only hook the page keeps for tests and benchmarks (web/src/app/main.js): the
//! capture's statistics (`current`, `recordings`, `photos`, `stops`) and `status()`, the
//! device's status (recordings with segments sealed and receipted, the outbox, online,
//! the last error, the quota).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Chromium, Error, Tab};

/// Everything the page exposes, as one JSON value: `custodyStats` with `status()` called.
const STATS: &str = "(() => { const s = window.custodyStats; if (!s) return null;
    return JSON.parse(JSON.stringify({current: s.current, recordings: s.recordings,
      photos: s.photos, stops: s.stops, status: s.status()})); })()";

/// A phone: one page of the capture page in the browser, and where its screenshots go.
pub struct Phone {
    /// The page.
    pub tab: Tab,
    /// The prefix of this phone's screenshot names (the test's name).
    pub name: String,
    shots: std::sync::atomic::AtomicU32,
}

impl Phone {
    /// Opens `url` (the enrollment link, or `/capture/`) in a new page of `chromium`, in
    /// the on-disk profile, or (`isolated`) in a browser context of its own.
    /// `origin` is the server's (`https://127.0.0.1:PORT`): the page must be built into it
    /// ([`Error::PageMissing`] says how otherwise).
    pub fn open(
        chromium: &Chromium,
        origin: &str,
        url: &str,
        name: &str,
        isolated: bool,
    ) -> Result<Phone, Error> {
        let tab = if isolated { chromium.open_isolated(url)? } else { chromium.open(url)? };
        crate::server::check_page(&tab, origin)?;
        let phone = Phone { tab, name: name.to_string(), shots: Default::default() };
        phone.wait_booted()?;
        Ok(phone)
    }

    /// Waits until the page has opened its storage and shows a screen other than "loading".
    pub fn wait_booted(&self) -> Result<(), Error> {
        self.tab
            .wait_for(
                "!!window.custodyStats && document.getElementById('screen-loading')?.hidden === true",
                "the capture page to open its storage and show a screen",
                Duration::from_secs(30),
            )
            .map(|_| ())
    }

    /// Saves a screenshot as `target/browser-screens/<name>-<n>-<step>.png`.
    pub fn shot(&self, step: &str) -> Result<PathBuf, Error> {
        let n = self.shots.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let path = crate::screens_dir().join(format!("{}-{n:02}-{step}.png", self.name));
        self.tab.screenshot(&path)?;
        Ok(path)
    }

    /// Which screen is shown: `enroll`, `record` or `loading`.
    pub fn screen(&self) -> Result<String, Error> {
        let v = self.tab.eval(
            "['loading', 'enroll', 'record'].find(s => !document.getElementById('screen-' + s).hidden) ?? ''",
            Duration::from_secs(10),
        )?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The status line at the bottom of the page (errors, "Connected", "Photo sealed").
    pub fn status_line(&self) -> Result<String, Error> {
        let v = self.tab.eval(
            "(() => { const s = document.getElementById('status'); return s.hidden ? '' : s.textContent; })()",
            Duration::from_secs(10),
        )?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// Taps "Allow camera and connect" on the enrollment screen and waits for the record
    /// screen. An enrollment the page refuses is [`Error::Unexpected`] with the status
    /// line it shows.
    pub fn enroll(&self) -> Result<(), Error> {
        if self.screen()? != "enroll" {
            return Err(Error::Unexpected(format!(
                "the page shows the {} screen, not enrollment",
                self.screen()?
            )));
        }
        self.tab.tap("#enroll-go")?;
        let started = Instant::now();
        loop {
            if self.screen()? == "record" {
                return Ok(());
            }
            let busy = self
                .tab
                .eval("document.getElementById('enroll-go').disabled", Duration::from_secs(10))?;
            let line = self.status_line()?;
            if busy == false && !line.is_empty() && started.elapsed() > Duration::from_millis(300) {
                return Err(Error::Unexpected(format!("enrollment refused: {line}")));
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(Error::Timeout {
                    what: "the record screen after enrolling".into(),
                    seconds: 60.0,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the page shows that it is recording (the red badge with the elapsed time).
    pub fn is_recording(&self) -> Result<bool, Error> {
        let v = self.tab.eval(
            "document.getElementById('rec-badge').hidden === false",
            Duration::from_secs(10),
        )?;
        Ok(v == true)
    }

    /// Taps Record and waits until the new recording's header is sealed and saved (on the
    /// recorder's first data, with the tracks it describes); returns the recording's id.
    pub fn start_recording(&self) -> Result<String, Error> {
        let before = self.tab.eval(
            "JSON.stringify(window.custodyStats.status().recordings.map(r => r.id))",
            Duration::from_secs(10),
        )?;
        let before = before.as_str().unwrap_or("[]").to_string();
        self.tab.tap("#record")?;
        let id = self.tab.wait_for(
            &format!(
                "(() => {{ const old = {before}; const s = window.custodyStats;
                   const r = s.status().recordings.find(r => !old.includes(r.id));
                   return r && s.current && s.current.firstChunkAtMs ? r.id : null; }})()"
            ),
            "the recording to start (first data from the recorder, header sealed)",
            Duration::from_secs(30),
        )?;
        Ok(id.as_str().unwrap_or_default().to_string())
    }

    /// The id of the recording the page is making (or made last), from its segments.
    pub fn current_recording_id(&self) -> Result<Option<String>, Error> {
        let v = self.tab.eval(
            "(() => { const c = window.custodyStats.current; const s = c && c.segments[0]; return s ? s.recordingId : null; })()",
            Duration::from_secs(10),
        )?;
        Ok(v.as_str().map(String::from))
    }

    /// Waits until the current recording has sealed at least `n` segments.
    pub fn wait_segments(&self, n: u64, timeout: Duration) -> Result<(), Error> {
        self.tab
            .wait_for(
                &format!(
                    "(() => {{ const c = window.custodyStats.current; return !!c && c.segments.length >= {n}; }})()"
                ),
                &format!("{n} sealed segments"),
                timeout,
            )
            .map(|_| ())
    }

    /// Taps Stop and waits until the recording is ended (its end record sealed).
    pub fn stop_recording(&self, id: &str) -> Result<(), Error> {
        if !self.is_recording()? {
            return Err(Error::Unexpected("the page is not recording".into()));
        }
        self.tab.tap("#record")?;
        self.wait_ended(id, Duration::from_secs(30))
    }

    /// Waits until the device's status says recording `id` is ended.
    pub fn wait_ended(&self, id: &str, timeout: Duration) -> Result<(), Error> {
        let id = serde_json::to_string(id).unwrap_or_default();
        self.tab
            .wait_for(
                &format!(
                    "(() => {{ const r = window.custodyStats.status().recordings.find(r => r.id === {id}); return !!r && r.ended; }})()"
                ),
                "the recording's end record",
                timeout,
            )
            .map(|_| ())
    }

    /// Waits until the outbox is empty: every record of every recording receipted.
    pub fn wait_drained(&self, timeout: Duration) -> Result<Value, Error> {
        self.tab.wait_for(
            "(() => { const st = window.custodyStats.status(); if (!st || st.outbox.count !== 0) return null;
               return st.recordings.every(r => r.receipted === r.segments) ? st : null; })()",
            "the outbox to drain (every record receipted)",
            timeout,
        )
    }

    /// Taps "Photo of a paper" and waits until the photo is sealed; returns its recording id.
    pub fn take_photo(&self) -> Result<String, Error> {
        let before = self
            .tab
            .eval("window.custodyStats.photos.length", Duration::from_secs(10))?
            .as_u64()
            .unwrap_or(0);
        self.tab.tap("#photo")?;
        let id = self.tab.wait_for(
            &format!(
                "(() => {{ const p = window.custodyStats.photos; return p.length > {before} ? p[p.length - 1].id : null; }})()"
            ),
            "the photo to be sealed",
            Duration::from_secs(30),
        )?;
        Ok(id.as_str().unwrap_or_default().to_string())
    }

    /// Keeps a copy of everything the page's MediaRecorders hand it, in the page's memory
    /// (never on disk), so a test can compare the sealed and exported media with what the
    /// browser really recorded: a frame the recorder produced that the export lacks was
    /// lost by the page. Install before tapping Record.
    pub fn tap_recorder(&self) -> Result<(), Error> {
        self.tab
            .eval(
                "(() => { if (window.__custodyTap) return true;
                   const Orig = window.MediaRecorder; const streams = [];
                   window.MediaRecorder = class extends Orig {
                     constructor(stream, options) {
                       super(stream, options); const chunks = []; streams.push(chunks);
                       this.addEventListener('dataavailable', (e) => {
                         const i = chunks.length++;
                         e.data.arrayBuffer().then((b) => { chunks[i] = new Uint8Array(b); });
                       });
                     }
                   };
                   window.__custodyTap = streams; return true; })()",
                Duration::from_secs(10),
            )
            .map(|_| ())
    }

    /// What each MediaRecorder produced since [`Phone::tap_recorder`], one byte string per
    /// recorder (each a complete WebM or MP4 stream), in the order they started.
    pub fn recorder_output(&self) -> Result<Vec<Vec<u8>>, Error> {
        use base64::Engine as _;
        let v = self.tab.eval(
            "(async () => { await new Promise((r) => setTimeout(r, 200));
               return (window.__custodyTap || []).map((chunks) => {
                 let s = ''; for (const c of chunks) { if (!c) continue;
                   for (let i = 0; i < c.length; i += 0x8000) s += String.fromCharCode.apply(null, c.subarray(i, i + 0x8000)); }
                 return btoa(s); }); })()",
            Duration::from_secs(60),
        )?;
        v.as_array()
            .ok_or_else(|| Error::Unexpected(format!("the recorder tap answered {v}")))?
            .iter()
            .map(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.as_str().unwrap_or_default())
                    .map_err(|e| Error::Unexpected(format!("the recorder tap's bytes: {e}")))
            })
            .collect()
    }

    /// `custodyStats` as JSON, with the device's status.
    pub fn stats(&self) -> Result<Value, Error> {
        self.tab.eval(STATS, Duration::from_secs(10))
    }

    /// The device's status (`custodyStats.status()`).
    pub fn status(&self) -> Result<Value, Error> {
        Ok(self.stats()?["status"].clone())
    }

    /// What the page logged, for a failure message.
    pub fn console(&self) -> String {
        self.tab.console().join("\n")
    }
}

//! One page of the browser, attached over DevTools, and what the tests do to it.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::cdp::{self, Shared};
use crate::chromium::CALL_TIMEOUT;
use crate::Error;

/// How often a condition on the page is polled.
const POLL: Duration = Duration::from_millis(100);

/// A page (a DevTools target) and its flat session. Closed when dropped.
pub struct Tab {
    conn: Shared,
    target_id: String,
    session_id: String,
    context_id: Option<String>,
}

fn field(v: &Value, name: &str, what: &str) -> Result<String, Error> {
    v[name]
        .as_str()
        .map(String::from)
        .ok_or_else(|| Error::Unexpected(format!("{what} answered {v}")))
}

impl Tab {
    pub(crate) fn open(conn: &Shared, url: &str, context_id: Option<String>) -> Result<Tab, Error> {
        // A window of its own: a second tab in one window would hide the first (its
        // `visibilityState` turns "hidden"), and the capture page stops recording then.
        let mut params = json!({ "url": "about:blank", "newWindow": true });
        if let Some(c) = &context_id {
            params["browserContextId"] = json!(c);
        }
        let t = cdp::call(conn, None, "Target.createTarget", params, CALL_TIMEOUT)?;
        let target_id = field(&t, "targetId", "Target.createTarget")?;
        let a = cdp::call(
            conn,
            None,
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
            CALL_TIMEOUT,
        )?;
        let session_id = field(&a, "sessionId", "Target.attachToTarget")?;
        let tab = Tab { conn: conn.clone(), target_id, session_id, context_id };
        for domain in ["Page.enable", "Runtime.enable", "Log.enable", "Network.enable"] {
            tab.call(domain, json!({}))?;
        }
        // Phone-sized, as the page is laid out for one hand.
        tab.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 412, "height": 915, "deviceScaleFactor": 1, "mobile": true }),
        )?;
        if url != "about:blank" {
            tab.navigate(url)?;
        }
        Ok(tab)
    }

    /// A DevTools command on this page.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, Error> {
        cdp::call(&self.conn, Some(&self.session_id), method, params, CALL_TIMEOUT)
    }

    /// The page's DevTools target id.
    pub fn target_id(&self) -> &str {
        &self.target_id
    }

    /// Loads `url` and waits (bounded) for its load event. A page that cannot be loaded
    /// (refused TLS, no server) is an error naming Chromium's reason.
    pub fn navigate(&self, url: &str) -> Result<(), Error> {
        cdp::lock(&self.conn).clear_events(Some(&self.session_id), "Page.loadEventFired");
        let r = self.call("Page.navigate", json!({ "url": url }))?;
        if let Some(err) = r.get("errorText").and_then(Value::as_str) {
            return Err(Error::Unexpected(format!("loading {url} failed: {err}")));
        }
        cdp::wait_event(
            &self.conn,
            Some(&self.session_id),
            "Page.loadEventFired",
            &|_| true,
            Duration::from_secs(30),
        )
        .map(|_| ())
    }

    /// Reloads the page (as a user pulling to refresh) and waits for its load event.
    pub fn reload(&self) -> Result<(), Error> {
        cdp::lock(&self.conn).clear_events(Some(&self.session_id), "Page.loadEventFired");
        self.call("Page.reload", json!({}))?;
        cdp::wait_event(
            &self.conn,
            Some(&self.session_id),
            "Page.loadEventFired",
            &|_| true,
            Duration::from_secs(30),
        )
        .map(|_| ())
    }

    /// Evaluates `expression` in the page, awaiting it if it is a promise, and returns its
    /// value as JSON. The evaluation counts as a user gesture (as a tap would), so
    /// permission-gated calls behave as they do for a real user. A throw is
    /// [`Error::Script`].
    pub fn eval(&self, expression: &str, timeout: Duration) -> Result<Value, Error> {
        let r = cdp::call(
            &self.conn,
            Some(&self.session_id),
            "Runtime.evaluate",
            json!({
                "expression": expression,
                "awaitPromise": true,
                "returnByValue": true,
                "userGesture": true,
            }),
            timeout,
        )?;
        if let Some(d) = r.get("exceptionDetails") {
            let message = d["exception"]["description"]
                .as_str()
                .or_else(|| d["text"].as_str())
                .unwrap_or("exception")
                .to_string();
            let expression: String = expression.chars().take(120).collect();
            return Err(Error::Script { expression, message });
        }
        Ok(r["result"].get("value").cloned().unwrap_or(Value::Null))
    }

    /// Evaluates `expression` every 100 ms until it is truthy (not null, false, 0 or "")
    /// and returns that value; [`Error::Timeout`] naming `what` after `timeout`.
    pub fn wait_for(
        &self,
        expression: &str,
        what: &str,
        timeout: Duration,
    ) -> Result<Value, Error> {
        let started = Instant::now();
        loop {
            let left = timeout.saturating_sub(started.elapsed());
            let v = self.eval(expression, left.max(Duration::from_secs(1)))?;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok(v);
            }
            if started.elapsed() >= timeout {
                return Err(Error::Timeout {
                    what: what.to_string(),
                    seconds: timeout.as_secs_f64(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Taps the first element matching the CSS `selector` with real input events (a
    /// mouse press and release at its centre), after scrolling it into view.
    pub fn tap(&self, selector: &str) -> Result<(), Error> {
        let sel = serde_json::to_string(selector).unwrap_or_default();
        let at = self.wait_for(
            &format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return null;
                   e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();
                   if (r.width === 0 || r.height === 0) return null;
                   return {{x: r.left + r.width / 2, y: r.top + r.height / 2}}; }})()"
            ),
            &format!("a visible element {selector}"),
            Duration::from_secs(10),
        )?;
        let (x, y) = (at["x"].as_f64().unwrap_or(0.0), at["y"].as_f64().unwrap_or(0.0));
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            )?;
        }
        Ok(())
    }

    /// The page's text (`document.body.innerText`), for asserting what a user reads.
    pub fn text(&self) -> Result<String, Error> {
        let v = self.eval("document.body ? document.body.innerText : ''", CALL_TIMEOUT)?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// Saves a PNG screenshot of the page at `path` (directories made as needed).
    pub fn screenshot(&self, path: &Path) -> Result<(), Error> {
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }))?;
        let data = r["data"].as_str().unwrap_or_default();
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| Error::Unexpected(format!("screenshot data: {e}")))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(Error::io(format!("creating {}", dir.display())))?;
        }
        std::fs::write(path, png).map_err(Error::io(format!("writing {}", path.display())))
    }

    /// Takes the page offline (every request fails at once, `navigator.onLine` false) or
    /// back online, through DevTools network emulation.
    pub fn set_offline(&self, offline: bool) -> Result<(), Error> {
        self.call(
            "Network.emulateNetworkConditions",
            json!({
                "offline": offline,
                "latency": 0,
                "downloadThroughput": -1,
                "uploadThroughput": -1,
            }),
        )
        .map(|_| ())
    }

    /// Freezes the page (page lifecycle `freeze`: no tasks run, as a phone does to a page
    /// in the background) or makes it active again (`resume`).
    pub fn set_frozen(&self, frozen: bool) -> Result<(), Error> {
        let state = if frozen { "frozen" } else { "active" };
        self.call("Page.setWebLifecycleState", json!({ "state": state })).map(|_| ())
    }

    /// Slows the page's CPU by `rate` (1 = no throttling; 4 = a slow phone).
    pub fn set_cpu_throttling(&self, rate: f64) -> Result<(), Error> {
        self.call("Emulation.setCPUThrottlingRate", json!({ "rate": rate })).map(|_| ())
    }

    /// Overrides the storage quota of `origin` (`https://host:port`) to `bytes`, or
    /// removes the override with None. Chromium enforces it while `storage.estimate()`
    /// may still report the real quota.
    pub fn override_quota(&self, origin: &str, bytes: Option<u64>) -> Result<(), Error> {
        let mut params = json!({ "origin": origin });
        if let Some(b) = bytes {
            params["quotaSize"] = json!(b);
        }
        self.call("Storage.overrideQuotaForOrigin", params).map(|_| ())
    }

    /// What the page logged so far (console, uncaught exceptions, CSP and network errors).
    pub fn console(&self) -> Vec<String> {
        cdp::lock(&self.conn).console(&self.session_id)
    }
}

impl Drop for Tab {
    fn drop(&mut self) {
        if cdp::lock(&self.conn).is_closed() {
            return;
        }
        let short = Duration::from_secs(5);
        let _ = cdp::call(
            &self.conn,
            None,
            "Target.closeTarget",
            json!({ "targetId": self.target_id }),
            short,
        );
        if let Some(c) = &self.context_id {
            let _ = cdp::call(
                &self.conn,
                None,
                "Target.disposeBrowserContext",
                json!({ "browserContextId": c }),
                short,
            );
        }
    }
}

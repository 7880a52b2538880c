//! The harness itself, against real Chromium and the real `custody serve`: the browser
//! trusts the server's TLS key (and nothing else), pages evaluate script and await
//! promises, screenshots are PNGs, and the DevTools controls the phone tests rely on
//! (offline, frozen, CPU throttling, a small quota, a browser killed outright) do what
//! they say, observed from inside the page.

use std::time::{Duration, Instant};

use custody_browser::{screens_dir, Chromium, LaunchOptions, Profile, Server, ServerOptions};

const T: Duration = Duration::from_secs(20);

#[test]
fn the_harness_drives_chromium_against_custody_serve_over_tls() {
    let server = Server::start(&ServerOptions::default()).unwrap();
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);

    // A browser that was not told the server's key refuses its self-signed certificate.
    let untrusting = Profile::new().unwrap();
    let chromium = Chromium::launch(&untrusting, &LaunchOptions::default()).unwrap();
    let tab = chromium.open("about:blank").unwrap();
    let err = tab.navigate(&format!("{}/v1/", server.url)).unwrap_err().to_string();
    assert!(err.contains("ERR_CERT"), "{err}");
    drop(tab);
    chromium.close().unwrap();

    let profile = Profile::new().unwrap();
    let options = LaunchOptions { trust_spki: vec![server.spki.clone()], ..Default::default() };
    let chromium = Chromium::launch(&profile, &options).unwrap();
    let tab = chromium.open(&format!("{}/v1/", server.url)).unwrap();
    // A secure context on the server's origin: what WebCrypto, IndexedDB and the camera need.
    let v = tab.eval("({secure: isSecureContext, origin: location.origin})", T).unwrap();
    assert_eq!(v["secure"], true, "{v}");
    assert_eq!(v["origin"], server.origin());
    // Promises are awaited; a throw is an error with the page's message.
    let v = tab.eval("new Promise(r => setTimeout(() => r(6 * 7), 50))", T).unwrap();
    assert_eq!(v, 42);
    let err = tab.eval("(() => { throw new Error('boom 17') })()", T).unwrap_err().to_string();
    assert!(err.contains("boom 17"), "{err}");
    tab.eval("console.log('hello from the page')", T).unwrap();
    let started = Instant::now();
    tab.wait_for("window.__late === 3", "a value set later", T).ok();
    tab.eval("setTimeout(() => { window.__late = 3 }, 300)", T).unwrap();
    tab.wait_for("window.__late === 3", "a value set later", T).unwrap();
    let err = tab.wait_for("false", "what never comes", Duration::from_millis(300)).unwrap_err();
    assert!(err.to_string().contains("what never comes"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20) + T);
    assert!(tab.console().iter().any(|l| l.contains("hello from the page")), "{:?}", tab.console());

    // The fake camera answers getUserMedia without a prompt.
    let v = tab
        .eval(
            "navigator.mediaDevices.getUserMedia({video: true, audio: true}).then(s => {
               const r = s.getTracks().map(t => t.kind).sort().join(','); s.getTracks().forEach(t => t.stop()); return r; })",
            T,
        )
        .unwrap();
    assert_eq!(v, "audio,video");

    // Screenshots are PNG files.
    let png = screens_dir().join("harness-v1.png");
    tab.screenshot(&png).unwrap();
    assert_eq!(&std::fs::read(&png).unwrap()[..8], b"\x89PNG\r\n\x1a\n");

    // Offline: the page sees it, and a request fails; back online it succeeds again.
    let probe = format!(
        "fetch('{}/v1/', {{cache: 'no-store'}}).then(r => r.status, e => 'failed')",
        server.url
    );
    tab.set_offline(true).unwrap();
    assert_eq!(tab.eval("navigator.onLine", T).unwrap(), false);
    assert_eq!(tab.eval(&probe, T).unwrap(), "failed");
    tab.set_offline(false).unwrap();
    assert_eq!(tab.eval("navigator.onLine", T).unwrap(), true);
    assert!(tab.eval(&probe, T).unwrap().is_u64());

    // Frozen: timers do not run until the page is active again, and the page is told.
    tab.eval(
        "window.__events = []; document.addEventListener('freeze', () => __events.push('freeze'));
         document.addEventListener('resume', () => __events.push('resume'));
         window.__ticks = 0; setInterval(() => { window.__ticks++ }, 50); true",
        T,
    )
    .unwrap();
    tab.wait_for("window.__ticks > 2", "timers running", T).unwrap();
    let before = tab.eval("window.__ticks", T).unwrap().as_u64().unwrap();
    tab.set_frozen(true).unwrap();
    let frozen_at = Instant::now();
    std::thread::sleep(Duration::from_millis(700));
    tab.set_frozen(false).unwrap();
    let v = tab.eval("({ticks: window.__ticks, events: window.__events})", T).unwrap();
    assert_eq!(v["events"], serde_json::json!(["freeze", "resume"]), "{v}");
    // 700 ms of 50 ms ticks would be 14 had the page run; frozen, it ran none (a tick or
    // two may land between the commands).
    let ticks_after = v["ticks"].as_u64().unwrap();
    assert!(ticks_after <= before + 5, "ticks went from {before} to {ticks_after} while frozen");
    let v = tab.eval("new Promise(r => setTimeout(() => r(window.__ticks), 200))", T).unwrap();
    assert!(v.as_u64().unwrap() > ticks_after, "timers run again once active");
    assert!(frozen_at.elapsed() >= Duration::from_millis(700));

    // CPU throttling slows the page's own work down.
    let spin = "(() => { const t = performance.now(); let x = 0; for (let i = 0; i < 2e8; i++) x += i; return performance.now() - t; })()";
    let fast = tab.eval(spin, T).unwrap().as_f64().unwrap();
    tab.set_cpu_throttling(4.0).unwrap();
    let slow = tab.eval(spin, T).unwrap().as_f64().unwrap();
    tab.set_cpu_throttling(1.0).unwrap();
    assert!(slow > fast * 1.8, "throttled {slow} ms vs {fast} ms");

    // A small quota is enforced: writing past it into IndexedDB fails with QuotaExceededError.
    // (Random bytes: IndexedDB compresses what it stores, so a pattern would fit.)
    tab.override_quota(server.origin(), Some(1 << 20)).unwrap();
    let write = "new Promise((resolve) => {
        const open = indexedDB.open('harness-quota', 1);
        open.onupgradeneeded = () => open.result.createObjectStore('s');
        open.onsuccess = () => {
          const tx = open.result.transaction('s', 'readwrite');
          for (let k = 0; k < 32; k++) tx.objectStore('s').put(crypto.getRandomValues(new Uint8Array(65536)), 'big' + k);
          tx.oncomplete = () => resolve('stored');
          tx.onabort = () => resolve(tx.error ? tx.error.name : 'aborted');
        };
        open.onerror = () => resolve(open.error.name);
      })";
    assert_eq!(tab.eval(write, T).unwrap(), "QuotaExceededError");
    tab.override_quota(server.origin(), None).unwrap();
    assert_eq!(tab.eval(write, T).unwrap(), "stored");

    // Isolated contexts do not share storage with the profile.
    let other = chromium.open_isolated(&format!("{}/v1/", server.url)).unwrap();
    let names = "indexedDB.databases().then(d => d.map(x => x.name))";
    assert_eq!(tab.eval(names, T).unwrap(), serde_json::json!(["harness-quota"]));
    assert_eq!(other.eval(names, T).unwrap(), serde_json::json!([]));
    drop(other);

    // Killed outright, then reopened on the same profile: what IndexedDB committed is there.
    let cpu = chromium.cpu_time();
    assert!(cpu > Duration::ZERO, "the browser's processes used no CPU?");
    let pid = chromium.pid().unwrap();
    drop(tab);
    chromium.kill().unwrap();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "chromium {pid} survived");
    let chromium = Chromium::launch(&profile, &options).unwrap();
    let tab = chromium.open(&format!("{}/v1/", server.url)).unwrap();
    assert_eq!(tab.eval(names, T).unwrap(), serde_json::json!(["harness-quota"]));
    drop(tab);
    chromium.close().unwrap();
}

#[test]
fn the_spki_hash_is_the_one_openssl_computes() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let cert = dir.path().join("c.der");
    let ok = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"])
        .args(["-subj", "/CN=127.0.0.1", "-days", "1", "-outform", "DER", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let der = std::fs::read(&cert).unwrap();
    let ours = custody_browser::spki::spki_sha256_base64(&der).unwrap();
    let script = format!(
        "openssl x509 -inform DER -in {} -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | base64",
        cert.display()
    );
    let out = std::process::Command::new("sh").args(["-c", &script]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), ours);
    assert!(custody_browser::spki::spki_sha256_base64(&der[..der.len() / 2]).is_err());
}

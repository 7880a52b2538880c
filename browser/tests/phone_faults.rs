//! The phone page's outbox through network faults (issue 16, section 2): the page records
//! in real Chromium while the fault proxy (client/tests/common/fault_proxy.rs, the one the
//! CLI's uploader tests and `cargo xtask bench faults` use) stands between it and the real
//! `custody serve`, and by turns resets every connection, drops (a black hole: bytes lost,
//! nothing answered or closed), stalls (nothing moves) and answers 5xx itself. Afterwards
//! every segment the page sealed is receipted and stored on the server exactly once, the
//! outbox is empty, and the lawyer's bundle verifies intact and complete.
//!
//! The page is served by `custody serve --insecure-http` THROUGH the proxy, so the page's
//! origin is the proxy's `http://127.0.0.1:PORT`: Chromium counts loopback as a secure
//! context, so WebCrypto, IndexedDB and the camera work exactly as over TLS, and every
//! request of the page (enrollment included) crosses the proxy. What TLS adds (a phone
//! pinning the certificate) is not what this measures; the lawyer's CLI reaches the server
//! directly.
//!
//! Speed is not asserted here (`cargo xtask bench phone-faults` measures it); what is
//! asserted is that nothing is lost or duplicated, and that every pattern bit live
//! traffic (the proxy's own counts), so that a run where a fault hit nothing cannot pass
//! for one that survived it.

#[path = "../../client/tests/common/fault_proxy.rs"]
mod fault_proxy;

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{ok, DRAIN};
use custody_browser::{Chromium, LaunchOptions, Phone, Profile, Server, ServerOptions};
use custody_format::record::Record;
use fault_proxy::{Counts, Fault, FaultProxy};

/// The longest a fault is held: until a segment sealed during it has met it, at most this.
const LONGEST: Duration = Duration::from_secs(4);
/// How long a fault is held after the first segment sealed under it.
const AFTER_SEAL: Duration = Duration::from_millis(1200);
/// The network whole between two faults.
const BETWEEN: Duration = Duration::from_millis(1500);

/// Segments the page has sealed in its current recording.
fn sealed(phone: &Phone) -> u64 {
    let v = ok(
        phone,
        phone.tab.eval(
            "(() => { const c = window.custodyStats.current; return c ? c.segments.length : 0; })()",
            DRAIN,
        ),
    );
    v.as_u64().unwrap_or(0)
}

/// Whether `fault` shows in the proxy's counts going from `before` to `after`.
fn bit(fault: Fault, before: &Counts, after: &Counts) -> bool {
    match fault {
        Fault::Reset => after.resets > before.resets,
        Fault::Drop => after.black_holed > before.black_holed,
        Fault::Stall => after.stalled > before.stalled,
        Fault::Error => after.errors > before.errors,
        Fault::Pass => true,
    }
}

#[test]
fn the_pages_outbox_loses_and_duplicates_nothing_through_resets_drops_stalls_and_5xx() {
    let t0 = Instant::now();
    let step =
        |what: &str| eprintln!("phone-faults: [{:5.1} s] {what}", t0.elapsed().as_secs_f64());
    let options = ServerOptions { insecure_http: true, ..Default::default() };
    let server = Server::start(&options).unwrap();
    let upstream = server.url.trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start(upstream).unwrap();
    let origin = format!("http://{}", proxy.addr);
    let profile = Profile::new().unwrap();
    let chromium = Chromium::launch(&profile, &LaunchOptions::default()).unwrap();
    step("server, proxy and browser started");

    // The legal team's link, naming the proxy's address (the server's key fingerprint and
    // the token are the server's).
    let link = server.enroll_link("phone-faults").unwrap();
    let link = link.replacen(&server.url, &origin, 1);
    assert!(link.starts_with(&origin), "{link}");
    let phone = Phone::open(&chromium, &origin, &link, "phone-faults", false).unwrap();
    ok(&phone, phone.enroll());
    let id = ok(&phone, phone.start_recording());
    ok(
        &phone,
        phone.tab.wait_for(
            "window.custodyStats.status().recordings.some(r => r.receipted >= 1)",
            "the first segment receipted with the network whole",
            DRAIN,
        ),
    );
    step("recording; first receipt stored");

    // Each pattern in turn, held until a segment sealed under it has met it (bounded), then
    // the network whole again for a while.
    let mut missed = Vec::new();
    for fault in [Fault::Reset, Fault::Drop, Fault::Stall, Fault::Error] {
        let before = proxy.counts();
        let sealed_before = sealed(&phone);
        let started = Instant::now();
        proxy.set(fault);
        let mut sealed_at = None;
        while started.elapsed() < LONGEST {
            if sealed_at.is_none() && sealed(&phone) > sealed_before {
                sealed_at = Some(Instant::now());
            }
            if sealed_at.is_some_and(|t| t.elapsed() >= AFTER_SEAL)
                && bit(fault, &before, &proxy.counts())
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        proxy.set(Fault::Pass);
        let after = proxy.counts();
        step(&format!("{} for {:.1} s: {after:?}", fault.name(), started.elapsed().as_secs_f64()));
        if !bit(fault, &before, &after) {
            missed.push(fault.name());
        }
        std::thread::sleep(BETWEEN);
    }
    assert!(missed.is_empty(), "these faults hit no traffic of the page: {missed:?}");

    ok(&phone, phone.stop_recording(&id));
    step("stopped");
    let drained = phone.wait_drained(DRAIN);
    let status = ok(&phone, phone.status());
    if let Err(e) = drained {
        let _ = phone.shot("not-drained");
        panic!("{e}: {status}\n--- the page logged:\n{}", phone.console());
    }
    step("drained");

    // The page's own count of what it sealed, against its outbox and the server's.
    let page_sealed = sealed(&phone);
    let rec = status["recordings"].as_array().unwrap().iter().find(|r| r["id"] == id.as_str());
    let rec = rec.unwrap_or_else(|| panic!("{id} not in {status}"));
    assert_eq!(rec["ended"], true, "{rec}");
    assert_eq!(
        rec["segments"].as_u64(),
        Some(page_sealed),
        "the outbox holds what was sealed: {rec}"
    );
    assert_eq!(rec["receipted"].as_u64(), Some(page_sealed), "every segment receipted: {rec}");
    assert_eq!(status["outbox"]["count"], 0, "{status}");
    assert!(page_sealed >= 6, "{page_sealed} segments sealed: {status}");

    let listed = server.recordings().unwrap();
    let row = listed.iter().find(|r| r["recording_id"] == id.as_str());
    let row = row.unwrap_or_else(|| panic!("{id} not listed: {listed:?}"));
    assert_eq!(row["state"], "complete", "{row}");
    assert_eq!(
        row["segments"].as_u64(),
        Some(page_sealed),
        "the server stored each segment once: {row}"
    );
    // The header, the segments and the end record, nothing more.
    assert_eq!(row["records"].as_u64(), Some(page_sealed + 2), "{row}");
    assert_eq!(row["gaps"], serde_json::json!([]), "{row}");

    // The lawyer's bundle: every segment once, in order, none the same as another, and
    // the verifier's verdict.
    let bundle = server.fetch(&id, "bundle").unwrap();
    let records = common::records(&bundle);
    assert_eq!(records.len() as u64, page_sealed + 2);
    let segments = common::segments(&records);
    let seqs: Vec<u64> = segments.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, (1..=page_sealed).collect::<Vec<_>>());
    let hashes: BTreeSet<_> = segments.iter().map(|s| s.plaintext_sha256).collect();
    assert_eq!(hashes.len() as u64, page_sealed, "a segment was sealed twice");
    assert!(matches!(records.last().map(|r| r.record()), Some(Record::End(_))));
    let (code, report) = server.verify(&bundle).unwrap();
    let (verdict, _) = common::verdict(&report);
    assert_eq!(verdict, "intact-complete", "{report}");
    assert_eq!(code, Some(0));
    step("the lawyer's bundle verifies intact and complete");
    drop(phone);
}

//! What a phone on the street does to the page, in real Chromium against the real server:
//! the network taken away for 10 s mid-recording (nothing lost, the outbox drains after);
//! the page frozen and resumed, as a phone does to a page in the background (the page
//! ends the recording, sealed, and says so; nothing lost); a small storage quota (a clear
//! message, and nothing sealed is lost). Each phone is a browser context of its own, so
//! the three run side by side in one browser.

mod common;

use std::time::{Duration, Instant};

use common::{ok, DRAIN};
use custody_browser::{fixture, Phone};
use custody_format::record::{EndReason, Record};

/// The lawyer's view of recording `id`: the bundle verified with the case key; returns
/// the verdict and the bundle's segment records.
fn lawyer(
    server: &custody_browser::Server,
    id: &str,
    name: &str,
) -> (String, Vec<custody_format::record::SegmentRecord>, Vec<custody_format::record::SignedRecord>)
{
    let bundle = server.fetch(id, name).unwrap();
    let (_, report) = server.verify(&bundle).unwrap();
    let (verdict, codes) = common::verdict(&report);
    assert!(codes.iter().any(|c| c == "segment.media.match"), "{report}");
    assert!(
        !report["checks"].as_array().unwrap().iter().any(|c| c["state"] == "failure"),
        "{report}"
    );
    let records = common::records(&bundle);
    (verdict, common::segments(&records), records)
}

/// Segments cover the recording's timeline with no hole: each starts where the one before
/// ended (within a frame; media times are the device's claims).
fn assert_contiguous(segments: &[custody_format::record::SegmentRecord]) {
    for w in segments.windows(2) {
        let gap = (w[1].media_start_us - w[0].media_end_us).abs();
        assert!(
            gap <= 100_000,
            "a hole of {gap} µs between segments {} and {}",
            w[0].seq,
            w[1].seq
        );
    }
}

#[test]

fn the_network_away_for_10_s_mid_recording_loses_nothing_and_the_outbox_drains() {
    let f = fixture::shared().unwrap();
    let server = &f.server;
    let link = server.enroll_link("phone-offline").unwrap();
    let phone = Phone::open(&f.chromium, server.origin(), &link, "offline", true).unwrap();
    ok(&phone, phone.enroll());
    let id = ok(&phone, phone.start_recording());
    ok(
        &phone,
        phone.tab.wait_for(
            "window.custodyStats.status().recordings.some(r => r.receipted >= 1)",
            "a segment receipted live",
            DRAIN,
        ),
    );
    ok(&phone, phone.tab.set_offline(true));
    let cut = Instant::now();
    std::thread::sleep(Duration::from_secs(7));
    ok(&phone, phone.shot("offline"));
    let text = ok(&phone, phone.tab.text());
    assert!(text.contains("Offline"), "the page says it is offline: {text}");
    assert!(text.contains("Waiting to send"), "{text}");
    let st = ok(&phone, phone.status());
    assert!(st["outbox"]["count"].as_u64().unwrap() >= 2, "{st}");
    std::thread::sleep(Duration::from_secs(10).saturating_sub(cut.elapsed()));
    ok(&phone, phone.tab.set_offline(false));
    let back = Instant::now();
    // Recording goes on; once the network is back the backlog goes up while it records.
    ok(
        &phone,
        phone.tab.wait_for(
            "window.custodyStats.status().outbox.count <= 1",
            "the backlog to drain while recording",
            DRAIN,
        ),
    );
    let caught_up = back.elapsed();
    ok(&phone, phone.shot("back-online"));
    ok(&phone, phone.stop_recording(&id));
    ok(&phone, phone.wait_drained(DRAIN));
    eprintln!(
        "offline: the backlog drained {:.1} s after the network came back",
        caught_up.as_secs_f64()
    );

    let (verdict, segments, _) = lawyer(server, &id, "offline");
    assert_eq!(verdict, "intact-complete");
    assert_contiguous(&segments);
    let span = (segments.last().unwrap().media_end_us - segments[0].media_start_us) as f64 / 1e6;
    assert!(span > 12.0, "{span} s recorded across 10 s offline");
}

#[test]
fn a_page_frozen_in_the_background_ends_its_recording_sealed_and_says_so() {
    let f = fixture::shared().unwrap();
    let server = &f.server;
    let link = server.enroll_link("phone-frozen").unwrap();
    let phone = Phone::open(&f.chromium, server.origin(), &link, "frozen", true).unwrap();
    ok(&phone, phone.enroll());
    let id = ok(&phone, phone.start_recording());
    ok(&phone, phone.wait_segments(2, Duration::from_secs(30)));
    ok(&phone, phone.tab.set_frozen(true));
    std::thread::sleep(Duration::from_secs(3));
    ok(&phone, phone.tab.set_frozen(false));
    // What the page promises: the recording ended (sealed, end record "input ended"),
    // and it says so, offering to record again.
    ok(&phone, phone.wait_ended(&id, Duration::from_secs(30)));
    ok(&phone, phone.wait_drained(DRAIN));
    ok(
        &phone,
        phone.tab.wait_for(
            "document.getElementById('stopped').hidden === false",
            "the page to say the recording stopped",
            Duration::from_secs(10),
        ),
    );
    ok(&phone, phone.shot("resumed"));
    let text = ok(&phone, phone.tab.text());
    assert!(text.contains("Recording stopped"), "{text}");
    assert!(!ok(&phone, phone.is_recording()));

    let (verdict, segments, records) = lawyer(server, &id, "frozen");
    assert_eq!(verdict, "intact-complete");
    assert_contiguous(&segments);
    let end = records.iter().find_map(|r| match r.record() {
        Record::End(e) => Some(e.clone()),
        _ => None,
    });
    let end = end.expect("an end record");
    assert_eq!(end.reason, EndReason::InputEnded, "{end:?}");
    assert!(end.message.as_deref().unwrap_or("").contains("background"), "{end:?}");
}

#[test]

fn a_full_storage_quota_is_said_plainly_and_nothing_sealed_is_lost() {
    let f = fixture::shared().unwrap();
    let server = &f.server;
    let link = server.enroll_link("phone-quota").unwrap();
    let phone = Phone::open(&f.chromium, server.origin(), &link, "quota", true).unwrap();
    ok(&phone, phone.enroll());
    // Offline, so sealed segments stay on the phone and fill the small quota.
    let usage =
        ok(&phone, phone.tab.eval("navigator.storage.estimate().then(e => e.usage)", DRAIN));
    let usage = usage.as_u64().unwrap();
    ok(&phone, phone.tab.override_quota(server.origin(), Some(usage + 700_000)));
    ok(&phone, phone.tab.set_offline(true));
    let id = ok(&phone, phone.start_recording());
    // The quota runs out within seconds at ~1 Mbit/s; the page stops and says why.
    ok(
        &phone,
        phone.tab.wait_for(
            "document.getElementById('status').textContent.includes('storage is full')",
            "the page to say the storage is full",
            Duration::from_secs(60),
        ),
    );
    ok(&phone, phone.shot("full"));
    ok(
        &phone,
        phone.tab.wait_for(
            "document.getElementById('rec-badge').hidden",
            "recording to stop",
            DRAIN,
        ),
    );
    let sealed = ok(&phone, phone.stats())["current"]["segments"].as_array().unwrap().len();
    assert!(sealed >= 1, "something was sealed before the quota ran out");

    // Space comes back, and the network: everything sealed goes up.
    ok(&phone, phone.tab.override_quota(server.origin(), None));
    ok(&phone, phone.tab.set_offline(false));
    let status = ok(&phone, phone.wait_drained(DRAIN));
    ok(&phone, phone.shot("drained"));
    let rec = status["recordings"].as_array().unwrap().iter().find(|r| r["id"] == id.as_str());
    let rec = rec.unwrap_or_else(|| panic!("{id} not in {status}"));
    assert_eq!(rec["segments"].as_u64(), Some(sealed as u64), "{rec}");

    let bundle = server.fetch(&id, "quota").unwrap();
    let (_, report) = server.verify(&bundle).unwrap();
    let (verdict, _) = common::verdict(&report);
    assert!(verdict.starts_with("intact"), "{report}");
    let segments = common::segments(&common::records(&bundle));
    assert_eq!(segments.len(), sealed, "every sealed segment reached the lawyer");
    assert_contiguous(&segments);
    eprintln!("quota: {sealed} segments sealed before the quota ran out; verdict {verdict}");
}

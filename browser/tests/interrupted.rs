//! A phone whose browser is killed mid-recording (SIGKILL to Chromium and every process
//! it started, as a phone's OS or a seizure would): reopened on the same profile, the page
//! uploads what it had sealed first, and the lawyer's bundle verifies as intact but cut
//! off, up to the last segment the page saved. Some of those segments were sealed while
//! the network was away, so they reach the server only after the reopen.

mod common;

use std::time::Duration;

use common::{ok, DRAIN};
use custody_browser::{Chromium, Fixture, Phone};
use custody_format::record::Record;

#[test]
fn a_browser_killed_mid_recording_leaves_a_chain_that_verifies_as_cut_off() {
    let f = Fixture::start().unwrap();
    let server = &f.server;
    let link = server.enroll_link("phone-killed").unwrap();
    let phone = Phone::open(&f.chromium, server.origin(), &link, "killed", false).unwrap();
    ok(&phone, phone.enroll());
    let id = ok(&phone, phone.start_recording());
    // Two segments go up live; then the network goes, and two more are sealed that only
    // the phone holds.
    ok(&phone, phone.wait_segments(2, Duration::from_secs(30)));
    ok(
        &phone,
        phone.tab.wait_for(
            "window.custodyStats.status().recordings.some(r => r.receipted >= 2)",
            "two segments receipted",
            DRAIN,
        ),
    );
    ok(&phone, phone.tab.set_offline(true));
    ok(&phone, phone.wait_segments(4, Duration::from_secs(30)));
    ok(&phone, phone.shot("offline-before-kill"));
    let before = ok(&phone, phone.status());
    let waiting = before["outbox"]["count"].as_u64().unwrap();
    assert!(waiting >= 2, "the segments sealed offline wait in the outbox: {before}");
    let sealed_before_kill =
        ok(&phone, phone.stats())["current"]["segments"].as_array().unwrap().len() as u64;

    // Killed outright: no pagehide, no stop, no end record.
    let pid = f.chromium.pid().unwrap();
    let Fixture { chromium, profile, server, launch } = f;
    drop(phone);
    chromium.kill().unwrap();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());

    // The phone reopens the browser and the page (online again): the outbox drains,
    // oldest first, without anything being recorded.
    let chromium = Chromium::launch(&profile, &launch).unwrap();
    let phone = Phone::open(
        &chromium,
        server.origin(),
        &format!("{}/capture/", server.url),
        "killed-reopened",
        false,
    )
    .unwrap();
    assert_eq!(ok(&phone, phone.screen()), "record", "still enrolled after the kill");
    let status = ok(&phone, phone.wait_drained(DRAIN));
    ok(&phone, phone.shot("reopened-drained"));
    let rec = status["recordings"].as_array().unwrap().iter().find(|r| r["id"] == id.as_str());
    let rec = rec.unwrap_or_else(|| panic!("{id} not in {status}"));
    assert_eq!(rec["ended"], false, "{rec}");
    let kept = rec["segments"].as_u64().unwrap();
    // Every segment the page had sealed before the kill survived it (one more may have
    // been sealed between the last look and the kill).
    assert!(
        (sealed_before_kill..=sealed_before_kill + 1).contains(&kept),
        "{kept} segments kept, {sealed_before_kill} sealed before the kill"
    );

    let listed = server.recordings().unwrap();
    let row = listed.iter().find(|r| r["recording_id"] == id.as_str()).unwrap();
    // The server cannot tell a cut-off recording from one still going: no end record yet;
    // a few segment lengths after its last receipt it is listed as stalled.
    assert!(row["state"] == "live" || row["state"] == "stalled", "{row}");
    assert_eq!(row["segments"].as_u64(), Some(kept), "{row}");
    let bundle = server.fetch(&id, "bundle").unwrap();
    let (code, report) = server.verify(&bundle).unwrap();
    let (verdict, _) = common::verdict(&report);
    assert_eq!(verdict, "intact-cut-off", "{report}");
    assert_eq!(code, Some(0), "a cut-off recording is intact evidence: {report}");
    let (_, text) = server.verify_text(&bundle).unwrap();
    assert!(text.contains("cut off"), "{text}");
    let records = common::records(&bundle);
    assert!(!records.iter().any(|r| matches!(r.record(), Record::End(_))));
    assert_eq!(common::segments(&records).len() as u64, kept, "up to the last saved segment");
    // It plays, up to where it was cut.
    let video = server.scratch().join("killed.webm");
    server.export(&bundle, &video).unwrap();
    let times = common::video_frame_times(&video);
    assert!(times.len() > 40, "{} frames", times.len());
    drop(phone);
    chromium.close().unwrap();
}

//! A damaged vault through the real `custody` binary: `vault check` exit codes and what it
//! says was lost and kept, `recordings` and `status` (issue 16, section 1).

mod common;

use common::{events, recording_id, Env};

/// Issue 16: a bit flipped in the middle of a journal was taken for a torn tail (`vault
/// check` said 0 problems and moved the records after it aside), and a zeroed journal made
/// its recording vanish. Through the binary: the check exits 1 and says which positions
/// and bytes were lost and what was kept, both recordings stay listed as damaged, and
/// status does not say everything is receipted.
#[test]
fn a_damaged_or_zeroed_journal_is_reported_and_its_recording_stays_listed() {
    let env = Env::new();
    let mut ids = Vec::new();
    for seconds in [6, 2] {
        let out = env.record_synthetic(seconds, &[]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        ids.push(recording_id(&events(&out.stdout)).unwrap());
    }
    let journal = |id: &custody_format::ids::RecordingId| {
        env.vault.join("recordings").join(id.to_string()).join("journal.bin")
    };
    let records = env.open_vault().records(&ids[0]).unwrap().len();
    assert!(records >= 5, "{records} records");
    // One bit in the third frame's payload; the second journal zeroed.
    let frames: Vec<_> = custody_vault::journal::frames_from(&journal(&ids[0]), 0)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut bytes = std::fs::read(journal(&ids[0])).unwrap();
    bytes[(frames[2].payload_offset() + 10) as usize] ^= 0x01;
    std::fs::write(journal(&ids[0]), &bytes).unwrap();
    let zeroed_len = std::fs::metadata(journal(&ids[1])).unwrap().len() as usize;
    std::fs::write(journal(&ids[1]), vec![0u8; zeroed_len]).unwrap();

    let out = env.run(&["vault", "check"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("records lost at positions 2"), "{text}");
    assert!(text.contains(&format!("bytes {}..{}", frames[2].offset, frames[3].offset)), "{text}");
    assert!(text.contains(&format!("{} intact records kept", records - 1)), "{text}");
    assert!(text.contains(&format!("bytes 0..{zeroed_len}")), "{text}");

    let out = env.run(&["vault", "check", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = report["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["recording"] == ids[0].to_string())
        .unwrap()
        .clone();
    assert_eq!(first["damage"][0]["lost"], serde_json::json!([2]), "{first}");
    assert_eq!(first["records"], records - 1);
    assert_eq!(first["files_without_record"].as_array().unwrap().len(), 1, "{first}");

    let out = env.run(&["recordings", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for id in &ids {
        let l = listed.as_array().unwrap().iter().find(|l| l["id"] == id.to_string());
        assert_eq!(l.expect("still listed")["state"], "damaged", "{listed}");
    }
    let out = env.run(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Every record is receipted"));
}

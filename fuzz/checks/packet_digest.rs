// The packet_digest target's check, shared by fuzz/fuzz_targets/packet_digest.rs and the
// regression test that replays tests/fuzz-regressions/packet_digest/
// (format/tests/fuzz_regressions.rs).
use custody_format::digest::{DigestStream, Framing, MediaKind, PacketDigester};

/// The packet digest's NAL and ADTS splitting over arbitrary packets: never panics.
pub fn check(data: &[u8]) {
    let streams = [
        DigestStream { kind: MediaKind::Video, codec: "h264".into(), framing: Framing::AnnexB },
        DigestStream {
            kind: MediaKind::Video,
            codec: "hevc".into(),
            framing: Framing::LengthPrefixed(4),
        },
        DigestStream {
            kind: MediaKind::Video,
            codec: "h264".into(),
            framing: Framing::LengthPrefixed(2),
        },
        DigestStream { kind: MediaKind::Audio, codec: "aac".into(), framing: Framing::Whole },
    ];
    let mut d = PacketDigester::new(&streams);
    for chunk in data.chunks(97) {
        let stream = usize::from(chunk.first().copied().unwrap_or(0) % 4);
        d.push(stream, chunk.len() % 2 == 0, chunk);
    }
    let _ = Framing::from_extradata("h264", data);
    let _ = Framing::from_extradata("hevc", data);
    d.finish();
}

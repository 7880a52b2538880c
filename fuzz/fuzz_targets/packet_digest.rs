//! The packet digest's NAL and ADTS splitting over arbitrary packets: never panics.
#![no_main]
use custody_format::digest::{DigestStream, Framing, MediaKind, PacketDigester};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let streams = [
        DigestStream { kind: MediaKind::Video, codec: "h264".into(), framing: Framing::AnnexB },
        DigestStream { kind: MediaKind::Video, codec: "hevc".into(), framing: Framing::LengthPrefixed(4) },
        DigestStream { kind: MediaKind::Video, codec: "h264".into(), framing: Framing::LengthPrefixed(2) },
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
});

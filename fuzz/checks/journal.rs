// The journal target's check, shared by fuzz/fuzz_targets/journal.rs and the regression test
// that replays tests/fuzz-regressions/journal/ (durable/tests/fuzz_regressions.rs).
use custody_durable::journal::{self, Stop, MAX_PAYLOAD};

/// The length and CRC-32 fields of the frame header at the start of `bytes`, if whole.
fn header(bytes: &[u8]) -> Option<(usize, u32)> {
    let len = u32::from_be_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_be_bytes(bytes.get(4..8)?.try_into().ok()?);
    Some((len, crc))
}

/// The journal's frame reader over arbitrary file contents: never panics; never returns a
/// frame whose CRC-32 does not hold or whose bytes are not the file's at its offset; frames
/// follow each other with no gap; it stops for the reason the bytes after the last whole
/// frame give; `journal::read` agrees with it. Read again from an offset the input picks
/// (not a frame boundary, mostly), it still returns only frames whose CRC holds.
pub fn check(data: &[u8]) {
    // The reader reads files: the input is written to a scratch file of this thread's own.
    let path = std::env::temp_dir().join(format!(
        "custody-fuzz-journal-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&path, data).expect("writing the scratch journal");
    let agrees = |from: u64, frame: &journal::Frame| {
        let at = usize::try_from(frame.offset).expect("offset fits");
        let (len, crc) = header(&data[at..]).expect("a returned frame has a whole header");
        assert_eq!(len, frame.payload.len(), "frame at {at} from {from}: length");
        assert_eq!(&data[at + 8..at + 8 + len], frame.payload, "frame at {at}: payload");
        assert_eq!(crc32fast::hash(&frame.payload), crc, "frame at {at}: its CRC does not hold");
    };

    let mut frames = journal::frames_from(&path, 0).expect("opening the scratch journal");
    let mut end = 0u64;
    let mut payloads = Vec::new();
    for frame in frames.by_ref() {
        let frame = frame.expect("reading the scratch journal");
        assert_eq!(frame.offset, end, "a gap before the frame at {}", frame.offset);
        agrees(0, &frame);
        end = frame.end();
        payloads.push(frame.payload);
    }
    assert_eq!(frames.position(), end);
    let rest = &data[usize::try_from(end).expect("offset fits")..];
    match frames.stopped() {
        None => assert!(rest.is_empty(), "stopped cleanly with {} bytes left", rest.len()),
        Some(Stop::Torn) => {
            assert!(header(rest).is_none_or(|(len, _)| rest.len() - 8 < len), "not torn")
        }
        Some(Stop::TooLong) => {
            assert!(header(rest).is_some_and(|(len, _)| len > MAX_PAYLOAD), "not too long")
        }
        Some(Stop::BadCrc) => assert!(
            header(rest).is_some_and(|(len, crc)| rest
                .get(8..8 + len)
                .is_some_and(|p| crc32fast::hash(p) != crc)),
            "the CRC does hold"
        ),
        Some(_) => {}
    }

    let contents = journal::read(&path).expect("reading the scratch journal");
    assert_eq!(contents.payloads, payloads);
    assert_eq!(contents.good_len, end);
    let torn = contents.torn.map(|t| (t.offset, t.len));
    assert_eq!(torn, (!rest.is_empty()).then_some((end, rest.len() as u64)));

    // Reading past damage: with every frame accepted, and with only non-empty payloads
    // accepted (so that zeroed stretches are damage), the frames found and the ranges
    // skipped tile the file exactly, each frame's CRC holds, and an intact journal reads
    // as the frame reader reads it.
    for nonempty in [false, true] {
        let accept = |p: &[u8], _: journal::Found| !nonempty || !p.is_empty();
        let scan = journal::scan(&path, accept).expect("scanning the scratch journal");
        assert_eq!(scan.file_len, data.len() as u64);
        let mut pieces: Vec<(u64, u64, bool)> = scan
            .frames
            .iter()
            .map(|f| {
                agrees(f.offset, f);
                assert!(!nonempty || !f.payload.is_empty());
                (f.offset, f.end(), true)
            })
            .chain(scan.gaps().iter().map(|d| (d.offset, d.end(), false)))
            .collect();
        pieces.sort_unstable();
        let mut at = 0;
        for (start, end, _) in &pieces {
            assert_eq!(*start, at, "scan: the pieces do not tile the file at {at}");
            assert!(end > start, "scan: an empty piece at {start}");
            at = *end;
        }
        assert_eq!(at, data.len() as u64, "scan: the pieces end before the file");
        assert!(scan.frames.windows(2).all(|w| w[0].end() <= w[1].offset));
        if scan.torn().is_some() {
            assert!(scan.damaged.is_empty() && !scan.is_damaged());
        }
        if !nonempty {
            assert_eq!(
                &scan.payloads().take(payloads.len()).map(<[u8]>::to_vec).collect::<Vec<_>>(),
                &payloads
            );
            assert_eq!(scan.is_intact(), rest.is_empty());
        }
    }

    if let Some(&pick) = data.first() {
        let from = u64::from(pick) % (data.len() as u64 + 1);
        for frame in journal::frames_from(&path, from).expect("opening the scratch journal") {
            agrees(from, &frame.expect("reading the scratch journal"));
        }
    }
    let _ = std::fs::remove_file(&path);
}

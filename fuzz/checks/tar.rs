// The tar target's check, shared by fuzz/fuzz_targets/tar.rs and the regression test that
// replays tests/fuzz-regressions/tar/ (verifier/tests/fuzz_regressions.rs).
use std::io::Cursor;

use custody_verifier::TarIndex;

/// Bundle archives, as `custody verify` and `custody fetch` index them: never panics; every
/// indexed file has a path that follows docs/format.md §10.1 (checked on its components)
/// and data that starts on a block boundary and lies wholly inside the archive. The input
/// is tried as it is and with every header's checksum made right, so that the fuzzer gets
/// past the checksum to the fields behind it.
pub fn check(data: &[u8]) {
    index(data);
    index(&with_checksums(data));
}

fn index(bytes: &[u8]) {
    let total = bytes.len() as u64;
    let Ok(index) = TarIndex::read(&mut Cursor::new(bytes), total, "fuzz input") else {
        return;
    };
    assert!(index.files.keys().eq(index.offsets.keys()));
    for (path, &len) in &index.files {
        assert!(
            !path.is_empty()
                && path.len() <= 100
                && path.split('/').all(|c| {
                    !c.is_empty()
                        && c != "."
                        && c != ".."
                        && c.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                }),
            "unsafe path accepted: {path:?}"
        );
        let offset = index.offsets[path];
        assert!(offset.is_multiple_of(512), "{path}: data at {offset}");
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= total),
            "{path}: data past the end"
        );
    }
}

/// `data` with each header's checksum recomputed, walking the headers as a reader does
/// (a header, then its data rounded up to whole blocks) until an empty block or the end.
fn with_checksums(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let mut pos = 0usize;
    while let Some(h) = pos.checked_add(512).and_then(|end| out.get_mut(pos..end)) {
        if h.iter().all(|&b| b == 0) {
            break;
        }
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let size = std::str::from_utf8(&h[124..136])
            .ok()
            .and_then(|t| u64::from_str_radix(t.trim_matches(['\0', ' ']), 8).ok())
            .unwrap_or(0);
        let Some(next) = usize::try_from(size.div_ceil(512) * 512)
            .ok()
            .and_then(|n| pos.checked_add(512)?.checked_add(n))
        else {
            break;
        };
        pos = next;
    }
    out
}

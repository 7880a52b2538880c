// The bundle target's check, shared by fuzz/fuzz_targets/bundle.rs and the regression test
// that replays tests/fuzz-regressions/bundle/ (format/tests/fuzz_regressions.rs).
use custody_format::bundle::{is_safe_path, Manifest};

/// Whether `path` follows docs/format.md §10.1, restated here from the spec rather than
/// calling the parser's own rule: at most 100 bytes, no leading `/`, and every `/`-separated
/// component non-empty, not `.` or `..`, made of `a–z A–Z 0–9 . _ -`. A name such as
/// `D99..2.` is allowed: `..` is forbidden as a component, not as two characters.
pub fn follows_section_10_1(path: &str) -> bool {
    path.len() <= 100
        && !path.starts_with('/')
        && path.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
}

/// Manifests: parsing never panics; every accepted path follows §10.1 (and the parser's
/// rule agrees); whatever parses writes back to a text that parses to the same manifest.
pub fn check(data: &[u8]) {
    if let Ok(m) = Manifest::parse(data) {
        for e in &m.entries {
            assert!(follows_section_10_1(&e.path), "unsafe path accepted: {:?}", e.path);
            assert!(is_safe_path(&e.path));
        }
        assert_eq!(Manifest::parse(m.to_text().as_bytes()).ok(), Some(m));
    }
}

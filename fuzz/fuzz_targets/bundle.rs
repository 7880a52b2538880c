//! Bundle manifests: never panics; every accepted path is safe.
#![no_main]
use custody_format::bundle::{is_safe_path, Manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::parse(data) {
        assert!(m.entries.iter().all(|e| is_safe_path(&e.path) && !e.path.contains("..")));
        assert_eq!(Manifest::parse(m.to_text().as_bytes()).ok(), Some(m));
    }
});

//! Keeps the refusal-code table of `docs/api.md` equal to [`Code::ALL`], as
//! `format/tests/docs.rs` keeps `docs/verification-codes.md`. Regenerate it with:
//!
//! ```text
//! CUSTODY_REGENERATE_DOCS=1 cargo test -p custody-protocol --test docs
//! ```

use custody_protocol::Code;

const BEGIN: &str = "<!-- codes:begin -->\n";
const END: &str = "<!-- codes:end -->";

fn table() -> String {
    let mut out = String::from("| code | status | meaning | retry? |\n|---|---:|---|---|\n");
    for &c in Code::ALL {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            c.as_str(),
            c.status(),
            c.meaning(),
            c.retry_hint()
        ));
    }
    out
}

#[test]
fn api_doc_lists_every_refusal_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let (head, rest) = doc.split_once(BEGIN).expect("begin marker");
    let (_, tail) = rest.split_once(END).expect("end marker");
    let expected = format!("{head}{BEGIN}{}{END}{tail}", table());
    if std::env::var_os("CUSTODY_REGENERATE_DOCS").is_some() {
        std::fs::write(path, &expected).unwrap();
    } else {
        assert_eq!(doc, expected, "docs/api.md is out of date; regenerate it");
    }
}

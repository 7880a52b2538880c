//! Keeps `docs/verification-codes.md` equal to the code catalogue.

use custody_format::report::{CheckState, CODES};

const BEGIN: &str = "<!-- codes:begin -->\n";
const END: &str = "<!-- codes:end -->";

fn table() -> String {
    let mut out = String::from("| code | state | meaning |\n|---|---|---|\n");
    for c in CODES {
        let state = match c.state {
            CheckState::Ok => "ok",
            CheckState::Warning => "warning",
            CheckState::Failure => "failure",
            CheckState::NotChecked => "not-checked",
        };
        out.push_str(&format!("| `{}` | {state} | {} |\n", c.code, c.meaning));
    }
    out
}

#[test]
fn verification_codes_doc_lists_every_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/verification-codes.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let (head, rest) = doc.split_once(BEGIN).expect("begin marker");
    let (_, tail) = rest.split_once(END).expect("end marker");
    let expected = format!("{head}{BEGIN}{}{END}{tail}", table());
    if std::env::var_os("CUSTODY_REGENERATE_DOCS").is_some() {
        std::fs::write(path, &expected).unwrap();
    } else {
        assert_eq!(doc, expected, "docs/verification-codes.md is out of date; regenerate it");
    }
}

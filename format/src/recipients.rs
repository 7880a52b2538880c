//! Case recipients: the server's signed statement of the age recipients every segment of
//! a case must be sealed to.
//!
//! A device learns them at enrollment and may fetch them again (`GET /v1/recipients`); in
//! both cases it checks the signature with the server key it pinned, so a recipient list
//! altered on the way (or by anything but the server) is refused instead of silently
//! sealing evidence to somebody else. Specified in `docs/api.md`, "Case recipients".

use crate::encoding::{DecodeError, Field, FieldReader, FieldWriter};
use crate::ids::PublicKey;
use crate::primitives::DOMAIN_CASE_RECIPIENTS_SIGNATURE;
use crate::signed::{read_key, Object};

/// The object kind byte of case recipients (beside `record::kind`'s receipts, tree heads
/// and certificates, 16–20).
pub const KIND: u8 = 21;

const fn f(tag: u8, name: &'static str) -> Field {
    Field { tag, name }
}

const SERVER_KEY: Field = f(1, "server_key");
const RECIPIENTS: Field = f(2, "recipients");
const R_VALUE: Field = f(1, "recipient");

/// The recipients a server's devices encrypt to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CaseRecipients {
    /// The server that states them (and signs them).
    pub server_key: PublicKey,
    /// age recipients (`age1…`), in the server's order. Empty when the server names none:
    /// a device then keeps the recipients it was configured with.
    pub recipients: Vec<String>,
}

impl Object for CaseRecipients {
    const KIND: u8 = KIND;
    const NAME: &'static str = "case recipients";
    const DOMAIN: &'static [u8] = DOMAIN_CASE_RECIPIENTS_SIGNATURE;

    fn write(&self, w: &mut FieldWriter) {
        let items: Vec<Vec<u8>> = self
            .recipients
            .iter()
            .map(|r| {
                let mut item = FieldWriter::new();
                item.str(R_VALUE, r);
                item.into_bytes()
            })
            .collect();
        w.raw(SERVER_KEY, &self.server_key.to_bytes()).list(RECIPIENTS, &items);
    }

    fn read(r: &mut FieldReader<'_>) -> Result<Self, DecodeError> {
        let server_key = read_key(r, SERVER_KEY)?;
        let recipients = r
            .list(RECIPIENTS)?
            .into_iter()
            .map(|item| {
                let mut ir = FieldReader::new("recipient", item)?;
                let v = ir.str(R_VALUE)?;
                ir.finish()?;
                Ok(v)
            })
            .collect::<Result<Vec<_>, DecodeError>>()?;
        Ok(CaseRecipients { server_key, recipients })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signed::Signed;
    use crate::testkit;

    #[test]
    fn case_recipients_round_trip_and_verify_with_the_server_key_only() {
        let value = CaseRecipients {
            server_key: testkit::public("server"),
            recipients: vec!["age1one".into(), "age1two".into()],
        };
        let s = Signed::sign(value.clone(), &testkit::key("server"));
        let back = Signed::<CaseRecipients>::parse(&s.to_bytes()).unwrap();
        assert_eq!(back.value(), &value);
        assert!(back.verify(&testkit::public("server")));
        assert!(!back.verify(&testkit::public("device")));
    }

    #[test]
    fn an_empty_list_is_a_statement_too() {
        let value = CaseRecipients { server_key: testkit::public("server"), recipients: vec![] };
        let s = Signed::sign(value.clone(), &testkit::key("server"));
        assert_eq!(Signed::<CaseRecipients>::parse(&s.to_bytes()).unwrap().value(), &value);
    }
}

//! Device certificates: the server's signed statement that a device key was enrolled.

use crate::encoding::{DecodeError, Field, FieldReader, FieldWriter};
use crate::ids::PublicKey;
use crate::primitives::DOMAIN_DEVICE_CERT_SIGNATURE;
use crate::record::kind;
use crate::signed::{read_key, Object};

const fn f(tag: u8, name: &'static str) -> Field {
    Field { tag, name }
}

const DEVICE_KEY: Field = f(1, "device_key");
const LABEL: Field = f(2, "label");
const ENROLLED_AT: Field = f(3, "enrolled_at_us");
const SERVER_KEY: Field = f(4, "server_key");

/// Issued by the server at enrollment.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeviceCertificate {
    /// The enrolled device's signing key.
    pub device_key: PublicKey,
    /// A pseudonym the legal team chose; never the observer's name by default.
    pub label: String,
    /// Server time of enrollment, µs since the epoch.
    pub enrolled_at_us: i64,
    /// The key of the server that issued it (and signed it).
    pub server_key: PublicKey,
}

impl Object for DeviceCertificate {
    const KIND: u8 = kind::DEVICE_CERT;
    const NAME: &'static str = "device certificate";
    const DOMAIN: &'static [u8] = DOMAIN_DEVICE_CERT_SIGNATURE;

    fn write(&self, w: &mut FieldWriter) {
        w.raw(DEVICE_KEY, &self.device_key.to_bytes())
            .str(LABEL, &self.label)
            .i64(ENROLLED_AT, self.enrolled_at_us)
            .raw(SERVER_KEY, &self.server_key.to_bytes());
    }

    fn read(r: &mut FieldReader<'_>) -> Result<Self, DecodeError> {
        Ok(DeviceCertificate {
            device_key: read_key(r, DEVICE_KEY)?,
            label: r.str(LABEL)?,
            enrolled_at_us: r.i64(ENROLLED_AT)?,
            server_key: read_key(r, SERVER_KEY)?,
        })
    }
}

//! TSTInfo (RFC 3161 §2.4.2) as `x509-tsp`'s, except for `genTime`.
//!
//! RFC 3161 allows `genTime` fractional seconds (`YYYYMMDDhhmmss[.s...]Z`), and TSAs with
//! sub-second accuracy send them; `der` 0.7's `GeneralizedTime` follows RFC 5280 instead
//! and refuses any fraction, so a token with one would not even parse. This type reads the
//! RFC 3161 form (and nothing laxer: `Z` required, no trailing zeros in the fraction, as
//! the RFC says) and keeps every other field as `x509-tsp` 0.1 defines it.

use der::asn1::{Int, ObjectIdentifier};
use der::{
    DecodeValue, EncodeValue, ErrorKind, FixedTag, Header, Length, Reader, Sequence, Tag, Writer,
};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::Extensions;
use x509_tsp::{Accuracy, MessageImprint, TspVersion};

/// `genTime`: µs since the epoch, and the bytes it was read from (to encode it back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenTime {
    /// µs since the Unix epoch, UTC.
    pub unix_us: i64,
    raw: Vec<u8>,
}

impl FixedTag for GenTime {
    const TAG: Tag = Tag::GeneralizedTime;
}

fn two(b: &[u8], at: usize) -> der::Result<u32> {
    let pair = b.get(at..at + 2).ok_or(Tag::GeneralizedTime.value_error())?;
    if !pair.iter().all(u8::is_ascii_digit) {
        return Err(Tag::GeneralizedTime.value_error());
    }
    Ok(u32::from(pair[0] - b'0') * 10 + u32::from(pair[1] - b'0'))
}

impl GenTime {
    /// Parses `YYYYMMDDhhmmss[.f…]Z`.
    pub fn parse(b: &[u8]) -> der::Result<GenTime> {
        let bad = || Tag::GeneralizedTime.value_error();
        if b.len() < 15 || b.last() != Some(&b'Z') {
            return Err(bad());
        }
        let year = two(b, 0)? * 100 + two(b, 2)?;
        let (month, day, hour, minute, second) =
            (two(b, 4)?, two(b, 6)?, two(b, 8)?, two(b, 10)?, two(b, 12)?);
        let dt = der::DateTime::new(
            u16::try_from(year).map_err(|_| bad())?,
            month as u8,
            day as u8,
            hour as u8,
            minute as u8,
            second as u8,
        )
        .map_err(|_| bad())?;
        let mut micros: i64 = 0;
        let frac = &b[14..b.len() - 1];
        if !frac.is_empty() {
            let digits = frac.strip_prefix(b".").ok_or_else(bad)?;
            if digits.is_empty()
                || !digits.iter().all(u8::is_ascii_digit)
                || digits.last() == Some(&b'0')
            {
                return Err(bad());
            }
            for (i, d) in digits.iter().take(6).enumerate() {
                micros += i64::from(d - b'0') * 10_i64.pow(5 - i as u32);
            }
        }
        let secs = i64::try_from(dt.unix_duration().as_secs()).map_err(|_| bad())?;
        Ok(GenTime { unix_us: secs * 1_000_000 + micros, raw: b.to_vec() })
    }
}

impl<'a> DecodeValue<'a> for GenTime {
    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        if u32::from(header.length) > 32 {
            return Err(der::Error::new(ErrorKind::Length { tag: Self::TAG }, header.length));
        }
        let bytes = reader.read_slice(header.length)?;
        GenTime::parse(bytes)
    }
}

impl EncodeValue for GenTime {
    fn value_len(&self) -> der::Result<Length> {
        Length::try_from(self.raw.len())
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        writer.write(&self.raw)
    }
}

/// `TSTInfo ::= SEQUENCE { … }`, RFC 3161 §2.4.2.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct TstInfo {
    /// Version 1, the only one.
    pub version: TspVersion,
    /// The TSA policy it was issued under.
    pub policy: ObjectIdentifier,
    /// The hash it stamps.
    pub message_imprint: MessageImprint,
    /// The TSA's serial number for it.
    pub serial_number: Int,
    /// When it was made, by the TSA's clock.
    pub gen_time: GenTime,
    /// How far from UTC that can be.
    #[asn1(optional = "true")]
    pub accuracy: Option<Accuracy>,
    /// Whether tokens of this TSA are ordered by genTime alone.
    #[asn1(default = "Default::default")]
    pub ordering: bool,
    /// The request's nonce.
    #[asn1(optional = "true")]
    pub nonce: Option<Int>,
    /// The TSA's name, if it gives one.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub tsa: Option<GeneralName>,
    /// Extensions.
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub extensions: Option<Extensions>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gen_time_with_and_without_fractional_seconds() {
        let whole = GenTime::parse(b"20261201204432Z").unwrap();
        assert_eq!(whole.unix_us, 1_796_157_872_000_000);
        assert_eq!(GenTime::parse(b"20261201204432.5Z").unwrap().unix_us, whole.unix_us + 500_000);
        assert_eq!(
            GenTime::parse(b"20261201204432.123456789Z").unwrap().unix_us,
            whole.unix_us + 123_456
        );
        for bad in [
            &b"20261201204432"[..],
            b"20261201204432.Z",
            b"20261201204432.50Z",
            b"20261201204432+0100",
            b"20261301204432Z",
            b"2026120120443Z",
            b"20261201204432,5Z",
        ] {
            assert!(GenTime::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}

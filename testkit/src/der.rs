//! Just enough DER (X.690) to wrap a token in a response and take it out again.

use crate::Error;

/// One DER element's tag byte, the offset of its contents and their length.
fn header(bytes: &[u8]) -> Result<(u8, usize, usize), Error> {
    let tag = *bytes.first().ok_or(Error::Malformed("empty"))?;
    let first = *bytes.get(1).ok_or(Error::Malformed("no length"))?;
    if first < 0x80 {
        return Ok((tag, 2, usize::from(first)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return Err(Error::Malformed("unsupported length"));
    }
    let mut len = 0usize;
    for i in 0..n {
        len = (len << 8) | usize::from(*bytes.get(2 + i).ok_or(Error::Malformed("short length"))?);
    }
    Ok((tag, 2 + n, len))
}

/// Splits one whole element (header and contents) off the front of `bytes`.
fn element(bytes: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    let (_, start, len) = header(bytes)?;
    let end = start.checked_add(len).ok_or(Error::Malformed("length overflow"))?;
    if end > bytes.len() {
        return Err(Error::Malformed("truncated"));
    }
    Ok(bytes.split_at(end))
}

/// DER length octets for `len`.
fn length(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![len as u8];
    }
    let be = len.to_be_bytes();
    let skip = be.iter().take_while(|b| **b == 0).count();
    let mut out = vec![0x80 | (be.len() - skip) as u8];
    out.extend_from_slice(&be[skip..]);
    out
}

/// A SEQUENCE of the given already-encoded elements.
pub(crate) fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    let body: Vec<u8> = parts.concat();
    let mut out = vec![0x30];
    out.extend(length(body.len()));
    out.extend(body);
    out
}

/// A granted TimeStampResp (RFC 3161 §2.4.2): `PKIStatusInfo { status 0 }` and the token.
pub(crate) fn granted(token: &[u8]) -> Vec<u8> {
    let status = sequence(&[&[0x02, 0x01, 0x00]]);
    sequence(&[&status, token])
}

/// The TimeStampToken (the CMS ContentInfo) inside a DER TimeStampResp (RFC 3161 §2.4.2),
/// exactly as the TSA encoded it; an error if the response carries none (a refusal).
pub fn token_of_reply(response: &[u8]) -> Result<Vec<u8>, Error> {
    let (tag, start, len) = header(response)?;
    if tag != 0x30 {
        return Err(Error::Malformed("response is not a SEQUENCE"));
    }
    let body = response.get(start..start + len).ok_or(Error::Malformed("truncated"))?;
    let (status, rest) = element(body)?;
    if status.first() != Some(&0x30) {
        return Err(Error::Malformed("no PKIStatusInfo"));
    }
    if rest.is_empty() {
        return Err(Error::Malformed("response carries no token"));
    }
    let (token, _) = element(rest)?;
    Ok(token.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_granted_response_gives_back_its_token() {
        let token = sequence(&[&[0x06, 0x01, 0x2a]]);
        let long = sequence(&[&vec![0x04; 300]]);
        for t in [token, long] {
            assert_eq!(token_of_reply(&granted(&t)).unwrap(), t);
        }
    }

    #[test]
    fn a_refusal_or_garbage_is_an_error() {
        let refusal = sequence(&[&sequence(&[&[0x02, 0x01, 0x02]])]);
        assert!(token_of_reply(&refusal).is_err());
        assert!(token_of_reply(&[0x30, 0x05, 0x30]).is_err());
        assert!(token_of_reply(&[]).is_err());
    }

    #[test]
    fn lengths_are_minimal() {
        assert_eq!(length(0x7f), vec![0x7f]);
        assert_eq!(length(0x80), vec![0x81, 0x80]);
        assert_eq!(length(0x1234), vec![0x82, 0x12, 0x34]);
    }
}

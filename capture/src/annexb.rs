//! H.264 from MP4/MOV (length-prefixed NAL units) into Annex B for MPEG-TS, in one copy.
//!
//! FFmpeg's way takes three: `h264_mp4toannexb` rewrites every packet, `dump_extra`
//! rewrites every keyframe to put the parameter sets in front, and the MPEG-TS muxer
//! rewrites every packet once more to put an access unit delimiter (AUD) in front, as
//! MPEG-TS requires. Here each access unit is written once, in its final form:
//!
//! ```text
//! AUD · [SPS, PPS at keyframes] · NAL units
//! ```
//!
//! An access unit with a delimiter of its own before its first slice gets none added (as
//! the MPEG-TS muxer would decide); if the delimiter is its first unit, it stays first.
//!
//! every unit behind a 4-byte start code. The NAL units themselves are copied unchanged,
//! so the packet digest (which covers the coded slices) is the same as the source's. The
//! parameter sets are the stream's own, from its `avcC` record, as `h264_mp4toannexb`
//! gives them.

/// The access unit delimiter the MPEG-TS muxer would otherwise insert: start code, NAL
/// type 9, `primary_pic_type` 7 (any slice type) and the RBSP stop bit.
const AUD: [u8; 6] = [0, 0, 0, 1, 0x09, 0xf0];
const START_CODE: [u8; 4] = [0, 0, 0, 1];
const NAL_AUD: u8 = 9;

/// The NAL units of a length-prefixed packet, or `None` if the lengths do not add up to
/// the packet. Empty units are skipped.
fn units(data: &[u8], length_size: usize) -> Option<Vec<&[u8]>> {
    let mut units = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (len, tail) = rest.split_at_checked(length_size)?;
        let len = len.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let (unit, tail) = tail.split_at_checked(len)?;
        if !unit.is_empty() {
            units.push(unit);
        }
        rest = tail;
    }
    Some(units)
}

/// Converts one access unit. `parameter_sets` (already in Annex B form) go in front of a
/// keyframe. `alloc` is given the exact output size and returns the buffer to fill.
/// `None` if the packet is not framed as `length_size` says.
pub(crate) fn convert<'o>(
    data: &[u8],
    length_size: usize,
    key: bool,
    parameter_sets: &[u8],
    alloc: impl FnOnce(usize) -> Option<&'o mut [u8]>,
) -> Option<()> {
    if !(1..=4).contains(&length_size) {
        return None;
    }
    let units = units(data, length_size)?;
    let (mut first_is_aud, mut has_aud, mut in_slices) = (false, false, false);
    let mut size = 0;
    for (n, unit) in units.iter().enumerate() {
        let nal_type = unit[0] & 0x1f;
        first_is_aud |= n == 0 && nal_type == NAL_AUD;
        has_aud |= !in_slices && nal_type == NAL_AUD;
        in_slices |= (1..=5).contains(&nal_type);
        size += START_CODE.len() + unit.len();
    }
    if !has_aud {
        size += AUD.len();
    }
    if key {
        size += parameter_sets.len();
    }
    let out = alloc(size)?;
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        out[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    let mut units = units.into_iter();
    if first_is_aud {
        put(&START_CODE);
        put(units.next()?);
    } else if !has_aud {
        put(&AUD);
    }
    if key {
        put(parameter_sets);
    }
    for unit in units {
        put(&START_CODE);
        put(unit);
    }
    debug_assert_eq!(at, size);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(data: &[u8], size: usize, key: bool, ps: &[u8]) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        convert(data, size, key, ps, |n| {
            buf.resize(n, 0xaa);
            Some(&mut buf[..])
        })?;
        Some(buf)
    }

    const PS: &[u8] = &[0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3];

    #[test]
    fn units_get_start_codes_an_aud_and_parameter_sets_at_keyframes() {
        let data = [0, 0, 0, 2, 0x65, 0x88, 0, 0, 0, 1, 0x06];
        assert_eq!(
            run(&data, 4, true, PS).unwrap(),
            [&AUD[..], PS, &[0, 0, 0, 1, 0x65, 0x88, 0, 0, 0, 1, 0x06]].concat()
        );
        let data = [0, 1, 0x41, 0, 2, 0x41, 0x9a];
        assert_eq!(
            run(&data, 2, false, PS).unwrap(),
            [&AUD[..], &[0, 0, 0, 1, 0x41, 0, 0, 0, 1, 0x41, 0x9a]].concat()
        );
    }

    #[test]
    fn an_access_unit_with_its_own_delimiter_keeps_it_first() {
        let data = [0, 0, 0, 2, 0x09, 0x10, 0, 0, 0, 1, 0x65];
        assert_eq!(
            run(&data, 4, true, PS).unwrap(),
            [&[0, 0, 0, 1, 0x09, 0x10][..], PS, &[0, 0, 0, 1, 0x65]].concat()
        );
    }

    #[test]
    fn a_delimiter_after_other_units_but_before_the_slices_is_enough() {
        let data = [0, 0, 0, 1, 0x06, 0, 0, 0, 2, 0x09, 0x10, 0, 0, 0, 1, 0x65];
        assert_eq!(
            run(&data, 4, true, PS).unwrap(),
            [PS, &[0, 0, 0, 1, 0x06, 0, 0, 0, 1, 0x09, 0x10, 0, 0, 0, 1, 0x65]].concat()
        );
        // After the first slice it belongs to no delimiter's place: one is added in front.
        let data = [0, 0, 0, 1, 0x41, 0, 0, 0, 2, 0x09, 0x10];
        assert_eq!(
            run(&data, 4, false, PS).unwrap(),
            [&AUD[..], &[0, 0, 0, 1, 0x41, 0, 0, 0, 1, 0x09, 0x10]].concat()
        );
    }

    #[test]
    fn empty_units_are_dropped_and_bad_lengths_refused() {
        assert_eq!(run(&[0, 0, 0, 0, 0, 0, 0, 1, 0x41], 4, false, PS).unwrap(), {
            [&AUD[..], &[0, 0, 0, 1, 0x41]].concat()
        });
        assert_eq!(run(&[0, 0, 0, 5, 0x41], 4, false, PS), None, "unit longer than the packet");
        assert_eq!(run(&[0, 0, 0], 4, false, PS), None, "length cut short");
        assert_eq!(run(&[1, 0x41], 0, false, PS), None, "no such length size");
        assert_eq!(run(&[], 4, false, PS).unwrap(), AUD, "an empty packet is an empty unit");
    }
}

//! What the header says of the picture and the source beyond the recorded media: how the
//! picture is shown turned (tag 16, `rotation`) and which of the source's streams were not
//! recorded (tag 17, `dropped_streams`). Neither is tampering, and neither changes the
//! verdict; a reader of the report must still know both: a portrait video shown upright by
//! the export, a subtitle track the original file has and the recording does not.

use custody_format::digest::MediaKind;
use custody_format::record::RecordingHeader;
use custody_format::report::{code, Check};

/// `media.rotation` when the header states a turn, `media.streams.dropped` when it lists
/// streams that were not recorded.
pub(crate) fn checks(h: &RecordingHeader) -> Vec<Check> {
    let mut out = Vec::new();
    if let Some(degrees) = h.rotation.filter(|d| *d != 0) {
        out.push(
            Check::new(
                code::MEDIA_ROTATION,
                format!("the picture is shown turned {degrees}° clockwise, as recorded (the source's display matrix, kept in the header)"),
            )
            .at(0),
        );
    }
    if !h.dropped_streams.is_empty() {
        let names: Vec<String> = h
            .dropped_streams
            .iter()
            .map(|d| {
                let kind = match d.kind {
                    MediaKind::Video => "video",
                    MediaKind::Audio => "audio",
                    MediaKind::Other => "data or subtitles",
                };
                format!("{} ({kind})", d.codec)
            })
            .collect();
        let n = names.len();
        let streams = if n == 1 { "stream was" } else { "streams were" };
        out.push(
            Check::new(
                code::MEDIA_STREAMS_DROPPED,
                format!(
                    "{n} of the source's {streams} not recorded: {}; the original file still holds them",
                    names.join(", ")
                ),
            )
            .at(0),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_format::record::DroppedStream;

    #[test]
    fn an_upright_header_says_nothing_and_a_turned_one_says_how() {
        let key = custody_format::testkit::key("device");
        let mut h = custody_format::testkit::header(1, &key);
        assert!(checks(&h).is_empty());
        h.rotation = Some(0);
        assert!(checks(&h).is_empty());
        h.rotation = Some(90);
        h.dropped_streams =
            vec![DroppedStream { kind: MediaKind::Other, codec: "mov_text".into() }];
        let c = checks(&h);
        assert_eq!(c[0].code, code::MEDIA_ROTATION);
        assert!(
            c[0].message.contains("shown turned 90° clockwise, as recorded"),
            "{}",
            c[0].message
        );
        assert_eq!(c[1].code, code::MEDIA_STREAMS_DROPPED);
        assert!(c[1].message.contains("mov_text (data or subtitles)"), "{}", c[1].message);
    }
}

//! What the server holds of a recording, as its device may see it: positions, gaps, end,
//! and the receipts it was given; and how long a recording that stopped arriving is still
//! called live ([`Liveness`]).

use std::time::Duration;

use custody_format::ids::{PublicKey, RecordingId};
use custody_format::record::kind;
use custody_protocol::body::{ReceiptsAnswer, RecordingState, RecordingStatus, StoredReceipt};

use crate::error::{ApiError, Code};
use crate::server::Server;

impl Server {
    /// Refuses with `not_found` unless `device` opened recording `id`: a device learns
    /// nothing, not even that it exists, of another device's recording.
    fn check_owner(&self, device: &PublicKey, id: &RecordingId) -> Result<(), ApiError> {
        let owner =
            self.inner.index.owner(id).map_err(|e| ApiError::internal("reading the index", e))?;
        if owner != Some(device.to_bytes()) {
            return Err(ApiError::new(
                Code::NotFound,
                format!("no recording {id} from this device"),
            ));
        }
        Ok(())
    }

    /// The state of recording `id`, for the device that opened it: which positions are
    /// stored, the gaps between them, whether the end record is stored. Never the records'
    /// or segments' contents.
    pub fn recording_state(
        &self,
        device: &PublicKey,
        id: &RecordingId,
    ) -> Result<RecordingState, ApiError> {
        self.check_owner(device, id)?;
        let positions = self
            .inner
            .index
            .positions(id)
            .map_err(|e| ApiError::internal("reading the index", e))?;
        let seqs: Vec<u64> = positions.iter().map(|(s, _)| *s).collect();
        let mut gaps = Vec::new();
        let mut expect = 0u64;
        for &s in &seqs {
            if s > expect {
                gaps.push([expect, s - 1]);
            }
            expect = s + 1;
        }
        let end = positions.iter().find(|(_, st)| st.kind == kind::END).map(|(s, _)| *s);
        let receipted = positions.iter().filter(|(_, st)| st.receipt.is_some()).count();
        Ok(RecordingState {
            recording_id: id.to_string(),
            header: seqs.first() == Some(&0),
            stored: seqs,
            receipted: receipted as u64,
            complete: end.is_some() && gaps.is_empty(),
            gaps,
            end_seq: end,
        })
    }

    /// The receipts the server gave for recording `id`, for the device that opened it, each
    /// the very bytes its ingest answered (receipts are deterministic and kept).
    pub fn recording_receipts(
        &self,
        device: &PublicKey,
        id: &RecordingId,
    ) -> Result<ReceiptsAnswer, ApiError> {
        self.check_owner(device, id)?;
        let positions = self
            .inner
            .index
            .positions(id)
            .map_err(|e| ApiError::internal("reading the index", e))?;
        let receipts = positions
            .iter()
            .filter_map(|(seq, st)| {
                st.receipt.as_ref().map(|r| StoredReceipt { seq: *seq, receipt: r.clone() })
            })
            .collect();
        Ok(ReceiptsAnswer { recording_id: id.to_string(), receipts })
    }
}

/// When a recording without its end record stops being `live`: a device that was killed,
/// seized or lost its network sends nothing more, and the legal team should see that in
/// seconds, not minutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// Silence after which it is `stalled` (`custody serve --stalled-after`); `None`: three
    /// lengths of its last segment (a device sends one a segment length; two missed are
    /// a network's hiccup, three a stop).
    pub stalled_after: Option<Duration>,
    /// Silence after which it is `cut off` (`custody serve --cut-off-after`).
    pub cut_off_after: Duration,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness { stalled_after: None, cut_off_after: Duration::from_secs(600) }
    }
}

/// Segment length assumed when a recording has no segment to measure yet (the recorder's
/// default target is 2 s).
const DEFAULT_SEGMENT_US: i64 = 2_000_000;

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Liveness {
    /// The silence after which a recording whose segments last `segment_us` is stalled.
    pub fn stalled_after_us(&self, segment_us: Option<i64>) -> i64 {
        let cut = micros(self.cut_off_after);
        let stalled = match self.stalled_after {
            Some(d) => micros(d),
            None => segment_us.filter(|&s| s > 0).unwrap_or(DEFAULT_SEGMENT_US).saturating_mul(3),
        };
        stalled.min(cut)
    }

    /// Where a recording stands at server time `now_us`: `ended` if its end record is
    /// stored, `gaps` if positions are missing, `last_us` the server time of its latest
    /// receipt, `segment_us` the length of its last segment. With how long it has been
    /// silent, if it has no end record and is no longer live.
    pub fn status(
        &self,
        ended: bool,
        gaps: bool,
        last_us: Option<i64>,
        segment_us: Option<i64>,
        now_us: i64,
    ) -> (RecordingStatus, Option<i64>) {
        if ended {
            return (if gaps { RecordingStatus::Gaps } else { RecordingStatus::Complete }, None);
        }
        let Some(last) = last_us else {
            return (if gaps { RecordingStatus::Gaps } else { RecordingStatus::CutOff }, None);
        };
        let silent = now_us.saturating_sub(last).max(0);
        if silent < self.stalled_after_us(segment_us) {
            (RecordingStatus::Live, None)
        } else if silent < micros(self.cut_off_after) {
            (RecordingStatus::Stalled, Some(silent))
        } else if gaps {
            (RecordingStatus::Gaps, Some(silent))
        } else {
            (RecordingStatus::CutOff, Some(silent))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn a_silent_recording_is_live_then_stalled_then_cut_off() {
        let l = Liveness::default();
        let at = |silent_s: i64| {
            l.status(false, false, Some(100 * S), Some(4 * S), (100 + silent_s) * S)
        };
        assert_eq!(at(11), (RecordingStatus::Live, None), "under three 4 s segments");
        assert_eq!(at(12), (RecordingStatus::Stalled, Some(12 * S)));
        assert_eq!(at(599).0, RecordingStatus::Stalled);
        assert_eq!(at(600), (RecordingStatus::CutOff, Some(600 * S)));
        let gaps = l.status(false, true, Some(0), Some(S), 700 * S);
        assert_eq!(gaps.0, RecordingStatus::Gaps);
    }

    #[test]
    fn the_end_record_settles_it_and_the_operator_sets_the_times() {
        let l = Liveness {
            stalled_after: Some(Duration::from_secs(5)),
            cut_off_after: Duration::from_secs(8),
        };
        assert_eq!(l.status(true, false, Some(0), None, 1000 * S).0, RecordingStatus::Complete);
        assert_eq!(l.status(true, true, Some(0), None, 0).0, RecordingStatus::Gaps);
        assert_eq!(
            l.status(false, false, Some(0), Some(60 * S), 5 * S).0,
            RecordingStatus::Stalled
        );
        assert_eq!(l.status(false, false, Some(0), None, 8 * S).0, RecordingStatus::CutOff);
        assert_eq!(l.status(false, false, None, None, 0).0, RecordingStatus::CutOff);
        let short = Liveness { stalled_after: None, cut_off_after: Duration::from_secs(3) };
        assert_eq!(short.stalled_after_us(Some(2 * S)), 3 * S, "never later than the cut-off");
    }
}

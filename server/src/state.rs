//! What the server holds of a recording, as its device may see it: positions, gaps, end,
//! and the receipts it was given.

use custody_format::ids::{PublicKey, RecordingId};
use custody_format::record::kind;
use custody_protocol::body::{ReceiptsAnswer, RecordingState, StoredReceipt};

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

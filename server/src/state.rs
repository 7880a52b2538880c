//! What the server holds of a recording, as its device may see it: positions, gaps, end.

use custody_format::ids::{PublicKey, RecordingId};

use crate::error::{ApiError, Code};
use crate::server::Server;

impl Server {
    /// The state of recording `id`, for the device that opened it: which positions are
    /// stored, the gaps between them, whether the end record is stored. Never the records'
    /// or segments' contents.
    pub fn recording_state(
        &self,
        device: &PublicKey,
        id: &RecordingId,
    ) -> Result<serde_json::Value, ApiError> {
        let index = &self.inner.index;
        let not_found =
            || ApiError::new(Code::NotFound, format!("no recording {id} from this device"));
        let owner = index.owner(id).map_err(|e| ApiError::internal("reading the index", e))?;
        if owner != Some(device.to_bytes()) {
            return Err(not_found());
        }
        let positions =
            index.positions(id).map_err(|e| ApiError::internal("reading the index", e))?;
        let seqs: Vec<u64> = positions.iter().map(|(s, _)| *s).collect();
        let mut gaps = Vec::new();
        let mut expect = 0u64;
        for &s in &seqs {
            if s > expect {
                gaps.push([expect, s - 1]);
            }
            expect = s + 1;
        }
        let end = positions.iter().find(|(_, st)| st.kind == 3).map(|(s, _)| *s);
        let receipted = positions.iter().filter(|(_, st)| st.receipt.is_some()).count();
        Ok(serde_json::json!({
            "recording_id": id.to_string(),
            "stored": seqs,
            "receipted": receipted,
            "gaps": gaps,
            "header": seqs.first() == Some(&0),
            "end_seq": end,
            "complete": end.is_some() && gaps.is_empty(),
        }))
    }
}

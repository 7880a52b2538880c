//! The index of stored records in PostgreSQL (a cache, as everywhere: rebuilt from the
//! records and the log).

use std::sync::Arc;

use custody_format::ids::RecordingId;

use super::pool::Pool;
use super::{db, to_i64, to_u64};
use crate::index::Stored;
use crate::store::{BoxFuture, IndexStore, StoreError, StoreResult};

/// [`IndexStore`] in the `index_records`, `index_owners` and `index_state` tables.
#[derive(Clone, Debug)]
pub struct PgIndex {
    pool: Arc<Pool>,
}

const COLUMNS: &str = "seq, kind, record_hash, prev, log_index, receipt";

fn stored(row: &tokio_postgres::Row) -> StoreResult<(u64, Stored)> {
    let kind: i16 = row.get(1);
    let log_index: Option<i64> = row.get(4);
    Ok((
        to_u64(row.get(0))?,
        Stored {
            kind: u8::try_from(kind)
                .map_err(|_| StoreError::Damaged(format!("an index entry of kind {kind}")))?,
            record_hash: row.get(2),
            prev: row.get(3),
            log_index: log_index.map(to_u64).transpose()?,
            receipt: row.get(5),
        },
    ))
}

impl PgIndex {
    pub(super) fn new(pool: Arc<Pool>) -> PgIndex {
        PgIndex { pool }
    }

    async fn select(
        &self,
        sql: &str,
        id: RecordingId,
        seq: Option<u64>,
    ) -> StoreResult<Vec<(u64, Stored)>> {
        let conn = self.pool.get().await?;
        let c = conn.shared()?;
        let rows = match seq {
            Some(seq) => c.query(sql, &[&id.0.as_slice(), &to_i64(seq)?]).await,
            None => c.query(sql, &[&id.0.as_slice()]).await,
        }
        .map_err(db("reading the index"))?;
        rows.iter().map(stored).collect()
    }
}

impl IndexStore for PgIndex {
    fn get(&self, id: RecordingId, seq: u64) -> BoxFuture<'_, StoreResult<Option<Stored>>> {
        Box::pin(async move {
            let sql =
                format!("SELECT {COLUMNS} FROM index_records WHERE recording = $1 AND seq = $2");
            Ok(self.select(&sql, id, Some(seq)).await?.pop().map(|(_, s)| s))
        })
    }

    fn put<'a>(
        &'a self,
        id: RecordingId,
        seq: u64,
        s: &'a Stored,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let log_index = s.log_index.map(to_i64).transpose()?;
            conn.shared()?
                .execute(
                    "INSERT INTO index_records \
                     (recording, seq, kind, record_hash, prev, log_index, receipt) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (recording, seq) DO UPDATE SET kind = EXCLUDED.kind, \
                     record_hash = EXCLUDED.record_hash, prev = EXCLUDED.prev, \
                     log_index = EXCLUDED.log_index, receipt = EXCLUDED.receipt",
                    &[
                        &id.0.as_slice(),
                        &to_i64(seq)?,
                        &i16::from(s.kind),
                        &s.record_hash,
                        &s.prev,
                        &log_index,
                        &s.receipt,
                    ],
                )
                .await
                .map_err(db("writing the index"))?;
            Ok(())
        })
    }

    fn positions(&self, id: RecordingId) -> BoxFuture<'_, StoreResult<Vec<(u64, Stored)>>> {
        Box::pin(async move {
            let sql =
                format!("SELECT {COLUMNS} FROM index_records WHERE recording = $1 ORDER BY seq");
            self.select(&sql, id, None).await
        })
    }

    fn last(&self, id: RecordingId) -> BoxFuture<'_, StoreResult<Option<(u64, Stored)>>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT {COLUMNS} FROM index_records WHERE recording = $1 \
                 ORDER BY seq DESC LIMIT 1"
            );
            Ok(self.select(&sql, id, None).await?.pop())
        })
    }

    fn owner(&self, id: RecordingId) -> BoxFuture<'_, StoreResult<Option<[u8; 32]>>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let row = conn
                .shared()?
                .query_opt(
                    "SELECT device FROM index_owners WHERE recording = $1",
                    &[&id.0.as_slice()],
                )
                .await
                .map_err(db("reading a recording's owner"))?;
            row.map(|r| {
                let device: Vec<u8> = r.get(0);
                <[u8; 32]>::try_from(device.as_slice())
                    .map_err(|_| StoreError::Damaged("an owner that is not a 32-byte key".into()))
            })
            .transpose()
        })
    }

    fn set_owner(&self, id: RecordingId, device: [u8; 32]) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            conn.shared()?
                .execute(
                    "INSERT INTO index_owners (recording, device) VALUES ($1, $2) \
                     ON CONFLICT (recording) DO UPDATE SET device = EXCLUDED.device",
                    &[&id.0.as_slice(), &device.as_slice()],
                )
                .await
                .map_err(db("writing a recording's owner"))?;
            Ok(())
        })
    }

    fn log_size(&self) -> BoxFuture<'_, StoreResult<Option<u64>>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let row = conn
                .shared()?
                .query_opt("SELECT log_size FROM index_state WHERE one", &[])
                .await
                .map_err(db("reading the index's log size"))?;
            row.and_then(|r| r.get::<_, Option<i64>>(0)).map(to_u64).transpose()
        })
    }

    fn set_log_size(&self, size: u64) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            conn.shared()?
                .execute(
                    "INSERT INTO index_state (one, log_size) VALUES (TRUE, $1) \
                     ON CONFLICT (one) DO UPDATE SET log_size = EXCLUDED.log_size",
                    &[&to_i64(size)?],
                )
                .await
                .map_err(db("writing the index's log size"))?;
            Ok(())
        })
    }

    fn clear(&self) -> BoxFuture<'_, StoreResult<()>> {
        Box::pin(async move {
            let mut conn = self.pool.get().await?;
            let tx = conn.client()?.transaction().await.map_err(db("clearing the index"))?;
            tx.batch_execute(
                "DELETE FROM index_records; DELETE FROM index_owners; DELETE FROM index_state;",
            )
            .await
            .map_err(db("clearing the index"))?;
            tx.commit().await.map_err(db("clearing the index"))
        })
    }

    fn flush(&self) -> BoxFuture<'_, StoreResult<()>> {
        // Every statement above commits on its own.
        Box::pin(async { Ok(()) })
    }
}

//! The custody log in PostgreSQL: one sequence of entries that every replica appends to.

use std::sync::Arc;

use custody_format::log::TreeHead;
use custody_format::merkle::leaf_hash;
use custody_format::signed::Signed;

use super::pool::Pool;
use super::{db, to_i64, to_u64};
use crate::store::{BoxFuture, LogStore, StoreError, StoreResult};

/// [`LogStore`] in the `log_entries`, `log_state` and `log_heads` tables.
#[derive(Clone, Debug)]
pub struct PgLog {
    pool: Arc<Pool>,
}

/// The entries of `rows` (position, entry), checked to sit at `from`, `from + 1`, …: a gap
/// would shift every later leaf, so it is damage, never skipped.
fn contiguous(from: u64, rows: &[tokio_postgres::Row]) -> StoreResult<Vec<Vec<u8>>> {
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let want = from + i as u64;
        let at = to_u64(row.get(0))?;
        if at != want {
            return Err(StoreError::Damaged(format!(
                "the database's custody log has no entry at position {want} (the next is {at})"
            )));
        }
        out.push(row.get(1));
    }
    Ok(out)
}

impl PgLog {
    pub(super) fn new(pool: Arc<Pool>) -> PgLog {
        PgLog { pool }
    }

    /// Appends `entries` after everything stored, in one transaction under the locked size
    /// row; with `known`, also returns what others appended after the first `known`.
    async fn append_after(
        &self,
        known: Option<u64>,
        entries: &[&[u8]],
    ) -> StoreResult<Vec<Vec<u8>>> {
        let mut conn = self.pool.get().await?;
        let c = conn.client()?;
        let tx = c.transaction().await.map_err(db("starting a log append"))?;
        let size: i64 = tx
            .query_one("SELECT size FROM log_state WHERE one FOR UPDATE", &[])
            .await
            .map_err(db("locking the custody log's size"))?
            .get(0);
        let size = to_u64(size)?;
        let others = match known {
            Some(k) if k > size => {
                return Err(StoreError::Damaged(format!(
                    "a batch for a log of {k} entries was appended to the database's, which \
                     holds {size}"
                )))
            }
            Some(k) if k < size => {
                let rows = tx
                    .query(
                        "SELECT position, entry FROM log_entries WHERE position >= $1 \
                         ORDER BY position",
                        &[&to_i64(k)?],
                    )
                    .await
                    .map_err(db("reading the custody log's newer entries"))?;
                let others = contiguous(k, &rows)?;
                if k + others.len() as u64 != size {
                    return Err(StoreError::Damaged(format!(
                        "the database's custody log has {} entries after {k}, and its size is \
                         {size}",
                        others.len()
                    )));
                }
                others
            }
            _ => Vec::new(),
        };
        if !entries.is_empty() {
            let positions = (size..size + entries.len() as u64)
                .map(to_i64)
                .collect::<StoreResult<Vec<i64>>>()?;
            let bytes: Vec<&[u8]> = entries.to_vec();
            let leaves: Vec<Vec<u8>> = entries.iter().map(|e| leaf_hash(e).to_vec()).collect();
            tx.execute(
                "INSERT INTO log_entries (position, entry, leaf_hash) \
                 SELECT * FROM UNNEST($1::BIGINT[], $2::BYTEA[], $3::BYTEA[])",
                &[&positions, &bytes, &leaves],
            )
            .await
            .map_err(db("appending to the custody log"))?;
            tx.execute(
                "UPDATE log_state SET size = $1 WHERE one",
                &[&to_i64(size + entries.len() as u64)?],
            )
            .await
            .map_err(db("raising the custody log's size"))?;
        }
        // Returns once the write-ahead log is flushed (synchronous_commit): durable.
        tx.commit().await.map_err(db("committing a custody log append"))?;
        Ok(others)
    }

    async fn read_from(&self, known: u64) -> StoreResult<Vec<Vec<u8>>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .shared()?
            .query(
                "SELECT position, entry FROM log_entries WHERE position >= $1 ORDER BY position",
                &[&to_i64(known)?],
            )
            .await
            .map_err(db("reading the custody log"))?;
        contiguous(known, &rows)
    }
}

impl LogStore for PgLog {
    fn load(&self) -> BoxFuture<'_, StoreResult<Vec<Vec<u8>>>> {
        Box::pin(self.read_from(0))
    }

    fn append<'a>(&'a self, entry: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move { self.append_after(None, &[entry]).await.map(drop) })
    }

    fn append_batch<'a>(
        &'a self,
        known: u64,
        entries: &'a [Vec<u8>],
    ) -> BoxFuture<'a, StoreResult<Vec<Vec<u8>>>> {
        Box::pin(async move {
            let entries: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
            self.append_after(Some(known), &entries).await
        })
    }

    fn entries_after(&self, known: u64) -> BoxFuture<'_, StoreResult<Vec<Vec<u8>>>> {
        Box::pin(self.read_from(known))
    }

    fn append_head<'a>(&'a self, head: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let size = Signed::<TreeHead>::parse(head)
                .map_err(|e| StoreError::Damaged(format!("a tree head to store: {e}")))?
                .value()
                .tree_size;
            let conn = self.pool.get().await?;
            conn.shared()?
                .execute(
                    "INSERT INTO log_heads (tree_size, head) VALUES ($1, $2) \
                     ON CONFLICT (tree_size) DO NOTHING",
                    &[&to_i64(size)?, &head],
                )
                .await
                .map_err(db("storing a signed tree head"))?;
            Ok(())
        })
    }

    fn entries<'a>(&'a self, indices: &'a [u64]) -> BoxFuture<'a, StoreResult<Vec<Vec<u8>>>> {
        Box::pin(async move {
            let wanted = indices.iter().map(|&i| to_i64(i)).collect::<StoreResult<Vec<i64>>>()?;
            let conn = self.pool.get().await?;
            let rows = conn
                .shared()?
                .query(
                    "SELECT position, entry FROM log_entries WHERE position = ANY($1)",
                    &[&wanted],
                )
                .await
                .map_err(db("reading custody log entries"))?;
            let mut found = std::collections::HashMap::with_capacity(rows.len());
            for row in &rows {
                found.insert(row.get::<_, i64>(0), row.get::<_, Vec<u8>>(1));
            }
            indices
                .iter()
                .zip(&wanted)
                .map(|(i, w)| {
                    found.get(w).cloned().ok_or_else(|| {
                        StoreError::Damaged(format!("no custody log entry {i} to read"))
                    })
                })
                .collect()
        })
    }
}

//! Enrollment tokens, members and request nonces in PostgreSQL: what must hold across
//! replicas (a token spent once, a nonce seen once) and across restarts.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use custody_format::ids::PublicKey;

use super::pool::Pool;
use super::{db, is_unique_violation};
use crate::members::{Member, Role};
use crate::store::{
    BoxFuture, MemberEntry, MemberStore, NonceStore, StoreError, StoreResult, TokenRecord,
    TokenStore,
};

fn hash32(bytes: Vec<u8>, what: &str) -> StoreResult<[u8; 32]> {
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| StoreError::Damaged(format!("{what} that is not 32 bytes")))
}

/// [`TokenStore`] in the `tokens` table.
#[derive(Clone, Debug)]
pub struct PgTokens {
    pool: Arc<Pool>,
}

impl PgTokens {
    pub(super) fn new(pool: Arc<Pool>) -> PgTokens {
        PgTokens { pool }
    }
}

impl TokenStore for PgTokens {
    fn issue<'a>(
        &'a self,
        hash: [u8; 32],
        token: &'a TokenRecord,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            conn.shared()?
                .execute(
                    "INSERT INTO tokens (hash, label, issued_at_us, expires_at_us) \
                     VALUES ($1, $2, $3, $4)",
                    &[&hash.as_slice(), &token.label, &token.issued_at_us, &token.expires_at_us],
                )
                .await
                .map_err(db("issuing a token"))?;
            Ok(())
        })
    }

    fn get(&self, hash: [u8; 32]) -> BoxFuture<'_, StoreResult<Option<TokenRecord>>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let row = conn
                .shared()?
                .query_opt(
                    "SELECT label, issued_at_us, expires_at_us FROM tokens WHERE hash = $1",
                    &[&hash.as_slice()],
                )
                .await
                .map_err(db("reading a token"))?;
            Ok(row.map(|r| TokenRecord {
                label: r.get(0),
                issued_at_us: r.get(1),
                expires_at_us: r.get(2),
            }))
        })
    }

    fn is_spent(&self, hash: [u8; 32]) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let row = conn
                .shared()?
                .query_opt(
                    "SELECT spent_by IS NOT NULL FROM tokens WHERE hash = $1",
                    &[&hash.as_slice()],
                )
                .await
                .map_err(db("reading a token"))?;
            Ok(row.is_some_and(|r| r.get(0)))
        })
    }

    /// Spends the token if no one has: of several replicas spending it at once, one
    /// changes the row and the others get [`StoreError::Spent`].
    fn spend<'a>(
        &'a self,
        hash: [u8; 32],
        device: &'a PublicKey,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let c = conn.shared()?;
            let key = device.to_bytes();
            let changed = c
                .execute(
                    "UPDATE tokens SET spent_by = $2 WHERE hash = $1 AND spent_by IS NULL",
                    &[&hash.as_slice(), &key.as_slice()],
                )
                .await
                .map_err(db("spending a token"))?;
            if changed == 1 {
                return Ok(());
            }
            let issued = c
                .query_opt("SELECT 1 FROM tokens WHERE hash = $1", &[&hash.as_slice()])
                .await
                .map_err(db("reading a token"))?
                .is_some();
            Err(if issued {
                StoreError::Spent
            } else {
                StoreError::Damaged("spending a token that was never issued".into())
            })
        })
    }
}

/// [`MemberStore`] in the `members` table.
#[derive(Clone, Debug)]
pub struct PgMembers {
    pool: Arc<Pool>,
}

impl PgMembers {
    pub(super) fn new(pool: Arc<Pool>) -> PgMembers {
        PgMembers { pool }
    }
}

fn member(row: &tokio_postgres::Row, from: usize) -> StoreResult<Member> {
    let role: String = row.get(from + 1);
    Ok(Member {
        name: row.get(from),
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Damaged(format!("a member with the role {role:?}")))?,
        created_at_us: row.get(from + 2),
    })
}

impl MemberStore for PgMembers {
    fn all(&self) -> BoxFuture<'_, StoreResult<Vec<MemberEntry>>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let rows = conn
                .shared()?
                .query("SELECT hash, name, role, created_at_us FROM members ORDER BY added", &[])
                .await
                .map_err(db("reading the members"))?;
            rows.iter()
                .map(|r| Ok((hash32(r.get(0), "a member's token hash")?, member(r, 1)?)))
                .collect()
        })
    }

    fn get(&self, hash: [u8; 32]) -> BoxFuture<'_, StoreResult<Option<Member>>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let row = conn
                .shared()?
                .query_opt(
                    "SELECT name, role, created_at_us FROM members WHERE hash = $1",
                    &[&hash.as_slice()],
                )
                .await
                .map_err(db("reading a member"))?;
            row.map(|r| member(&r, 0)).transpose()
        })
    }

    /// Adds the member; a name already taken (by an addition through another replica or
    /// admin command) is [`StoreError::Exists`].
    fn add<'a>(&'a self, hash: [u8; 32], m: &'a Member) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let conn = self.pool.get().await?;
            let r = conn
                .shared()?
                .execute(
                    "INSERT INTO members (hash, name, role, created_at_us) VALUES ($1, $2, $3, $4)",
                    &[&hash.as_slice(), &m.name, &m.role.as_str(), &m.created_at_us],
                )
                .await;
            match r {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => Err(StoreError::Exists(m.name.clone())),
                Err(e) => Err(StoreError::backend("adding a member", e)),
            }
        })
    }
}

/// How often, at most, one replica deletes the nonces older than the window, µs.
const PRUNE_EVERY_US: i64 = 10_000_000;

/// [`NonceStore`] in the `nonces` table.
#[derive(Debug)]
pub struct PgNonces {
    pool: Arc<Pool>,
    last_prune_us: AtomicI64,
}

impl PgNonces {
    pub(super) fn new(pool: Arc<Pool>) -> PgNonces {
        PgNonces { pool, last_prune_us: AtomicI64::new(0) }
    }
}

impl NonceStore for PgNonces {
    fn insert(
        &self,
        device: [u8; 32],
        nonce: [u8; 16],
        timestamp_us: i64,
        now_us: i64,
        window: Duration,
    ) -> BoxFuture<'_, StoreResult<bool>> {
        Box::pin(async move {
            let window_us = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
            let conn = self.pool.get().await?;
            let c = conn.shared()?;
            let last = self.last_prune_us.load(Ordering::Relaxed);
            if now_us.saturating_sub(last) > PRUNE_EVERY_US
                && self
                    .last_prune_us
                    .compare_exchange(last, now_us, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                // Older than the window: refused as stale anyway, so no longer needed.
                c.execute(
                    "DELETE FROM nonces WHERE timestamp_us < $1",
                    &[&now_us.saturating_sub(window_us)],
                )
                .await
                .map_err(db("forgetting old nonces"))?;
            }
            let inserted = c
                .execute(
                    "INSERT INTO nonces (device, nonce, timestamp_us) VALUES ($1, $2, $3) \
                     ON CONFLICT (device, nonce) DO NOTHING",
                    &[&device.as_slice(), &nonce.as_slice(), &timestamp_us],
                )
                .await
                .map_err(db("recording a nonce"))?;
            Ok(inserted == 1)
        })
    }
}

//! The stores in PostgreSQL: what several `custody serve` replicas must share, so that
//! they append to **one** custody log with no gap and no fork (issue 19).
//!
//! | store                 | tables                                        |
//! |-----------------------|-----------------------------------------------|
//! | [`LogStore`]          | `log_entries`, `log_state` (one row), `log_heads` |
//! | [`IndexStore`]        | `index_records`, `index_owners`, `index_state`  |
//! | [`TokenStore`]        | `tokens`                                      |
//! | [`MemberStore`]       | `members`                                     |
//! | [`NonceStore`]        | `nonces`                                      |
//!
//! Records and sealed segments are not here: they go to an object store
//! (`custody serve --store s3://…`) or the data directory. The schema is in
//! `server/migrations/`, applied in order by [`PgStores::connect`] under a PostgreSQL
//! advisory lock (so replicas starting together apply each migration once) and recorded in
//! `schema_migrations`.
//!
//! **The log.** Each batch of entries is one transaction: it locks the `log_state` row
//! (`SELECT … FOR UPDATE`), reads what other replicas appended after what the caller knows,
//! inserts the batch at the next positions and raises the size, then commits. Positions come
//! from that row, never from a sequence (a rolled-back sequence value is a gap). A commit
//! returns once PostgreSQL has flushed its write-ahead log (`synchronous_commit`, on by
//! default: leave it on), so an entry is durable before its receipt is given.
//!
//! **Tokens and nonces.** A token is spent by `UPDATE … WHERE spent_by IS NULL`: of two
//! replicas spending one token, exactly one changes a row, and the other gets
//! [`StoreError::Spent`]. A nonce is inserted under the unique key (device, nonce), so a
//! request replayed through another replica, or after a restart, is refused.
//!
//! **Connections.** A small pool (the `pool` module) whose connections run on a thread of their own,
//! so the futures here may be driven by [`block_on`](super::block_on) from any thread (see
//! the module documentation of [`crate::store`]). TLS to the database is not linked in:
//! run the database on the same host or a private network, reach it through a Unix socket
//! (`postgres:///custody?host=/run/postgresql`) or through a TLS tunnel (stunnel, or
//! PgBouncer with `server_tls_sslmode`) on loopback. A URL that asks for TLS
//! (`sslmode=require`) is refused at connect, never silently served without it.

use std::sync::Arc;

use tokio_postgres::error::SqlState;

use super::{
    IndexStore, LogStore, MemberStore, NonceStore, RecordStore, StoreError, StoreResult, Stores,
    TokenStore,
};

mod index;
mod log;
mod people;
mod pool;

pub use index::PgIndex;
pub use log::PgLog;
pub use people::{PgMembers, PgNonces, PgTokens};

use pool::Pool;

/// The migrations, in the order they are applied: (version, name, SQL).
const MIGRATIONS: &[(i64, &str, &str)] =
    &[(1, "shared stores", include_str!("../../../migrations/0001_shared_stores.sql"))];

/// The advisory lock migrations are applied under (any fixed number; "custody" in ASCII).
const MIGRATION_LOCK: i64 = 0x0063_7573_746f_6479;

/// The database's stores, on one connection pool. Cheap to clone; every clone shares the
/// pool, which closes its connections when the last one is dropped.
#[derive(Clone, Debug)]
pub struct PgStores {
    pool: Arc<Pool>,
}

impl PgStores {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`, or a
    /// key=value string; see tokio-postgres' `Config`), applies the migrations it lacks
    /// under an advisory lock, and refuses a database migrated by a newer version.
    pub async fn connect(url: &str) -> StoreResult<PgStores> {
        let config: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::backend("reading the database URL", e))?;
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(StoreError::backend(
                "connecting to the database",
                "sslmode=require: this build has no TLS to the database; reach it on a \
                 private network, a Unix socket or a TLS tunnel (docs/deploy.md)",
            ));
        }
        let pool = Arc::new(Pool::new(config)?);
        migrate(&pool).await?;
        Ok(PgStores { pool })
    }

    /// The custody log.
    pub fn log(&self) -> PgLog {
        PgLog::new(self.pool.clone())
    }

    /// The index.
    pub fn index(&self) -> PgIndex {
        PgIndex::new(self.pool.clone())
    }

    /// Enrollment tokens.
    pub fn tokens(&self) -> PgTokens {
        PgTokens::new(self.pool.clone())
    }

    /// Members.
    pub fn members(&self) -> PgMembers {
        PgMembers::new(self.pool.clone())
    }

    /// Request nonces.
    pub fn nonces(&self) -> PgNonces {
        PgNonces::new(self.pool.clone())
    }

    /// Every store in the database, with `records` for records and sealed segments.
    pub fn stores(&self, records: Arc<dyn RecordStore>) -> Stores {
        let log: Arc<dyn LogStore> = Arc::new(self.log());
        let index: Arc<dyn IndexStore> = Arc::new(self.index());
        let tokens: Arc<dyn TokenStore> = Arc::new(self.tokens());
        let members: Arc<dyn MemberStore> = Arc::new(self.members());
        let nonces: Arc<dyn NonceStore> = Arc::new(self.nonces());
        Stores { records, log, index, tokens, members, nonces }
    }

    /// The migration versions applied to the database, ascending.
    pub async fn migrations(&self) -> StoreResult<Vec<i64>> {
        let conn = self.pool.get().await?;
        let c = conn.shared()?;
        let rows = c
            .query("SELECT version FROM schema_migrations ORDER BY version", &[])
            .await
            .map_err(db("reading schema_migrations"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// Maps a database error to a [`StoreError`] saying what was being done.
fn db(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::backend(what, e)
}

/// Whether `e` is a unique-key violation (the row is there already).
fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// A database `BIGINT` from a position or size.
fn to_i64(n: u64) -> StoreResult<i64> {
    i64::try_from(n).map_err(|_| StoreError::Damaged(format!("{n} does not fit a BIGINT")))
}

/// A position or size from a database `BIGINT`.
fn to_u64(n: i64) -> StoreResult<u64> {
    u64::try_from(n).map_err(|_| StoreError::Damaged(format!("a negative position {n} stored")))
}

/// Applies the migrations the database lacks, each in its own transaction, under the
/// advisory lock (released whatever happened).
async fn migrate(pool: &Pool) -> StoreResult<()> {
    let mut conn = pool.get().await?;
    let c = conn.client()?;
    c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db("taking the migration lock"))?;
    let applied = apply_migrations(c).await;
    let unlocked = c
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db("releasing the migration lock"));
    applied?;
    unlocked.map(drop)
}

async fn apply_migrations(c: &mut tokio_postgres::Client) -> StoreResult<()> {
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    BIGINT PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(db("creating schema_migrations"))?;
    let rows = c
        .query("SELECT version FROM schema_migrations", &[])
        .await
        .map_err(db("reading schema_migrations"))?;
    let applied: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let newest = MIGRATIONS.last().map_or(0, |m| m.0);
    if let Some(v) = applied.iter().find(|v| **v > newest) {
        return Err(StoreError::Damaged(format!(
            "the database has schema migration {v}, newer than this server's newest ({newest}): \
             it was set up by a newer custody; run that version"
        )));
    }
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        let tx = c.transaction().await.map_err(db("starting a migration"))?;
        tx.batch_execute(sql).await.map_err(|e| {
            StoreError::backend(format!("applying migration {version} ({name})"), e)
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await
        .map_err(db("recording a migration"))?;
        tx.commit().await.map_err(db("committing a migration"))?;
    }
    Ok(())
}

//! A small pool of PostgreSQL connections, and the thread their network work runs on.
//!
//! tokio-postgres splits a connection in two: a `Client`, whose queries are messages on a
//! channel (their futures need no runtime, so the server's [`block_on`] bridge can drive
//! them from any thread), and a `Connection` future that does the socket I/O and must be
//! polled by a tokio runtime. The server opens its stores synchronously, and its tests do so
//! from inside single-threaded `#[tokio::test]` runtimes, where a connection task spawned on
//! the caller's runtime would never run while that thread waits in `block_on`: a deadlock.
//! So the pool owns its own one-thread runtime ([`Io`]) and every connection task runs
//! there, whoever asks; it stops when the last handle on the pool is dropped.
//!
//! Hand-written rather than deadpool-postgres: a handful of lines, no extra crates, and it
//! spawns on its own runtime (deadpool's connections are spawned on the caller's).
//!
//! [`block_on`]: crate::store::block_on

use std::sync::Mutex;

use tokio_postgres::{Client, Config, NoTls};

use crate::server::lock;
use crate::store::{StoreError, StoreResult};

/// Connections kept open at most, per pool (each replica has one pool). PostgreSQL's default
/// `max_connections` is 100, so a dozen replicas fit beside the administrators' sessions.
pub(crate) const POOL_SIZE: usize = 8;

/// The thread whose runtime polls every connection of one pool.
#[derive(Debug)]
struct Io {
    handle: tokio::runtime::Handle,
    /// Dropped with the pool: the thread's runtime then stops, closing the connections.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Io {
    fn start() -> StoreResult<Io> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::backend("starting the database connections' runtime", e))?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("custody-pg".into())
            .spawn(move || {
                // Runs the connection tasks until the pool is dropped, then drops the runtime
                // here, off any async context.
                let _ = rt.block_on(stopped);
            })
            .map_err(|e| StoreError::backend("starting the database connections' thread", e))?;
        Ok(Io { handle, _stop: stop })
    }
}

/// Up to [`POOL_SIZE`] connections to one database, opened as needed and reopened when one
/// has closed.
#[derive(Debug)]
pub(crate) struct Pool {
    config: Config,
    idle: Mutex<Vec<Client>>,
    permits: tokio::sync::Semaphore,
    io: Io,
}

impl Pool {
    /// A pool for `config`; connects nothing yet.
    pub(crate) fn new(config: Config) -> StoreResult<Pool> {
        Ok(Pool {
            config,
            idle: Mutex::new(Vec::new()),
            permits: tokio::sync::Semaphore::new(POOL_SIZE),
            io: Io::start()?,
        })
    }

    /// A connection of its own until the guard is dropped (waiting while all are in use).
    pub(crate) async fn get(&self) -> StoreResult<Conn<'_>> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| StoreError::backend("waiting for a database connection", e))?;
        let idle = {
            let mut idle = lock(&self.idle);
            idle.retain(|c| !c.is_closed());
            idle.pop()
        };
        let client = match idle {
            Some(c) => c,
            None => self.connect().await?,
        };
        Ok(Conn { client: Some(client), pool: self, _permit: permit })
    }

    /// Opens one more connection; its I/O task runs on the pool's thread.
    async fn connect(&self) -> StoreResult<Client> {
        let config = self.config.clone();
        let task = self.io.handle.spawn(async move {
            let (client, connection) = config.connect(NoTls).await?;
            tokio::spawn(async move {
                // The error of a closed connection shows on the client's next query.
                let _ = connection.await;
            });
            Ok::<_, tokio_postgres::Error>(client)
        });
        match task.await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(StoreError::backend("connecting to the database", e)),
            Err(e) => Err(StoreError::backend("connecting to the database", e)),
        }
    }
}

/// A connection taken from the [`Pool`]; back into it when dropped, unless it closed.
#[derive(Debug)]
pub(crate) struct Conn<'a> {
    client: Option<Client>,
    pool: &'a Pool,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Conn<'_> {
    /// The client. (Always there until the guard is dropped; an error rather than a panic
    /// all the same.)
    pub(crate) fn client(&mut self) -> StoreResult<&mut Client> {
        self.client
            .as_mut()
            .ok_or_else(|| StoreError::Damaged("a database connection used after release".into()))
    }

    /// The client, for statements outside a transaction.
    pub(crate) fn shared(&self) -> StoreResult<&Client> {
        self.client
            .as_ref()
            .ok_or_else(|| StoreError::Damaged("a database connection used after release".into()))
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            if !c.is_closed() {
                lock(&self.pool.idle).push(c);
            }
        }
    }
}

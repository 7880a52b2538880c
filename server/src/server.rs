//! The server's state: its identity, storage, index, custody log and enrolled devices, and
//! how it is opened (and the index rebuilt) from the data directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use custody_format::cert::DeviceCertificate;
use custody_format::ids::{PublicKey, RecordingId};
use custody_format::log::{EntryType, LogEntry};
use custody_format::receipt::Receipt;
use custody_format::record::{Record, SignedRecord};
use custody_format::signed::Signed;

use crate::custody_log::{Appended, CustodyLog, LogDamage, LogError};
use crate::identity::{Identity, IdentityError};
use crate::index::{Index, Stored};
use crate::storage::{Storage, StorageError};
use crate::store::{Backend, MemberStore, NonceStore, TokenStore};

/// Limits on what one request and one device may use.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body accepted, bytes (a signed record plus a sealed segment).
    pub max_body_bytes: usize,
    /// Bytes all uploads in progress may hold at once (their declared lengths): bounds the
    /// memory and temporary disk they take together. Past it an upload is refused with
    /// `server.busy` before its body is read.
    pub max_inflight_bytes: u64,
    /// Requests one device may have in progress at once.
    pub per_device_concurrency: usize,
    /// Time allowed for a request body to arrive; a stalled upload is dropped.
    pub body_timeout: Duration,
    /// Time allowed for a whole request.
    pub request_timeout: Duration,
    /// Time allowed for a request's headers (and the TLS handshake).
    pub header_timeout: Duration,
    /// Largest difference between a request's timestamp and the server clock.
    pub clock_skew: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 << 20,
            max_inflight_bytes: 512 << 20,
            per_device_concurrency: 8,
            body_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(120),
            header_timeout: Duration::from_secs(15),
            clock_skew: Duration::from_secs(300),
        }
    }
}

/// How the server is configured.
#[derive(Clone, Debug)]
pub struct Config {
    /// Its data directory.
    pub data_dir: PathBuf,
    /// age recipients (`age1…`) handed to devices at enrollment, besides those listed in
    /// `<data>/recipients.txt`.
    pub recipients: Vec<String>,
    /// Limits.
    pub limits: Limits,
    /// Serve plain HTTP rather than TLS (loopback tests only; asked for explicitly).
    pub insecure_http: bool,
    /// Where records, the log, the index, tokens, members and nonces are kept (the data
    /// directory by default).
    pub backend: Backend,
    /// A certificate chain and key to serve instead of the self-signed certificate
    /// (`custody serve --tls-cert --tls-key`).
    pub tls: Option<crate::identity::TlsFiles>,
    /// The reverse proxies whose word about a client's address is taken (none by default).
    pub trusted_proxies: crate::proxy::TrustedProxies,
    /// The operations log on stderr (`crate::events`): off unless asked for.
    pub events: crate::events::EventLog,
    /// When a recording that stopped arriving is listed as stalled, then cut off.
    pub liveness: crate::state::Liveness,
    /// RFC 3161 time-stamping of the custody log (`custody serve --tsa`): none by default.
    pub tsa: crate::tsa::TsaConfig,
}

impl Config {
    /// The defaults for `data_dir`, with TLS.
    pub fn new(data_dir: &Path) -> Config {
        Config {
            data_dir: data_dir.to_path_buf(),
            recipients: Vec::new(),
            limits: Limits::default(),
            insecure_http: false,
            backend: Backend::Fs,
            tls: None,
            trusted_proxies: crate::proxy::TrustedProxies::default(),
            events: crate::events::EventLog::default(),
            liveness: crate::state::Liveness::default(),
            tsa: crate::tsa::TsaConfig::default(),
        }
    }
}

/// Failures opening the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The identity could not be loaded or made.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The custody log could not be opened.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The storage could not be opened or read.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The index could not be read or rebuilt.
    #[error("the index: {0}")]
    Index(#[source] StorageError),
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// An enrolled device.
#[derive(Clone, Debug)]
pub struct Device {
    /// Its label (pseudonym).
    pub label: String,
    /// Server time of enrollment.
    pub enrolled_at_us: i64,
    /// Whether its key has been revoked.
    pub revoked: bool,
}

/// The running server's state, shared by every request.
#[derive(Debug)]
pub struct Inner {
    pub(crate) config: Config,
    pub(crate) identity: Identity,
    pub(crate) recipients: Vec<String>,
    pub(crate) storage: Storage,
    pub(crate) index: Index,
    pub(crate) log: Mutex<CustodyLog>,
    /// The custody log's group commit: every append goes through it, never holding `log`.
    pub(crate) commit: crate::custody_log::GroupCommit,
    pub(crate) devices: RwLock<HashMap<[u8; 32], Device>>,
    pub(crate) recording_locks: Mutex<HashMap<[u8; 16], Arc<Mutex<()>>>>,
    pub(crate) device_permits: Mutex<HashMap<[u8; 32], Arc<tokio::sync::Semaphore>>>,
    pub(crate) replay: Arc<dyn NonceStore>,
    pub(crate) tokens: Arc<dyn TokenStore>,
    pub(crate) member_store: Arc<dyn MemberStore>,
    pub(crate) token_lock: Mutex<()>,
    pub(crate) lawyer: crate::catalog::Lawyer,
    /// Uploads in progress and the budget they draw on.
    pub(crate) uploads: crate::upload::Uploads,
    /// The disk space kept for the custody log (the filesystem back-end only).
    pub(crate) reserve: Option<crate::reserve::Reserve>,
    /// Where the stored custody log is damaged, if it is: the server is then read-only.
    pub(crate) log_damage: Option<LogDamage>,
    /// How far this replica has read what other replicas logged (`crate::replica`).
    pub(crate) replica: crate::replica::Replica,
}

/// The server. Cheap to clone; every clone is the same server.
#[derive(Clone, Debug)]
pub struct Server {
    pub(crate) inner: Arc<Inner>,
}

/// What [`Server::open`] repaired or noticed, to print.
#[derive(Clone, Debug, Default)]
pub struct Opened {
    /// Whether the signing key and TLS certificate were made now.
    pub identity_created: bool,
    /// Whether the index was rebuilt, and why.
    pub index_rebuilt: Option<String>,
    /// What is wrong with the TLS certificate but does not stop the server (expired).
    pub tls_warnings: Vec<String>,
    /// Why the server runs on a full disk, if it does: what it refuses and what goes on.
    pub disk_full: Option<String>,
    /// Where the custody log is damaged, if it is: the server runs read-only.
    pub log_damage: Option<LogDamage>,
}

/// Locks a std mutex, carrying on through poisoning: every critical section leaves the
/// protected state consistent at each step, so a panic elsewhere does not corrupt it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Server {
    /// Opens the server in `config.data_dir`: makes its identity on first start, opens the
    /// log (repairing a torn tail), the storage and the index, rebuilding the index if it
    /// will not open or is behind the log.
    pub fn open(config: Config) -> Result<(Server, Opened), OpenError> {
        let dir = config.data_dir.clone();
        let identity = Identity::load(&dir, config.tls.as_ref())?;
        let (stores, index_replaced) = match &config.backend {
            Backend::Fs => crate::store::fs::open(&dir)?,
            Backend::Custom(stores) => (stores.clone(), None),
        };
        let (log, entries) =
            CustodyLog::open_store(stores.log.clone(), identity.signing_key.clone())?;
        let log_damage = log.damage().cloned();
        if let Some(d) = &log_damage {
            let event = crate::events::Event::new("log damaged").with("detail", d);
            crate::events::emit(&config.events, &event);
            eprintln!("custody-server: {d}");
            eprintln!(
                "custody-server: to restore it, stop the server, keep {} aside (it is evidence), \
                 copy the log directory of the latest backup in its place and start again \
                 (docs/deploy.md, \"Restoring the custody log\")",
                dir.join("log").display()
            );
        }
        let storage = Storage::new(stores.records.clone());
        let mut recipients = config.recipients.clone();
        let rpath = dir.join("recipients.txt");
        match std::fs::read_to_string(&rpath) {
            Ok(text) => recipients.extend(
                text.lines().map(str::trim).filter(|l| l.starts_with("age1")).map(String::from),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(OpenError::Io { path: rpath, source }),
        }
        recipients.dedup();

        let mut opened = Opened {
            identity_created: identity.created,
            index_rebuilt: index_replaced,
            tls_warnings: identity.warnings.clone(),
            disk_full: None,
            log_damage: log_damage.clone(),
        };
        let mut index = Index::new(stores.index.clone());
        let size = index.log_size().map_err(OpenError::Index)?;
        // Stores other than the data directory's may be shared by several replicas (a
        // database): there the index's mark trails the log whenever another replica appended
        // since it last moved it, and a rebuild would clear the index under the others'
        // feet. Such an index is rebuilt only when it was never marked (lost, or cleared);
        // a new one for an empty log is marked at once, so that a replica starting later
        // does not take it for a lost one. (A record logged without its receipt reaching
        // the index, a replica killed in between, is answered from the log:
        // `Server::receipt_from_log`.)
        let shared = matches!(config.backend, Backend::Custom(_));
        if shared && size.is_none() && log.is_empty() {
            index.set_log_size(0).map_err(OpenError::Index)?;
        }
        let behind =
            if shared { size.is_none() && !log.is_empty() } else { size.unwrap_or(0) != log.len() };
        // A new index for an empty log has nothing to rebuild. Nor is an index rebuilt from
        // a damaged log's first entries: it still holds the receipts given after them.
        if opened.index_rebuilt.is_none() && behind && log_damage.is_none() {
            opened.index_rebuilt = Some(format!(
                "the index covers {} of {} log entries",
                size.unwrap_or(0),
                log.len()
            ));
        }
        if opened.index_rebuilt.is_some() {
            if let Err(e) = rebuild(&index, &storage, &log, &entries, &identity.signing_key) {
                if !crate::reserve::is_no_space(&e) {
                    return Err(OpenError::Index(e));
                }
                // The index is a cache: on a full disk it is kept in memory for this run.
                index = Index::new(Arc::new(crate::store::memory::MemoryIndex::default()));
                opened.index_rebuilt = Some(format!(
                    "the index could not be rebuilt on the full disk ({e}), so it is kept in \
                     memory until the next start"
                ));
                rebuild(&index, &storage, &log, &entries, &identity.signing_key)
                    .map_err(OpenError::Index)?;
            }
        }
        let reserve = match &config.backend {
            Backend::Fs => {
                let (reserve, room) = crate::reserve::Reserve::open(&dir);
                if let Err(why) = room {
                    opened.disk_full = Some(format!(
                        "the disk holding {} is full ({why}): uploads are refused \
                         (storage.full) until there is room again; the log head and proofs are \
                         served{}",
                        dir.display(),
                        if reserve.whole() {
                            format!(
                                ", and retrievals go on, their access entries written into the \
                                 {} MiB kept in reserve for the custody log",
                                crate::reserve::RESERVE_BYTES >> 20
                            )
                        } else {
                            "; a retrieval is refused if its access entry cannot be logged".into()
                        }
                    ));
                }
                Some(reserve)
            }
            _ => None,
        };
        let uploads = crate::upload::Uploads::new(
            config.limits.max_inflight_bytes,
            config.limits.max_body_bytes as u64,
        );

        let mut devices = HashMap::new();
        for e in &entries {
            match (e.entry_type, &e.device_key) {
                (EntryType::DeviceEnrolled, Some(k)) => {
                    devices.insert(
                        k.to_bytes(),
                        Device {
                            label: e.label.clone().unwrap_or_default(),
                            enrolled_at_us: e.at_us,
                            revoked: false,
                        },
                    );
                }
                (EntryType::DeviceRevoked, Some(k)) => {
                    if let Some(d) = devices.get_mut(&k.to_bytes()) {
                        d.revoked = true;
                    }
                }
                _ => {}
            }
        }
        let inner = Inner {
            config,
            identity,
            recipients,
            storage,
            index,
            log: Mutex::new(log),
            commit: crate::custody_log::GroupCommit::default(),
            devices: RwLock::new(devices),
            recording_locks: Mutex::new(HashMap::new()),
            device_permits: Mutex::new(HashMap::new()),
            replay: stores.nonces.clone(),
            tokens: stores.tokens.clone(),
            member_store: stores.members.clone(),
            token_lock: Mutex::new(()),
            lawyer: crate::catalog::Lawyer::new(&entries),
            uploads,
            reserve,
            log_damage,
            replica: crate::replica::Replica::new(entries.len() as u64),
        };
        let server = Server { inner: Arc::new(inner) };
        // A member file that cannot be read now is retried when its token is first used.
        if let Err(e) = server.load_members() {
            eprintln!("custody-server: loading members: {e}");
        }
        Ok((server, opened))
    }

    /// The server's public key.
    pub fn public_key(&self) -> PublicKey {
        self.inner.identity.public_key
    }

    /// SHA-256 of the TLS certificate, hex (what devices compare at enrollment).
    pub fn tls_sha256(&self) -> String {
        self.inner.identity.tls_sha256()
    }

    /// The served TLS certificate's names and validity.
    pub fn tls_certificate(&self) -> Result<crate::identity::CertificateInfo, IdentityError> {
        self.inner.identity.certificate_info()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The rustls configuration for serving TLS.
    pub fn tls_config(&self) -> Result<Arc<rustls::ServerConfig>, IdentityError> {
        self.inner.identity.tls_config()
    }

    /// The storage (for the legal team's tools; no device route reads from it).
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// Whether the nonce of an authenticated request is new inside the freshness window
    /// (recording it if so): `false` for a replay.
    pub(crate) async fn nonce_is_fresh(
        &self,
        device: &PublicKey,
        nonce: [u8; 16],
        timestamp_us: i64,
    ) -> Result<bool, StorageError> {
        let window = self.config().limits.clock_skew;
        self.inner
            .replay
            .insert(device.to_bytes(), nonce, timestamp_us, crate::now_us(), window)
            .await
    }

    /// Issues a one-time enrollment token through the server's token store (as
    /// [`crate::issue_token`] does in a data directory): for back-ends without files.
    pub fn issue_token(
        &self,
        label: &str,
        ttl: Duration,
    ) -> Result<String, crate::enroll::TokenError> {
        crate::enroll::issue_into(self.inner.tokens.as_ref(), label, ttl)
    }

    /// The latest signed tree head.
    pub fn tree_head(&self) -> Signed<custody_format::log::TreeHead> {
        // On a log other replicas append to, a head a little behind theirs is still a true
        // head; it is brought up to date now and then (a no-op with one writer).
        self.inner.commit.catch_up_if_stale(&self.inner.log, crate::custody_log::CATCH_UP_EVERY);
        lock(&self.inner.log).head().clone()
    }

    /// Where the custody log is damaged, if it is: the server then serves what it can prove
    /// and refuses whatever would append (`log.damaged`) until the log is restored.
    pub fn log_damage(&self) -> Option<&LogDamage> {
        self.inner.log_damage.as_ref()
    }

    /// Number of log entries.
    pub fn log_len(&self) -> u64 {
        lock(&self.inner.log).len()
    }

    /// The RFC 9162 consistency proof between the log's trees of `from` and `to` entries,
    /// from its subtree hashes (O(log n)).
    pub fn log_consistency_proof(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<[u8; 32]>, custody_format::merkle::MerkleError> {
        lock(&self.inner.log).consistency_proof(from, to)
    }

    /// Entry `index`'s leaf hash and RFC 9162 inclusion proof in the log's tree of `size`
    /// entries (O(log n)).
    pub fn log_inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<([u8; 32], Vec<[u8; 32]>), custody_format::merkle::MerkleError> {
        lock(&self.inner.log).inclusion_proof(index, size)
    }

    /// The enrolled device `key`, if any.
    pub fn device(&self, key: &PublicKey) -> Option<Device> {
        self.inner.devices.read().unwrap_or_else(|p| p.into_inner()).get(&key.to_bytes()).cloned()
    }

    /// Appends an entry to the custody log (durable when this returns), in the group
    /// commit's next batch.
    pub(crate) fn append_log(&self, entry: &LogEntry) -> Result<Appended, LogError> {
        let _order = self.inner.commit.ordered();
        self.append_to(entry, false)
    }

    /// Reads what other replicas appended if the log is shorter than `size`, so that a
    /// proof asked for at a size another replica made can be given (a no-op with one
    /// writer). Blocking.
    pub(crate) fn log_reach(&self, size: u64) {
        if lock(&self.inner.log).len() < size {
            if let Err(e) = self.inner.commit.catch_up(&self.inner.log) {
                eprintln!("custody-server: reading the custody log's newer entries: {e}");
            }
        }
    }

    /// Revokes a device: logged, and its requests refused from now on.
    pub fn revoke(&self, key: &PublicKey, actor: &str, reason: &str) -> Result<(), LogError> {
        let mut e = LogEntry::new(EntryType::DeviceRevoked, crate::now_us());
        e.device_key = Some(*key);
        e.actor = Some(actor.to_string());
        e.detail = Some(reason.to_string());
        self.append_log(&e)?;
        if let Some(d) =
            self.inner.devices.write().unwrap_or_else(|p| p.into_inner()).get_mut(&key.to_bytes())
        {
            d.revoked = true;
        }
        Ok(())
    }

    /// The certificate the server issued a device at enrollment (re-signed: Ed25519 is
    /// deterministic, so it is the same bytes).
    pub(crate) fn certificate(&self, key: &PublicKey, dev: &Device) -> Signed<DeviceCertificate> {
        Signed::sign(
            DeviceCertificate {
                device_key: *key,
                label: dev.label.clone(),
                enrolled_at_us: dev.enrolled_at_us,
                server_key: self.public_key(),
            },
            &self.inner.identity.signing_key,
        )
    }
}

/// The receipt for the record logged by `entry` at `index`, under the tree of `index + 1`
/// entries with root `root`. A receipt is a pure function of these, so the index can be
/// rebuilt and an interrupted upload answered again with the very same bytes.
pub(crate) fn receipt_for(
    entry: &LogEntry,
    index: u64,
    root: [u8; 32],
    key: &ed25519_dalek::SigningKey,
) -> Option<Signed<Receipt>> {
    Some(Signed::sign(
        Receipt {
            recording_id: entry.recording_id?,
            seq: entry.seq?,
            record_hash: entry.record_hash?,
            ciphertext_sha256: entry.ciphertext_sha256,
            device_key: entry.device_key?,
            received_at_us: entry.at_us,
            log_index: index,
            tree_size: index + 1,
            tree_root: root,
        },
        key,
    ))
}

/// The index's view of a stored signed record.
pub(crate) fn stored_of(r: &SignedRecord) -> Stored {
    let kind = r.record().kind();
    Stored {
        kind,
        record_hash: hex::encode(r.hash()),
        prev: r.record().prev().map(hex::encode),
        log_index: None,
        receipt: None,
    }
}

/// Rebuilds the index from the log entries and the stored records.
fn rebuild(
    index: &Index,
    storage: &Storage,
    log: &CustodyLog,
    entries: &[LogEntry],
    key: &ed25519_dalek::SigningKey,
) -> Result<(), StorageError> {
    index.clear()?;
    // First every stored record, then what the log says about each.
    for id in storage.recordings()? {
        for seq in storage.record_positions(&id)? {
            let Some(bytes) = storage.record(&id, seq)? else {
                continue;
            };
            let Ok(r) = SignedRecord::parse(&bytes) else { continue };
            if let Record::Header(h) = r.record() {
                index.set_owner(&id, &h.device_key.to_bytes())?;
            }
            index.put(&id, seq, &stored_of(&r))?;
        }
    }
    for (i, e) in entries.iter().enumerate() {
        let logged = matches!(
            e.entry_type,
            EntryType::RecordingOpened | EntryType::SegmentReceived | EntryType::RecordingEnded
        );
        let (true, Some(id), Some(seq), Some(dev)) = (logged, e.recording_id, e.seq, e.device_key)
        else {
            continue;
        };
        let Some(mut s) = index.get(&id, seq)? else { continue };
        // A record is logged once; should a crash ever have logged it twice, the first
        // entry is the one its receipt names.
        if s.log_index.is_some() || Some(s.record_hash.clone()) != e.record_hash.map(hex::encode) {
            continue;
        }
        let i = i as u64;
        let root = log.root_at(i + 1).unwrap_or_else(custody_format::merkle::empty_root);
        s.log_index = Some(i);
        s.receipt = receipt_for(e, i, root, key).map(|r| hex::encode(r.to_bytes()));
        index.put(&id, seq, &s)?;
        if index.owner(&id)?.is_none() {
            index.set_owner(&id, &dev.to_bytes())?;
        }
    }
    index.set_log_size(entries.len() as u64)?;
    index.flush()?;
    Ok(())
}

/// A recording id from its text form.
pub(crate) fn parse_id(s: &str) -> Option<RecordingId> {
    RecordingId::parse(s).ok()
}

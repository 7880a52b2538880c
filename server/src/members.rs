//! Legal-team members: names, roles, one-time API tokens stored only hashed, and bearer
//! authentication with a per-address limit on failed attempts.
//!
//! ```text
//! <data>/members/<sha256(token) hex>.json   {"name", "role", "created_at_us"}
//! ```
//!
//! [`add_member`] (behind `custody admin member add`) works on the data directory beside a
//! running server, like enrollment tokens. The custody log has one writer, the server: it
//! logs a `MemberAdded` entry for each member file it has not logged yet, when it starts
//! and when a token it does not know turns out to have a file. A member is admitted only
//! once its addition is in the log.
//!
//! A device key never authenticates as a member: member requests carry
//! `Authorization: Bearer <token>`, and a request signed with a device key is refused on
//! every member route.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Mutex, RwLock};

use custody_format::log::{EntryType, LogEntry};
use custody_format::primitives::sha256;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, Code};
use crate::server::{lock, Server};
use crate::store::fs::FsMembers;
use crate::store::{block_on, MemberStore, StoreError};

/// Failed logins and enrollments allowed from one address within [`FAILURE_WINDOW_US`].
pub const MAX_FAILURES: u32 = 10;
/// The window failed logins are counted in, µs (60 s).
pub const FAILURE_WINDOW_US: i64 = 60_000_000;
/// Most addresses whose failures are remembered at once (bounded memory).
const MAX_TRACKED: usize = 4096;
/// Who the log names as the actor of a member added through the data directory.
pub const LOCAL_ADMIN: &str = "local administrator (data directory)";

/// A member's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May also revoke devices and manage members.
    Admin,
    /// May list and retrieve evidence.
    Member,
}

impl Role {
    /// `admin` or `member`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// Parses `admin` or `member`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// A member, as stored (by token hash) and as authenticated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's name (unique on the server; it is what the log records as actor).
    pub name: String,
    /// The role.
    pub role: Role,
    /// When the member was added, µs since the epoch.
    pub created_at_us: i64,
}

impl Member {
    /// The `label` of the member's `MemberAdded` log entry: `<name> (<role>)`.
    pub fn log_label(&self) -> String {
        format!("{} ({})", self.name, self.role.as_str())
    }
}

/// Failures adding a member.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemberError {
    /// The member store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The name is empty, too long or has characters other than letters, digits, space and
    /// `. _ - @`.
    #[error("a member name must be 1 to 64 letters, digits, spaces or . _ - @")]
    BadName,
    /// A member of that name exists already.
    #[error("there is already a member named {0:?}")]
    Exists(String),
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.trim() == name
        && name.chars().all(|c| c.is_alphanumeric() || " ._-@".contains(c))
}

/// Adds a member named `name` with `role` to the server in `data_dir`. Returns the API token
/// (64 hex digits), shown once and stored only hashed. The running server logs the
/// addition when it next starts or first sees the token.
pub fn add_member(data_dir: &Path, name: &str, role: Role) -> Result<String, MemberError> {
    add_to(&FsMembers::new(data_dir), name, role)
}

/// Adds a member to `store` (a shared database's, for `custody admin member add
/// --database`); see [`add_member`].
pub fn add_to(store: &dyn MemberStore, name: &str, role: Role) -> Result<String, MemberError> {
    if !valid_name(name) {
        return Err(MemberError::BadName);
    }
    if block_on(store.all())?.iter().any(|(_, m)| m.name == name) {
        return Err(MemberError::Exists(name.to_string()));
    }
    let mut token = [0u8; 32];
    OsRng.fill_bytes(&mut token);
    let member = Member { name: name.to_string(), role, created_at_us: crate::now_us() };
    match block_on(store.add(sha256(&[&token]), &member)) {
        Ok(()) => Ok(hex::encode(token)),
        Err(StoreError::Exists(name)) => Err(MemberError::Exists(name)),
        Err(e) => Err(e.into()),
    }
}

/// Failed logins and enrollments per address.
#[derive(Debug, Default)]
struct Failures {
    by_addr: HashMap<IpAddr, (u32, i64)>,
}

impl Failures {
    fn limited(&self, addr: IpAddr, now: i64) -> bool {
        self.by_addr
            .get(&addr)
            .is_some_and(|(n, start)| *n >= MAX_FAILURES && now - start < FAILURE_WINDOW_US)
    }

    fn fail(&mut self, addr: IpAddr, now: i64) {
        if !self.by_addr.contains_key(&addr) && self.by_addr.len() >= MAX_TRACKED {
            self.by_addr.retain(|_, (_, start)| now - *start < FAILURE_WINDOW_US);
            if self.by_addr.len() >= MAX_TRACKED {
                // Still full of live windows: forget the oldest, keeping memory bounded.
                if let Some(oldest) =
                    self.by_addr.iter().min_by_key(|(_, (_, start))| *start).map(|(a, _)| *a)
                {
                    self.by_addr.remove(&oldest);
                }
            }
        }
        let e = self.by_addr.entry(addr).or_insert((0, now));
        if now - e.1 >= FAILURE_WINDOW_US {
            *e = (0, now);
        }
        e.0 = e.0.saturating_add(1);
    }
}

/// The members the server knows, and failed logins.
#[derive(Debug)]
pub(crate) struct Members {
    known: RwLock<HashMap<[u8; 32], Member>>,
    /// The labels of the `MemberAdded` entries in the log.
    logged: Mutex<HashSet<String>>,
    failures: Mutex<Failures>,
}

impl Members {
    /// The state after opening a log with `entries`.
    pub(crate) fn new(entries: &[LogEntry]) -> Members {
        let logged = entries
            .iter()
            .filter(|e| e.entry_type == EntryType::MemberAdded)
            .filter_map(|e| e.label.clone())
            .collect();
        Members {
            known: RwLock::new(HashMap::new()),
            logged: Mutex::new(logged),
            failures: Mutex::new(Failures::default()),
        }
    }
}

/// The address a request came from, put in its extensions by the accept loop.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub std::net::SocketAddr);

impl Server {
    /// Whether `addr` has failed to log in or to enroll [`MAX_FAILURES`] times within the
    /// last [`FAILURE_WINDOW_US`].
    pub(crate) fn address_limited(&self, addr: IpAddr) -> bool {
        lock(&self.members().failures).limited(addr, crate::now_us())
    }

    /// Counts a failed login or enrollment from `addr`.
    pub(crate) fn address_failed(&self, addr: IpAddr) {
        lock(&self.members().failures).fail(addr, crate::now_us());
    }

    fn members(&self) -> &Members {
        &self.inner.lawyer.members
    }

    /// Admits `member` (token hash `hash`), logging its addition first if the log does not
    /// have it yet.
    fn admit(&self, hash: [u8; 32], member: Member) -> Result<(), ApiError> {
        let label = member.log_label();
        {
            let mut logged = lock(&self.members().logged);
            if !logged.contains(&label) {
                let mut e = LogEntry::new(EntryType::MemberAdded, crate::now_us());
                e.actor = Some(LOCAL_ADMIN.to_string());
                e.label = Some(label.clone());
                self.append_log(&e).map_err(|e| ApiError::internal("logging a member", e))?;
                logged.insert(label);
            }
        }
        self.members().known.write().unwrap_or_else(|p| p.into_inner()).insert(hash, member);
        Ok(())
    }

    /// Notes that the log names the member labelled `label` (another replica logged it),
    /// so that this replica does not log it again.
    pub(crate) fn note_member_logged(&self, label: &str) {
        lock(&self.members().logged).insert(label.to_string());
    }

    /// Adds a member through the server's member store (as [`add_member`] does in a data
    /// directory): for back-ends without files. Returns the API token.
    pub fn add_member(&self, name: &str, role: Role) -> Result<String, MemberError> {
        add_to(self.inner.member_store.as_ref(), name, role)
    }

    /// Logs and admits every member in the member store (at start).
    pub(crate) fn load_members(&self) -> Result<(), String> {
        let all = block_on(self.inner.member_store.all()).map_err(|e| e.to_string())?;
        for (hash, m) in all {
            self.admit(hash, m).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Authenticates a member request from its headers (blocking: may read a member file
    /// and append to the log). A right token is admitted whatever other requests from its
    /// address did: the per-address limit holds off only what fails. A 256-bit token cannot
    /// be guessed at any rate (one chance in 2^256 a try), so the limit is not what keeps
    /// guessers out; it keeps a flood of bad requests from one address at a fixed,
    /// cheap refusal, and it must never lock the legal team out from behind a shared
    /// address (`docs/threat-model.md`).
    pub fn authenticate_member(
        &self,
        headers: &axum::http::HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Member, ApiError> {
        let addr = peer.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let now = crate::now_us();
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
            if headers.contains_key(crate::auth::H_DEVICE) {
                return Err(ApiError::new(
                    Code::AuthDeviceKey,
                    "device keys can only upload; reading evidence needs a member's token",
                ));
            }
            return Err(ApiError::new(
                Code::AuthMissing,
                "the Authorization: Bearer <token> header is missing",
            ));
        };
        // A failure from an address already over the limit is answered with the limit,
        // and not counted again (its window is not extended).
        let fail = |code: Code, msg: &str| {
            let mut failures = lock(&self.members().failures);
            if failures.limited(addr, now) {
                return rate_limited("logins");
            }
            failures.fail(addr, now);
            ApiError::new(code, msg.to_string())
        };
        let token: [u8; 32] = match value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|t| hex::decode(t.trim()).ok())
            .and_then(|b| b.try_into().ok())
        {
            Some(t) => t,
            None => {
                return Err(fail(
                    Code::AuthMalformed,
                    "Authorization must be `Bearer ` and a 64-hex-digit token",
                ))
            }
        };
        let hash = sha256(&[&token]);
        if let Some(m) =
            self.members().known.read().unwrap_or_else(|p| p.into_inner()).get(&hash).cloned()
        {
            return Ok(m);
        }
        // Added beside the running server since it started?
        match block_on(self.inner.member_store.get(hash)) {
            Ok(Some(m)) => {
                self.admit(hash, m.clone())?;
                Ok(m)
            }
            Ok(None) => Err(fail(Code::AuthToken, "this server did not issue that token")),
            Err(e) => Err(ApiError::internal("reading a member", e)),
        }
    }
}

/// The refusal of a request from an address over the failure limit.
pub(crate) fn rate_limited(what: &str) -> ApiError {
    ApiError::new(
        Code::AuthRateLimited,
        format!(
            "too many failed {what} from this address; retry in {} s (a right token or \
             enrollment is still taken)",
            FAILURE_WINDOW_US / 1_000_000
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_limit_one_address_and_expire() {
        let mut f = Failures::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(!f.limited(a, 0));
            f.fail(a, 0);
        }
        assert!(f.limited(a, 1));
        assert!(!f.limited(b, 1));
        assert!(!f.limited(a, FAILURE_WINDOW_US));
    }

    #[test]
    fn failure_memory_is_bounded() {
        let mut f = Failures::default();
        for i in 0..(MAX_TRACKED as u32 + 100) {
            f.fail(IpAddr::V4(std::net::Ipv4Addr::from(i)), 0);
        }
        assert!(f.by_addr.len() <= MAX_TRACKED);
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("Ana Ruiz"));
        assert!(valid_name("ana.ruiz@firm"));
        assert!(!valid_name(""));
        assert!(!valid_name(" lead"));
        assert!(!valid_name("a\nb"));
        assert!(!valid_name(&"x".repeat(65)));
    }
}

//! Evidence bundles as the server hands them out (`docs/format.md` §10): planned from the
//! index, the storage and the custody log as they stood at one logged access, and streamed
//! as a deterministic ustar archive.
//!
//! A bundle is a pure function of the log up to its access entry: the records and
//! receipts logged before it, the entries about the recording and its device up to it, and
//! a tree head over exactly those entries, timestamped with the access entry's time (Ed25519
//! signatures are deterministic, so the head is the same bytes every time). That is what
//! lets a broken download resume with `Range` and get the very same bytes, even while the
//! recording is still growing. Only the small files are built in memory; sealed segments are
//! read from storage piece by piece as the archive streams.
//!
//! The access entry itself states what the bundle must hold ([`Statement`]). It is computed
//! under the log's lock, where ingest too appends a record's entry and writes its index
//! entry, so the records it counts are exactly those logged before it; the plan checks the
//! bundle against it before a byte is sent. Beside the receipts goes one RFC 9162
//! consistency proof per receipt tree size, from the log's subtree hashes (O(log n) each),
//! so that every receipt can be checked against the bundle's head. An access entry without
//! a statement (logged by a server before `custody-bundle 2`, and resumed now) gets the
//! version-1 bundle it was made as, byte for byte.

use custody_format::bundle::{self, ConsistencyProof, LogProof, Manifest, ManifestEntry};
use custody_format::ids::{PublicKey, RecordingId};
use custody_format::log::{EntryType, LogEntry, TreeHead};
use custody_format::merkle;
use custody_format::primitives::sha256;
use custody_format::receipt::Receipt;
use custody_format::record::{kind, Hash, Record, SignedRecord};
use custody_format::signed::Signed;
use custody_format::statement::{StatedRecord, Statement};

use crate::error::{ApiError, Code};
use crate::server::{lock, Server};
use crate::storage::Storage;
use crate::store::block_on;

/// What a file of the archive holds.
#[derive(Debug)]
enum Content {
    Dir,
    Bytes(Vec<u8>),
    Segment { seq: u64, len: u64 },
}

#[derive(Debug)]
struct Item {
    name: String,
    content: Content,
}

impl Item {
    fn size(&self) -> u64 {
        match &self.content {
            Content::Dir => 0,
            Content::Bytes(b) => b.len() as u64,
            Content::Segment { len, .. } => *len,
        }
    }

    /// Header plus content padded to whole blocks.
    fn span(&self) -> u64 {
        512 + self.size().div_ceil(512) * 512
    }
}

/// A bundle ready to stream: the archive's entries, in `docs/format.md` §10.4 order.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The recording.
    pub id: RecordingId,
    /// The log index of the access entry the bundle was made for.
    pub access: u64,
    /// Length of the whole archive, bytes.
    pub total: u64,
    items: Vec<Item>,
    mtime: u64,
}

/// The largest file a ustar header can describe (11 octal digits).
const USTAR_MAX: u64 = (1 << 33) - 1;

fn ustar_header(name: &str, size: u64, dir: bool, mtime: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name.as_bytes()[..n]);
    h[100..108].copy_from_slice(if dir { b"0000755\0" } else { b"0000644\0" });
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", size.min(USTAR_MAX)).as_bytes());
    h[136..148].copy_from_slice(format!("{:011o}\0", mtime.min(USTAR_MAX)).as_bytes());
    h[148..156].copy_from_slice(b"        ");
    h[156] = if dir { b'5' } else { b'0' };
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum: u32 = h.iter().map(|&x| u32::from(x)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

const ZEROS: [u8; 1024] = [0; 1024];

fn zeros(a: u64, b: u64, out: &mut dyn FnMut(&[u8]) -> std::io::Result<()>) -> std::io::Result<()> {
    let mut left = b - a;
    while left > 0 {
        let n = left.min(ZEROS.len() as u64);
        out(&ZEROS[..n as usize])?;
        left -= n;
    }
    Ok(())
}

impl Plan {
    /// Writes bytes `start..end` of the archive to `out`, reading segments from `storage`
    /// a chunk at a time.
    pub(crate) fn write_range(
        &self,
        storage: &Storage,
        start: u64,
        end: u64,
        out: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        // The part of [start, end) inside the piece at [p, p + len), relative to p.
        let want = |p: u64, len: u64| {
            let (a, b) = (start.max(p), end.min(p + len));
            (a < b).then(|| (a - p, b - p))
        };
        let mut pos = 0u64;
        for item in &self.items {
            if pos >= end {
                return Ok(());
            }
            if pos + item.span() <= start {
                pos += item.span();
                continue;
            }
            let size = item.size();
            if let Some((a, b)) = want(pos, 512) {
                let h = ustar_header(
                    &item.name,
                    size,
                    matches!(item.content, Content::Dir),
                    self.mtime,
                );
                out(&h[a as usize..b as usize])?;
            }
            if let Some((a, b)) = want(pos + 512, size) {
                match &item.content {
                    Content::Dir => {}
                    Content::Bytes(bytes) => out(&bytes[a as usize..b as usize])?,
                    Content::Segment { seq, .. } => {
                        // Ranged reads, each of the store's own size (a file's 64 KiB, an
                        // object store's whole segment), so that neither holds much nor
                        // makes a round trip per 64 KiB.
                        let chunk = storage.range_read_len().max(1) as u64;
                        let mut at = a;
                        while at < b {
                            let n = (b - at).min(chunk) as usize;
                            let buf = storage
                                .segment_range(&self.id, *seq, at, n)
                                .map_err(std::io::Error::other)?
                                .ok_or_else(|| {
                                    std::io::Error::other(format!(
                                        "segment {seq} is not in storage"
                                    ))
                                })?;
                            if buf.len() != n {
                                return Err(std::io::Error::other(format!(
                                    "segment {seq} is shorter than its record states"
                                )));
                            }
                            out(&buf)?;
                            at += n as u64;
                        }
                    }
                }
            }
            let padded = size.div_ceil(512) * 512;
            if let Some((a, b)) = want(pos + 512 + size, padded - size) {
                zeros(a, b, out)?;
            }
            pos += item.span();
        }
        if let Some((a, b)) = want(pos, 1024) {
            zeros(a, b, out)?;
        }
        Ok(())
    }
}

use custody_format::time::utc_seconds as utc;

struct ReadmeFacts<'a> {
    id: &'a RecordingId,
    label: &'a str,
    device: &'a PublicKey,
    server: &'a PublicKey,
    member: &'a str,
    access: &'a LogEntry,
    access_index: u64,
    records: usize,
    segments: usize,
    entries: usize,
    revoked: bool,
    statement: Option<&'a Statement>,
    /// How many time-stamp token entries a version-3 bundle carries (0 otherwise).
    tokens: usize,
}

/// What a version-2 bundle's statement proves, in words (empty for version 1, whose
/// README must stay the bytes it was).
fn statement_text(f: &ReadmeFacts<'_>) -> String {
    let Some(s) = f.statement else { return String::new() };
    let ended =
        if s.chain_ended { "the end record among them" } else { "with no end record among them" };
    format!(
        "\nWHAT THE SERVER HELD\n\
         --------------------\n\
         The custody log entry of this retrieval (entry {access}, under the signed log head)\n\
         states what the server itself held of this recording at that moment: {count}\n\
         records, the last at position {last}, {ended}; and {entries} earlier log entries\n\
         about the recording and its device. The verifier checks that this bundle holds\n\
         exactly those records and entries: removing any of them, even the last seconds or\n\
         the end record alone, makes the verdict TAMPERED. So if the verdict is INTACT BUT\n\
         CUT OFF, the server itself held no more than this when the bundle was made. And\n\
         custody/receipt-proofs.bin proves that the log each receipt was signed under is the\n\
         beginning of the log this bundle was made from.\n",
        access = f.access_index,
        count = s.chain_count,
        last = s.chain_last_seq,
        entries = s.entries_count,
    ) + &tokens_text(f.tokens)
}

/// What a version-3 bundle's time-stamp tokens prove, in words (empty for a bundle without
/// them, whose README stays the bytes it was).
fn tokens_text(tokens: usize) -> String {
    if tokens == 0 {
        return String::new();
    }
    format!(
        "
INDEPENDENT TIME
         ----------------
         Among those entries are {tokens} RFC 3161 time-stamp token(s): a time-stamp authority
         independent of the device and of the legal team signed that the custody log, up to
         the entries it covered, existed by the time it states. The verifier checks each
         token offline and reports which segments existed by which time. A token proves
         existence by that time, not the time of capture.
"
    )
}

fn readme(f: &ReadmeFacts<'_>) -> String {
    let revoked = if f.revoked {
        "\nThe device's key has been REVOKED (see the custody log entries in the report). What\n\
         the server received before the revocation remains valid evidence; the verifier flags\n\
         anything received after it.\n"
    } else {
        ""
    };
    format!(
        "CUSTODY EVIDENCE BUNDLE\n\
         =======================\n\
         \n\
         Recording:     {id}\n\
         Device:        \"{label}\", key fingerprint {dfp}\n\
         Server key:    {server}\n\
         Server key fingerprint: {sfp}\n\
         Retrieved by:  {member}, {at} (custody log entry {access_index})\n\
         Contents:      {records} signed records, {segments} sealed segments,\n\
         \x20              {entries} custody log entries with inclusion proofs\n\
         {revoked}{statement}\n\
         HOW TO VERIFY\n\
         -------------\n\
         1. Check that no file was damaged or lost in transit. This needs no custody software;\n\
         \x20  in this directory (after unpacking the .tar, if that is what you received):\n\
         \n\
         \x20      sha256sum -c MANIFEST.sha256\n\
         \n\
         \x20  Every line must say OK.\n\
         \n\
         2. Verify the evidence itself, offline, with the custody verifier:\n\
         \n\
         \x20      custody verify --trust {server} <this directory or its .tar file>\n\
         \n\
         \x20  Before relying on the result, confirm the server key fingerprint {sfp}\n\
         \x20  with the legal team by another channel (in person, by phone). The keys inside a\n\
         \x20  bundle only show that it agrees with itself; --trust is what ties it to the legal\n\
         \x20  team's server.\n\
         \n\
         \x20  The verifier checks every signature, that no segment is missing, altered, added or\n\
         \x20  reordered, the server's receipts, and every custody log entry's proof against the\n\
         \x20  signed log head (including the entry recording this very retrieval). Its verdict is\n\
         \x20  one of: INTACT AND COMPLETE; INTACT BUT CUT OFF (the recording stopped without an\n\
         \x20  end record, e.g. the device was seized; everything present is genuine); TAMPERED;\n\
         \x20  or COULD NOT CHECK. `custody verify --json` prints the full report.\n\
         \n\
         THE VIDEO\n\
         ---------\n\
         The files recording/segments/*.age are encrypted with age (https://age-encryption.org)\n\
         to the legal team's case key. With that key, `age -d -i case.agekey FILE` decrypts one\n\
         segment, and `custody verify --identity case.agekey ...` decrypts and checks them all.\n",
        id = f.id,
        label = f.label,
        dfp = f.device.fingerprint(),
        server = f.server,
        sfp = f.server.fingerprint(),
        member = f.member,
        at = utc(f.access.at_us),
        access_index = f.access_index,
        records = f.records,
        segments = f.segments,
        entries = f.entries,
        statement = statement_text(f),
    )
}

fn internal(what: &str) -> impl FnOnce(String) -> ApiError + '_ {
    move |e| ApiError::internal(what, e)
}

impl Server {
    /// Logs that `member` retrieves recording `id` (`detail` says how); returns the entry's
    /// log index.
    pub(crate) fn log_access(
        &self,
        member: &str,
        id: Option<&RecordingId>,
        detail: String,
    ) -> Result<u64, ApiError> {
        let mut e = LogEntry::new(EntryType::Access, crate::now_us());
        e.actor = Some(member.to_string());
        e.recording_id = id.copied();
        e.detail = Some(detail);
        self.append_log(&e).map(|a| a.index).map_err(|e| {
            if crate::reserve::is_no_space(&e) {
                crate::reserve::disk_full("logging the access", &e)
            } else {
                ApiError::internal("logging the access", e)
            }
        })
    }

    /// The device that opened recording `id`.
    fn owner_key(&self, id: &RecordingId) -> Result<PublicKey, ApiError> {
        let owner = self
            .inner
            .index
            .owner(id)
            .map_err(|e| ApiError::internal("reading the index", e))?
            .ok_or_else(|| {
                ApiError::new(Code::NotFound, format!("no recording {id} on this server"))
            })?;
        PublicKey::from_bytes(&owner).map_err(|e| ApiError::internal("reading the index", e))
    }

    /// Logs `member`'s retrieval of recording `id` as a bundle (`detail` `bundle`), with
    /// the statement of what the bundle must hold; returns the entry's log index. Blocking.
    ///
    /// The statement is computed and the entry appended while holding every other append
    /// off (the group commit's order, held exclusively). Ingest holds that order shared
    /// from its append until its index entry (log index and receipt) is written, so here
    /// the index shows a log index for exactly the records logged before this entry: a
    /// record arriving meanwhile is either counted and in the bundle, or logged after this
    /// entry and in neither.
    pub(crate) fn log_bundle_access(
        &self,
        member: &str,
        id: &RecordingId,
    ) -> Result<u64, ApiError> {
        let device_key = self.owner_key(id)?;
        let ierr = |e| ApiError::internal("reading the index", e);
        // Every other append waits while this is held: ingest holds the order shared from
        // its append until its index entry is written.
        let _order = self.inner.commit.exclusive();
        let log = lock(&self.inner.log);
        let mut positions = self.inner.index.positions(id).map_err(ierr)?;
        positions.sort_by_key(|(seq, _)| *seq);
        let mut records = Vec::with_capacity(positions.len());
        let mut record_indices = Vec::with_capacity(positions.len());
        for (seq, st) in positions {
            if st.log_index.is_none() || st.receipt.is_none() {
                continue;
            }
            let hash: Hash = hex::decode(&st.record_hash)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| internal("reading the index")(format!("record {seq}'s hash")))?;
            records.push(StatedRecord { seq, hash, end: st.kind == kind::END });
            record_indices.extend(st.log_index);
        }
        record_indices.sort_unstable();
        let mut entries = Vec::new();
        if let Some(last) = log.len().checked_sub(1) {
            // With the entries about the recording, the time-stamp tokens that cover its
            // receipted records (bundle version 3, `docs/format.md` §11.4).
            let mut wanted = log.concerning(id, &device_key, last);
            wanted.extend(crate::catalog::covering(&record_indices, log.tokens_before(log.len())));
            wanted.sort_unstable();
            wanted.dedup();
            for i in wanted {
                let leaf = log
                    .tree()
                    .leaf(i)
                    .ok_or_else(|| internal("reading the log")(format!("no leaf {i}")))?;
                entries.push((i, leaf));
            }
        }
        let statement = Statement::new(records, entries);
        let mut e = LogEntry::new(EntryType::Access, crate::now_us());
        e.actor = Some(member.to_string());
        e.recording_id = Some(*id);
        e.detail = Some("bundle".into());
        statement.write_to(&mut e);
        // The group commit's leader takes the log's lock; nothing appends meanwhile.
        drop(log);
        // On a full disk the reserve kept for the log is used (`crate::reserve`).
        self.append_to(&e, false).map(|a| a.index).map_err(|e| {
            if crate::reserve::is_no_space(&e) {
                crate::reserve::disk_full("logging the access", &e)
            } else {
                ApiError::internal("logging the access", e)
            }
        })
    }

    /// Plans the bundle of recording `id` made for the access entry at `access`, which must
    /// be `member`'s bundle retrieval of that recording. Blocking.
    pub(crate) fn plan_bundle(
        &self,
        id: &RecordingId,
        access: u64,
        member: &str,
    ) -> Result<Plan, ApiError> {
        let device_key = self.owner_key(id)?;
        let device = self
            .device(&device_key)
            .ok_or_else(|| internal("finding the device")("not enrolled".into()))?;
        let bad_access = || {
            ApiError::new(
                Code::BundleAccess,
                format!("log entry {access} is not {member}'s retrieval of recording {id}"),
            )
        };
        let size = access.checked_add(1).ok_or_else(bad_access)?;

        // The records receipted before the access: a set that no later upload changes, so
        // it is read without holding the log.
        let mut records = Vec::new();
        let mut receipts = Vec::new();
        let mut segments = Vec::new();
        let mut stated = Vec::new();
        let mut receipt_sizes = Vec::new();
        let mut record_indices = Vec::new();
        let storage = self.storage();
        let mut positions = self
            .inner
            .index
            .positions(id)
            .map_err(|e| ApiError::internal("reading the index", e))?;
        positions.sort_by_key(|(seq, _)| *seq);
        // Receipted before the access; their records are read several at a time.
        positions
            .retain(|(_, st)| st.receipt.is_some() && st.log_index.is_some_and(|li| li < access));
        let seqs: Vec<u64> = positions.iter().map(|(seq, _)| *seq).collect();
        let read =
            storage.records(id, &seqs).map_err(|e| ApiError::internal("reading a record", e))?;
        for ((seq, st), bytes) in positions.into_iter().zip(read) {
            let (Some(li), Some(receipt)) = (st.log_index, &st.receipt) else { continue };
            record_indices.push(li);
            let bytes = bytes
                .ok_or_else(|| internal("reading a record")(format!("record {seq} is missing")))?;
            let r = SignedRecord::parse(&bytes)
                .map_err(|e| internal("reading a record")(e.to_string()))?;
            if let Record::Segment(s) = r.record() {
                if s.ciphertext_len > USTAR_MAX {
                    return Err(internal("planning the bundle")("a segment over 8 GiB".into()));
                }
                segments.push((seq, s.ciphertext_len, s.ciphertext_sha256));
            }
            stated.push(StatedRecord {
                seq,
                hash: r.hash(),
                end: matches!(r.record(), Record::End(_)),
            });
            records.extend_from_slice(&bytes);
            let receipt =
                hex::decode(receipt).map_err(|e| internal("reading a receipt")(e.to_string()))?;
            let parsed = Signed::<Receipt>::parse(&receipt)
                .map_err(|e| internal("reading a receipt")(e.to_string()))?;
            receipt_sizes.push(parsed.value().tree_size);
            receipts.extend(receipt);
        }
        record_indices.sort_unstable();

        // The log as it stood just after the access entry: its root, each entry's leaf hash
        // and inclusion proof, and the consistency proof from each receipt's tree and each
        // carried token's stamped head, all from the log's subtree hashes (O(log n) each).
        // The tokens are those covering the receipted records ([`crate::catalog::covering`]);
        // a bundle that carries any is version 3.
        let (root, located, mut consistency, store, tokens) = {
            let log = lock(&self.inner.log);
            let root = log.root_at(size).ok_or_else(bad_access)?;
            let before = log.tokens_before(access);
            let tokens: Vec<(u64, u64)> = crate::catalog::covering(&record_indices, before)
                .into_iter()
                .filter_map(|i| before.iter().find(|t| t.index == i).map(|t| (i, t.covers)))
                .collect();
            let mut proof_sizes = receipt_sizes.clone();
            proof_sizes.extend(tokens.iter().map(|(_, covers)| *covers));
            proof_sizes.sort_unstable();
            proof_sizes.dedup();
            proof_sizes.retain(|&n| n < size);
            let mut wanted = log.concerning(id, &device_key, access);
            wanted.extend(tokens.iter().map(|(i, _)| *i));
            wanted.sort_unstable();
            wanted.dedup();
            let mut located = Vec::new();
            for i in wanted {
                let (leaf, path) = log
                    .inclusion_proof(i, size)
                    .map_err(|e| internal("proving an entry")(e.to_string()))?;
                located.push((i, leaf, path));
            }
            let mut consistency = Vec::with_capacity(proof_sizes.len());
            for &n in &proof_sizes {
                let path = log
                    .consistency_proof(n, size)
                    .map_err(|e| internal("proving a receipt's tree")(e.to_string()))?;
                consistency.push(ConsistencyProof { tree_size: n, path });
            }
            (root, located, consistency, log.store(), tokens)
        };
        let indices: Vec<u64> = located.iter().map(|(i, _, _)| *i).collect();
        let raw = block_on(store.entries(&indices))
            .map_err(|e| internal("reading the log")(e.to_string()))?;
        let mut entries = Vec::with_capacity(raw.len());
        for ((i, leaf, path), bytes) in located.into_iter().zip(raw) {
            if merkle::leaf_hash(&bytes) != leaf {
                return Err(internal("reading the log")(format!(
                    "entry {i} in the store is not the entry in the tree"
                )));
            }
            let e =
                LogEntry::decode(&bytes).map_err(|e| internal("reading the log")(e.to_string()))?;
            entries.push((i, bytes, e, path, leaf));
        }
        let access_entry = match entries.last() {
            Some((i, _, e, _, _))
                if *i == access
                    && e.entry_type == EntryType::Access
                    && e.actor.as_deref() == Some(member)
                    && e.recording_id.as_ref() == Some(id)
                    && e.detail.as_deref().is_some_and(|d| d.starts_with("bundle")) =>
            {
                e.clone()
            }
            _ => return Err(bad_access()),
        };

        // The bundle must be what its access entry states; a disagreement is the server's
        // own fault, and it refuses rather than hand out a bundle that would verify as
        // tampered.
        let statement = Statement::of(&access_entry);
        let is_token = |i: &u64| tokens.iter().any(|(t, _)| t == i);
        let held = |with_tokens: bool| {
            Statement::new(
                stated.iter().copied(),
                entries[..entries.len() - 1]
                    .iter()
                    .filter(|(i, ..)| with_tokens || !is_token(i))
                    .map(|(i, _, _, _, leaf)| (*i, *leaf)),
            )
        };
        // Version 3 when the statement counted tokens; an access stated without them (by a
        // server before time-stamping) is planned again as the version 2 it was made as.
        let carry_tokens = match &statement {
            None => false,
            Some(s) if !tokens.is_empty() && held(true) == *s => true,
            Some(s) if held(false) == *s => false,
            Some(_) => {
                return Err(internal("planning the bundle")(format!(
                    "the bundle does not match the statement of access {access}"
                )))
            }
        };
        if !carry_tokens {
            entries.retain(|(i, ..)| !is_token(i));
            consistency.retain(|c| receipt_sizes.contains(&c.tree_size));
        }

        let head = Signed::sign(
            TreeHead { tree_size: size, root_hash: root, timestamp_us: access_entry.at_us },
            &self.inner.identity.signing_key,
        );
        let mut proofs = Vec::new();
        for (i, bytes, _, path, _) in &entries {
            proofs.extend(
                LogProof { log_index: *i, entry: bytes.clone(), path: path.clone() }.encode(),
            );
        }

        let server_key = self.public_key();
        let revoked =
            entries.iter().any(|(_, _, e, _, _)| e.entry_type == EntryType::DeviceRevoked);
        let readme_text = readme(&ReadmeFacts {
            id,
            label: &device.label,
            device: &device_key,
            server: &server_key,
            member,
            access: &access_entry,
            access_index: access,
            records: stated.len(),
            segments: segments.len(),
            entries: entries.len(),
            revoked,
            statement: statement.as_ref(),
            tokens: if carry_tokens { tokens.len() } else { 0 },
        });
        let marker = match statement {
            Some(_) if carry_tokens => bundle::MARKER_CONTENT_V3,
            Some(_) => bundle::MARKER_CONTENT_V2,
            None => bundle::MARKER_CONTENT_V1,
        };
        let mut small: Vec<(&str, Vec<u8>)> = vec![
            (bundle::MARKER, marker.as_bytes().to_vec()),
            (bundle::README, readme_text.into_bytes()),
            (bundle::RECORDS, records),
            (bundle::SERVER_KEY, format!("{server_key}\n").into_bytes()),
            (bundle::DEVICE_CERT, self.certificate(&device_key, &device).to_bytes()),
            (bundle::RECEIPTS, receipts),
        ];
        if statement.is_some() {
            let bytes = consistency.iter().flat_map(ConsistencyProof::encode).collect();
            small.push((bundle::RECEIPT_PROOFS, bytes));
        }
        small.push((bundle::TREE_HEAD, head.to_bytes()));
        small.push((bundle::LOG_PROOFS, proofs));
        if let (true, Some(pem)) = (carry_tokens, &self.config().tsa.roots_pem) {
            small.push((bundle::TSA_ROOTS, pem.clone()));
        }
        let mut listed: Vec<ManifestEntry> = small
            .iter()
            .map(|(p, b)| ManifestEntry { path: (*p).to_string(), sha256: sha256(&[b]) })
            .collect();
        listed.extend(
            segments
                .iter()
                .map(|(seq, _, h)| ManifestEntry { path: bundle::segment_path(*seq), sha256: *h }),
        );
        let manifest = Manifest::new(listed).to_text().into_bytes();

        // The archive, in the order of the layout table.
        let top = format!("custody-bundle-{id}");
        let mut small = small.into_iter();
        let mut take = |items: &mut Vec<Item>, n: usize| {
            for (p, b) in small.by_ref().take(n) {
                items.push(Item { name: format!("{top}/{p}"), content: Content::Bytes(b) });
            }
        };
        let dir = |name: String| Item { name, content: Content::Dir };
        let mut items = vec![dir(format!("{top}/"))];
        take(&mut items, 2); // BUNDLE, README.txt
        items.push(Item {
            name: format!("{top}/{}", bundle::MANIFEST),
            content: Content::Bytes(manifest),
        });
        items.push(dir(format!("{top}/recording/")));
        take(&mut items, 1); // records.bin
        items.push(dir(format!("{top}/{}/", bundle::SEGMENTS_DIR)));
        for (seq, len, _) in &segments {
            items.push(Item {
                name: format!("{top}/{}", bundle::segment_path(*seq)),
                content: Content::Segment { seq: *seq, len: *len },
            });
        }
        items.push(dir(format!("{top}/custody/")));
        take(&mut items, usize::MAX); // the custody/ files
        let total = items.iter().map(Item::span).sum::<u64>() + 1024;
        Ok(Plan {
            id: *id,
            access,
            total,
            items,
            mtime: u64::try_from(access_entry.at_us / 1_000_000).unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ustar_headers_have_valid_checksums() {
        let h = ustar_header("custody-bundle-x/BUNDLE", 17, false, 1_700_000_000);
        let sum: u32 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u32::from(b) })
            .sum();
        let field = std::str::from_utf8(&h[148..154]).unwrap();
        assert_eq!(u32::from_str_radix(field, 8).unwrap(), sum);
        assert_eq!(&h[257..262], b"ustar");
    }

    /// A server with one device that has stored a header and two segments.
    fn server_with_a_recording() -> (tempfile::TempDir, Server, RecordingId) {
        use custody_format::chain::ChainBuilder;
        use custody_format::primitives::{sign, DOMAIN_ENROLLMENT_SIGNATURE};
        use custody_format::testkit;
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::Config::new(dir.path());
        config.backend = crate::store::Backend::Custom(crate::store::Stores::memory());
        let (server, _) = Server::open(config).unwrap();
        let device = testkit::key("bundle-unit");
        let public = PublicKey::from(device.verifying_key());
        let token = server.issue_token("unit", std::time::Duration::from_secs(60)).unwrap();
        let t: [u8; 32] = hex::decode(&token).unwrap().try_into().unwrap();
        let msg = crate::enroll::enrollment_message(&t, &public);
        let req: crate::enroll::EnrollRequest = serde_json::from_value(serde_json::json!({
            "token": token, "device_key": public.to_string(),
            "signature": hex::encode(sign(&device, DOMAIN_ENROLLMENT_SIGNATURE, &msg)),
        }))
        .unwrap();
        server.enroll(&req).unwrap();
        let header = testkit::header(9, &device);
        let id = header.recording_id;
        let (mut chain, h) = ChainBuilder::start(header, device.clone()).unwrap();
        server.ingest(&public, id, 0, &h.to_bytes()).unwrap();
        for n in 1..=2u64 {
            let ct = vec![n as u8; 1000];
            let mut f = testkit::segment(9, n);
            f.ciphertext_len = ct.len() as u64;
            f.ciphertext_sha256 = sha256(&[&ct]);
            let mut body = chain.segment(f).to_bytes();
            body.extend_from_slice(&ct);
            server.ingest(&public, id, n, &body).unwrap();
        }
        (dir, server, id)
    }

    /// The archive's file names (under its top directory) and contents.
    fn archive(server: &Server, plan: &Plan) -> Vec<(String, Vec<u8>)> {
        let mut tar = Vec::new();
        plan.write_range(server.storage(), 0, plan.total, &mut |b| {
            tar.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        assert_eq!(tar.len() as u64, plan.total);
        let mut out = Vec::new();
        let mut rest = &tar[..];
        while rest[..512].iter().any(|&b| b != 0) {
            let name = std::str::from_utf8(&rest[..100]).unwrap().trim_end_matches('\0');
            let size = usize::from_str_radix(std::str::from_utf8(&rest[124..135]).unwrap(), 8);
            let size = size.unwrap();
            let name = name.split_once('/').unwrap().1.to_string();
            out.push((name, rest[512..512 + size].to_vec()));
            rest = &rest[512 + size.div_ceil(512) * 512..];
        }
        out
    }

    #[test]
    fn an_access_logged_without_a_statement_is_served_as_the_version_1_bundle_it_began_as() {
        let (_dir, server, id) = server_with_a_recording();
        // What a server before custody-bundle 2 logged for a retrieval (and a download of it
        // may be resumed after the upgrade): no statement.
        let old = server.log_access("Ana", Some(&id), "bundle".into()).unwrap();
        let v1 = archive(&server, &server.plan_bundle(&id, old, "Ana").unwrap());
        let file = |a: &[(String, Vec<u8>)], p: &str| a.iter().find(|(n, _)| n == p).cloned();
        assert_eq!(file(&v1, bundle::MARKER).unwrap().1, bundle::MARKER_CONTENT_V1.as_bytes());
        assert!(file(&v1, bundle::RECEIPT_PROOFS).is_none());
        let readme = String::from_utf8(file(&v1, bundle::README).unwrap().1).unwrap();
        assert!(!readme.contains("WHAT THE SERVER HELD"), "{readme}");

        let new = server.log_bundle_access("Ana", &id).unwrap();
        let v2 = archive(&server, &server.plan_bundle(&id, new, "Ana").unwrap());
        assert_eq!(file(&v2, bundle::MARKER).unwrap().1, bundle::MARKER_CONTENT.as_bytes());
        let proofs = file(&v2, bundle::RECEIPT_PROOFS).unwrap().1;
        assert_eq!(ConsistencyProof::parse_all(&proofs).unwrap().len(), 3);
        let readme = String::from_utf8(file(&v2, bundle::README).unwrap().1).unwrap();
        assert!(readme.contains("WHAT THE SERVER HELD"), "{readme}");
        // The old access, planned again, is still the same bytes.
        let again = archive(&server, &server.plan_bundle(&id, old, "Ana").unwrap());
        assert_eq!(again, v1);
    }
}

//! The command-line definitions: every subcommand, grouped by who uses it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
Observers:    keygen, enroll, record, import, upload, status, recordings, vault
Lawyers:      login, recordings --server, fetch, verify, export
Legal teams:  serve, admin
Set-up:       config show, completions, man
Exit codes:   0 success (for verify: intact, complete or cut off); 1 the command ran and
              found a problem (a recording that failed, a vault check with findings, a
              tampered bundle); 2 the command could not run, or verify could not check
              everything or could not confirm the signer (bad arguments, missing key,
              unreadable input, a bundle signed by another key than --trust).

Environment:  CUSTODY_VAULT        the vault directory (default: ~/.local/share/custody/vault)
              CUSTODY_CONFIG_DIR   where `custody login` keeps lawyer.json (default: ~/.config/custody)
              CUSTODY_PASSPHRASE   the device key's passphrase, instead of a prompt";

/// A secure evidence vault for recordings of police and immigration-enforcement encounters.
///
/// custody records video as it streams, cuts it into short segments, and seals each one
/// the moment it is cut: hashed, signed with this device's key, linked into a chain, and
/// encrypted so that only the legal team can open it.
#[derive(Parser, Debug)]
#[command(name = "custody", version, about, long_about, after_help = AFTER_HELP)]
pub struct Cli {
    /// The vault directory.
    #[arg(long, global = true, env = "CUSTODY_VAULT", value_name = "DIR")]
    pub vault: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create this device's signing key (or, with --recipient-key, a legal team's case key).
    ///
    /// The device key signs every record this device makes. It is kept in the vault,
    /// readable by you only; --passphrase protects it with a passphrase (age's scrypt
    /// encryption). Prints the public key and its fingerprint, which the legal team
    /// compares when enrolling the device.
    ///
    /// Example: custody keygen --passphrase
    ///
    /// Example: custody keygen --recipient-key -o case.agekey
    Keygen(KeygenArgs),

    /// Record live from a camera, a phone streaming to this computer, or a stream.
    ///
    /// Every segment (2 s by default) is sealed, signed and fsynced the moment it is cut;
    /// Ctrl-C stops the recording cleanly with an end record. If this process is killed,
    /// everything saved up to then stays valid and the recording shows as cut off.
    ///
    /// Example (laptop camera):  custody record --format video4linux2 --input /dev/video0
    ///
    /// Example (phone over SRT):  custody record --input 'srt://0.0.0.0:9000?mode=listener'
    ///
    /// Example (phone over RTMP): custody record --input rtmp://0.0.0.0:1935/live/phone --option listen=1
    ///
    /// Example (test pattern):    custody record --format lavfi --input testsrc2=size=640x360:rate=25
    Record(RecordArgs),

    /// Seal an existing video file the same way a live recording is sealed.
    ///
    /// The header says the recording was imported and records the file's SHA-256: the
    /// file's own times are claims, not evidence of when it was made.
    ///
    /// The segments are MPEG-TS when it carries the file's codecs (H.264 or HEVC with AAC,
    /// MP3 or AC-3). MPEG-TS cannot carry a browser's recordings here, so an MP4 with Opus
    /// audio (Chromium's or Safari's) is sealed as fragmented MP4, and a WebM (VP8, VP9 or
    /// AV1 with Opus) as WebM segments, each a complete WebM file. Nothing is re-encoded.
    ///
    /// Example: custody import --recipient age1... phone-video.mp4
    ///
    /// Example: custody import --recipient age1... chrome-recording.webm
    Import(ImportArgs),

    /// List the recordings in this vault (or with --server, on the legal team's server).
    ///
    /// States: recording (being made now), complete (has its end record), cut off (no end
    /// record: the recorder was killed or the device lost power; everything saved is valid).
    /// On a server (needs `custody login`) also: live (receipts still arriving), gaps
    /// (positions missing).
    ///
    /// Example: custody recordings --server --json
    Recordings(RecordingsArgs),

    /// Check or repair the vault.
    #[command(subcommand)]
    Vault(VaultCommand),

    /// Verify an evidence bundle offline: every signature, hash, receipt and log proof.
    ///
    /// Give the legal team's server key with --trust: keys inside a bundle only show that
    /// it agrees with itself. Without --trust, the key pinned by `custody login` is trusted
    /// if there is one; otherwise the verdict says the signer is unconfirmed and prints the
    /// fingerprint to confirm. With --identity (the case key) every segment is
    /// also decrypted in memory and checked.
    ///
    /// Example: custody verify --trust ed25519:9f3c… ./custody-bundle-4e1a…/
    ///
    /// Example: custody verify --trust 7Q2MX-0K4RT-9ZB1C-XW3HN bundle.tar --html report.html
    ///
    /// Example: custody verify --trust server.pub --identity case.agekey bundle.tar --json
    ///
    /// Example: custody verify bundle/ --tz America/Chicago --html report.html
    Verify(VerifyArgs),

    /// Export a bundle's recording as one playable MP4, with proof that it is the same media.
    ///
    /// Verifies the bundle first and refuses a tampered one; a cut-off recording is exported
    /// up to where it is proven. Decrypts the segments in memory, joins them into one MP4
    /// without re-encoding, then checks that the MP4's packets have every segment's signed
    /// packet digest, and writes FILE.report.html and FILE.report.json beside it saying so.
    ///
    /// A recording made in a phone's browser (WebM or MP4 segments) is joined the same way
    /// into one WebM (VP8/VP9/AV1 with Opus), MP4 or Matroska file, as FILE's extension
    /// says; --viewing-copy also writes an H.264/AAC re-encode for players that need one,
    /// labelled as such. A photo is written as the sealed JPEG itself.
    ///
    /// Example: custody export --identity case.agekey --trust server.pub bundle.tar -o video.mp4
    ///
    /// Example: custody export --identity case.agekey --trust server.pub phone.tar -o video.webm --viewing-copy
    ///
    /// Example (40 s of a long recording): custody export --identity case.agekey --trust server.pub bundle.tar --from 12:10 --to 12:50 -o clip.mp4
    Export(ExportArgs),

    /// Run the legal team's server: enrollment, authenticated ingest, receipts, custody log.
    ///
    /// On first start it makes its Ed25519 signing key and a self-signed TLS certificate
    /// in --data and prints both fingerprints; devices pin them at enrollment. Phones need
    /// a certificate their browser trusts: give one with --tls-cert/--tls-key, or run
    /// behind a reverse proxy (--trusted-proxy; see docs/deploy.md).
    ///
    /// Example: custody serve --data /srv/custody --listen 0.0.0.0:8443 --recipient age1...
    ///
    /// Example: custody serve --data /srv/custody --listen 0.0.0.0:443 --tls-cert /etc/letsencrypt/live/legal.example/fullchain.pem --tls-key /etc/letsencrypt/live/legal.example/privkey.pem
    ///
    /// Example (behind nginx): custody serve --data /srv/custody --insecure-http --listen 127.0.0.1:8080 --trusted-proxy 127.0.0.1
    ///
    /// Example (one of several replicas; docs/deploy.md): custody serve --data /srv/custody --store s3://legal-evidence/custody --database postgres://custody@db.internal/custody --listen 0.0.0.0:8443
    Serve(ServeArgs),

    /// Legal-team administration of a server's data directory.
    #[command(subcommand)]
    Admin(AdminCommand),

    /// Enroll this device with the legal team's server, using a one-time token.
    ///
    /// The server answers with this device's certificate, its own key and TLS certificate
    /// (pinned from now on) and the case recipients, which new recordings are sealed to.
    ///
    /// Example: custody enroll https://legal.example:8443 3f9c…(64 hex digits)
    Enroll(EnrollArgs),

    /// Upload everything waiting for a receipt, then exit.
    ///
    /// Exits 1 if records are still waiting (server unreachable, or refusing them).
    Upload(UploadArgs),

    /// Show where each role's configuration lives, what it holds, and the defaults.
    ///
    /// Observer: the vault directory and its config.json and enrollment.json. Lawyer:
    /// lawyer.json, written by `custody login`. Legal team: the server's data directory
    /// (give --data). Secrets (keys, tokens) are never printed.
    ///
    /// Example: custody config show
    ///
    /// Example: custody config show --data /srv/custody --json
    #[command(subcommand)]
    Config(ConfigCommand),

    /// Print shell completions (bash, zsh, fish, elvish, powershell) to standard output.
    ///
    /// Example: custody completions bash > ~/.local/share/bash-completion/completions/custody
    ///
    /// Example: custody completions zsh > ~/.zfunc/_custody
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },

    /// Write the man pages: custody.1 and one page per subcommand (custody-record.1, …).
    ///
    /// Example: custody man -o ~/.local/share/man/man1 && man custody-verify
    Man {
        /// The directory to write them to.
        #[arg(long, short = 'o', value_name = "DIR", default_value = ".")]
        out: PathBuf,
    },
    /// Log in to the legal team's server with the API token an admin gave you.
    ///
    /// Checks the token, pins the server's TLS certificate and signing key (as `custody
    /// enroll` does for devices) and saves them with the token in lawyer.json (mode 0600,
    /// under $CUSTODY_CONFIG_DIR or ~/.config/custody). From then on `recordings --server`
    /// and `fetch` need no URL, and `verify` trusts the pinned server key when no --trust is
    /// given.
    ///
    /// Example: custody login https://legal.example:8443 --token 7d1e…(64 hex digits)
    Login(LoginArgs),

    /// Take a recording out of the legal team's server as an evidence bundle.
    ///
    /// Every retrieval is recorded in the server's custody log, and the bundle carries the
    /// proof of its own retrieval. Writes the bundle directory, or with --tar one .tar file.
    /// A download that breaks resumes where it stopped when you run the same command again.
    ///
    /// Example: custody fetch 4e1a…(recording id) -o ./evidence/4e1a
    ///
    /// Example: custody fetch https://legal.example:8443 4e1a… -o 4e1a.tar --tar
    Fetch(FetchArgs),

    /// Show what the legal team's server has receipted and what still waits, per recording.
    ///
    /// Per recording: its state, segments saved and receipted, records waiting, the age of
    /// the oldest waiting record (the upload lag) and the time of the last receipt; and the
    /// enrollment and the custody-log head this device holds. Reads the vault only.
    /// Exit codes: 0 every record receipted; 1 records wait, or the server's log failed a
    /// consistency check (log.inconsistent); 2 the status could not be read.
    Status(StatusArgs),
}

/// `custody login`.
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The server's URL (https://host:port).
    pub url: String,

    /// Your API token (64 hex digits), from `custody admin member add`.
    #[arg(long)]
    pub token: String,

    /// Accept a plain http:// URL (loopback tests only: nothing to pin).
    #[arg(long)]
    pub insecure_http: bool,

    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `custody fetch`.
#[derive(Args, Debug)]
pub struct FetchArgs {
    /// The server's URL (optional once logged in), then the recording id.
    #[arg(num_args = 1..=2, required = true, value_name = "URL|RECORDING")]
    pub targets: Vec<String>,

    /// Where to write the bundle: a new (or empty) directory such as `bundle/`, or with
    /// --tar a new .tar file. Checked before the server is asked (every retrieval is logged).
    #[arg(short, long, value_name = "PATH")]
    pub output: PathBuf,

    /// Write one .tar file instead of a directory.
    #[arg(long)]
    pub tar: bool,

    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `custody verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The bundle: a directory, or its .tar file.
    pub bundle: PathBuf,

    /// The server key to trust: `ed25519:…`, a file holding it, or its fingerprint
    /// (XXXXX-XXXXX-XXXXX-XXXXX, as the legal team reads it out to you).
    #[arg(long, value_name = "KEY_OR_FILE")]
    pub trust: Option<String>,

    /// The legal team's age identity file, to decrypt and check every segment.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    /// Also write the report as one self-contained HTML file, for a court. With
    /// --identity it shows each segment's first frame.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Match a file recorded on the phone itself (any container) against the sealed
    /// recording, packet by packet (needs --identity). Does not change the verdict or the
    /// exit code; the result is a section of the report.
    #[arg(long, value_name = "FILE", requires = "identity")]
    pub original: Option<PathBuf>,

    /// Also show the report's times in this zone's local time, beside UTC: an IANA name
    /// such as America/Chicago. Only how times are shown; the recording holds no place.
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,

    /// A time-stamp authority's root certificate (PEM or DER) to check the bundle's RFC 3161
    /// time-stamp tokens against; repeatable. Without it, the roots the legal team shipped
    /// with the bundle are used, and the report says that they come from the legal team.
    #[arg(long = "tsa-trust", value_name = "CERT")]
    pub tsa_trust: Vec<PathBuf>,
}

/// `custody export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The bundle: a directory, or its .tar file.
    pub bundle: PathBuf,

    /// The legal team's age identity file, to decrypt the segments.
    #[arg(long, value_name = "FILE")]
    pub identity: PathBuf,

    /// The file to write: an MP4; for a browser recording a .webm, .mkv or .mp4; for a
    /// photo, the .jpg.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,

    /// Also write FILE's stem + `.re-encoded-viewing-copy.mp4`: the recording re-encoded
    /// to H.264/AAC for court players. It is not the evidence: its metadata and the report
    /// say that its proof is the remux it was made from.
    #[arg(long)]
    pub viewing_copy: bool,

    /// Export only part of the recording, from this media time: the whole sealed segments
    /// covering --from to --to are exported, and the report proves that the clip is those
    /// segments and says where in the recording it sits. Media time counts from the
    /// recording's start (the start of its first segment), not by any clock: 12:10
    /// (m:ss), 0:12:10 (h:mm:ss) or 730 (seconds; 730.5 too).
    #[arg(long, value_name = "TIME", requires = "to")]
    pub from: Option<String>,

    /// The end of the part to export (see --from): a media time after --from.
    #[arg(long, value_name = "TIME", requires = "from")]
    pub to: Option<String>,

    /// The server key to trust: `ed25519:…`, a file holding it, or its fingerprint
    /// (XXXXX-XXXXX-XXXXX-XXXXX, as the legal team reads it out to you).
    #[arg(long, value_name = "KEY_OR_FILE")]
    pub trust: Option<String>,

    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `custody keygen`.
#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Protect the device key with a passphrase (asked for, or taken from CUSTODY_PASSPHRASE).
    #[arg(long, conflicts_with = "recipient_key")]
    pub passphrase: bool,

    /// Instead, make an age X25519 identity for a legal team (the case key segments are
    /// encrypted to). Writes the secret identity to --output and prints the public
    /// recipient (age1…).
    #[arg(long, requires = "output")]
    pub recipient_key: bool,

    /// Where to write the case key (with --recipient-key).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options shared by `record` and `import`.
#[derive(Args, Debug)]
pub struct SealArgs {
    /// Encrypt to this age recipient (age1…), in addition to those in the vault config.
    /// Repeat for several.
    #[arg(long = "recipient", short = 'r', value_name = "AGE_RECIPIENT")]
    pub recipients: Vec<String>,

    /// Also encrypt to your own key kept in this vault. Off by default: without it, a
    /// seized device holds nothing it can decrypt.
    #[arg(long)]
    pub self_recipient: bool,

    /// Target segment duration in seconds (segments are cut at the first keyframe after it).
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub segment_seconds: f64,

    /// Force a cut when no keyframe has come for this long, in seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub max_segment_seconds: f64,

    /// Write fragmented MP4 segments instead of MPEG-TS.
    #[arg(long)]
    pub fmp4: bool,

    /// Print JSON lines instead of the live status line: a `waiting` event with the
    /// addresses and URLs a sender should use while a listener waits, one `started` event,
    /// one `saved` event per segment as soon as it is durable, a `receipted` event per
    /// record the server receipted, one `ended` event and (when enrolled) one `upload`
    /// event.
    #[arg(long)]
    pub json: bool,

    /// Do not upload while recording, even though the vault is enrolled (the records
    /// wait in the outbox for `custody upload`).
    #[arg(long)]
    pub no_upload: bool,

    /// When recording ends, wait at most this long for the last records to be receipted.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub upload_wait: f64,

    /// Let FFmpeg's own log messages through to stderr, for debugging (as
    /// CUSTODY_FFMPEG_LOG=1 does); without it custody says what they mean in its own words.
    #[arg(long)]
    pub verbose: bool,
}

/// `custody record`.
#[derive(Args, Debug)]
pub struct RecordArgs {
    /// What to record: a device (/dev/video0), a URL (srt://, rtmp://, rtsp://, udp://) or,
    /// with --format lavfi, a filter graph.
    #[arg(long, short = 'i', value_name = "INPUT")]
    pub input: String,

    /// The FFmpeg input format (video4linux2, lavfi, mpegts, …); needed for devices.
    #[arg(long, short = 'f', value_name = "FORMAT")]
    pub format: Option<String>,

    /// An FFmpeg input option, KEY=VALUE (listen=1, video_size=1280x720, …). Repeatable.
    #[arg(long = "option", short = 'o', value_name = "KEY=VALUE", value_parser = parse_kv)]
    pub options: Vec<(String, String)>,

    /// Stop by itself after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,

    /// From a network stream (an SRT or RTMP listener, …): how long to listen again for the
    /// sender after it drops. The same recording goes on after the gap (recorded in the
    /// chain); a sender that comes back with other streams starts a new, linked recording.
    /// 0 ends the recording at the first drop.
    #[arg(long, value_name = "SECONDS", default_value_t = 120.0)]
    pub reconnect_wait: f64,

    #[command(flatten)]
    pub seal: SealArgs,
}

/// `custody import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The video file to seal.
    pub file: PathBuf,

    #[command(flatten)]
    pub seal: SealArgs,
}

/// `custody recordings`.
#[derive(Args, Debug)]
pub struct RecordingsArgs {
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,

    /// List the recordings on the legal team's server instead of this vault (needs
    /// `custody login`; the URL defaults to the one logged in to).
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    pub server: Option<String>,
}

/// `custody vault …`.
#[derive(Subcommand, Debug)]
pub enum VaultCommand {
    /// Check every recording: chain, signatures, and every sealed file against its record.
    /// Repairs what a crash left (torn journal tails, a broken index) and says so.
    Check {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the index from the journals and segment files.
    RebuildIndex,
    /// Show or change the age recipients new recordings are encrypted to.
    Recipients {
        /// Add a recipient (age1…).
        #[arg(long, value_name = "AGE_RECIPIENT")]
        add: Vec<String>,
        /// Remove a recipient.
        #[arg(long, value_name = "AGE_RECIPIENT")]
        remove: Vec<String>,
    },
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

/// Options of `custody serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The server's data directory (keys, log, stored evidence).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,

    /// A case recipient (age1…) handed to devices at enrollment (repeatable; also read from
    /// DIR/recipients.txt). Make one with `custody keygen --recipient-key --output FILE`.
    /// Required, unless --without-case-recipient.
    #[arg(long, value_name = "AGE_RECIPIENT")]
    pub recipient: Vec<String>,

    /// Serve without a case recipient: devices seal only to the recipients each was given
    /// itself (`custody record --recipient`); one with none cannot record.
    #[arg(long, conflicts_with = "recipient")]
    pub without_case_recipient: bool,

    /// Serve plain HTTP instead of TLS. Only on a loopback address, for tests or behind a
    /// reverse proxy on the same machine.
    #[arg(long, conflicts_with = "tls_cert")]
    pub insecure_http: bool,

    /// Serve this certificate chain (PEM, end-entity first, as Let's Encrypt's
    /// fullchain.pem) instead of the self-signed certificate: phones need one they trust.
    /// Read at every start, so a renewal takes effect on restart.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, RSA or EC).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// A reverse proxy (IP address or CIDR block) whose X-Forwarded-For names the client's
    /// address, for the per-address limits. Repeatable. From any other address the header
    /// is ignored.
    #[arg(long, value_name = "ADDR")]
    pub trusted_proxy: Vec<custody_server::proxy::IpBlock>,

    /// The largest upload accepted, MiB: a signed record and its sealed segment (2 s
    /// segments are about 2 MB). A larger one is refused before its body is read.
    #[arg(long, value_name = "MiB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub max_upload_mib: u64,

    /// The bytes of all uploads in progress together, MiB: bounds the server's memory and
    /// temporary disk for them. Past it, uploads are told to retry shortly (server.busy).
    #[arg(long, value_name = "MiB", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=1048576))]
    pub uploads_in_flight_mib: u64,

    /// The header the trusted proxies name the client in.
    #[arg(long, value_name = "HEADER", default_value = "x-forwarded-for", value_parser = ["x-forwarded-for", "forwarded"], requires = "trusted_proxy")]
    pub proxy_header: String,

    /// An RFC 3161 time-stamp authority (TSA) to ask, over HTTP(S), for a token over the
    /// custody log's signed head while entries arrive (repeatable: each TSA gets its own
    /// token per head). Each token is logged, and bundles carry the ones covering their
    /// segments, so a court can see that the segments existed by a time neither the device
    /// nor the legal team controls. A TSA down or slow never delays uploads or receipts:
    /// requests are retried and the gap is said on stderr.
    ///
    /// Example: --tsa https://freetsa.org/tsr --tsa http://timestamp.digicert.com
    #[arg(long, value_name = "URL")]
    pub tsa: Vec<String>,

    /// How often, at most, each --tsa is asked for a token while the log grows, seconds.
    /// A token covers everything logged before it, so a segment waits at most about this
    /// long for its independent time.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86400), requires = "tsa")]
    pub tsa_interval: u64,

    /// The TSAs' root certificates (PEM, concatenated), shipped in every bundle that carries
    /// tokens as custody/tsa-roots.pem, so that `custody verify` can check the tokens with
    /// no other file (and says the roots came with the bundle; --tsa-trust overrides them).
    #[arg(long, value_name = "PEM", requires = "tsa")]
    pub tsa_root: Option<PathBuf>,

    /// How the server logs each event on stderr (enrollments, segments stored, bundles
    /// retrieved, …): text lines for people, or one JSON object per line for log collectors.
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    /// Also log the network address each event came from. Off by default: the logs must
    /// not tell who filmed an encounter, or from where.
    #[arg(long)]
    pub log_addresses: bool,

    /// Seconds without a new segment after which a recording with no end record is listed
    /// as stalled (default: three lengths of its last segment).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub stalled_after: Option<u64>,

    /// Seconds without a new segment after which a recording with no end record is listed
    /// as cut off.
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub cut_off_after: u64,

    /// Keep the custody log, the index, enrollment tokens, members and request nonces in
    /// this PostgreSQL database, so that several replicas serve one log (each append is
    /// committed before its receipt). Also read from CUSTODY_DATABASE_URL, which keeps the
    /// password off the command line. Give --store too, so that every replica reads the
    /// same segments, or --single-replica. The schema is made (and migrated) on start.
    /// There is no TLS to the database: reach it on a private network, a Unix socket
    /// (postgres:///custody?host=/run/postgresql) or a TLS tunnel (docs/deploy.md).
    ///
    /// Example: --database postgres://custody:PASSWORD@db.internal:5432/custody
    #[arg(long, value_name = "URL", env = "CUSTODY_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,

    /// Keep signed records and sealed segments in this S3-compatible bucket
    /// (s3://BUCKET[/PREFIX]), written create-only; a store that lets a second create of a
    /// key succeed is refused at start. Endpoint, region and credentials come from
    /// AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Without
    /// --database the rest stays in --data DIR, and only one replica may run.
    ///
    /// Example: --store s3://legal-evidence/custody --database postgres://…
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,

    /// With --database and no --store: say that this is the only replica. Records and
    /// sealed segments then stay in --data DIR, which no other replica could read, so a
    /// second replica on the same database would receipt what the others cannot serve.
    #[arg(long, requires = "database", conflicts_with = "store")]
    pub single_replica: bool,
}

/// `custody admin` subcommands.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Issue a one-time, expiring enrollment token for a device.
    ///
    /// Example: custody admin enroll-token --data /srv/custody --label observer-7
    ///
    /// Example (a phone): custody admin enroll-token --data /srv/custody --label phone-3 --link https://legal.example --qr
    EnrollToken(EnrollTokenArgs),

    /// Manage the legal team's members (who may list and retrieve evidence).
    #[command(subcommand)]
    Member(MemberCommand),

    /// Revoke a device's key (as a logged-in admin): later uploads from it are refused.
    ///
    /// What the device uploaded before stays valid evidence, and every bundle of its
    /// recordings shows the revocation. DEVICE is its key (ed25519:…) or its fingerprint.
    ///
    /// Example: custody admin revoke 7Q2MX-0K4RT-… --reason "phone seized at the border"
    Revoke(RevokeArgs),
}

/// `custody admin member` subcommands.
#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// Add a member and print their one-time API token (shown only now, stored hashed).
    ///
    /// Works on the data directory, beside a running server; the server records the
    /// addition in its custody log. Roles: member (list and retrieve evidence), admin (also
    /// revoke devices).
    ///
    /// Example: custody admin member add --data /srv/custody "Ana Ruiz" --role member
    Add(MemberAddArgs),
}

/// Options of `custody admin member add`.
#[derive(Args, Debug)]
pub struct MemberAddArgs {
    /// The server's data directory.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// The server's PostgreSQL database (`custody serve --database`): the member is added
    /// there, for every replica. Also read from CUSTODY_DATABASE_URL.
    #[arg(long, value_name = "URL", env = "CUSTODY_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,

    /// The member's name, as the custody log will record it.
    pub name: String,

    /// admin or member.
    #[arg(long, value_parser = ["admin", "member"])]
    pub role: String,

    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `custody admin revoke`.
#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// The device: its key (ed25519:…) or its fingerprint.
    pub device: String,

    /// Why (recorded in the custody log and shown in bundles).
    #[arg(long)]
    pub reason: String,

    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `custody admin enroll-token`.
#[derive(Args, Debug)]
pub struct EnrollTokenArgs {
    /// The server's data directory.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// The server's PostgreSQL database (`custody serve --database`): the token is issued
    /// there, for every replica. Also read from CUSTODY_DATABASE_URL.
    #[arg(long, value_name = "URL", env = "CUSTODY_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,

    /// The device's label: a pseudonym, never the observer's name.
    #[arg(long)]
    pub label: String,

    /// Hours until the token expires (1 to 720: a token is a key to the server, and one
    /// that waits for weeks is one that leaks).
    #[arg(long, value_name = "HOURS", default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=720))]
    pub ttl_hours: u64,

    /// The server's address as devices reach it (https://host:port), for the printed
    /// command; by default the address `custody serve` last listened on.
    #[arg(long, value_name = "URL")]
    pub server_url: Option<String>,

    /// Also print an enrollment link for the server at URL (https://host:port, as devices
    /// reach it): the token and the server key's fingerprint in one text for the device.
    #[arg(long, value_name = "URL")]
    pub link: Option<String>,

    /// Also print the enrollment link as a QR code, for a phone's camera (needs --link).
    /// The link is printed under it.
    #[arg(long, requires = "link", conflicts_with = "json")]
    pub qr: bool,

    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `custody enroll`.
#[derive(Args, Debug)]
pub struct EnrollArgs {
    /// The enrollment link from the legal team (https://host:port/enroll#token=…&fp=…),
    /// or the server's URL (https://host:port) followed by TOKEN.
    #[arg(value_name = "LINK|URL")]
    pub url: String,

    /// The one-time enrollment token from the legal team (64 hex digits), after a URL.
    pub token: Option<String>,

    /// The server key's fingerprint as the legal team gave it: a server whose key has
    /// another is refused before the token is sent or anything is pinned.
    #[arg(long, value_name = "FINGERPRINT")]
    pub expect_fingerprint: Option<String>,

    /// Accept a plain http:// URL (loopback tests only: nothing to pin).
    #[arg(long)]
    pub insecure_http: bool,

    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `custody upload`.
#[derive(Args, Debug)]
pub struct UploadArgs {
    /// Give up after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,

    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `custody status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `custody config` subcommands.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Show the configuration of every role on this computer.
    Show(ConfigShowArgs),
}

/// Options of `custody config show`.
#[derive(Args, Debug)]
pub struct ConfigShowArgs {
    /// Also show the legal team's server whose data directory this is.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

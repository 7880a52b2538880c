//! `custody serve` and `custody admin`: the legal team's server, and its admin commands.

use custody_server::identity::IdentityError;
use custody_server::proxy::{ForwardedHeader, TrustedProxies};
use custody_server::{Config, OpenError, Server, TlsFiles};

use std::path::Path;
use std::sync::Arc;

use custody_server::store::pg::PgStores;
use custody_server::store::{block_on, Backend, RecordStore};

use crate::cli::{AdminCommand, ServeArgs};
use crate::common::{print, CliError};

pub fn run(args: &ServeArgs) -> Result<(), CliError> {
    if args.insecure_http && !args.listen.ip().is_loopback() {
        return Err(CliError::cannot("--insecure-http is only for a loopback address")
            .hint("serve TLS (the default) on any other address; devices pin its certificate"));
    }
    let recipients = case_recipients(args)?;
    let mut config = Config::new(&args.data);
    config.insecure_http = args.insecure_http;
    config.recipients = recipients;
    config.events = custody_server::events::EventLog {
        enabled: true,
        format: if args.log_format == "json" {
            custody_server::events::LogFormat::Json
        } else {
            custody_server::events::LogFormat::Text
        },
        addresses: args.log_addresses,
    };
    config.liveness = custody_server::Liveness {
        stalled_after: args.stalled_after.map(std::time::Duration::from_secs),
        cut_off_after: std::time::Duration::from_secs(args.cut_off_after),
    };
    config.limits.max_body_bytes = usize::try_from(args.max_upload_mib << 20).unwrap_or(usize::MAX);
    config.limits.max_inflight_bytes = args.uploads_in_flight_mib << 20;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls = Some(TlsFiles { cert: cert.clone(), key: key.clone() });
    }
    config.trusted_proxies = TrustedProxies {
        blocks: args.trusted_proxy.clone(),
        header: if args.proxy_header == "forwarded" {
            ForwardedHeader::Forwarded
        } else {
            ForwardedHeader::XForwardedFor
        },
    };
    config.tsa = tsa_config(args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::cannot(format!("starting the runtime: {e}")))?;
    config.backend = rt.block_on(backend(args))?;
    // Opened on a blocking thread of the runtime: the stores' futures may need its reactor
    // (an object store's HTTP client), and `block_on` is their bridge there.
    let (server, opened) = rt
        .block_on(rt.spawn_blocking(move || Server::open(config)))
        .map_err(|e| CliError::cannot(format!("opening the server: {e}")))?
        .map_err(open_error)?;
    if opened.identity_created {
        eprintln!(
            "custody: created the server's signing key and TLS certificate in {}",
            args.data.display()
        );
    }
    for w in &opened.tls_warnings {
        eprintln!("custody: warning: {w}");
    }
    if let Some(why) = &opened.index_rebuilt {
        eprintln!("custody: {why}; the index was rebuilt from the log and the stored records");
    }
    if let Some(why) = &opened.disk_full {
        eprintln!("custody: warning: {why}");
    }
    let key = server.public_key();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(|e| {
            CliError::cannot(format!("binding {}: {e}", args.listen))
                .hint("choose a free port with --listen ADDR")
        })?;
        let addr = listener.local_addr().unwrap_or(args.listen);
        let scheme = if args.insecure_http { "http" } else { "https" };
        // For the admin commands' print-outs: where devices may reach this server.
        write_serve_record(&args.data, scheme, addr);
        print(&format!(
            "Listening on {scheme}://{addr}\nServer key:  {key}\nFingerprint: {}\nTLS SHA-256: {}\n{}",
            key.fingerprint(),
            if args.insecure_http { "none (plain HTTP, loopback only)".to_string() } else { server.tls_sha256() },
            if args.insecure_http { String::new() } else { certificate_lines(&server, args) },
        ));
        let stop = stop_signal()?;
        tokio::select! {
            served = custody_server::serve::serve(server.clone(), listener) => {
                served.map_err(|e| CliError::cannot(e.to_string()))
            }
            _ = stop => {
                // A clean stop leaves nothing to rebuild at the next start, and writes the
                // event lines still queued for stderr before its own.
                custody_server::events::flush(std::time::Duration::from_secs(2));
                match server.flush_index() {
                    Ok(n) => eprintln!("custody: stopped; the index is saved (it covers all {n} log entries)"),
                    Err(e) => eprintln!("custody: stopped; the index could not be saved ({e}): the next start rebuilds it"),
                }
                Ok(())
            }
        }
    })
}

/// Resolves when the process is asked to stop (SIGTERM, SIGINT, SIGHUP).
fn stop_signal() -> Result<tokio::sync::oneshot::Receiver<()>, CliError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    ctrlc::set_handler(move || {
        if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
            let _ = tx.send(());
        }
    })
    .map_err(|e| CliError::cannot(format!("handling stop signals: {e}")))?;
    Ok(rx)
}

/// The file in the data directory naming where `custody serve` last listened.
const SERVE_RECORD: &str = "serve.json";

/// Notes where the server listens, for `custody admin enroll-token` to print. Not
/// evidence and not needed: a failure to write it is only said.
fn write_serve_record(data: &Path, scheme: &str, addr: std::net::SocketAddr) {
    let url = (!addr.ip().is_unspecified()).then(|| format!("{scheme}://{addr}"));
    let v = serde_json::json!({ "url": url, "scheme": scheme, "port": addr.port() });
    if let Err(e) = std::fs::write(data.join(SERVE_RECORD), format!("{v}\n")) {
        eprintln!("custody: warning: writing {}: {e}", data.join(SERVE_RECORD).display());
    }
}

/// The server's address for devices, as the admin commands print it: `--server-url`, else
/// where `custody serve` last listened (the host left to fill in if it listened on every
/// address), else a placeholder.
pub fn server_url(data: &Path, given: Option<&str>) -> String {
    if let Some(u) = given {
        return u.trim_end_matches('/').to_string();
    }
    let v: Option<serde_json::Value> =
        std::fs::read(data.join(SERVE_RECORD)).ok().and_then(|b| serde_json::from_slice(&b).ok());
    match v {
        Some(v) if v["url"].is_string() => v["url"].as_str().unwrap_or_default().to_string(),
        Some(v) if v["port"].is_u64() => format!(
            "{}://SERVER:{}",
            v["scheme"].as_str().unwrap_or("https"),
            v["port"].as_u64().unwrap_or_default()
        ),
        _ => "https://SERVER:PORT".to_string(),
    }
}

/// Where the stores are, from `--store`, `--database` and `--single-replica`: the data
/// directory alone (the default), records in an object store, the rest in a database, or
/// both. `--database` alone is refused without `--single-replica`: replicas on one
/// database would each keep segments the others cannot serve.
async fn backend(args: &ServeArgs) -> Result<Backend, CliError> {
    if args.store.is_none() && args.database.is_none() {
        return Ok(Backend::Fs);
    }
    if args.store.is_none() && !args.single_replica {
        return Err(CliError::cannot(
            "--database without --store: every replica on the database would keep its \
             segments in its own --data directory, where the others cannot read them",
        )
        .hint(
            "give the bucket all replicas share (--store s3://BUCKET/PREFIX), or say this \
             is the only replica: --single-replica",
        ));
    }
    let records: Arc<dyn RecordStore> = match &args.store {
        Some(url) => {
            Arc::new(custody_server::store::s3::S3Records::connect(url).await.map_err(|e| {
                CliError::cannot(format!("--store {url}: {e}")).hint(
                    "check AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY, and that the bucket exists",
                )
            })?)
        }
        None => Arc::new(
            custody_server::store::fs::FsRecords::open(&args.data.join("recordings"))
                .map_err(|e| CliError::cannot(e.to_string()))?,
        ),
    };
    let stores = match &args.database {
        Some(url) => connect_database(url).await?.stores(records),
        None => {
            let (mut stores, _) = custody_server::store::fs::open(&args.data)
                .map_err(|e| CliError::cannot(e.to_string()))?;
            stores.records = records;
            stores
        }
    };
    Ok(Backend::Custom(stores))
}

/// Connects to `--database` (applying the schema's migrations), with what to check if it
/// cannot.
pub async fn connect_database(url: &str) -> Result<PgStores, CliError> {
    PgStores::connect(url).await.map_err(|e| {
        // Never print the URL: it may hold the password.
        CliError::cannot(format!("the database: {e}")).hint(
            "give --database postgres://USER:PASSWORD@HOST:PORT/DB (or CUSTODY_DATABASE_URL) \
             for a database that exists and that USER may create tables in",
        )
    })
}

/// The case recipients to serve: `--recipient` and `DIR/recipients.txt`, each an age
/// X25519 recipient (a typo is refused now, naming it, not found when every recording
/// fails). None at all is refused unless `--without-case-recipient` says it is meant.
fn case_recipients(args: &ServeArgs) -> Result<Vec<String>, CliError> {
    let file = args.data.join("recipients.txt");
    let listed = match std::fs::read_to_string(&file) {
        Ok(t) => t
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| (l.to_string(), format!("{} lists", file.display())))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(CliError::cannot(format!("reading {}: {e}", file.display()))),
    };
    let given = args.recipient.iter().map(|r| (r.trim().to_string(), "--recipient gives".into()));
    let all: Vec<(String, String)> = given.chain(listed).collect();
    for (r, whence) in &all {
        if custody_vault::keys::parse_recipients(std::slice::from_ref(r)).is_err() {
            let shown: String = r.chars().take(80).collect();
            return Err(CliError::cannot(format!(
                "{whence} `{shown}`, which is not an age recipient (age1… , 62 characters)"
            ))
            .hint("copy the recipient `custody keygen --recipient-key` printed, whole"));
        }
    }
    if all.is_empty() && !args.without_case_recipient {
        return Err(CliError::cannot(
            "no case recipient: devices would have no one to seal recordings to, and every \
             recording would fail (\"no recipients\")",
        )
        .hint(format!(
            "make the case key once, on a machine the legal team keeps safe: `custody keygen \
             --recipient-key --output case.agekey`; then serve with the recipient it prints: \
             `custody serve --data {} --recipient age1…` (or list it in {}). To serve \
             without one, say so: --without-case-recipient",
            args.data.display(),
            file.display()
        )));
    }
    Ok(args.recipient.iter().map(|r| r.trim().to_string()).collect())
}

/// Refuses a directory without a server's identity (`server.key`, `server.pub`): what an
/// admin command working on the database (`--database`) still reads from `--data`.
pub fn check_identity_dir(dir: &Path) -> Result<(), CliError> {
    match ["server.key", "server.pub"].into_iter().find(|m| !dir.join(m).is_file()) {
        None => Ok(()),
        Some(m) => Err(CliError::cannot(format!(
            "{} has no {m}: it is not a custody server's data directory",
            dir.display()
        ))
        .hint("give the --data DIR the replicas serve with (it holds the server's key)")),
    }
}

/// Refuses a directory that is not a server's data directory, before an admin command
/// writes anything into it (a token issued into a new, empty directory can never work):
/// says what is missing and where the data directory probably is.
pub fn check_data_dir(dir: &Path) -> Result<(), CliError> {
    const MARKS: [&str; 3] = ["server.key", "server.pub", "log"];
    let missing: Vec<&str> = MARKS.into_iter().filter(|m| !dir.join(m).exists()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let message = if !dir.exists() {
        format!("{} does not exist: it is not a custody server's data directory", dir.display())
    } else {
        format!(
            "{} is not a custody server's data directory: it has no {} (a server's data \
             directory holds its key, server.key and server.pub, and its custody log, log/)",
            dir.display(),
            missing.join(", ")
        )
    };
    let hint = match probable_data_dirs(dir).first() {
        Some(p) => format!(
            "the server's data directory is probably {}: --data {}",
            p.display(),
            p.display()
        ),
        None => "give the --data DIR `custody serve` runs with; a server makes its data \
                 directory when it first starts (`custody serve --data DIR --recipient age1…`)"
            .to_string(),
    };
    Err(CliError::cannot(message).hint(hint))
}

/// Data directories near `dir` (its ancestors, their children, the working directory's
/// children) and in the usual places, at most a few hundred directories looked at.
fn probable_data_dirs(dir: &Path) -> Vec<std::path::PathBuf> {
    let is_data = |p: &Path| p.join("server.pub").is_file() && p.join("log").is_dir();
    let mut places: Vec<std::path::PathBuf> = Vec::new();
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    for a in abs.ancestors().skip(1).take(3) {
        places.push(a.to_path_buf());
    }
    if let Ok(cwd) = std::env::current_dir() {
        places.push(cwd);
    }
    let mut found = Vec::new();
    for p in ["/srv/custody", "/var/lib/custody"] {
        if is_data(Path::new(p)) {
            found.push(std::path::PathBuf::from(p));
        }
    }
    for place in places {
        if is_data(&place) && !found.contains(&place) {
            found.push(place.clone());
        }
        let Ok(rd) = std::fs::read_dir(&place) else { continue };
        for e in rd.flatten().take(200) {
            let p = e.path();
            if p.is_dir() && is_data(&p) && !found.contains(&p) {
                found.push(p);
            }
        }
    }
    found
}

/// A refusal to start, with what to do about the TLS files.
fn open_error(e: OpenError) -> CliError {
    let hint = match &e {
        OpenError::Identity(IdentityError::KeyMismatch { .. }) => {
            Some("give the key the certificate was issued for (Let's Encrypt: privkey.pem beside fullchain.pem)")
        }
        OpenError::Identity(IdentityError::Pem { .. }) => {
            Some("--tls-cert takes the PEM chain (fullchain.pem), --tls-key its PEM private key")
        }
        OpenError::Identity(IdentityError::Io { .. }) => {
            Some("check the path and that this user may read it")
        }
        _ => None,
    };
    let err = CliError::cannot(e.to_string());
    match hint {
        Some(h) => err.hint(h),
        None => err,
    }
}

/// What the served certificate covers, for the operator: the names a link may use.
fn certificate_lines(server: &Server, args: &ServeArgs) -> String {
    match server.tls_certificate() {
        Ok(info) if args.tls_cert.is_none() => format!(
            "TLS:         self-signed, for {} (CLI devices pin its key; phones need --tls-cert \
             or a reverse proxy)\n",
            info.names().join(", ")
        ),
        Ok(info) => format!(
            "TLS:         {} for {}, valid until {}\n",
            args.tls_cert.as_deref().map(|p| p.display().to_string()).unwrap_or_default(),
            info.names().join(", "),
            custody_format::time::utc_seconds(info.not_after_us)
        ),
        Err(e) => format!("TLS:         {e}\n"),
    }
}

/// The host of an `https://host:port/...` URL, without brackets or port.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| h);
    }
    Some(authority.rsplit_once(':').map_or(authority, |(h, _)| h))
}

/// Warns when the certificate the server serves does not cover the link's host: a phone
/// (and a device that checks it against the certificate authorities) would refuse it.
fn warn_link_host(data: &std::path::Path, link: &str) {
    let Ok(Some(info)) = custody_server::identity::Identity::served_certificate(data) else {
        return;
    };
    let Some(host) = url_host(link) else { return };
    if !info.covers(host) {
        eprintln!(
            "custody: warning: the server's TLS certificate covers {}, not {host}: a phone \
             will refuse this link (ignore this if a reverse proxy serves {host} with its \
             own certificate; see docs/deploy.md)",
            info.names().join(", ")
        );
    } else if info.self_issued {
        eprintln!(
            "custody: warning: the server's TLS certificate is self-signed: a phone's browser \
             will refuse it; serve one it trusts (custody serve --tls-cert) or use a reverse \
             proxy (docs/deploy.md). Laptops enrolling with `custody enroll` are fine."
        );
    }
}

pub fn admin(cmd: &AdminCommand) -> Result<(), CliError> {
    match cmd {
        AdminCommand::Member(m) => crate::lawyer::member(m),
        AdminCommand::Revoke(a) => crate::lawyer::revoke(a),
        AdminCommand::EnrollToken(a) => {
            let ttl = std::time::Duration::from_secs(a.ttl_hours.saturating_mul(3600));
            let token = match &a.database {
                Some(url) => {
                    check_identity_dir(&a.data)?;
                    let db = block_on(connect_database(url))?;
                    custody_server::enroll::issue_into(&db.tokens(), &a.label, ttl)
                }
                None => {
                    check_data_dir(&a.data)?;
                    custody_server::issue_token(&a.data, &a.label, ttl)
                }
            }
            .map_err(|e| CliError::cannot(e.to_string()))?;
            let link = match &a.link {
                Some(url) => Some(enroll_link(&a.data, url, &token)?),
                None => None,
            };
            if let Some(l) = &link {
                warn_link_host(&a.data, &l.server);
            }
            let url = server_url(&a.data, a.server_url.as_deref().or(a.link.as_deref()));
            let fingerprint = server_fingerprint(&a.data)?;
            if a.json {
                let mut v = serde_json::json!({
                    "token": token, "label": a.label, "ttl_hours": a.ttl_hours,
                    "server_url": url, "fingerprint": fingerprint,
                });
                if let Some(l) = &link {
                    v["link"] = serde_json::json!(l.to_string());
                }
                print(&format!("{v}\n"));
            } else if let (Some(l), true) = (&link, a.qr) {
                use std::io::IsTerminal;
                let code = crate::qr::render(&l.to_string(), std::io::stdout().is_terminal())
                    .map_err(CliError::cannot)?;
                print(&format!(
                    "Enrollment link for \"{}\" (single use, valid {} h; shown only now).\n\
                     On the phone: open the camera and point it at this code.\n\n{code}\n{l}\n",
                    a.label, a.ttl_hours
                ));
            } else if let Some(l) = &link {
                print(&format!(
                    "Enrollment link for \"{}\" (single use, valid {} h; shown only now):\n{l}\n\
                     On the device: custody enroll '{l}'\n",
                    a.label, a.ttl_hours
                ));
            } else {
                print(&format!(
                    "Enrollment token for \"{}\" (single use, valid {} h; shown only now):\n{token}\n\
                     Server key fingerprint: {fingerprint} (the observer compares it with this)\n\
                     On the device: custody enroll --expect-fingerprint {fingerprint} {url} {token}\n",
                    a.label, a.ttl_hours
                ));
            }
            Ok(())
        }
    }
}

/// The fingerprint of the server key in the data directory (`server.pub`).
fn server_fingerprint(data: &Path) -> Result<String, CliError> {
    let pub_path = data.join("server.pub");
    std::fs::read_to_string(&pub_path)
        .ok()
        .and_then(|t| custody_format::ids::PublicKey::parse(t.trim()).ok())
        .map(|k| k.fingerprint().to_string())
        .ok_or_else(|| {
            CliError::cannot(format!("no server key in {}", pub_path.display()))
                .hint("start the server once (`custody serve --data DIR`) so it makes its key")
        })
}

/// The enrollment link for `token` at the server reached as `url`, naming the key in the
/// data directory (`server.pub`, written when the server first started).
fn enroll_link(
    data: &std::path::Path,
    url: &str,
    token: &str,
) -> Result<custody_protocol::EnrollLink, CliError> {
    let pub_path = data.join("server.pub");
    let key = std::fs::read_to_string(&pub_path)
        .ok()
        .and_then(|t| custody_format::ids::PublicKey::parse(t.trim()).ok())
        .ok_or_else(|| {
            CliError::cannot(format!("no server key in {}", pub_path.display()))
                .hint("start the server once (`custody serve --data DIR`) so it makes its key")
        })?;
    let token: [u8; 32] = hex::decode(token)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| CliError::cannot("the new token is not 64 hex digits"))?;
    let link = custody_protocol::EnrollLink::new(url, token, &key);
    // What a device will parse must be what was printed: refuse a URL that cannot be one.
    custody_protocol::EnrollLink::parse(&link.to_string()).map_err(|e| {
        CliError::cannot(format!("{url} cannot start an enrollment link: {e}"))
            .hint("give the server's address as devices reach it, e.g. --link https://host:8443")
    })
}

/// `--tsa`, `--tsa-interval`, `--tsa-root`: what the server time-stamps its log with.
fn tsa_config(args: &ServeArgs) -> Result<custody_server::tsa::TsaConfig, CliError> {
    let mut tsa = custody_server::tsa::TsaConfig {
        urls: args.tsa.clone(),
        interval: std::time::Duration::from_secs(args.tsa_interval),
        ..Default::default()
    };
    for url in &tsa.urls {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(CliError::cannot(format!(
                "--tsa {url:?} is not an http:// or https:// URL"
            ))
            .hint(
                "give the time-stamp authority's RFC 3161 URL, e.g. --tsa https://freetsa.org/tsr",
            ));
        }
    }
    if let Some(path) = &args.tsa_root {
        let pem = std::fs::read(path)
            .map_err(|e| CliError::cannot(format!("reading --tsa-root {}: {e}", path.display())))?;
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(CliError::cannot(format!(
                "--tsa-root {} holds no PEM certificate",
                path.display()
            ))
            .hint("give the TSAs' root certificates as PEM (-----BEGIN CERTIFICATE-----), concatenated"));
        }
        tsa.roots_pem = Some(pem);
    }
    Ok(tsa)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_link_names_the_data_directorys_server_key() {
        let dir = tempfile::tempdir().unwrap();
        let token = "ab".repeat(32);
        assert!(enroll_link(dir.path(), "https://h:8443", &token).is_err(), "no key yet");
        let key = custody_format::testkit::public("server");
        std::fs::write(dir.path().join("server.pub"), format!("{key}\n")).unwrap();
        let link = enroll_link(dir.path(), "https://h:8443/", &token).unwrap();
        let back = custody_protocol::EnrollLink::parse(&link.to_string()).unwrap();
        assert_eq!(back.server, "https://h:8443");
        assert_eq!(back.token_hex(), token);
        assert!(back.names(&key));
        assert!(enroll_link(dir.path(), "ftp://h", &token).is_err());
    }

    #[test]
    fn the_host_of_a_link() {
        assert_eq!(url_host("https://legal.example:8443"), Some("legal.example"));
        assert_eq!(url_host("https://legal.example/enroll#token=1"), Some("legal.example"));
        assert_eq!(url_host("https://[::1]:8443/x"), Some("::1"));
        assert_eq!(url_host("https://127.0.0.1"), Some("127.0.0.1"));
        assert_eq!(url_host("legal.example"), None);
    }
}

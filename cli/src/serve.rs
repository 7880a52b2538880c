//! `custody serve` and `custody admin`: the legal team's server, and its admin commands.

use custody_server::{Config, Server};

use crate::cli::{AdminCommand, ServeArgs};
use crate::common::{print, CliError};

pub fn run(args: &ServeArgs) -> Result<(), CliError> {
    if args.insecure_http && !args.listen.ip().is_loopback() {
        return Err(CliError::cannot("--insecure-http is only for a loopback address")
            .hint("serve TLS (the default) on any other address; devices pin its certificate"));
    }
    let mut config = Config::new(&args.data);
    config.insecure_http = args.insecure_http;
    config.recipients = args.recipient.clone();
    let (server, opened) = Server::open(config).map_err(|e| CliError::cannot(e.to_string()))?;
    if opened.identity_created {
        eprintln!(
            "custody: created the server's signing key and TLS certificate in {}",
            args.data.display()
        );
    }
    if let Some(why) = &opened.index_rebuilt {
        eprintln!("custody: {why}; the index was rebuilt from the log and the stored records");
    }
    let key = server.public_key();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::cannot(format!("starting the runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(|e| {
            CliError::cannot(format!("binding {}: {e}", args.listen))
                .hint("choose a free port with --listen ADDR")
        })?;
        let addr = listener.local_addr().unwrap_or(args.listen);
        let scheme = if args.insecure_http { "http" } else { "https" };
        print(&format!(
            "Listening on {scheme}://{addr}\nServer key:  {key}\nFingerprint: {}\nTLS SHA-256: {}\n",
            key.fingerprint(),
            if args.insecure_http { "none (plain HTTP, loopback only)".to_string() } else { server.tls_sha256() },
        ));
        custody_server::serve::serve(server, listener)
            .await
            .map_err(|e| CliError::cannot(e.to_string()))
    })
}

pub fn admin(cmd: &AdminCommand) -> Result<(), CliError> {
    match cmd {
        AdminCommand::Member(m) => crate::lawyer::member(m),
        AdminCommand::Revoke(a) => crate::lawyer::revoke(a),
        AdminCommand::EnrollToken(a) => {
            let ttl = std::time::Duration::from_secs(a.ttl_hours.saturating_mul(3600));
            let token = custody_server::issue_token(&a.data, &a.label, ttl)
                .map_err(|e| CliError::cannot(e.to_string()))?;
            let link = match &a.link {
                Some(url) => Some(enroll_link(&a.data, url, &token)?),
                None => None,
            };
            if a.json {
                let mut v = serde_json::json!({ "token": token, "label": a.label, "ttl_hours": a.ttl_hours });
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
                     On the device: custody enroll https://SERVER:PORT {token}\n",
                    a.label, a.ttl_hours
                ));
            }
            Ok(())
        }
    }
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
}

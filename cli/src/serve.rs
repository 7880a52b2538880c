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
            if a.json {
                print(&format!(
                    "{}\n",
                    serde_json::json!({ "token": token, "label": a.label, "ttl_hours": a.ttl_hours })
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

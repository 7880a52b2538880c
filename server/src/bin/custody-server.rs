//! `custody-server --data DIR --listen ADDR [--insecure-http] [--recipient age1…]…
//! [--log-events [--log-json] [--log-addresses]]`
//!
//! A thin process around [`custody_server::Server`], so that tests can run a server in a
//! process of its own and kill it (`SIGKILL`). Users run `custody serve`, which does the
//! same through the `custody` binary. On start it prints one line,
//! `listening <addr> <server key> <tls sha256 or "insecure-http">`, and then serves.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut data: Option<PathBuf> = None;
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut insecure = false;
    let mut recipients = Vec::new();
    let mut events = custody_server::events::EventLog::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--data" => data = args.next().map(PathBuf::from),
            "--listen" => match args.next().and_then(|s| s.parse().ok()) {
                Some(addr) => listen = addr,
                None => return usage("--listen needs an address such as 127.0.0.1:8443"),
            },
            "--insecure-http" => insecure = true,
            "--recipient" => recipients.extend(args.next()),
            "--log-events" => events.enabled = true,
            "--log-json" => events.format = custody_server::events::LogFormat::Json,
            "--log-addresses" => events.addresses = true,
            other => return usage(&format!("unknown argument {other}")),
        }
    }
    let Some(data) = data else { return usage("--data DIR is required") };
    let mut config = custody_server::Config::new(&data);
    config.insecure_http = insecure;
    config.recipients = recipients;
    config.events = events;
    let (server, opened) = match custody_server::Server::open(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("custody-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(why) = &opened.index_rebuilt {
        eprintln!("custody-server: {why}; the index was rebuilt");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("custody-server: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("custody-server: binding {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let addr = listener.local_addr().map_or(listen, |a| a);
        let tls = if insecure { "insecure-http".to_string() } else { server.tls_sha256() };
        println!("listening {addr} {} {tls}", server.public_key());
        match custody_server::serve::serve(server, listener).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("custody-server: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("custody-server: {msg}\nusage: custody-server --data DIR [--listen ADDR] [--insecure-http] [--recipient age1…]… [--log-events [--log-json] [--log-addresses]]");
    ExitCode::from(2)
}

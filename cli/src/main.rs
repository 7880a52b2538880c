//! `custody`: the one binary. It is glue only — argument parsing, prompts and output —
//! over the library crates: no cryptography, format logic or storage in here.
// The doc comments of the command definitions are the `--help` text, where URLs are plain.
#![allow(rustdoc::bare_urls)]

mod avdevice;
mod cli;
mod common;
mod config_cmd;
mod docs_cmd;
mod enroll;
mod export;
#[cfg(custody_lazy_ffmpeg)]
mod ffmpeg_lazy;
mod keygen;
mod lawyer;
mod live_upload;
mod media;
mod qr;
mod record;
mod recordings;
mod serve;
mod status;
mod upload;
mod vault_cmd;
mod verify;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use common::{vault_dir, CliError};

fn run(cli: Cli) -> Result<(), CliError> {
    let vault = vault_dir(cli.vault.as_deref())?;
    match &cli.command {
        Command::Keygen(args) => keygen::run(&vault, args),
        Command::Record(args) => record::record(&vault, args),
        Command::Import(args) => record::import(&vault, args),
        Command::Recordings(args) if args.server.is_some() => lawyer::recordings(args),
        Command::Recordings(args) => recordings::run(&vault, args),
        Command::Vault(cmd) => vault_cmd::run(&vault, cmd),
        Command::Verify(args) => verify::run(args),
        Command::Export(args) => export::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Admin(cmd) => serve::admin(cmd),
        Command::Enroll(args) => enroll::run(&vault, args),
        Command::Upload(args) => upload::run(&vault, args),
        Command::Config(cli::ConfigCommand::Show(args)) => {
            config_cmd::show(cli.vault.as_deref(), &vault, args)
        }
        Command::Completions { shell } => docs_cmd::completions(*shell),
        Command::Man { out } => docs_cmd::man(out),
        Command::Login(args) => lawyer::login(args),
        Command::Fetch(args) => lawyer::fetch(args),
        Command::Status(args) => status::run(&vault, args),
    }
}

/// Keeps memory bounded while multi-megabyte segment buffers come and go on several
/// threads: glibc raises its mmap threshold after each large free, after which such buffers
/// come from per-thread heaps that do not shrink (a ~1 GB import peaked at 141 MiB instead
/// of 96 MiB). A fixed threshold keeps every large buffer mmapped and returned on free.
fn bound_allocator() {
    // SAFETY: mallopt only changes allocator tuning; called once, before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

fn main() -> ExitCode {
    bound_allocator();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custody: error: {}", e.message);
            if let Some(hint) = e.hint {
                eprintln!("custody: hint: {hint}");
            }
            ExitCode::from(e.code)
        }
    }
}

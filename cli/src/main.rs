//! `custody`: the one binary. It is glue only — argument parsing, prompts and output —
//! over the library crates: no cryptography, format logic or storage in here.

mod cli;
mod common;
mod keygen;
mod record;
mod recordings;
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
        Command::Recordings(args) => recordings::run(&vault, args),
        Command::Vault(cmd) => vault_cmd::run(&vault, cmd),
        Command::Verify(args) => verify::run(args),
    }
}

fn main() -> ExitCode {
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

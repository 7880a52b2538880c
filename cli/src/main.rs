//! `custody`: the one binary. It is glue only — argument parsing and output — over the
//! library crates; subcommands arrive with the crates that implement them.

use clap::Parser;

/// A secure evidence vault for recordings of police and immigration-enforcement encounters.
///
/// Observers record and seal footage on the device and upload it live; the legal team's
/// server receipts every segment; lawyers verify the chain of custody offline.
#[derive(Parser, Debug)]
#[command(name = "custody", version, about, long_about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}

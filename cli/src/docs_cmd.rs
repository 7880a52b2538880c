//! `custody completions` and `custody man`: shell completions and man pages, generated from
//! the same definitions as `--help`, so they can never disagree with it.

use std::path::Path;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::common::{print, CliError};

pub fn completions(shell: clap_complete::Shell) -> Result<(), CliError> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "custody", &mut out);
    print(&String::from_utf8_lossy(&out));
    Ok(())
}

pub fn man(out_dir: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(out_dir)
        .map_err(|e| CliError::cannot(format!("creating {}: {e}", out_dir.display())))?;
    let cmd = Cli::command();
    clap_mangen::generate_to(cmd, out_dir).map_err(|e| {
        CliError::cannot(format!("writing man pages to {}: {e}", out_dir.display()))
    })?;
    let mut pages: Vec<String> = std::fs::read_dir(out_dir)
        .map_err(|e| CliError::cannot(format!("reading {}: {e}", out_dir.display())))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("custody") && n.ends_with(".1"))
        .collect();
    pages.sort();
    print(&format!(
        "Wrote {} man pages to {}: {}\nRead one with: man -l {}\n",
        pages.len(),
        out_dir.display(),
        pages.join(" "),
        out_dir.join("custody.1").display()
    ));
    Ok(())
}

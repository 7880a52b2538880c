//! What every subcommand needs: the vault, the device key, recipients, output, errors.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use custody_vault::keys::{self, KeyError};
use custody_vault::store::Vault;
use ed25519_dalek::SigningKey;

/// A command's failure: what went wrong, what to do about it, and the exit code.
#[derive(Debug)]
pub struct CliError {
    /// What went wrong.
    pub message: String,
    /// How to recover, if there is something to say.
    pub hint: Option<String>,
    /// 1: ran and found a problem; 2: could not run.
    pub code: u8,
}

impl CliError {
    /// The command could not run.
    pub fn cannot(message: impl Into<String>) -> Self {
        CliError { message: message.into(), hint: None, code: 2 }
    }

    /// The command ran and found a problem.
    pub fn failed(message: impl Into<String>) -> Self {
        CliError { message: message.into(), hint: None, code: 1 }
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl From<KeyError> for CliError {
    fn from(e: KeyError) -> Self {
        let hint = match &e {
            KeyError::Missing(_) => Some("run `custody keygen` first"),
            KeyError::NeedPassphrase => Some("set CUSTODY_PASSPHRASE or run from a terminal"),
            KeyError::BadRecipient(_) => {
                Some("a legal team makes one with `custody keygen --recipient-key -o FILE`")
            }
            _ => None,
        };
        CliError { message: e.to_string(), hint: hint.map(String::from), code: 2 }
    }
}

impl From<custody_vault::VaultError> for CliError {
    fn from(e: custody_vault::VaultError) -> Self {
        CliError::cannot(e.to_string())
    }
}

/// The vault directory: `--vault`, else `$CUSTODY_VAULT` (through clap), else the XDG data
/// directory.
pub fn vault_dir(flag: Option<&Path>) -> Result<PathBuf, CliError> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .ok_or_else(|| CliError::cannot("no vault directory: set --vault or CUSTODY_VAULT"))?;
    Ok(data.join("custody/vault"))
}

/// Opens the vault and tells the user what it repaired.
pub fn open_vault(dir: &Path) -> Result<Vault, CliError> {
    let (vault, notices) = Vault::open(dir)?;
    for n in notices {
        eprintln!("custody: vault: {n}");
    }
    Ok(vault)
}

/// The passphrase from `CUSTODY_PASSPHRASE`, or asked for on the terminal.
pub fn passphrase(prompt: &str, confirm: bool) -> Result<SecretString, CliError> {
    if let Ok(p) = std::env::var("CUSTODY_PASSPHRASE") {
        return Ok(SecretString::from(p));
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::cannot("a passphrase is needed and there is no terminal to ask on")
            .hint("set CUSTODY_PASSPHRASE"));
    }
    let p = rpassword::prompt_password(prompt).map_err(|e| CliError::cannot(e.to_string()))?;
    if confirm {
        let again = rpassword::prompt_password("Repeat the passphrase: ")
            .map_err(|e| CliError::cannot(e.to_string()))?;
        if again != p {
            return Err(CliError::cannot("the passphrases differ"));
        }
    }
    if p.is_empty() {
        return Err(CliError::cannot("an empty passphrase protects nothing"));
    }
    Ok(SecretString::from(p))
}

/// Loads the device key, asking for its passphrase if it has one.
pub fn device_key(dir: &Path) -> Result<SigningKey, CliError> {
    let pass = if keys::device_key_is_protected(dir)? {
        Some(passphrase("Device key passphrase: ", false)?)
    } else {
        None
    };
    Ok(keys::load_device_key(dir, pass)?)
}

/// Writes to stdout; a closed pipe (`custody recordings | head`) is not an error.
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

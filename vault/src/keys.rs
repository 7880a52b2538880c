//! The device identity and the recipients segments are sealed to.
//!
//! The device key is an Ed25519 signing key (RFC 8032). It is stored in the vault as
//! `device.key`, readable by its owner only, in one of two forms:
//!
//! - plain: the text `custody-device-key-v1 <64 hex digits of the secret>\n`;
//! - protected by a passphrase: that same text encrypted as an age v1 file to an scrypt
//!   passphrase recipient (age's own passphrase construction: scrypt with a random
//!   16-byte salt and work factor 2^18 by default, wrapping a ChaCha20-Poly1305 file key),
//!   so `age -d device.key` opens it too.
//!
//! Recipients are age X25519 public keys (`age1…`): the legal team's case key. The observer
//! is not a recipient unless they ask to be, so by default a seized device holds nothing it
//! can decrypt.

use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr;

use age::secrecy::{ExposeSecret, SecretString};
use custody_format::ids::PublicKey;
use ed25519_dalek::SigningKey;
use rand_core::OsRng;
use thiserror::Error;

use custody_durable::fsutil;

/// File name of the device key inside the vault.
pub const DEVICE_KEY_FILE: &str = "device.key";
/// File name of the device's public key (text form) inside the vault.
pub const DEVICE_PUB_FILE: &str = "device.pub";
/// File name of the observer's own age identity, made only with `--self-recipient`.
pub const SELF_IDENTITY_FILE: &str = "self-identity.age-key";

const PLAIN_PREFIX: &str = "custody-device-key-v1 ";

/// Problems with keys.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// There is no device key yet.
    #[error("no device key in {0}; create one with `custody keygen`")]
    Missing(String),
    /// A device key exists already and would be overwritten.
    #[error("a device key already exists at {0}; refusing to overwrite it")]
    Exists(String),
    /// The key is passphrase-protected and none was given.
    #[error("the device key is protected by a passphrase; give it in CUSTODY_PASSPHRASE or at the prompt")]
    NeedPassphrase,
    /// The passphrase does not open the key.
    #[error("the passphrase does not open the device key")]
    WrongPassphrase,
    /// The key file is not in a form this software writes.
    #[error("{0} is not a custody device key file")]
    Malformed(String),
    /// A recipient that is not an age X25519 public key.
    #[error("`{0}` is not an age X25519 recipient (it should start with age1)")]
    BadRecipient(String),
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What happened.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io { path: path.display().to_string(), source }
}

/// Creates a device key in `vault_dir`, protected by `passphrase` if one is given.
/// Refuses to overwrite an existing key.
pub fn create_device_key(
    vault_dir: &Path,
    passphrase: Option<SecretString>,
) -> Result<SigningKey, KeyError> {
    let path = vault_dir.join(DEVICE_KEY_FILE);
    if path.exists() {
        return Err(KeyError::Exists(path.display().to_string()));
    }
    std::fs::create_dir_all(vault_dir).map_err(io(vault_dir))?;
    let key = SigningKey::generate(&mut OsRng);
    let plain = format!("{PLAIN_PREFIX}{}\n", hex::encode(key.to_bytes()));
    let bytes = match passphrase {
        None => plain.into_bytes(),
        Some(p) => {
            let mut out = Vec::new();
            let encryptor = age::Encryptor::with_user_passphrase(p);
            let mut w = encryptor.wrap_output(&mut out).map_err(io(&path))?;
            w.write_all(plain.as_bytes()).map_err(io(&path))?;
            w.finish().map_err(io(&path))?;
            out
        }
    };
    fsutil::write_durable(&path, &bytes, true).map_err(io(&path))?;
    let public = PublicKey::from(key.verifying_key());
    let pub_path = vault_dir.join(DEVICE_PUB_FILE);
    fsutil::write_durable(&pub_path, format!("{public}\n").as_bytes(), false)
        .map_err(io(&pub_path))?;
    Ok(key)
}

/// Whether the device key in `vault_dir` needs a passphrase.
pub fn device_key_is_protected(vault_dir: &Path) -> Result<bool, KeyError> {
    let path = vault_dir.join(DEVICE_KEY_FILE);
    let bytes = read_key_file(&path)?;
    Ok(!bytes.starts_with(PLAIN_PREFIX.as_bytes()))
}

fn read_key_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    match std::fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(KeyError::Missing(path.parent().unwrap_or(path).display().to_string()))
        }
        Err(e) => Err(io(path)(e)),
    }
}

/// Loads the device key from `vault_dir`, with `passphrase` if it is protected.
pub fn load_device_key(
    vault_dir: &Path,
    passphrase: Option<SecretString>,
) -> Result<SigningKey, KeyError> {
    let path = vault_dir.join(DEVICE_KEY_FILE);
    let bytes = read_key_file(&path)?;
    let text = if bytes.starts_with(PLAIN_PREFIX.as_bytes()) {
        String::from_utf8(bytes).map_err(|_| KeyError::Malformed(path.display().to_string()))?
    } else {
        let passphrase = passphrase.ok_or(KeyError::NeedPassphrase)?;
        let decryptor = age::Decryptor::new(&bytes[..])
            .map_err(|_| KeyError::Malformed(path.display().to_string()))?;
        let identity = age::scrypt::Identity::new(passphrase);
        let mut reader = decryptor
            .decrypt(std::iter::once(&identity as &dyn age::Identity))
            .map_err(|_| KeyError::WrongPassphrase)?;
        let mut text = String::new();
        reader.read_to_string(&mut text).map_err(|_| KeyError::WrongPassphrase)?;
        text
    };
    let hex_part = text
        .trim_end()
        .strip_prefix(PLAIN_PREFIX)
        .ok_or_else(|| KeyError::Malformed(path.display().to_string()))?;
    let secret: [u8; 32] = hex::decode(hex_part)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| KeyError::Malformed(path.display().to_string()))?;
    Ok(SigningKey::from_bytes(&secret))
}

/// A new age X25519 identity for a legal team (a case key): `(identity file text,
/// recipient)`. The identity text is in the format `age-keygen` writes.
pub fn new_recipient_identity() -> (SecretString, String) {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let text = format!(
        "# custody case key (age X25519 identity); keep it secret\n# public key: {recipient}\n{}\n",
        identity.to_string().expose_secret()
    );
    (SecretString::from(text), recipient)
}

/// The observer's own identity in the vault, created on first use, and its recipient.
pub fn self_recipient(vault_dir: &Path) -> Result<String, KeyError> {
    let path = vault_dir.join(SELF_IDENTITY_FILE);
    if !path.exists() {
        let (text, _) = new_recipient_identity();
        fsutil::write_durable(&path, text.expose_secret().as_bytes(), true).map_err(io(&path))?;
    }
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let identity = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .and_then(|l| age::x25519::Identity::from_str(l).ok())
        .ok_or_else(|| KeyError::Malformed(path.display().to_string()))?;
    Ok(identity.to_public().to_string())
}

/// Parses age X25519 recipients, refusing anything else.
pub fn parse_recipients(list: &[String]) -> Result<Vec<age::x25519::Recipient>, KeyError> {
    list.iter()
        .map(|r| {
            age::x25519::Recipient::from_str(r.trim())
                .map_err(|_| KeyError::BadRecipient(r.clone()))
        })
        .collect()
}

/// Reads age identities (lines `AGE-SECRET-KEY-1…`) from an identity file's text.
pub fn parse_identities(text: &str) -> Vec<age::x25519::Identity> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("AGE-SECRET-KEY-"))
        .filter_map(|l| age::x25519::Identity::from_str(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_key_round_trips_and_is_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let key = create_device_key(dir.path(), None).unwrap();
        assert!(!device_key_is_protected(dir.path()).unwrap());
        assert_eq!(load_device_key(dir.path(), None).unwrap().to_bytes(), key.to_bytes());
        use std::os::unix::fs::PermissionsExt;
        let mode =
            std::fs::metadata(dir.path().join(DEVICE_KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(create_device_key(dir.path(), None), Err(KeyError::Exists(_))));
    }

    #[test]
    fn passphrase_protects_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let key =
            create_device_key(dir.path(), Some(SecretString::from("correct horse".to_string())))
                .unwrap();
        assert!(device_key_is_protected(dir.path()).unwrap());
        let raw = std::fs::read(dir.path().join(DEVICE_KEY_FILE)).unwrap();
        assert!(raw.starts_with(b"age-encryption.org/v1"));
        assert!(!raw.windows(64).any(|w| w == hex::encode(key.to_bytes()).as_bytes()));
        assert!(matches!(load_device_key(dir.path(), None), Err(KeyError::NeedPassphrase)));
        assert!(matches!(
            load_device_key(dir.path(), Some(SecretString::from("wrong".to_string()))),
            Err(KeyError::WrongPassphrase)
        ));
        let loaded =
            load_device_key(dir.path(), Some(SecretString::from("correct horse".to_string())))
                .unwrap();
        assert_eq!(loaded.to_bytes(), key.to_bytes());
    }

    #[test]
    fn recipients_are_checked() {
        let (_, r) = new_recipient_identity();
        assert_eq!(parse_recipients(std::slice::from_ref(&r)).unwrap().len(), 1);
        assert!(matches!(
            parse_recipients(&["ssh-ed25519 AAAA".into()]),
            Err(KeyError::BadRecipient(_))
        ));
    }
}

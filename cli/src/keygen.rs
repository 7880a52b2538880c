//! `custody keygen`.

use std::path::Path;

use age::secrecy::ExposeSecret;
use custody_format::ids::PublicKey;
use custody_vault::fsutil;
use custody_vault::keys;

use crate::cli::KeygenArgs;
use crate::common::{passphrase, print, CliError};

pub fn run(vault: &Path, args: &KeygenArgs) -> Result<(), CliError> {
    if args.recipient_key {
        let Some(out) = &args.output else {
            return Err(CliError::cannot("--recipient-key needs --output FILE"));
        };
        let (identity, recipient) = keys::new_recipient_identity();
        fsutil::write_durable(out, identity.expose_secret().as_bytes(), true).map_err(|e| {
            CliError::cannot(format!("writing {}: {e}", out.display()))
                .hint("choose a path that does not exist yet")
        })?;
        if args.json {
            print(&format!(
                "{}\n",
                serde_json::json!({ "identity_file": out, "recipient": recipient })
            ));
        } else {
            print(&format!(
                "Case key written to {} (keep it secret: it opens every segment sealed to it).\n\
                 Recipient to give observers: {recipient}\n",
                out.display()
            ));
        }
        return Ok(());
    }
    let pass =
        if args.passphrase { Some(passphrase("New device key passphrase: ", true)?) } else { None };
    let protected = pass.is_some();
    let key = keys::create_device_key(vault, pass)?;
    let public = PublicKey::from(key.verifying_key());
    if args.json {
        print(&format!(
            "{}\n",
            serde_json::json!({
                "public_key": public.to_string(),
                "fingerprint": public.fingerprint().to_string(),
                "vault": vault,
                "passphrase_protected": protected,
            })
        ));
    } else {
        print(&format!(
            "Device key created in {}{}.\nPublic key:  {public}\nFingerprint: {}\n",
            vault.display(),
            if protected { " (passphrase-protected)" } else { "" },
            public.fingerprint()
        ));
    }
    Ok(())
}

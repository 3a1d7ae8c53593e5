//! Key files: an ed25519 seed (the BEP 44 signing key) as 64 hex digits on one line.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;
use rand::RngCore;
use xorro_wire::PublicKey;
use xorro_wire::bep44::Keypair;

use crate::error::Exit;
use crate::parse;

/// A key read from or written to a key file.
#[derive(Debug)]
pub struct KeyFile {
    /// The seed.
    pub seed: [u8; 32],
    /// Whether the file was created just now.
    pub created: bool,
}

impl KeyFile {
    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        Keypair::from_seed(self.seed).public_key()
    }
}

/// Reads the key in `path`, or creates the file (mode 0600) with a fresh key if it is missing.
pub fn load_or_create(path: &Path) -> anyhow::Result<KeyFile> {
    if path.exists() {
        return load(path).map(|seed| KeyFile {
            seed,
            created: false,
        });
    }
    let mut seed = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut seed)
        .context("the operating system's random number generator failed")?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create the key file {}", path.display()))?;
    writeln!(file, "{}", hex::encode(seed))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write the key file {}", path.display()))?;
    Ok(KeyFile {
        seed,
        created: true,
    })
}

/// Reads the key in `path`.
pub fn load(path: &Path) -> anyhow::Result<[u8; 32]> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "warning: the key file {} is readable by other users (chmod 600 it)",
            path.display()
        );
    }
    parse::hex_array::<32>(&format!("the key file {}", path.display()), &text).map_err(|msg| {
        Exit::failed(msg, Some("a key file holds an ed25519 seed as 64 hex digits, as `xorro put --mutable` writes it".to_owned()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_then_reread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let k = load_or_create(&path).unwrap();
        assert!(k.created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load_or_create(&path).unwrap();
        assert!(!again.created);
        assert_eq!(again.seed, k.seed);
        assert_eq!(again.public_key(), k.public_key());
        std::fs::write(&path, "nothex").unwrap();
        assert!(load(&path).is_err());
    }
}

//! The embedded endpoint's credential: 32 random bytes, hex, generated once
//! per data directory and kept in `endpoint.key` (mode 0600) beside the data.
//! A local `loupe sql` reads it from there; nothing else needs it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand::RngCore;

use crate::StoreError;

pub const KEY_FILE: &str = "endpoint.key";
/// Where a running Loupe writes its endpoint's URL, so `loupe sql` and
/// `loupe migrate` can reach the engine while that process holds the data.
pub const URL_FILE: &str = "endpoint.url";

/// Records the URL of the running endpoint.
pub fn write_url(data_dir: &Path, url: &str) -> Result<(), StoreError> {
    let path = data_dir.join(URL_FILE);
    std::fs::write(&path, url)
        .map_err(|e| StoreError::Credential(format!("cannot write {}: {e}", path.display())))
}

/// The URL a running Loupe recorded, if any.
pub fn read_url(data_dir: &Path) -> Option<String> {
    std::fs::read_to_string(data_dir.join(URL_FILE))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Forgets the recorded URL (on a clean stop).
pub fn remove_url(data_dir: &Path) {
    let _ = std::fs::remove_file(data_dir.join(URL_FILE));
}

pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}

/// Reads the data directory's key, creating it on first use.
pub fn load_or_create(data_dir: &Path) -> Result<String, StoreError> {
    if let Some(key) = load(data_dir)? {
        return Ok(key);
    }
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let key = hex::encode(raw);
    let path = key_path(data_dir);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| StoreError::Credential(format!("cannot create {}: {e}", path.display())))?;
    f.write_all(key.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| StoreError::Credential(format!("cannot write {}: {e}", path.display())))?;
    Ok(key)
}

/// Reads the key if the data directory has one.
pub fn load(data_dir: &Path) -> Result<Option<String>, StoreError> {
    let path = key_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() == 64 => Ok(Some(s.trim().to_string())),
        Ok(_) => Err(StoreError::Credential(format!(
            "{} is malformed: delete it and restart Loupe to make a new one",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::Credential(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_is_made_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        let mode = std::fs::metadata(key_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn malformed_key_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(key_path(dir.path()), "short").unwrap();
        assert!(load_or_create(dir.path()).is_err());
    }
}

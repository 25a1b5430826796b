//! The replica id (`docs/replicas.md` §3): generated once and kept in the replica's
//! `SPOOL_DIR`, so a restart keeps it and boot recovery finds its own rows. A spool belongs
//! to one replica, so the id lives with it.

use std::io::Write;
use std::path::Path;

use crate::error::PgError;

/// File name of the id inside `SPOOL_DIR`.
pub const FILE: &str = "replica-id";

/// Reads the id kept in `spool_dir`, or creates one (a random UUID) and keeps it. The write
/// goes through a temporary file and a rename, so a crash never leaves half an id.
pub fn load_or_create(spool_dir: &Path) -> Result<String, PgError> {
    let path = spool_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_control()) {
                return Err(PgError::Spool(format!(
                    "{} does not hold a replica id; delete it to get a new one",
                    path.display()
                )));
            }
            return Ok(id.to_owned());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(PgError::Spool(format!("{}: {e}", path.display()))),
    }
    let id = uuid::Uuid::new_v4().to_string();
    let io = |e: std::io::Error| PgError::Spool(format!("{}: {e}", path.display()));
    std::fs::create_dir_all(spool_dir).map_err(io)?;
    let tmp = spool_dir.join(format!("{FILE}.tmp"));
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(format!("{id}\n").as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let first = load_or_create(&spool).unwrap();
        assert_eq!(first.len(), 36);
        assert_eq!(load_or_create(&spool).unwrap(), first);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(load_or_create(other.path()).unwrap(), first);
        std::fs::write(spool.join(FILE), "\n").unwrap();
        assert!(load_or_create(&spool).is_err());
    }
}

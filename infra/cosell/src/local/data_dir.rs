//! The data dir holds customer names and deal values (and a refresh token): it is created
//! for the owner only (0700), and the database file is 0600, so other local users read
//! nothing. SQLite gives its -wal and -shm files the database file's mode.

use std::path::{Path, PathBuf};

/// Creates `dir` (and missing parents) as 0700. An existing directory keeps its mode: it may
/// be shared (a temp dir) and is not ours to change.
pub fn create(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// `dir/name`, created empty as 0600 when missing and made 0600 when it exists (it is ours).
pub fn private_file(dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    let path = dir.join(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(&path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    drop(file);
    Ok(path)
}

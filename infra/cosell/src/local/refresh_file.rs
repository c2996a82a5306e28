//! The Partner Center refresh token that Entra rotates on each use, kept in a file in the
//! data dir (owner read/write only) so a restart uses the newest one, not the configured one
//! that Entra has already retired.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use cosell::entra::RefreshTokenStore;
use cosell::secret::Secret;

pub const REFRESH_TOKEN_FILE: &str = "pc-refresh-token";

pub struct FileRefreshTokenStore {
    path: PathBuf,
}

impl FileRefreshTokenStore {
    pub fn new(data_dir: &Path) -> Self {
        FileRefreshTokenStore {
            path: data_dir.join(REFRESH_TOKEN_FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored token, or `None` when there is no file yet (or it is empty).
    pub fn load(&self) -> std::io::Result<Option<Secret>> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => {
                let token = text.trim();
                Ok((!token.is_empty()).then(|| Secret::new(token)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes a temp file with mode 0600 and renames it over the old one, so a crash mid-write
    /// never leaves a half token behind.
    pub fn write(&self, token: &Secret) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        // The mode above applies only when the file is new; make sure of it either way.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(token.expose().as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &self.path)
    }
}

#[async_trait]
impl RefreshTokenStore for FileRefreshTokenStore {
    async fn save(&self, token: &Secret) -> Result<(), String> {
        let store = FileRefreshTokenStore {
            path: self.path.clone(),
        };
        let token = token.clone();
        tokio::task::spawn_blocking(move || store.write(&token))
            .await
            .map_err(|e| format!("refresh-token writer failed: {e}"))?
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

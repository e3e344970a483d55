//! Work folders: where a mailing's raw files sit while the job reads them, and where uploads
//! are spooled. They hold personal data, so they live in one private folder of the service's
//! (mode 0700), each named after the process that made it; at start-up, folders left by a
//! process that no longer runs (killed before it could clean up) are removed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::settings::ServiceConfig;

/// The service's own folder for work folders.
pub fn root(config: &ServiceConfig) -> PathBuf {
    match config.job.work_dir.as_str() {
        "" => std::env::temp_dir().join(format!("scanbureau-{}", config.broker.prefix)),
        dir => PathBuf::from(dir),
    }
}

const PREFIX: &str = "w-";

/// Makes the root private and removes what dead processes left in it; returns how many.
pub fn prepare(root: &Path) -> Result<usize> {
    std::fs::create_dir_all(root).with_context(|| format!("creating the work folder {}", root.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700)).with_context(|| format!("making {} private", root.display()))?;
    }
    let mut removed = 0;
    for entry in std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|r| r.split('-').next()).and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !alive(pid) {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!(folder = %entry.path().display(), error = %e, "could not remove a work folder left behind"),
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, root = %root.display(), "work folders left by stopped processes removed");
    }
    Ok(removed)
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A fresh private work folder, removed when dropped.
pub fn folder(root: &Path) -> std::io::Result<tempfile::TempDir> {
    std::fs::create_dir_all(root)?;
    let prefix = format!("{PREFIX}{}-", std::process::id());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o700));
    }
    builder.tempdir_in(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_of_dead_processes_are_removed_and_live_ones_kept() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("work");
        let mine = folder(&root).expect("folder");
        std::fs::write(mine.path().join("scan.tif"), b"x").expect("write");
        // A pid above the kernel's maximum (4194304) never runs.
        let dead = root.join("w-4194999-abc");
        std::fs::create_dir_all(&dead).expect("dir");
        let other = root.join("unrelated");
        std::fs::create_dir_all(&other).expect("dir");
        assert_eq!(prepare(&root).expect("prepare"), 1);
        assert!(!dead.exists() && mine.path().exists() && other.exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&root).expect("meta").permissions().mode() & 0o777, 0o700);
            assert_eq!(std::fs::metadata(mine.path()).expect("meta").permissions().mode() & 0o077, 0, "no one else reads a work folder");
        }
    }
}

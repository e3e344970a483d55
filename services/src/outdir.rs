//! Writing results so that a reader never sees half a file: each file is written under a
//! temporary name in the same directory, synced, then renamed into place.

use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Writes `bytes` at `dir/rel` atomically (temp file + rename), creating folders as needed.
pub fn write_atomic(dir: &Path, rel: &str, bytes: &[u8]) -> Result<PathBuf> {
    let rel_path = Path::new(rel);
    if rel_path.components().any(|c| !matches!(c, Component::Normal(_))) {
        bail!("refusing to write outside the output directory: {rel}");
    }
    let target = dir.join(rel_path);
    let parent = target.parent().context("output path has no parent")?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = target.file_name().and_then(|n| n.to_str()).context("output file name")?;
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes).with_context(|| format!("writing {}", tmp.display()))?;
    // A file the disk did not take is a failed write, not a written output.
    f.sync_all().with_context(|| format!("writing {} to disk", tmp.display()))?;
    drop(f);
    fs::rename(&tmp, &target).with_context(|| format!("renaming into {}", target.display()))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_refuses_escapes() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = write_atomic(dir.path(), "pieces/N/p-1.pdf", b"%PDF").expect("write");
        assert_eq!(fs::read(&p).expect("read"), b"%PDF");
        assert!(write_atomic(dir.path(), "../evil", b"x").is_err());
        assert!(write_atomic(dir.path(), "/etc/evil", b"x").is_err());
        let leftovers: Vec<_> =
            fs::read_dir(dir.path().join("pieces/N")).expect("ls").flatten().filter(|e| e.file_name().to_string_lossy().contains(".tmp-")).collect();
        assert!(leftovers.is_empty());
    }
}

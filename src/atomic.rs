//! Writing a whole file atomically: a temporary file beside the destination, synced, then
//! renamed over it, so a reader sees the old file or the new one, never half of one.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::Result;

/// Writes what `f` writes to `path` atomically, creating its folder. The file gets the usual
/// mode 0644 less the umask (tempfile alone would leave 0600).
pub fn write_with(path: &Path, f: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let dir = folder_of(path);
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create folder", dir.display()))?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".splitflow-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let mut tmp = builder
        .tempfile_in(dir)
        .with_context(|| format!("{}: cannot create temporary file", path.display()))?;
    {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        f(&mut w).with_context(|| format!("{}", path.display()))?;
        w.flush().with_context(|| format!("{}", path.display()))?;
    }
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("{}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot write: {}", path.display(), e.error))?;
    Ok(())
}

/// The folder a file path lies in (`.` for a bare name): where its temporary file goes.
pub fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `contents` to `path` atomically ([`write_with`]).
pub fn write(path: &Path, contents: &[u8]) -> Result<()> {
    write_with(path, |w| Ok(w.write_all(contents)?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_whole_files_readable_by_others() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a/b.txt");
        super::write(&p, b"one").unwrap();
        super::write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & 0o044, 0o044 & !current_umask(), "mode {mode:o}");
        }
        assert_eq!(
            std::fs::read_dir(p.parent().unwrap()).unwrap().count(),
            1,
            "temp file left"
        );
    }

    #[cfg(unix)]
    fn current_umask() -> u32 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("Umask:")).map(str::to_string))
            .and_then(|l| u32::from_str_radix(l.split_whitespace().nth(1)?, 8).ok())
            .unwrap_or(0o022)
    }
}

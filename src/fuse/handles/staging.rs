//! Where staged data goes and what it may take: the cache directory (private, 0700, or the
//! one configured), its budget, and the [`Charge`] each staged copy holds against it (or
//! against its memory mount's budget), returned when the copy goes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::storage::mount::Mount;

/// What a staged copy takes, charged to a counter (the cache directory's, or a memory
/// mount's): its allocated blocks, so that holes take nothing. Dropping it returns them.
#[derive(Debug)]
pub struct Charge {
    counter: Arc<AtomicU64>,
    /// The cache directory's budget and path (None: a memory mount's, checked by the mount).
    limit: Option<(u64, Arc<Path>)>,
    bytes: u64,
    /// Blocks counted elsewhere (see [`Charge::baseline`]), left out of `bytes`.
    base: u64,
}

impl Charge {
    /// Nothing charged yet to a memory mount's `counter`.
    pub fn new(counter: Arc<AtomicU64>) -> Charge {
        Charge {
            counter,
            limit: None,
            bytes: 0,
            base: 0,
        }
    }

    /// May `n` more bytes be staged (a write, or an object fetched under a staged copy)?
    /// ENOSPC, naming the budget, when they would pass the cache directory's budget or the
    /// memory mount's `max_size`. Checked before the bytes are written: nothing is lost.
    pub fn may_add(&self, mount: &Mount, ctx: &str, n: u64) -> Result<()> {
        let (max, used, what) = match (&self.limit, mount.memory_usage()) {
            (Some((max, dir)), _) => (
                *max,
                self.counter.load(Ordering::Acquire),
                format!("cache dir {} (cache_max_size)", dir.display()),
            ),
            (None, Some((max, used))) => (max, used, "the memory mount (max_size)".to_string()),
            (None, None) => return Ok(()),
        };
        if used.saturating_add(n) > max {
            return Err(Error::new(
                ErrorKind::NoSpace,
                ctx.to_string(),
                format!("no space left for staged data: {what} holds {used} of its {max} bytes"),
            ));
        }
        Ok(())
    }

    /// Charge what `file` takes now (after it was written, extended or cut).
    pub fn settle(&mut self, file: &File) {
        use std::os::unix::fs::MetadataExt;
        let Ok(now) = file
            .metadata()
            .map(|m| (m.blocks() * 512).saturating_sub(self.base))
        else {
            return;
        };
        if now > self.bytes {
            self.counter.fetch_add(now - self.bytes, Ordering::AcqRel);
        } else {
            self.counter.fetch_sub(self.bytes - now, Ordering::AcqRel);
        }
        self.bytes = now;
    }

    /// Charge nothing for what `file` takes now, only for its growth from here: the memory
    /// store counts these bytes already (the file is written in place after the store took
    /// it).
    pub fn baseline(&mut self, file: &File) {
        use std::os::unix::fs::MetadataExt;
        self.clear();
        self.bytes = 0;
        if let Ok(m) = file.metadata() {
            self.base = m.blocks() * 512;
        }
    }

    /// Return everything: the copy is counted elsewhere now (a memory mount's store took it).
    pub fn clear(&mut self) {
        self.counter.fetch_sub(self.bytes, Ordering::AcqRel);
        self.bytes = 0;
        self.base = 0;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Where staged data goes: a private directory (0700, removed when dropped), or the
/// `cache_dir` configured. Staged files in it are unlinked from birth, so a daemon that is
/// killed leaves none behind; a private directory holds an `owner` marker (pid and start
/// time), by which a later daemon removes the directories of daemons that no longer run.
#[derive(Debug)]
pub struct CacheDir {
    path: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    /// The path, shared with the charges that name it in their errors.
    shared_path: Arc<Path>,
    /// What the staged copies in it take now.
    used: Arc<AtomicU64>,
    /// The most they may take.
    max: u64,
}

/// The name every private staging directory starts with.
const PREFIX: &str = "genro-storage-cache-";

impl CacheDir {
    /// Use `dir` (created 0700 if missing), or a private temp dir, for at most `max` bytes
    /// of staged data (default: half the free space its filesystem has now).
    pub fn new(dir: Option<&Path>, max: Option<u64>) -> Result<CacheDir> {
        let mut c = CacheDir::open(dir)?;
        c.shared_path = Arc::from(c.path.as_path());
        c.max = match max {
            Some(m) => m,
            None => {
                free_space(&c.path)
                    .map_err(|e| Error::from_io(format!("cache dir {}", c.path.display()), e))?
                    / 2
            }
        };
        Ok(c)
    }

    fn open(dir: Option<&Path>) -> Result<CacheDir> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        match dir {
            Some(d) => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(d)
                    .map_err(|e| Error::from_io(format!("cache dir {}", d.display()), e))?;
                Ok(CacheDir {
                    path: d.to_path_buf(),
                    _tmp: None,
                    shared_path: Arc::from(Path::new("")),
                    used: Arc::default(),
                    max: 0,
                })
            }
            None => {
                let tmp = std::env::temp_dir();
                remove_orphans(&tmp);
                let t = tempfile::Builder::new()
                    .prefix(PREFIX)
                    .permissions(std::fs::Permissions::from_mode(0o700))
                    .tempdir()
                    .map_err(|e| Error::from_io("cache dir", e))?;
                let me = std::process::id();
                let marker = format!("{me} {}\n", start_time(me).unwrap_or_default());
                {
                    use std::io::Write;
                    use std::os::unix::fs::OpenOptionsExt;
                    let io = |e| Error::from_io(format!("cache dir {}", t.path().display()), e);
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(t.path().join("owner"))
                        .and_then(|mut f| f.write_all(marker.as_bytes()))
                        .map_err(io)?;
                }
                Ok(CacheDir {
                    path: t.path().to_path_buf(),
                    _tmp: Some(t),
                    shared_path: Arc::from(Path::new("")),
                    used: Arc::default(),
                    max: 0,
                })
            }
        }
    }
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A charge for a copy staged here.
    pub fn charge(&self) -> Charge {
        Charge {
            counter: self.used.clone(),
            limit: Some((self.max, self.shared_path.clone())),
            bytes: 0,
            base: 0,
        }
    }

    /// (budget, bytes the staged copies take now).
    pub fn usage(&self) -> (u64, u64) {
        (self.max, self.used.load(Ordering::Acquire))
    }
}

/// The bytes an unprivileged user may still write on the filesystem holding `p`.
fn free_space(p: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: c is a valid path; st is written by statvfs.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// A process's start time (clock ticks since boot, field 22 of `/proc/PID/stat`): with the
/// pid, it names one process even after the pid is reused.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) is in parentheses and may hold spaces
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Remove the private staging directories in `tmp` that this user's daemons left when they
/// were killed: those whose `owner` marker names a process that no longer runs. A directory
/// without a marker, of another user, or of a running daemon is left alone.
pub fn remove_orphans(tmp: &Path) -> usize {
    use std::os::unix::fs::MetadataExt;
    if start_time(std::process::id()).is_none() {
        return 0; // no /proc: a marker cannot be checked
    }
    let Ok(rd) = std::fs::read_dir(tmp) else {
        return 0;
    };
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    let mut removed = 0;
    for e in rd.flatten() {
        if !e.file_name().to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let dir = e.path();
        match std::fs::symlink_metadata(&dir) {
            Ok(md) if md.is_dir() && md.uid() == uid => {}
            _ => continue,
        }
        let Ok(marker) = std::fs::read_to_string(dir.join("owner")) else {
            continue;
        };
        let mut it = marker.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(pid)), Some(Ok(started))) = (it.next(), it.next()) else {
            continue;
        };
        let Ok(pid) = u32::try_from(pid) else {
            continue;
        };
        if start_time(pid) == Some(started) {
            continue; // still running
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                removed += 1;
                tracing::info!(dir = %dir.display(), pid, "removed the staging directory of a daemon that no longer runs");
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove an orphaned staging directory")
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn removes_only_the_staging_directories_of_daemons_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let mk = |name: &str, marker: Option<String>| {
            let d = tmp.path().join(name);
            std::fs::create_dir(&d).unwrap();
            if let Some(m) = marker {
                std::fs::write(d.join("owner"), m).unwrap();
            }
            d
        };
        let me = std::process::id();
        let alive = mk(
            &format!("{PREFIX}alive"),
            Some(format!("{me} {}", start_time(me).unwrap())),
        );
        // a pid that runs, but a start time that is not its own: the pid was reused
        let reused = mk(&format!("{PREFIX}reused"), Some(format!("{me} 1")));
        let gone = mk(&format!("{PREFIX}gone"), Some("4194304 5".into()));
        let unmarked = mk(&format!("{PREFIX}unmarked"), None);
        let other = mk("something-else", Some("4194304 5".into()));
        assert_eq!(remove_orphans(tmp.path()), 2);
        assert!(alive.exists() && unmarked.exists() && other.exists());
        assert!(!reused.exists() && !gone.exists());
    }

    #[test]
    fn a_private_staging_directory_is_0700_and_marked() {
        let c = CacheDir::new(None, None).unwrap();
        let mode = std::fs::metadata(c.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let marker = std::fs::read_to_string(c.path().join("owner")).unwrap();
        assert!(marker.starts_with(&format!("{} ", std::process::id())));
        assert!(c.usage().0 > 0, "a default budget from the free space");
    }

    #[test]
    fn staged_copies_are_charged_by_their_blocks_and_returned() {
        use std::os::unix::fs::FileExt;
        let c = CacheDir::new(None, Some(1 << 20)).unwrap();
        let f = tempfile::tempfile_in(c.path()).unwrap();
        let mut charge = c.charge();
        f.set_len(1 << 30).unwrap(); // a hole: nothing
        charge.settle(&f);
        assert_eq!(c.usage().1, 0);
        f.write_all_at(&[1u8; 8192], 0).unwrap();
        charge.settle(&f);
        let used = c.usage().1;
        assert!((8192..=65536).contains(&used), "{used}");
        let dir = tempfile::tempdir().unwrap();
        let local = Mount::new(crate::config::MountConfig::local("m", dir.path())).unwrap();
        assert!(charge.may_add(&local, "m:f", 4096).is_ok());
        let e = charge.may_add(&local, "m:f", 1 << 20).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoSpace);
        assert!(e.to_string().contains("cache_max_size"), "{e}");
        drop(charge);
        assert_eq!(c.usage().1, 0);
    }
}

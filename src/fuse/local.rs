//! Native system calls for local mounts: lstat, times, ownership, renameat2, statvfs. Paths
//! given here were checked to stay inside the mount root; none follows a final symlink.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::FileType;

use crate::fuse::fs::{Meta, TimeSet};

fn cstr(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// Attributes of a host path, not following a final symlink. `Ok(None)` when missing.
pub fn lstat(p: &Path) -> std::io::Result<Option<Meta>> {
    match std::fs::symlink_metadata(p) {
        Ok(m) => Ok(Some(meta(&m))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Convert host metadata.
pub fn meta(m: &std::fs::Metadata) -> Meta {
    let ft = m.file_type();
    use std::os::unix::fs::FileTypeExt;
    let kind = if ft.is_dir() {
        FileType::Directory
    } else if ft.is_symlink() {
        FileType::Symlink
    } else if ft.is_fifo() {
        FileType::NamedPipe
    } else if ft.is_socket() {
        FileType::Socket
    } else if ft.is_char_device() {
        FileType::CharDevice
    } else if ft.is_block_device() {
        FileType::BlockDevice
    } else {
        FileType::RegularFile
    };
    Meta {
        kind,
        size: m.size(),
        blocks: m.blocks(),
        atime: time(m.atime(), m.atime_nsec()),
        mtime: time(m.mtime(), m.mtime_nsec()),
        ctime: time(m.ctime(), m.ctime_nsec()),
        perm: (m.mode() & 0o7777) as u16,
        uid: m.uid(),
        gid: m.gid(),
        nlink: m.nlink() as u32,
        rdev: m.rdev() as u32,
        blksize: m.blksize() as u32,
        host: Some((m.dev(), m.ino(), birth(m))),
    }
}

/// A host file's birth time in nanoseconds (statx; 0 where the host filesystem has none).
fn birth(m: &std::fs::Metadata) -> u64 {
    m.created()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64)
}

/// mknod(2) of a FIFO, socket or device node (a regular file too).
pub fn mknod(p: &Path, mode: u32, rdev: u32) -> std::io::Result<()> {
    let c = cstr(p)?;
    // SAFETY: c is a valid NUL-terminated path; mode and rdev are plain integers.
    if unsafe { libc::mknod(c.as_ptr(), mode as libc::mode_t, rdev as libc::dev_t) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn timespec(t: Option<TimeSet>) -> libc::timespec {
    match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(TimeSet::Now) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(TimeSet::At(t)) => {
            let (s, n) = match t.duration_since(UNIX_EPOCH) {
                Ok(d) => (d.as_secs() as i64, d.subsec_nanos() as i64),
                Err(e) => (-(e.duration().as_secs() as i64), 0),
            };
            libc::timespec {
                tv_sec: s,
                tv_nsec: n,
            }
        }
    }
}

/// fchmodat2(2) (Linux 6.6), number 452 on every architecture.
const SYS_FCHMODAT2: libc::c_long = 452;

/// chmod without following a final symlink: a symlink swapped in by someone on the host
/// between our check and the call cannot send the change outside the root. A symlink
/// itself has no mode (EOPNOTSUPP, as on Linux).
pub fn chmod_nofollow(p: &Path, mode: u32) -> std::io::Result<()> {
    let c = cstr(p)?;
    // SAFETY: c is a valid NUL-terminated path; the other arguments are plain integers.
    let r = unsafe {
        libc::syscall(
            SYS_FCHMODAT2,
            libc::AT_FDCWD,
            c.as_ptr(),
            mode,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::ENOSYS) {
        return Err(e);
    }
    // Older kernels: through a descriptor opened without following the last component.
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(p)?;
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
}

/// Set access and modification times (`None` leaves one as it is).
pub fn set_times(p: &Path, atime: Option<TimeSet>, mtime: Option<TimeSet>) -> std::io::Result<()> {
    let c = cstr(p)?;
    let ts = [timespec(atime), timespec(mtime)];
    // SAFETY: c is a valid NUL-terminated path and ts a two-element array, as utimensat wants.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// rename(2) with RENAME_NOREPLACE / RENAME_EXCHANGE flags.
pub fn rename(from: &Path, to: &Path, flags: u32) -> std::io::Result<()> {
    let (f, t) = (cstr(from)?, cstr(to)?);
    // SAFETY: both paths are valid NUL-terminated strings.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            flags,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Filesystem figures of the disk holding `p`.
pub fn statvfs(p: &Path) -> std::io::Result<libc::statvfs> {
    let c = cstr(p)?;
    // SAFETY: zeroed statvfs is a valid out-parameter; c is a valid path.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    if r == 0 {
        Ok(s)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

//! The host system calls of local mounts, all relative to the mount root's directory
//! descriptor: each path's directory is opened with `openat2(RESOLVE_BENEATH)`, so that no
//! `..` and no symlink (absolute, or swapped in by someone on the host) can lead outside the
//! root, and a path is only bounded by what the host accepts (not by `root_path` + path
//! fitting in `PATH_MAX`). The last name is never followed.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::FileType;

use crate::fuse::fs::{Meta, TimeSet};
use crate::storage::path;

fn cstr(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn fd_of(r: libc::c_int) -> io::Result<OwnedFd> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: a descriptor the kernel just returned, owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(r) })
    }
}

/// openat2(2): number 437 on every architecture; `struct open_how`.
const SYS_OPENAT2: libc::c_long = 437;
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_BENEATH: u64 = 0x08;

/// fchmodat2(2) (Linux 6.6), number 452 on every architecture.
const SYS_FCHMODAT2: libc::c_long = 452;

/// The directory a call works in: the root itself, or one opened below it.
enum Dir<'a> {
    Root(&'a HostRoot),
    Opened(OwnedFd),
}

impl Dir<'_> {
    fn fd(&self) -> RawFd {
        match self {
            Dir::Root(r) => r.fd.as_raw_fd(),
            Dir::Opened(fd) => fd.as_raw_fd(),
        }
    }
}

/// A local mount's root directory, open for as long as the mount is served.
#[derive(Debug)]
pub struct HostRoot {
    fd: OwnedFd,
    path: PathBuf,
    /// Open files and directories with O_NOATIME (the mount is `noatime`: reads through
    /// passthrough reach the host file, where the FUSE mount's own flag does not apply).
    noatime: bool,
}

impl HostRoot {
    /// Open the root directory `path`.
    pub fn new(path: &Path) -> io::Result<HostRoot> {
        let c = cstr(path.as_os_str().as_bytes())?;
        // SAFETY: c is a valid NUL-terminated path.
        let fd = fd_of(unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        Ok(HostRoot {
            fd,
            path: path.to_path_buf(),
            noatime: false,
        })
    }

    /// Leave the host's access times alone: every open uses O_NOATIME where the kernel lets
    /// the daemon (its owner or CAP_FOWNER), and falls back to a plain open where not.
    pub fn with_noatime(mut self, noatime: bool) -> HostRoot {
        self.noatime = noatime;
        self
    }

    /// `flags` with O_NOATIME when the mount asks for it; `open` retries without on EPERM.
    fn noatime<T>(&self, flags: i32, open: impl Fn(i32) -> io::Result<T>) -> io::Result<T> {
        if !self.noatime || flags & libc::O_PATH != 0 {
            return open(flags);
        }
        match open(flags | libc::O_NOATIME) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(flags),
            r => r,
        }
    }

    /// The root's path on the host.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open `rel` (a directory below the root, or "" for the root) with `flags`, resolved
    /// beneath the root: a `..` or a symlink that would leave it is EACCES.
    fn open_beneath(&self, rel: &str, flags: i32) -> io::Result<OwnedFd> {
        let c = cstr(if rel.is_empty() { b"." } else { rel.as_bytes() })?;
        let how = OpenHow {
            flags: (flags | libc::O_CLOEXEC) as u64,
            mode: 0,
            resolve: RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        // SAFETY: c is a valid path and `how` an open_how of the size given.
        let r = unsafe {
            libc::syscall(
                SYS_OPENAT2,
                self.fd.as_raw_fd(),
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match fd_of(r as libc::c_int) {
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                Err(io::Error::from_raw_os_error(libc::EACCES))
            }
            r => r,
        }
    }

    /// The directory holding `rel` and its last name (`.` for the root itself).
    fn at(&self, rel: &str) -> io::Result<(Dir<'_>, CString)> {
        if rel.is_empty() {
            return Ok((Dir::Root(self), cstr(b".")?));
        }
        let parent = path::parent(rel);
        let name = cstr(path::basename(rel).as_bytes())?;
        if parent.is_empty() {
            return Ok((Dir::Root(self), name));
        }
        let fd = self.open_beneath(parent, libc::O_PATH | libc::O_DIRECTORY)?;
        Ok((Dir::Opened(fd), name))
    }

    /// Attributes of `rel`, not following a final symlink; `Ok(None)` when missing.
    pub fn stat(&self, rel: &str) -> io::Result<Option<Meta>> {
        let r = self.at(rel).and_then(|(d, name)| statx(d.fd(), &name, 0));
        match r {
            Ok(m) => Ok(Some(m)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// openat(2) of `rel` with `flags` (and `mode` when creating), never following a final
    /// symlink.
    pub fn open(&self, rel: &str, flags: i32, mode: u32) -> io::Result<File> {
        let (d, name) = self.at(rel)?;
        let fd = self.noatime(flags, |flags| {
            // SAFETY: name is a valid NUL-terminated name; flags and mode are plain integers.
            fd_of(unsafe {
                libc::openat(
                    d.fd(),
                    name.as_ptr(),
                    flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    mode as libc::c_uint,
                )
            })
        })?;
        Ok(File::from(fd))
    }

    /// Open `rel` read-write where permitted, read-only otherwise (one descriptor serves
    /// every handle of an inode). A directory is EISDIR.
    pub fn open_shared(&self, rel: &str) -> io::Result<File> {
        match self.open(rel, libc::O_RDWR, 0) {
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EACCES) | Some(libc::EROFS) | Some(libc::EPERM)
                ) =>
            {
                self.open(rel, libc::O_RDONLY, 0)
            }
            r => r,
        }
    }

    /// mkdirat(2).
    pub fn mkdir(&self, rel: &str, mode: u32) -> io::Result<()> {
        let (d, name) = self.at(rel)?;
        // SAFETY: a valid name; mode is a plain integer.
        check(unsafe { libc::mkdirat(d.fd(), name.as_ptr(), mode as libc::mode_t) })
    }

    /// mknodat(2) of a FIFO, socket or device node (a regular file too).
    pub fn mknod(&self, rel: &str, mode: u32, rdev: u32) -> io::Result<()> {
        let (d, name) = self.at(rel)?;
        // SAFETY: a valid name; mode and rdev are plain integers.
        check(unsafe {
            libc::mknodat(
                d.fd(),
                name.as_ptr(),
                mode as libc::mode_t,
                libc::dev_t::from(rdev),
            )
        })
    }

    /// symlinkat(2): `rel` becomes a link to `target`.
    pub fn symlink(&self, target: &Path, rel: &str) -> io::Result<()> {
        let t = cstr(target.as_os_str().as_bytes())?;
        let (d, name) = self.at(rel)?;
        // SAFETY: two valid NUL-terminated strings.
        check(unsafe { libc::symlinkat(t.as_ptr(), d.fd(), name.as_ptr()) })
    }

    /// linkat(2): `to` becomes another name of `from` (not following a symlink).
    pub fn link(&self, from: &str, to: &str) -> io::Result<()> {
        let (fd, fname) = self.at(from)?;
        let (td, tname) = self.at(to)?;
        // SAFETY: valid names in valid directories.
        check(unsafe { libc::linkat(fd.fd(), fname.as_ptr(), td.fd(), tname.as_ptr(), 0) })
    }

    /// unlinkat(2) of a file (a directory is EISDIR).
    pub fn unlink(&self, rel: &str) -> io::Result<()> {
        let (d, name) = self.at(rel)?;
        // SAFETY: a valid name.
        check(unsafe { libc::unlinkat(d.fd(), name.as_ptr(), 0) })
    }

    /// unlinkat(2) of an empty directory.
    pub fn rmdir(&self, rel: &str) -> io::Result<()> {
        let (d, name) = self.at(rel)?;
        // SAFETY: a valid name.
        check(unsafe { libc::unlinkat(d.fd(), name.as_ptr(), libc::AT_REMOVEDIR) })
    }

    /// renameat2(2) with RENAME_NOREPLACE / RENAME_EXCHANGE flags.
    pub fn rename(&self, from: &str, to: &str, flags: u32) -> io::Result<()> {
        let (fd, fname) = self.at(from)?;
        let (td, tname) = self.at(to)?;
        // SAFETY: valid names in valid directories.
        check(unsafe { libc::renameat2(fd.fd(), fname.as_ptr(), td.fd(), tname.as_ptr(), flags) })
    }

    /// readlinkat(2).
    pub fn readlink(&self, rel: &str) -> io::Result<Vec<u8>> {
        let (d, name) = self.at(rel)?;
        let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
        // SAFETY: buf is writable for its length.
        let n =
            unsafe { libc::readlinkat(d.fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        buf.truncate(n as usize);
        Ok(buf)
    }

    /// chmod without following a final symlink (a symlink has no mode: EOPNOTSUPP, as on
    /// Linux).
    pub fn chmod(&self, rel: &str, mode: u32) -> io::Result<()> {
        let (d, name) = self.at(rel)?;
        // SAFETY: a valid name; the other arguments are plain integers.
        let r = unsafe {
            libc::syscall(
                SYS_FCHMODAT2,
                d.fd(),
                name.as_ptr(),
                mode,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOSYS) {
            return Err(e);
        }
        // Older kernels: through a descriptor opened without following the last name.
        let f = self.open(rel, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
        // SAFETY: a valid descriptor.
        check(unsafe { libc::fchmod(f.as_raw_fd(), mode as libc::mode_t) })
    }

    /// fchownat(2) without following a final symlink (None leaves one as it is).
    pub fn lchown(&self, rel: &str, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        let (d, name) = self.at(rel)?;
        // SAFETY: a valid name; u32::MAX (-1) leaves an id unchanged.
        check(unsafe {
            libc::fchownat(
                d.fd(),
                name.as_ptr(),
                uid.unwrap_or(u32::MAX),
                gid.unwrap_or(u32::MAX),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    }

    /// Set access and modification times (`None` leaves one as it is), not following a
    /// final symlink.
    pub fn set_times(
        &self,
        rel: &str,
        atime: Option<TimeSet>,
        mtime: Option<TimeSet>,
    ) -> io::Result<()> {
        let (d, name) = self.at(rel)?;
        let ts = [timespec(atime), timespec(mtime)];
        // SAFETY: a valid name and a two-element array, as utimensat wants.
        check(unsafe {
            libc::utimensat(
                d.fd(),
                name.as_ptr(),
                ts.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    }

    /// The entries of the directory `rel` with their attributes (a name that vanished
    /// while listed is left out; `Err` with the name for one that is not UTF-8).
    #[allow(clippy::type_complexity)]
    pub fn list(&self, rel: &str) -> io::Result<Vec<Result<(String, Meta), Vec<u8>>>> {
        let dir = self.noatime(libc::O_RDONLY | libc::O_DIRECTORY, |f| {
            self.open_beneath(rel, f)
        })?;
        let mut out = Vec::new();
        for de in std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))? {
            let name = de?.file_name();
            let Some(s) = name.to_str() else {
                out.push(Err(name.as_bytes().to_vec()));
                continue;
            };
            match statx(dir.as_raw_fd(), &cstr(name.as_bytes())?, 0) {
                Ok(m) => out.push(Ok((s.to_string(), m))),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The host disk's figures.
    pub fn statvfs(&self) -> io::Result<libc::statvfs> {
        // SAFETY: zeroed statvfs is a valid out-parameter; the descriptor is valid.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        check(unsafe { libc::fstatvfs(self.fd.as_raw_fd(), &mut s) })?;
        Ok(s)
    }
}

/// Attributes of an open host file.
pub fn fstat(f: &File) -> io::Result<Meta> {
    statx(f.as_raw_fd(), c"", libc::AT_EMPTY_PATH)
}

/// statx(2) of `name` in `dir`, not following a final symlink.
fn statx(dir: RawFd, name: &std::ffi::CStr, flags: i32) -> io::Result<Meta> {
    // SAFETY: zeroed statx is a valid out-parameter; name is NUL-terminated.
    let mut s: libc::statx = unsafe { std::mem::zeroed() };
    check(unsafe {
        libc::statx(
            dir,
            name.as_ptr(),
            flags | libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_SYNC_AS_STAT,
            libc::STATX_BASIC_STATS | libc::STATX_BTIME,
            &mut s,
        )
    })?;
    Ok(meta(&s))
}

fn time(secs: i64, nsecs: u32) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// Convert host attributes.
fn meta(s: &libc::statx) -> Meta {
    let mode = u32::from(s.stx_mode);
    let kind = match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    };
    let birth = if s.stx_mask & libc::STATX_BTIME != 0 && s.stx_btime.tv_sec >= 0 {
        (s.stx_btime.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(s.stx_btime.tv_nsec))
    } else {
        0
    };
    Meta {
        kind,
        size: s.stx_size,
        blocks: s.stx_blocks,
        atime: time(s.stx_atime.tv_sec, s.stx_atime.tv_nsec),
        mtime: time(s.stx_mtime.tv_sec, s.stx_mtime.tv_nsec),
        ctime: time(s.stx_ctime.tv_sec, s.stx_ctime.tv_nsec),
        perm: (mode & 0o7777) as u16,
        uid: s.stx_uid,
        gid: s.stx_gid,
        nlink: s.stx_nlink,
        rdev: libc::makedev(s.stx_rdev_major, s.stx_rdev_minor) as u32,
        blksize: s.stx_blksize,
        host: Some((
            libc::makedev(s.stx_dev_major, s.stx_dev_minor),
            s.stx_ino,
            birth,
        )),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_leads_outside_the_root_and_long_paths_work() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("r".repeat(100));
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../..", root.join("d/up")).unwrap();
        std::fs::write(tmp.path().join("outside"), "x").unwrap();
        let r = HostRoot::new(&root).unwrap();
        for p in [
            "abs/outside",
            "d/up/outside",
            "../outside",
            "d/../../outside",
        ] {
            let e = r.stat(p).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{p}");
        }
        // the last name is never followed: the link itself
        assert_eq!(r.stat("abs").unwrap().unwrap().kind, FileType::Symlink);
        // a relative path longer than PATH_MAX minus the root's path
        let mut p = String::new();
        while p.len() < 4000 {
            p = path::join(&p, &"x".repeat(200));
            r.mkdir(&p, 0o755).unwrap();
        }
        let f = path::join(&p, "f");
        assert!(root.as_os_str().len() + 1 + f.len() > libc::PATH_MAX as usize);
        r.open(&f, libc::O_CREAT | libc::O_WRONLY, 0o600).unwrap();
        assert_eq!(r.stat(&f).unwrap().unwrap().kind, FileType::RegularFile);
        assert_eq!(r.list(&p).unwrap().len(), 1);
        r.unlink(&f).unwrap();
        assert!(r.stat(&f).unwrap().is_none());
    }
}

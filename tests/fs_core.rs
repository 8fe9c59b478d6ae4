//! The filesystem core without a kernel: `Fs` driven directly on memory mounts.

use std::ffi::OsStr;
use std::time::Duration;

use fuser::FileType;
use genro_storage::fuse::fs::{SetAttr, TimeSet};
use genro_storage::fuse::inode::ROOT;
use genro_storage::fuse::{Caller, Fs, FsOptions};
use genro_storage::{Mount, MountConfig, Permissions};

fn fs_with(opts: FsOptions) -> Fs {
    let mounts = vec![
        Mount::new(MountConfig::memory("m")).unwrap(),
        Mount::new(MountConfig::memory("n")).unwrap(),
        Mount::new(MountConfig::memory("ro").permissions(Permissions::ReadOnly)).unwrap(),
    ];
    Fs::new(mounts, opts).unwrap()
}

fn fs() -> Fs {
    fs_with(FsOptions::default())
}

fn n(s: &str) -> &OsStr {
    OsStr::new(s)
}

const CREATE: i32 = libc::O_CREAT | libc::O_RDWR;

async fn mount_ino(fs: &Fs, name: &str) -> u64 {
    fs.lookup(ROOT, n(name)).await.unwrap().0
}

async fn write_file(fs: &Fs, dir: u64, name: &str, data: &[u8]) -> u64 {
    let (ino, _, o) = fs
        .create(dir, n(name), 0o644, 0o022, CREATE, Caller::daemon())
        .await
        .unwrap();
    let fh = o.fh;
    assert_eq!(
        fs.write(ino, fh, 0, data).await.unwrap() as usize,
        data.len()
    );
    fs.flush(ino, fh).await.unwrap();
    fs.release(ino, fh).await.unwrap();
    ino
}

async fn read_file(fs: &Fs, ino: u64) -> Vec<u8> {
    let fh = fs.open(ino, libc::O_RDONLY).await.unwrap().fh;
    let mut out = Vec::new();
    loop {
        let b = fs.read(ino, fh, out.len() as u64, 4096).await.unwrap();
        if b.is_empty() {
            break;
        }
        out.extend_from_slice(&b);
    }
    fs.release(ino, fh).await.unwrap();
    out
}

async fn names(fs: &Fs, dir: u64) -> Vec<String> {
    let fh = fs.opendir(dir).await.unwrap();
    let v = fs
        .readdir(fh, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|(e, _)| e.name)
        .collect();
    fs.releasedir(fh);
    v
}

#[tokio::test]
async fn root_lists_mounts_and_refuses_changes() {
    let fs = fs();
    assert_eq!(names(&fs, ROOT).await, [".", "..", "m", "n", "ro"]);
    let e = fs
        .mkdir(ROOT, n("x"), 0o755, 0, Caller::daemon())
        .await
        .unwrap_err();
    assert_eq!(e.errno(), libc::EACCES);
    let e = fs.lookup(ROOT, n("nope")).await.unwrap_err();
    assert_eq!(e.errno(), libc::ENOENT);
    assert_eq!(fs.getattr(ROOT).await.unwrap().kind, FileType::Directory);
}

#[tokio::test]
async fn write_read_and_attributes() {
    let fs = fs();
    let m = mount_ino(&fs, "m").await;
    let ino = write_file(&fs, m, "a.txt", b"hello").await;
    assert_eq!(read_file(&fs, ino).await, b"hello");
    let attr = fs.getattr(ino).await.unwrap();
    assert_eq!(
        (attr.size, attr.kind, attr.perm),
        (5, FileType::RegularFile, 0o644)
    );
    let (again, _) = fs.lookup(m, n("a.txt")).await.unwrap();
    assert_eq!(again, ino, "a known path keeps its inode");
}

#[tokio::test]
async fn offsets_are_stable_and_readdir_resumes() {
    let fs = fs();
    let m = mount_ino(&fs, "m").await;
    let (d, _) = fs
        .mkdir(m, n("big"), 0o755, 0, Caller::daemon())
        .await
        .unwrap();
    for i in 0..300 {
        write_file(&fs, d, &format!("f{i:03}"), b"").await;
    }
    let fh = fs.opendir(d).await.unwrap();
    let first = fs.readdir(fh, 0).await.unwrap();
    assert_eq!(first.len(), 302);
    let (_, off) = &first[100];
    let rest = fs.readdir(fh, *off).await.unwrap();
    assert_eq!(rest[0].0.name, first[101].0.name);
    // a name added while the directory is open shows after rewinddir (offset 0 again), as
    // POSIX asks, and not before
    write_file(&fs, d, "new", b"").await;
    let rest = fs.readdir(fh, *off).await.unwrap();
    assert!(rest.iter().all(|(e, _)| e.name != "new"));
    let again = fs.readdir(fh, 0).await.unwrap();
    assert_eq!(again.len(), 303);
    assert!(again.iter().any(|(e, _)| e.name == "new"));
    fs.releasedir(fh);
}

#[tokio::test]
async fn errors_have_the_right_errno() {
    let fs = fs();
    let m = mount_ino(&fs, "m").await;
    write_file(&fs, m, "f", b"x").await;
    let e = fs
        .create(m, n("f"), 0o644, 0, CREATE | libc::O_EXCL, Caller::daemon())
        .await
        .unwrap_err();
    assert_eq!(e.errno(), libc::EEXIST);
    assert_eq!(
        fs.unlink(m, n("missing")).await.unwrap_err().errno(),
        libc::ENOENT
    );
    let (d, _) = fs
        .mkdir(m, n("d"), 0o755, 0, Caller::daemon())
        .await
        .unwrap();
    write_file(&fs, d, "x", b"").await;
    assert_eq!(
        fs.rmdir(m, n("d")).await.unwrap_err().errno(),
        libc::ENOTEMPTY
    );
    assert_eq!(
        fs.unlink(m, n("d")).await.unwrap_err().errno(),
        libc::EISDIR
    );
    assert_eq!(
        fs.rmdir(m, n("f")).await.unwrap_err().errno(),
        libc::ENOTDIR
    );
    assert_eq!(
        fs.mkdir(m, n("f"), 0o755, 0, Caller::daemon())
            .await
            .unwrap_err()
            .errno(),
        libc::EEXIST
    );
    let long = "x".repeat(256);
    assert_eq!(
        fs.lookup(m, n(&long)).await.unwrap_err().errno(),
        libc::ENAMETOOLONG
    );
    assert_eq!(
        fs.lookup(m, n("..")).await.unwrap_err().errno(),
        libc::EINVAL
    );
    let nm = mount_ino(&fs, "n").await;
    let e = fs.rename(m, n("f"), nm, n("f"), 0).await.unwrap_err();
    assert_eq!(e.errno(), libc::EXDEV);
    // memory mounts keep symlinks in the daemon
    let (l, meta) = fs
        .symlink(m, n("l"), std::path::Path::new("f"), Caller::daemon())
        .await
        .unwrap();
    assert_eq!(meta.kind, fuser::FileType::Symlink);
    assert_eq!(fs.readlink(l).await.unwrap(), b"f");
    let e = fs
        .symlink(m, n("l"), std::path::Path::new("g"), Caller::daemon())
        .await
        .unwrap_err();
    assert_eq!(e.errno(), libc::EEXIST);
    fs.unlink(m, n("l")).await.unwrap();
    let ro = mount_ino(&fs, "ro").await;
    let e = fs
        .create(ro, n("x"), 0o644, 0, CREATE, Caller::daemon())
        .await
        .unwrap_err();
    assert_eq!(e.errno(), libc::EROFS);
}

#[tokio::test]
async fn o_creat_rdonly_creates_an_empty_file() {
    let fs = fs();
    let m = mount_ino(&fs, "m").await;
    let (ino, attr, o) = fs
        .create(
            m,
            n("e"),
            0o600,
            0,
            libc::O_CREAT | libc::O_RDONLY,
            Caller::daemon(),
        )
        .await
        .unwrap();
    let fh = o.fh;
    assert_eq!((attr.size, attr.perm), (0, 0o600));
    fs.release(ino, fh).await.unwrap();
    assert!(names(&fs, m).await.contains(&"e".to_string()));
}

#[tokio::test]
async fn rename_files_and_trees_keep_inodes() {
    let fs = fs();
    let m = mount_ino(&fs, "m").await;
    let (d, _) = fs
        .mkdir(m, n("d"), 0o755, 0, Caller::daemon())
        .await
        .unwrap();
    let f = write_file(&fs, d, "f", b"data").await;
    write_file(&fs, m, "victim", b"old").await;
    fs.rename(d, n("f"), m, n("victim"), 0).await.unwrap();
    assert_eq!(read_file(&fs, f).await, b"data");
    assert_eq!(fs.lookup(m, n("victim")).await.unwrap().0, f);
    let g = write_file(&fs, d, "g", b"G").await;
    fs.rename(m, n("d"), m, n("e"), 0).await.unwrap();
    assert_eq!(
        fs.lookup(m, n("d")).await.unwrap_err().errno(),
        libc::ENOENT
    );
    let (e, _) = fs.lookup(m, n("e")).await.unwrap();
    assert_eq!(e, d);
    assert_eq!(read_file(&fs, g).await, b"G");
    let e2 = fs
        .rename(m, n("e"), m, n("victim"), libc::RENAME_NOREPLACE)
        .await
        .unwrap_err();
    assert_eq!(e2.errno(), libc::EEXIST);
    let (sub, _) = fs
        .mkdir(e, n("sub"), 0o755, 0, Caller::daemon())
        .await
        .unwrap();
    let e3 = fs.rename(m, n("e"), sub, n("inside"), 0).await.unwrap_err();
    assert_eq!(e3.errno(), libc::EINVAL);
}

#[tokio::test]
async fn handles_share_state_and_upload_on_flush() {
    let fs = fs();
    let m = mount_ino(&fs, "m").await;
    let (ino, _, w) = fs
        .create(m, n("s"), 0o644, 0, CREATE, Caller::daemon())
        .await
        .unwrap();
    let w = w.fh;
    fs.write(ino, w, 0, b"hello").await.unwrap();
    let r = fs.open(ino, libc::O_RDONLY).await.unwrap().fh;
    assert_eq!(&fs.read(ino, r, 0, 100).await.unwrap()[..], b"hello");
    assert_eq!(fs.getattr(ino).await.unwrap().size, 5);
    fs.write(ino, w, 10, b"!").await.unwrap();
    assert_eq!(fs.getattr(ino).await.unwrap().size, 11);
    fs.flush(ino, w).await.unwrap();
    fs.release(ino, r).await.unwrap();
    fs.release(ino, w).await.unwrap();
    assert_eq!(read_file(&fs, ino).await, b"hello\0\0\0\0\0!");
    let a = fs
        .open(ino, libc::O_WRONLY | libc::O_APPEND)
        .await
        .unwrap()
        .fh;
    fs.write(ino, a, 0, b"+").await.unwrap();
    fs.release(ino, a).await.unwrap();
    assert_eq!(read_file(&fs, ino).await, b"hello\0\0\0\0\0!+");
}

#[tokio::test]
async fn setattr_truncates_and_keeps_modes_and_times() {
    let fs = fs();
    let m = mount_ino(&fs, "m").await;
    let ino = write_file(&fs, m, "t", b"0123456789").await;
    let when = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let a = fs
        .setattr(
            ino,
            SetAttr {
                size: Some(4),
                mode: Some(0o100600),
                mtime: Some(TimeSet::At(when)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((a.size, a.perm, a.mtime), (4, 0o600, when));
    assert_eq!(read_file(&fs, ino).await, b"0123");
    let a = fs
        .setattr(
            ino,
            SetAttr {
                size: Some(6),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(a.size, 6);
    assert_eq!(read_file(&fs, ino).await, b"0123\0\0");
}

#[tokio::test]
async fn unlinked_open_file_is_not_resurrected() {
    let fs = fs();
    let m = mount_ino(&fs, "m").await;
    let (ino, _, fh) = fs
        .create(m, n("gone"), 0o644, 0, CREATE, Caller::daemon())
        .await
        .unwrap();
    let fh = fh.fh;
    fs.write(ino, fh, 0, b"data").await.unwrap();
    fs.unlink(m, n("gone")).await.unwrap();
    fs.release(ino, fh).await.unwrap();
    assert_eq!(
        fs.lookup(m, n("gone")).await.unwrap_err().errno(),
        libc::ENOENT
    );
}

/// A late release uploads an open file's last writes while the file is unlinked or renamed
/// on another thread: the upload lands before the change (and moves or goes with it) or
/// after it (at the new name, or nowhere), never at the old name after the change.
/// Regression: the upload resolved the path, the unlink or rename ran, and the upload then
/// stored the file at the old name again (seen on memory mounts under the concurrency suite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_racing_an_unlink_or_a_rename_never_brings_the_name_back() {
    let fs = std::sync::Arc::new(fs());
    let m = mount_ino(&fs, "m").await;
    for i in 0..1000 {
        let (a, b) = (format!("a{i}"), format!("b{i}"));
        let (ino, _, o) = fs
            .create(m, n(&a), 0o644, 0, CREATE, Caller::daemon())
            .await
            .unwrap();
        let data = format!("data {i}").repeat(1 + i % 50);
        fs.write(ino, o.fh, 0, data.as_bytes()).await.unwrap();
        let fs2 = fs.clone();
        let release = tokio::spawn(async move { fs2.release(ino, o.fh).await });
        let (fs3, a2, b2) = (fs.clone(), a.clone(), b.clone());
        let change = tokio::spawn(async move {
            match i % 2 {
                0 => fs3.unlink(m, n(&a2)).await,
                _ => fs3.rename(m, n(&a2), m, n(&b2), 0).await,
            }
        });
        release.await.unwrap().unwrap();
        let changed = change.await.unwrap();
        let old = fs.lookup(m, n(&a)).await.map(|_| ()).map_err(|e| e.errno());
        assert_eq!(
            old,
            Err(libc::ENOENT),
            "round {i}: {a} is back after {} ({changed:?})",
            if i % 2 == 0 {
                "its unlink"
            } else {
                "its rename"
            },
        );
        if i % 2 == 1 {
            changed.unwrap();
            let (moved, _) = fs.lookup(m, n(&b)).await.unwrap();
            assert_eq!(read_file(&fs, moved).await, data.as_bytes(), "round {i}");
            fs.unlink(m, n(&b)).await.unwrap();
        }
    }
}

#[tokio::test]
async fn forget_bounds_the_inode_table() {
    let fs = fs();
    let m = mount_ino(&fs, "m").await;
    for i in 0..2000 {
        let ino = write_file(&fs, m, &format!("f{i}"), b"").await;
        fs.forget(ino, 1);
    }
    assert!(fs.inodes().len() < 10, "{}", fs.inodes().len());
}

#[tokio::test]
async fn empty_directories_exist_and_vanish_with_rmdir() {
    let fs = fs();
    let m = mount_ino(&fs, "m").await;
    let (a, _) = fs
        .mkdir(m, n("a"), 0o700, 0, Caller::daemon())
        .await
        .unwrap();
    fs.mkdir(a, n("b"), 0o755, 0, Caller::daemon())
        .await
        .unwrap();
    assert_eq!(names(&fs, a).await, [".", "..", "b"]);
    assert_eq!(fs.getattr(a).await.unwrap().perm, 0o700);
    fs.rmdir(a, n("b")).await.unwrap();
    assert_eq!(names(&fs, a).await, [".", ".."]);
    fs.rmdir(m, n("a")).await.unwrap();
    assert_eq!(names(&fs, m).await, [".", ".."]);
}

#[tokio::test]
async fn read_only_option_refuses_every_change() {
    let fs = fs_with(FsOptions {
        read_only: true,
        ..FsOptions::default()
    });
    let m = mount_ino(&fs, "m").await;
    assert_eq!(
        fs.create(m, n("x"), 0o644, 0, CREATE, Caller::daemon())
            .await
            .unwrap_err()
            .errno(),
        libc::EROFS
    );
    assert_eq!(
        fs.mkdir(m, n("x"), 0o755, 0, Caller::daemon())
            .await
            .unwrap_err()
            .errno(),
        libc::EROFS
    );
}

#[tokio::test]
async fn readahead_serves_sequential_reads() {
    let fs = fs();
    let m = mount_ino(&fs, "m").await;
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let ino = write_file(&fs, m, "big", &data).await;
    let fh = fs.open(ino, libc::O_RDONLY).await.unwrap().fh;
    let mut got = Vec::new();
    while got.len() < data.len() {
        let b = fs.read(ino, fh, got.len() as u64, 131072).await.unwrap();
        assert!(!b.is_empty());
        got.extend_from_slice(&b);
    }
    assert!(got == data);
    // random access reads the right bytes too, and past EOF is empty
    assert_eq!(
        &fs.read(ino, fh, 1_000_003, 5).await.unwrap()[..],
        &data[1_000_003..1_000_008]
    );
    assert!(fs.read(ino, fh, 5_000_000, 10).await.unwrap().is_empty());
    fs.release(ino, fh).await.unwrap();
}

#[tokio::test]
async fn overwrites_from_the_start_keep_or_replace_the_rest() {
    let fs = fs();
    let m = mount_ino(&fs, "m").await;
    let ino = write_file(&fs, m, "f", b"0123456789").await;
    // a short overwrite at the start keeps the rest
    let fh = fs.open(ino, libc::O_RDWR).await.unwrap().fh;
    fs.write(ino, fh, 0, b"ab").await.unwrap();
    assert_eq!(&fs.read(ino, fh, 0, 100).await.unwrap()[..], b"ab23456789");
    fs.release(ino, fh).await.unwrap();
    assert_eq!(read_file(&fs, ino).await, b"ab23456789");
    // an overwrite of the whole file, in order, replaces it without reading it
    let fh = fs.open(ino, libc::O_WRONLY).await.unwrap().fh;
    fs.write(ino, fh, 0, b"ABCDE").await.unwrap();
    fs.write(ino, fh, 5, b"FGHIJKL").await.unwrap();
    fs.release(ino, fh).await.unwrap();
    assert_eq!(read_file(&fs, ino).await, b"ABCDEFGHIJKL");
    // a write elsewhere first fetches the rest
    let fh = fs.open(ino, libc::O_WRONLY).await.unwrap().fh;
    fs.write(ino, fh, 3, b"-").await.unwrap();
    fs.write(ino, fh, 0, b"+").await.unwrap();
    fs.release(ino, fh).await.unwrap();
    assert_eq!(read_file(&fs, ino).await, b"+BC-EFGHIJKL");
}

/// A memory mount's store takes the staged pages at upload without a copy. A later write
/// through a handle still open goes on in place (the store shows it within the length it
/// holds, as a file shows a write; no copy of the whole file per open-write-close), a
/// truncate that cuts the file short changes a copy; bytes a reader already has never
/// change.
#[tokio::test]
async fn memory_upload_shares_pages_and_later_changes_copy_them() {
    let store = Mount::new(MountConfig::memory("m")).unwrap();
    let fs = Fs::new(vec![store.clone()], FsOptions::default()).unwrap();
    let m = mount_ino(&fs, "m").await;
    let (ino, _, o) = fs
        .create(m, n("f"), 0o644, 0, CREATE, Caller::daemon())
        .await
        .unwrap();
    let data: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
    fs.write(ino, o.fh, 0, &data).await.unwrap();
    fs.fsync(ino, o.fh).await.unwrap();
    let held = store.read_all("f").await.unwrap();
    assert!(held == data, "the store holds the file after fsync");

    fs.write(ino, o.fh, 1, b"XYZ").await.unwrap();
    let mut shown = data.clone();
    shown[1..4].copy_from_slice(b"XYZ");
    assert!(
        store.read_all("f").await.unwrap() == shown,
        "written in place"
    );
    assert!(held == data, "bytes already read never change");
    let set = SetAttr {
        size: Some(1 << 20),
        ..Default::default()
    };
    fs.setattr(ino, set).await.unwrap(); // (a truncate is uploaded at once)
    fs.fsync(ino, o.fh).await.unwrap();
    let mut want = data[..1 << 20].to_vec();
    want[1..4].copy_from_slice(b"XYZ");
    assert!(store.read_all("f").await.unwrap() == want);
    assert!(held == data, "bytes read before the truncate never change");

    fs.write(ino, o.fh, 0, b"again").await.unwrap();
    fs.release(ino, o.fh).await.unwrap();
    want[..5].copy_from_slice(b"again");
    assert!(store.read_all("f").await.unwrap() == want);
    assert_eq!(read_file(&fs, ino).await, want);
}

/// `--mount NAME`: one mount served at the root, which is then the mount's own directory.
#[tokio::test]
async fn one_mount_served_at_the_root() {
    let fs = Fs::new(
        vec![Mount::new(MountConfig::memory("only")).unwrap()],
        FsOptions {
            single: true,
            ..FsOptions::default()
        },
    )
    .unwrap();
    let f = write_file(&fs, ROOT, "top.txt", b"at the root").await;
    assert_eq!(read_file(&fs, f).await, b"at the root");
    assert_eq!(fs.lookup(ROOT, n("top.txt")).await.unwrap().0, f);
    let (d, _) = fs
        .mkdir(ROOT, n("d"), 0o755, 0o022, Caller::daemon())
        .await
        .unwrap();
    assert!(fs.lookup(d, n("missing")).await.is_err());
    fs.unlink(ROOT, n("top.txt")).await.unwrap();
    assert_eq!(
        fs.lookup(ROOT, n("top.txt")).await.unwrap_err().errno(),
        libc::ENOENT
    );
    assert_eq!(fs.getattr(ROOT).await.unwrap().kind, FileType::Directory);
}

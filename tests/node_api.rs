//! The node API conformance suite: every case on every backend that can do what it needs
//! (local, memory, S3, WebDAV, SFTP, FTP, Azure Blob, GCS); a custom harness (libtest-mimic)
//! registers them.

mod common;
#[path = "node_api/extras.rs"]
mod extras;

use common::{backend, Kind};
use futures::future::join_all;
use genro_storage::{AsyncStorageManager, ErrorKind, MountConfig, Permissions};

/// What a case needs of its backend beyond the common operations; a case is registered only
/// on the backends that have all it needs (opendal's behaviour tests do the same).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Need {
    /// An empty directory can exist (real directories or markers): not s3s-fs.
    EmptyDirs,
    /// A file below a file is refused: real directories, not object stores.
    PolicedPaths,
    /// Object stores that hold `f` beside `f/g` (moto, Ceph RGW, Azurite, fake-gcs-server).
    FileBesidePrefix,
    /// User metadata changed in place (memory, S3, Azure, GCS) ...
    Metadata,
    /// ... or none at all.
    NoMetadata,
    /// Presigned URLs the test server honours (S3, Azurite).
    Presign,
    /// No URLs at all (local without base_url, memory, WebDAV, SFTP, FTP).
    NoPresign,
    /// A versioned S3 bucket (moto in .ci/run).
    Versions,
    /// A backend that keeps no versions.
    NoVersions,
}

fn has(k: Kind, need: Need) -> bool {
    let faithful = k != Kind::S3 || common::external_s3().is_some();
    match need {
        Need::EmptyDirs => faithful,
        Need::PolicedPaths => !k.is_object(),
        Need::FileBesidePrefix => k.is_object() && faithful,
        Need::Metadata => extras::keeps_metadata(k),
        Need::NoMetadata => !extras::keeps_metadata(k),
        Need::Presign => extras::presigns(k),
        Need::NoPresign => !extras::presigns(k) && k != Kind::Gcs,
        Need::Versions => k == Kind::S3 && extras::versioned_bucket().is_some(),
        Need::NoVersions => k != Kind::S3,
    }
}

type SingleFn = fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
type CaseFn = fn(Kind) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

macro_rules! cases {
    ($($case:ident $([$($need:ident),*])?),* $(,)?) => {
        &[$((stringify!($case), &[$($(Need::$need),*)?], |k| Box::pin($case(k)))),*]
    };
}

const CASES: &[(&str, &[Need], CaseFn)] = cases!(
    write_and_read,
    text,
    properties,
    mkdir_and_list,
    copy_file,
    copy_tree,
    delete_file_and_tree,
    parallel_writes_and_reads,
    parallel_copies,
    missing_paths,
    nested_directories,
    move_file_and_tree,
    ranged_and_streaming,
    streamed_copy_64mib_to_local,
    permissions,
    path_escapes,
    empty_directory[EmptyDirs],
    file_inside_file[PolicedPaths],
    file_beside_prefix[FileBesidePrefix],
    copy_with_strategies,
    md5_hashes,
    write_if_changed,
    user_metadata[Metadata],
    no_user_metadata[NoMetadata],
    presigned_urls[Presign],
    no_urls[NoPresign],
    local_paths,
    versions[Versions],
    no_versions[NoVersions],
    relative_mounts,
    capabilities_as_data,
    one_request_per_small_write_and_read,
);

use extras::{
    capabilities_as_data, local_paths, md5_hashes, no_urls, no_user_metadata, no_versions,
    one_request_per_small_write_and_read, presigned_urls, relative_mounts, user_metadata, versions,
    write_if_changed,
};

/// Run `f` on a fresh two-worker runtime, as `#[tokio::test(flavor = "multi_thread")]` does.
fn block_on<F: std::future::Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn main() {
    use libtest_mimic::{Arguments, Failed, Trial};
    let args = Arguments::from_args();
    let ci = common::ci();
    let mut trials = Vec::new();
    for kind in Kind::ALL {
        // A backend whose server cannot be installed fails under CI; elsewhere its cases are
        // listed as ignored, with the reason printed once.
        let missing = kind.provision().err();
        if let (Some(why), false) = (&missing, ci) {
            eprintln!("node_api: {} cases not run: {why}", kind.name());
        }
        for &(name, needs, f) in CASES {
            if !needs.iter().all(|n| has(kind, *n)) {
                continue;
            }
            let trial = Trial::test(format!("{}::{name}", kind.name()), move || {
                kind.server()
                    .map_err(|e| Failed::from(format!("{} server: {e}", kind.name())))?;
                block_on(f(kind));
                Ok(())
            });
            trials.push(trial.with_ignored_flag(missing.is_some() && !ci));
        }
    }
    let single: &[(&str, SingleFn)] = &[
        ("copies_across_mounts_in_every_direction", || {
            Box::pin(copies_across_mounts_in_every_direction())
        }),
        ("symlink_out_of_a_local_root_is_never_followed", || {
            Box::pin(symlink_out_of_a_local_root_is_never_followed())
        }),
        ("node_names", || Box::pin(node_names())),
        ("configure_file_names_the_culprit", || {
            Box::pin(configure_file_names_the_culprit())
        }),
    ];
    for &(name, f) in single {
        trials.push(Trial::test(name, move || {
            block_on(f());
            Ok(())
        }));
    }
    libtest_mimic::run(&args, trials).exit();
}

async fn write_and_read(k: Kind) {
    let b = backend(k).await;
    let n = b.node("dir/test.txt");
    n.write(b"Hello".to_vec()).await.unwrap();
    assert_eq!(n.read().await.unwrap(), b"Hello");
    n.write(bytes::Bytes::from_static(b"bytes")).await.unwrap();
    assert_eq!(n.read().await.unwrap(), b"bytes");
    n.write(String::from("string")).await.unwrap();
    assert_eq!(n.read().await.unwrap(), b"string");
    n.write(&b"static"[..]).await.unwrap();
    assert_eq!(n.read().await.unwrap(), b"static");
    n.write(Vec::new()).await.unwrap();
    assert_eq!(n.read().await.unwrap(), b"");
    assert_eq!(n.size().await.unwrap(), 0);
}

async fn text(k: Kind) {
    let b = backend(k).await;
    let n = b.node("notes/ünïcode.txt");
    n.write_text("héllo wörld\n").await.unwrap();
    assert_eq!(n.read_text().await.unwrap(), "héllo wörld\n");
    let bin = b.node("bin");
    bin.write(vec![0xff, 0xfe]).await.unwrap();
    assert_eq!(
        bin.read_text().await.unwrap_err().kind(),
        ErrorKind::Backend
    );
}

async fn properties(k: Kind) {
    let b = backend(k).await;
    let before = std::time::SystemTime::now() - std::time::Duration::from_secs(5);
    let f = b.node("a/f.txt");
    f.write_text("12345").await.unwrap();
    assert!(f.exists().await.unwrap());
    assert!(f.is_file().await.unwrap());
    assert!(!f.is_dir().await.unwrap());
    assert_eq!(f.size().await.unwrap(), 5);
    let mtime = f.mtime().await.unwrap();
    // FTP's LIST gives times to the minute
    let before = if k == Kind::Ftp {
        before - std::time::Duration::from_secs(60)
    } else {
        before
    };
    if k != Kind::Memory {
        assert!(mtime >= before, "mtime {mtime:?} before {before:?}");
    }
    let d = b.node("a");
    assert!(d.exists().await.unwrap());
    assert!(d.is_dir().await.unwrap());
    assert!(!d.is_file().await.unwrap());
    let root = b.node("");
    assert!(root.is_dir().await.unwrap());
}

async fn mkdir_and_list(k: Kind) {
    let b = backend(k).await;
    let d = b.node("d");
    d.child("x.txt").unwrap().write_text("x").await.unwrap();
    d.child("y.txt").unwrap().write_text("y").await.unwrap();
    d.child("sub/z.txt").unwrap().write_text("z").await.unwrap();
    d.mkdir().await.unwrap(); // already a directory: Ok
    let names: Vec<String> = d
        .list()
        .await
        .unwrap()
        .iter()
        .map(|n| n.basename().to_string())
        .collect();
    assert_eq!(names, ["sub", "x.txt", "y.txt"]);
    let kids = d.list().await.unwrap();
    assert!(kids[0].is_dir().await.unwrap());
    assert_eq!(kids[1].fullpath(), "t:d/x.txt");
    let root: Vec<String> = b
        .node("")
        .list()
        .await
        .unwrap()
        .iter()
        .map(|n| n.basename().to_string())
        .collect();
    assert_eq!(root, ["d"]);
    let e = b.node("d/x.txt").list().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotADirectory);
    let e = b.node("d/x.txt").mkdir().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
}

async fn copy_file(k: Kind) {
    let b = backend(k).await;
    let src = b.node("src.txt");
    src.write_text("payload").await.unwrap();
    let dst = b.node("copies/dst.txt");
    src.copy(&dst).await.unwrap();
    assert_eq!(dst.read_text().await.unwrap(), "payload");
    assert_eq!(src.read_text().await.unwrap(), "payload");
    assert_eq!(
        src.copy(&src).await.unwrap_err().kind(),
        ErrorKind::InvalidPath
    );
    assert!(b
        .node("missing")
        .copy(&dst)
        .await
        .unwrap_err()
        .is_not_found());
}

async fn copy_tree(k: Kind) {
    let b = backend(k).await;
    for p in ["t/a.txt", "t/b/c.txt", "t/b/d/e.txt"] {
        b.node(p).write_text(p).await.unwrap();
    }
    b.node("t").copy(&b.node("u")).await.unwrap();
    for p in ["a.txt", "b/c.txt", "b/d/e.txt"] {
        assert_eq!(
            b.node(&format!("u/{p}")).read_text().await.unwrap(),
            format!("t/{p}")
        );
    }
    let e = b.node("t").copy(&b.node("t/b/inner")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidPath);
}

async fn delete_file_and_tree(k: Kind) {
    let b = backend(k).await;
    let f = b.node("f.txt");
    f.write_text("x").await.unwrap();
    f.delete().await.unwrap();
    assert!(!f.exists().await.unwrap());
    f.delete().await.unwrap(); // missing: Ok
    for p in ["tree/a", "tree/b/c", "tree/b/d/e", "keep/x"] {
        b.node(p).write_text(p).await.unwrap();
    }
    b.node("tree").delete().await.unwrap();
    assert!(!b.node("tree").exists().await.unwrap());
    assert!(!b.node("tree/b/d/e").exists().await.unwrap());
    assert!(b.node("keep/x").exists().await.unwrap());
    assert_eq!(
        b.node("").delete().await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
}

async fn parallel_writes_and_reads(k: Kind) {
    let b = backend(k).await;
    let nodes: Vec<_> = (0..10).map(|i| b.node(&format!("par/f{i}.txt"))).collect();
    let writes = nodes.iter().enumerate().map(|(i, n)| {
        let n = n.clone();
        tokio::spawn(async move { n.write_text(&format!("content {i}")).await })
    });
    for r in join_all(writes).await {
        r.unwrap().unwrap();
    }
    let reads = join_all(nodes.iter().map(|n| n.read_text())).await;
    for (i, r) in reads.into_iter().enumerate() {
        assert_eq!(r.unwrap(), format!("content {i}"));
    }
}

async fn parallel_copies(k: Kind) {
    let b = backend(k).await;
    let src = b.node("orig.bin");
    src.write(vec![7u8; 100_000]).await.unwrap();
    let dests: Vec<_> = (0..5).map(|i| b.node(&format!("cp/{i}.bin"))).collect();
    for r in join_all(dests.iter().map(|d| src.copy(d))).await {
        r.unwrap();
    }
    for d in &dests {
        assert_eq!(d.read().await.unwrap(), vec![7u8; 100_000]);
    }
}

async fn missing_paths(k: Kind) {
    let b = backend(k).await;
    let m = b.node("nope/missing.txt");
    assert!(!m.exists().await.unwrap());
    assert!(!m.is_file().await.unwrap());
    assert!(!m.is_dir().await.unwrap());
    assert!(m.size().await.unwrap_err().is_not_found());
    assert!(m.mtime().await.unwrap_err().is_not_found());
    let e = m.read().await.unwrap_err();
    assert!(e.is_not_found());
    assert!(e.to_string().contains("t:nope/missing.txt"), "{e}");
    assert!(m.list().await.unwrap_err().is_not_found());
    m.delete().await.unwrap();
    assert!(b.storage.node("other:x").unwrap_err().is_not_found());
    assert!(b.storage.node("no-colon").is_err());
}

async fn nested_directories(k: Kind) {
    let b = backend(k).await;
    let deep = b.node("a/b/c/d/e/f");
    deep.mkdir().await.unwrap();
    deep.child("leaf.txt")
        .unwrap()
        .write_text("leaf")
        .await
        .unwrap();
    for p in ["a", "a/b", "a/b/c", "a/b/c/d/e/f"] {
        assert!(b.node(p).is_dir().await.unwrap(), "{p}");
    }
    assert_eq!(
        b.node("a/b/c/d/e/f/leaf.txt").read_text().await.unwrap(),
        "leaf"
    );
    assert_eq!(b.node("a/b").list().await.unwrap().len(), 1);
}

async fn move_file_and_tree(k: Kind) {
    let b = backend(k).await;
    let f = b.node("m/f.txt");
    f.write_text("moved").await.unwrap();
    let g = b.node("n/g.txt");
    f.move_to(&g).await.unwrap();
    assert!(!f.exists().await.unwrap());
    assert_eq!(g.read_text().await.unwrap(), "moved");
    for p in ["tree/a", "tree/b/c"] {
        b.node(p).write_text(p).await.unwrap();
    }
    b.node("tree").move_to(&b.node("moved/tree")).await.unwrap();
    assert!(!b.node("tree").exists().await.unwrap());
    assert_eq!(
        b.node("moved/tree/b/c").read_text().await.unwrap(),
        "tree/b/c"
    );
}

async fn ranged_and_streaming(k: Kind) {
    let b = backend(k).await;
    let n = b.node("big.bin");
    let mut w = n.writer().await.unwrap();
    let mut expect = Vec::new();
    for i in 0..10u8 {
        let chunk = vec![i; 100_000];
        expect.extend_from_slice(&chunk);
        w.write(chunk).await.unwrap();
    }
    w.close().await.unwrap();
    assert_eq!(n.size().await.unwrap(), 1_000_000);
    assert_eq!(&n.read_range(99_999, 100_001).await.unwrap()[..], &[0, 1]);
    // past the end is clamped, never an error
    assert_eq!(n.read_range(999_990, 2_000_000).await.unwrap().len(), 10);
    assert!(n.read_range(5_000_000, 6_000_000).await.unwrap().is_empty());
    let r = n.reader().await.unwrap();
    assert_eq!(r.size(), 1_000_000);
    assert_eq!(
        &r.read_range(500_000, 500_010).await.unwrap()[..],
        &expect[500_000..500_010]
    );
    assert_eq!(r.read_range(999_999, 1_000_100).await.unwrap().len(), 1);
    // an aborted writer leaves nothing behind
    let gone = b.node("aborted.bin");
    let mut w = gone.writer().await.unwrap();
    w.write(vec![1u8; 10]).await.unwrap();
    w.abort().await.unwrap();
    assert!(!gone.exists().await.unwrap());
}

async fn streamed_copy_64mib_to_local(k: Kind) {
    let b = backend(k).await;
    let tmp = tempfile::tempdir().unwrap();
    b.storage
        .configure(vec![MountConfig::local("dest", tmp.path())])
        .await
        .unwrap();
    let n = b.node("huge.bin");
    let block: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    // s3s-fs 0.14.1 now and then loses an upload id and answers AccessDenied to
    // CompleteMultipartUpload (seen in about one run in ten, never on moto, which .ci/run also
    // runs): there, and only there, the upload is tried a second time.
    let attempts = if b.faithful() { 1 } else { 2 };
    for attempt in 1..=attempts {
        let mut w = n.writer().await.unwrap();
        for _ in 0..64 {
            w.write(block.clone()).await.unwrap();
        }
        match w.close().await {
            Ok(()) => break,
            Err(e) if attempt < attempts && e.to_string().contains("CompleteMultipartUpload") => {
                eprintln!("s3s-fs refused CompleteMultipartUpload, trying again: {e}");
            }
            Err(e) => panic!("{e}"),
        }
    }
    let dest = b.storage.node("dest:huge.bin").unwrap();
    n.copy(&dest).await.unwrap();
    let got = std::fs::read(tmp.path().join("huge.bin")).unwrap();
    assert_eq!(got.len(), 64 << 20);
    assert!(got.chunks(1 << 20).all(|c| c == &block[..]));
    // and back again, onto the original backend
    let back = b.node("back.bin");
    for attempt in 1..=attempts {
        match dest.copy(&back).await {
            Ok(()) => break,
            // (the same s3s-fs fault as above, on the copy's own multipart upload)
            Err(e) if attempt < attempts && e.to_string().contains("CompleteMultipartUpload") => {
                eprintln!("s3s-fs refused CompleteMultipartUpload, trying again: {e}");
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(back.size().await.unwrap(), 64 << 20);
    assert_eq!(
        &back.read_range(33 << 20, (33 << 20) + 300).await.unwrap()[..],
        &block[..300]
    );
}

async fn permissions(k: Kind) {
    let b = backend(k).await;
    b.node("keep.txt").write_text("keep").await.unwrap();
    let ro = b.config.clone().permissions(Permissions::ReadOnly);
    let rw = b.config.clone().permissions(Permissions::ReadWrite);
    let s = AsyncStorageManager::new();
    let mut ro = ro;
    ro.name = "ro".into();
    let mut rw = rw;
    rw.name = "rw".into();
    s.configure(vec![ro, rw]).await.unwrap();
    let deny = ErrorKind::PermissionDenied;
    if k != Kind::Memory {
        assert_eq!(
            s.node("ro:keep.txt").unwrap().read_text().await.unwrap(),
            "keep"
        );
        assert_eq!(
            s.node("ro:keep.txt")
                .unwrap()
                .delete()
                .await
                .unwrap_err()
                .kind(),
            deny
        );
        assert_eq!(
            s.node("rw:keep.txt")
                .unwrap()
                .delete()
                .await
                .unwrap_err()
                .kind(),
            deny
        );
        assert_eq!(
            s.node("rw:keep.txt")
                .unwrap()
                .move_to(&s.node("rw:moved").unwrap())
                .await
                .unwrap_err()
                .kind(),
            deny
        );
        assert!(s.node("rw:keep.txt").unwrap().exists().await.unwrap());
    }
    let ro = |p: &str| s.node(&format!("ro:{p}")).unwrap();
    assert_eq!(
        ro("new.txt").write_text("x").await.unwrap_err().kind(),
        deny
    );
    assert_eq!(ro("newdir").mkdir().await.unwrap_err().kind(), deny);
    let e = b.node("keep.txt").copy(&ro("copy.txt")).await.unwrap_err();
    assert_eq!(e.kind(), deny);
    assert!(e.to_string().contains("ro:copy.txt"), "{e}");
    assert_eq!(ro("missing").delete().await.unwrap_err().kind(), deny);
    let rwn = s.node("rw:new.txt").unwrap();
    rwn.write_text("ok").await.unwrap();
    assert_eq!(rwn.read_text().await.unwrap(), "ok");
    assert_eq!(rwn.delete().await.unwrap_err().kind(), deny);
    assert!(!ro("copy.txt").exists().await.unwrap());
}

async fn path_escapes(k: Kind) {
    let b = backend(k).await;
    for bad in [
        "t:..",
        "t:../x",
        "t:a/../../x",
        "t:/../../etc/passwd",
        "t:a\0b",
    ] {
        let e = b.storage.node(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidPath, "{bad}");
    }
    let long = format!("t:{}", "n".repeat(256));
    assert_eq!(
        b.storage.node(&long).unwrap_err().kind(),
        ErrorKind::NameTooLong
    );
    // absolute paths stay inside the mount
    let n = b.storage.node("t:/etc/passwd").unwrap();
    assert_eq!(n.path(), "etc/passwd");
    assert!(!n.exists().await.unwrap());
    assert_eq!(
        b.node("a").child("../../x").unwrap_err().kind(),
        ErrorKind::InvalidPath
    );
    assert_eq!(b.storage.node("t://a//./b/").unwrap().path(), "a/b");
}

async fn empty_directory(k: Kind) {
    let b = backend(k).await;
    let d = b.node("empty/dir");
    d.mkdir().await.unwrap();
    assert!(d.is_dir().await.unwrap());
    assert!(b.node("empty").is_dir().await.unwrap());
    assert!(d.list().await.unwrap().is_empty());
    let names: Vec<String> = b
        .node("empty")
        .list()
        .await
        .unwrap()
        .iter()
        .map(|n| n.basename().to_string())
        .collect();
    assert_eq!(names, ["dir"]);
    d.delete().await.unwrap();
    assert!(!d.exists().await.unwrap());
}

async fn file_inside_file(k: Kind) {
    let b = backend(k).await;
    b.node("f").write_text("file").await.unwrap();
    let e = b.node("f").child("g").unwrap().write_text("x").await;
    let e = e.unwrap_err();
    assert!(
        matches!(
            e.kind(),
            ErrorKind::NotADirectory | ErrorKind::AlreadyExists | ErrorKind::Backend
        ),
        "{:?}: {e}",
        e.kind()
    );
    let e = b.node("").child("f").unwrap().mkdir().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
}

/// Object stores hold `f` beside `f/g` (genro-storage does not police it there): both read
/// back, and the name shows once, as the file (as stat says).
async fn file_beside_prefix(k: Kind) {
    let b = backend(k).await;
    b.node("f").write_text("file").await.unwrap();
    b.node("f/g").write_text("below").await.unwrap();
    assert_eq!(b.node("f").read_text().await.unwrap(), "file");
    assert_eq!(b.node("f/g").read_text().await.unwrap(), "below");
    assert!(b.node("f").is_file().await.unwrap());
    let root = b.node("").list().await.unwrap();
    assert_eq!(root.len(), 1);
    assert!(root[0].is_file().await.unwrap());
    assert_eq!(
        b.node("f").list().await.unwrap_err().kind(),
        ErrorKind::NotADirectory
    );
}

async fn copies_across_mounts_in_every_direction() {
    let tmp = tempfile::tempdir().unwrap();
    let s = AsyncStorageManager::new();
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| k.server().is_ok())
        .collect();
    let configs = kinds
        .iter()
        .map(|k| common::mount_config(*k, k.name(), &tmp))
        .collect();
    s.configure(configs).await.unwrap();
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    assert!(
        names.len() == Kind::ALL.len() || !common::ci(),
        "a backend's server is missing under CI: {names:?}"
    );
    let names = &names[..];
    for &src in names {
        s.node(&format!("{src}:tree/a.txt"))
            .unwrap()
            .write_text(src)
            .await
            .unwrap();
        s.node(&format!("{src}:tree/sub/b.txt"))
            .unwrap()
            .write_text("b")
            .await
            .unwrap();
    }
    for &src in names {
        for &dst in names {
            if src == dst {
                continue;
            }
            let d = s.node(&format!("{dst}:from-{src}")).unwrap();
            s.node(&format!("{src}:tree"))
                .unwrap()
                .copy(&d)
                .await
                .unwrap();
            assert_eq!(d.child("a.txt").unwrap().read_text().await.unwrap(), src);
            assert_eq!(
                d.child("sub/b.txt").unwrap().read_text().await.unwrap(),
                "b"
            );
            let f = s.node(&format!("{dst}:file-from-{src}.txt")).unwrap();
            s.node(&format!("{src}:tree/a.txt"))
                .unwrap()
                .copy(&f)
                .await
                .unwrap();
            assert_eq!(f.read_text().await.unwrap(), src);
            let moved = s.node(&format!("{dst}:moved-from-{src}.txt")).unwrap();
            f.move_to(&moved).await.unwrap();
            assert!(!f.exists().await.unwrap());
            assert_eq!(moved.read_text().await.unwrap(), src);
        }
    }
    assert_eq!(s.mount_names(), names);
    assert!(s.has_mount("memory") && !s.has_mount("nope"));
    s.close_all().await.unwrap();
    assert!(!s.has_mount("memory"));
}

async fn symlink_out_of_a_local_root_is_never_followed() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "secret").unwrap();
    let root = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("out")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("nothing"), root.path().join("dangling"))
        .unwrap();
    std::fs::create_dir(root.path().join("in")).unwrap();
    std::os::unix::fs::symlink(root.path().join("in"), root.path().join("inlink")).unwrap();
    let s = AsyncStorageManager::new();
    s.configure(vec![MountConfig::local("l", root.path())])
        .await
        .unwrap();
    let deny = ErrorKind::PermissionDenied;
    assert_eq!(
        s.node("l:out/secret")
            .unwrap()
            .read()
            .await
            .unwrap_err()
            .kind(),
        deny
    );
    assert_eq!(
        s.node("l:out/new")
            .unwrap()
            .write_text("x")
            .await
            .unwrap_err()
            .kind(),
        deny
    );
    assert_eq!(
        s.node("l:dangling")
            .unwrap()
            .write_text("x")
            .await
            .unwrap_err()
            .kind(),
        deny
    );
    assert!(!outside.path().join("new").exists() && !outside.path().join("nothing").exists());
    assert_eq!(
        s.node("l:out").unwrap().list().await.unwrap_err().kind(),
        deny
    );
    // a link that stays inside the root works
    s.node("l:inlink/ok.txt")
        .unwrap()
        .write_text("ok")
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(root.path().join("in/ok.txt")).unwrap(),
        "ok"
    );
}

async fn node_names() {
    let s = AsyncStorageManager::new();
    s.configure(vec![MountConfig::memory("m")]).await.unwrap();
    let n = s.node("m:dir/archive.tar.gz").unwrap();
    assert_eq!(n.fullpath(), "m:dir/archive.tar.gz");
    assert_eq!(n.path(), "dir/archive.tar.gz");
    assert_eq!(n.basename(), "archive.tar.gz");
    assert_eq!(n.stem(), "archive.tar");
    assert_eq!(n.suffix(), ".gz");
    assert_eq!(n.parent().fullpath(), "m:dir");
    assert_eq!(n.parent().parent().fullpath(), "m:");
    assert_eq!(n.parent().child("x/y").unwrap().fullpath(), "m:dir/x/y");
    let hidden = s.node("m:.bashrc").unwrap();
    assert_eq!(hidden.stem(), ".bashrc");
    assert_eq!(hidden.suffix(), "");
}

async fn configure_file_names_the_culprit() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mounts.toml");
    std::fs::write(
        &file,
        "[[mount]]\nname = \"data\"\nprotocol = \"local\"\nroot_path = \"data\"\ncreate = true\n\n[[mount]]\nname = \"mem\"\nprotocol = \"memory\"\n",
    )
    .unwrap();
    let s = AsyncStorageManager::new();
    s.configure_file(&file).await.unwrap();
    assert!(dir.path().join("data").is_dir());
    s.node("data:x.txt").unwrap().write_text("x").await.unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("data/x.txt")).unwrap(),
        "x"
    );

    std::fs::write(
        &file,
        "[[mount]]\nname = \"s\"\nprotocol = \"s3\"\nbuckett = \"b\"\n",
    )
    .unwrap();
    let e = s.configure_file(&file).await.unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{}:4: mount \"s\": key \"buckett\"",
            file.display()
        )),
        "{e}"
    );
    // a refused config changes nothing
    assert_eq!(s.mount_names(), ["data", "mem"]);
    let e = s
        .configure(vec![
            MountConfig::memory("ok"),
            MountConfig::memory("bad/name"),
        ])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(!s.has_mount("ok"));
}

/// copy_with: each skip rule, include/exclude globs, callbacks per file, per skip and for
/// progress, from this backend to a memory mount and back.
async fn copy_with_strategies(k: Kind) {
    use genro_storage::{CopyOptions, Skip, SkipReason};
    use std::sync::{Arc, Mutex};
    let b = backend(k).await;
    for (p, body) in [
        ("src/a.txt", "aaa"),
        ("src/b.log", "bb"),
        ("src/sub/c.txt", "cccc"),
        ("src/sub/d.bin", "d"),
    ] {
        b.node(p).write_text(body).await.unwrap();
    }
    b.storage
        .configure(vec![MountConfig::memory("dst")])
        .await
        .unwrap();
    let src = b.node("src");
    let dst = b.storage.node("dst:copy").unwrap();

    // Globs: a glob without '/' matches names, with '/' paths below the source.
    let opts = CopyOptions {
        include: vec!["*.txt".into(), "sub/*.bin".into()],
        exclude: vec!["sub/c.txt".into()],
        ..Default::default()
    };
    let r = src.copy_with(&dst, &opts).await.unwrap();
    assert!(r.is_ok(), "{:?}", r.failed);
    assert_eq!(r.copied, 2);
    assert_eq!(
        dst.child("a.txt").unwrap().read_text().await.unwrap(),
        "aaa"
    );
    assert_eq!(
        dst.child("sub")
            .unwrap()
            .child("d.bin")
            .unwrap()
            .read_text()
            .await
            .unwrap(),
        "d"
    );
    assert!(!dst.child("b.log").unwrap().exists().await.unwrap());
    assert!(!dst
        .child("sub")
        .unwrap()
        .child("c.txt")
        .unwrap()
        .exists()
        .await
        .unwrap());
    assert_eq!(
        r.skipped
            .iter()
            .filter(|(_, why)| *why == SkipReason::Filtered)
            .count(),
        2
    );

    // Skip rules, with callbacks.
    let files = Arc::new(Mutex::new(Vec::new()));
    let skips = Arc::new(Mutex::new(Vec::new()));
    let last = Arc::new(Mutex::new(None));
    let (f2, s2, l2) = (files.clone(), skips.clone(), last.clone());
    let mut opts = CopyOptions {
        skip: Skip::Exists,
        concurrency: 2,
        on_file: Some(Arc::new(move |s, _, size| {
            f2.lock().unwrap().push((s.basename().to_string(), size))
        })),
        on_skip: Some(Arc::new(move |s, why| {
            s2.lock().unwrap().push((s.basename().to_string(), why))
        })),
        on_progress: Some(Arc::new(move |p| *l2.lock().unwrap() = Some(*p))),
        ..Default::default()
    };
    let r = src.copy_with(&dst, &opts).await.unwrap();
    assert_eq!(r.copied, 2, "b.log and sub/c.txt are new");
    assert_eq!(r.skipped.len(), 2);
    assert!(skips
        .lock()
        .unwrap()
        .iter()
        .all(|(_, w)| *w == SkipReason::Exists));
    let mut copied: Vec<_> = files.lock().unwrap().clone();
    copied.sort();
    assert_eq!(copied, [("b.log".to_string(), 2), ("c.txt".to_string(), 4)]);
    let p = last.lock().unwrap().unwrap();
    assert_eq!((p.files_done, p.files_total), (4, 4));
    assert_eq!(
        (p.bytes_done, p.bytes_total),
        (6, 6),
        "skipped files leave the total"
    );

    // size: a changed file of the same size is skipped; hash: it is copied.
    b.node("src/a.txt").write_text("AAA").await.unwrap();
    opts.skip = Skip::Size;
    let r = src.copy_with(&dst, &opts).await.unwrap();
    assert_eq!((r.copied, r.skipped.len()), (0, 4));
    assert_eq!(
        dst.child("a.txt").unwrap().read_text().await.unwrap(),
        "aaa"
    );
    opts.skip = Skip::Hash;
    let r = src.copy_with(&dst, &opts).await.unwrap();
    assert!(r.is_ok(), "{:?}", r.failed);
    assert_eq!(r.copied, 1);
    assert!(r.skipped.iter().all(|(_, w)| *w == SkipReason::SameContent));
    assert_eq!(
        dst.child("a.txt").unwrap().read_text().await.unwrap(),
        "AAA"
    );
    // never copies everything; a custom rule decides per file.
    opts.skip = Skip::Never;
    assert_eq!(src.copy_with(&dst, &opts).await.unwrap().copied, 4);
    opts.skip = Skip::Custom(Arc::new(|s, _, _, d| d.is_some() && s.suffix() == ".txt"));
    let r = src.copy_with(&dst, &opts).await.unwrap();
    assert_eq!((r.copied, r.skipped.len()), (2, 2));
    // and back, into this backend
    let back = b.node("back");
    let r = dst.copy_with(&back, &CopyOptions::default()).await.unwrap();
    assert_eq!(r.copied, 4);
    assert_eq!(b.node("back/sub/c.txt").read_text().await.unwrap(), "cccc");
    // a single file, and a bad glob named in the error
    let r = b
        .node("src/a.txt")
        .copy_with(&b.node("one.txt"), &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!(r.copied, 1);
    let e = src
        .copy_with(
            &dst,
            &CopyOptions {
                include: vec!["a[".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("a["), "{e}");
}

//! The node API beyond files and directories, on every backend where each applies: MD5s,
//! `write_if_changed`, user metadata, URLs, `local_path`, versions, relative mounts and
//! capabilities.

use std::collections::HashMap;
use std::time::Duration;

use genro_storage::storage::posix::PosixMeta;
use genro_storage::{AsyncStorageManager, ErrorKind, LocalPathMode, MountConfig, Permissions};

use crate::common::{backend, Kind};

pub fn md5_of(b: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// Backends whose objects carry user metadata changed in place.
pub fn keeps_metadata(k: Kind) -> bool {
    matches!(k, Kind::Memory | Kind::S3 | Kind::Azblob | Kind::Gcs)
}

/// Backends that presign URLs with the test servers' keys (fake-gcs-server takes no
/// service-account key, so GCS signing is not tried here).
pub fn presigns(k: Kind) -> bool {
    matches!(k, Kind::S3 | Kind::Azblob)
}

/// The versioned bucket `.ci/run` makes on moto (`GENRO_S3_VERSIONED`).
pub fn versioned_bucket() -> Option<String> {
    std::env::var("GENRO_S3_VERSIONED")
        .ok()
        .filter(|s| !s.is_empty() && crate::common::external_s3().is_some())
}

pub async fn md5_hashes(k: Kind) {
    let b = backend(k).await;
    let f = b.node("h/a.txt");
    f.write_text("hello").await.unwrap();
    assert_eq!(f.md5hash().await.unwrap(), md5_of(b"hello"));
    let e = b.node("h/empty");
    e.write(Vec::new()).await.unwrap();
    assert_eq!(
        e.md5hash().await.unwrap(),
        "d41d8cd98f00b204e9800998ecf8427e"
    );
    // written in parts (an S3 multipart upload, whose ETag is no MD5): streamed
    let big: Vec<u8> = (0..(17u32 << 20)).map(|i| (i % 251) as u8).collect();
    let g = b.node("h/big.bin");
    let mut w = g.writer().await.unwrap();
    for c in big.chunks(8 << 20) {
        w.write(c.to_vec()).await.unwrap();
    }
    w.close().await.unwrap();
    assert_eq!(g.md5hash().await.unwrap(), md5_of(&big));
    let dir = b.node("h").md5hash().await.unwrap_err();
    assert_eq!(dir.kind(), ErrorKind::IsADirectory, "{dir}");
    let missing = b.node("h/none").md5hash().await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    assert!(missing.to_string().contains("t:h/none"), "{missing}");
}

pub async fn write_if_changed(k: Kind) {
    let b = backend(k).await;
    let f = b.node("w/conf.json");
    assert!(f.write_if_changed("{}").await.unwrap());
    let before = f.stat().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(!f.write_if_changed("{}").await.unwrap());
    let after = f.stat().await.unwrap().unwrap();
    assert_eq!(before.mtime, after.mtime, "an equal write must not be made");
    assert_eq!(f.read_text().await.unwrap(), "{}");
    // same size, other bytes
    assert!(f.write_if_changed("[]").await.unwrap());
    assert_eq!(f.read_text().await.unwrap(), "[]");
    assert!(f.write_if_changed("{\"a\": 1}").await.unwrap());
    assert_eq!(f.read_text().await.unwrap(), "{\"a\": 1}");
    b.node("w/d/x").write_text("x").await.unwrap();
    let e = b.node("w/d").write_if_changed("x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::IsADirectory, "{e}");
}

pub async fn user_metadata(k: Kind) {
    let b = backend(k).await;
    let f = b.node("m/r.pdf");
    f.write("%PDF-1.7").await.unwrap();
    assert!(f.metadata().await.unwrap().is_empty());
    // the POSIX attributes the daemon keeps beside the user metadata survive it
    let posix = PosixMeta {
        mode: Some(0o100600),
        uid: Some(1234),
        ..Default::default()
    };
    f.mount()
        .set_meta(f.path(), false, 8, &posix)
        .await
        .unwrap();
    let map: HashMap<String, String> = [
        ("author", "ada"),
        (
            match k {
                Kind::Azblob => "review_2",
                Kind::S3 => "x-review",
                _ => "x-review_2",
            },
            "2026-12-01 ok",
        ),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    f.set_metadata(map.clone()).await.unwrap();
    assert_eq!(f.metadata().await.unwrap(), map);
    let e = f.stat().await.unwrap().unwrap();
    assert_eq!((e.posix.mode, e.posix.uid), (Some(0o100600), Some(1234)));
    assert_eq!(f.read().await.unwrap(), b"%PDF-1.7");
    // replaced, not merged; and kept by the backend (a fresh manager reads it)
    // keys fold to lowercase, as S3 returns them
    f.set_metadata([("Author".to_string(), "bob".to_string())].into())
        .await
        .unwrap();
    let bob: HashMap<String, String> = [("author".to_string(), "bob".to_string())].into();
    let mut got = f.metadata().await.unwrap();
    if k == Kind::Gcs {
        // a dropped key is sent as null, which GCS deletes; fake-gcs-server keeps it as ""
        got.retain(|_, v| !v.is_empty());
    }
    assert_eq!(got, bob);
    if k != Kind::Memory {
        let again = AsyncStorageManager::new();
        again.configure(vec![b.config.clone()]).await.unwrap();
        let mut m = again.node("t:m/r.pdf").unwrap().metadata().await.unwrap();
        if k == Kind::Gcs {
            m.retain(|_, v| !v.is_empty());
        }
        assert_eq!(m, bob);
    }
    // what this backend's rule refuses beside the common ones
    let odd = match k {
        Kind::S3 => "a_b",
        Kind::Azblob => "a-b",
        _ => "a.b",
    };
    for bad in ["Mode", "a b", "", "é", odd] {
        let e = f
            .set_metadata([(bad.to_string(), "v".to_string())].into())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad}: {e}");
    }
    let twice: HashMap<String, String> = [
        ("k".to_string(), "1".to_string()),
        ("K".to_string(), "2".to_string()),
    ]
    .into();
    let e = f.set_metadata(twice).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let e = f
        .set_metadata([("k".to_string(), "two\nlines".to_string())].into())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(
        b.node("m").metadata().await.unwrap_err().kind(),
        ErrorKind::IsADirectory
    );
    let e = b
        .node("m/none")
        .set_metadata(HashMap::new())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(
        b.node("m/none").metadata().await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

pub async fn no_user_metadata(k: Kind) {
    let b = backend(k).await;
    let f = b.node("m/r.txt");
    f.write_text("x").await.unwrap();
    assert!(f.metadata().await.unwrap().is_empty());
    let e = f
        .set_metadata([("author".to_string(), "ada".to_string())].into())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("t:m/r.txt"), "{e}");
    assert_eq!(f.read_text().await.unwrap(), "x");
    assert!(!b.storage.capabilities("t").unwrap().metadata);
}

pub async fn presigned_urls(k: Kind) {
    let b = backend(k).await;
    let f = b.node("u/a b+c.txt");
    f.write_text("shared").await.unwrap();
    let url = f
        .url(Duration::from_secs(600))
        .await
        .unwrap()
        .expect("a presigned URL");
    let resp = reqwest::get(&url).await.unwrap();
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    assert_eq!(resp.text().await.unwrap(), "shared");
    assert!(b.storage.capabilities("t").unwrap().presign);
}

pub async fn no_urls(k: Kind) {
    let b = backend(k).await;
    let f = b.node("u/a.txt");
    f.write_text("x").await.unwrap();
    assert_eq!(f.url(Duration::from_secs(60)).await.unwrap(), None);
    assert!(!b.storage.capabilities("t").unwrap().presign);
}

pub async fn local_paths(k: Kind) {
    let b = backend(k).await;
    let f = b.node("l/doc.txt");
    f.write_text("draft").await.unwrap();
    let g = f.local_path(LocalPathMode::Read).await.unwrap();
    assert_eq!(std::fs::read_to_string(g.path()).unwrap(), "draft");
    assert_eq!(g.is_temporary(), k != Kind::Local);
    assert_eq!(g.path().extension().unwrap(), "txt");
    g.commit().await.unwrap();
    assert_eq!(f.read_text().await.unwrap(), "draft");
    // ReadWrite, committed
    let g = f.local_path(LocalPathMode::ReadWrite).await.unwrap();
    assert_eq!(std::fs::read_to_string(g.path()).unwrap(), "draft");
    std::fs::write(g.path(), "final").unwrap();
    g.commit().await.unwrap();
    assert_eq!(f.read_text().await.unwrap(), "final");
    if k != Kind::Local {
        // Write starts empty; dropped without commit, nothing is uploaded and the copy goes
        let g = f.local_path(LocalPathMode::Write).await.unwrap();
        assert_eq!(std::fs::read(g.path()).unwrap(), b"");
        std::fs::write(g.path(), "lost").unwrap();
        let p = g.path().to_path_buf();
        drop(g);
        assert!(!p.exists());
        assert_eq!(f.read_text().await.unwrap(), "final");
    }
    // a new file in a new directory
    let n = b.node("l/new/out.csv");
    let g = n.local_path(LocalPathMode::Write).await.unwrap();
    std::fs::write(g.path(), "a,b\n").unwrap();
    g.commit().await.unwrap();
    assert_eq!(n.read_text().await.unwrap(), "a,b\n");
    // 9 MiB: more than one chunk each way
    let big: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 253) as u8).collect();
    let n = b.node("l/big.bin");
    let g = n.local_path(LocalPathMode::Write).await.unwrap();
    std::fs::write(g.path(), &big).unwrap();
    g.commit().await.unwrap();
    let g = n.local_path(LocalPathMode::Read).await.unwrap();
    assert!(std::fs::read(g.path()).unwrap() == big);
    drop(g);
    let e = b
        .node("l/none")
        .local_path(LocalPathMode::Read)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = b
        .node("l")
        .local_path(LocalPathMode::Read)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::IsADirectory, "{e}");
    // a read-only mount refuses Write before downloading anything, and Read works
    let mut ro = b.config.clone().permissions(Permissions::ReadOnly);
    ro.name = "ro".into();
    if k != Kind::Memory {
        let s = AsyncStorageManager::new();
        s.configure(vec![ro]).await.unwrap();
        let n = s.node("ro:l/doc.txt").unwrap();
        let e = n.local_path(LocalPathMode::ReadWrite).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        let g = n.local_path(LocalPathMode::Read).await.unwrap();
        assert_eq!(std::fs::read_to_string(g.path()).unwrap(), "final");
    }
}

pub async fn versions(_: Kind) {
    let bucket = versioned_bucket().expect("GENRO_S3_VERSIONED");
    let s = AsyncStorageManager::new();
    let prefix = crate::common::unique("v");
    let cfg = MountConfig::s3("v", bucket)
        .endpoint_url(crate::common::s3_endpoint())
        .prefix(&prefix)
        .access_key(crate::common::ACCESS_KEY)
        .secret_key(crate::common::SECRET_KEY);
    s.configure(vec![cfg]).await.unwrap();
    let f = s.node("v:doc.txt").unwrap();
    for body in ["one", "two", "three"] {
        f.write_text(body).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    s.node("v:doc.txt.bak")
        .unwrap()
        .write_text("x")
        .await
        .unwrap();
    let vs = f.versions().await.unwrap();
    assert_eq!(vs.len(), 3, "{vs:?}");
    assert!(
        vs[0].is_latest && !vs[1].is_latest && !vs[2].is_latest,
        "{vs:?}"
    );
    assert!(vs[0].mtime >= vs[1].mtime && vs[1].mtime >= vs[2].mtime);
    assert_eq!(vs.iter().map(|v| v.size).collect::<Vec<_>>(), [5, 3, 3]);
    let oldest = f.version(&vs[2].id);
    assert_eq!(oldest.read_text().await.unwrap(), "one");
    assert_eq!(f.version(&vs[1].id).read_text().await.unwrap(), "two");
    assert_eq!(oldest.size().await.unwrap(), 3);
    assert_eq!(oldest.md5hash().await.unwrap(), md5_of(b"one"));
    assert_eq!(oldest.read_range(1, 3).await.unwrap(), &b"ne"[..]);
    assert_eq!(f.read_text().await.unwrap(), "three");
    let e = oldest.write_text("no").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ReadOnly, "{e}");
    assert_eq!(
        oldest.delete().await.unwrap_err().kind(),
        ErrorKind::ReadOnly
    );
    let e = f.version("no-such-version").read().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    // restoring an old version is a copy from it
    let restored = s.node("v:restored.txt").unwrap();
    oldest.copy(&restored).await.unwrap();
    assert_eq!(restored.read_text().await.unwrap(), "one");
    let g = oldest.local_path(LocalPathMode::Read).await.unwrap();
    assert_eq!(std::fs::read_to_string(g.path()).unwrap(), "one");
    assert!(s.capabilities("v").unwrap().versions);
    // a deleted file keeps its versions (delete markers are not listed)
    f.delete().await.unwrap();
    assert!(!f.exists().await.unwrap());
    assert_eq!(f.versions().await.unwrap().len(), 3);
    assert_eq!(f.version(&vs[0].id).read_text().await.unwrap(), "three");
}

pub async fn no_versions(k: Kind) {
    let b = backend(k).await;
    let f = b.node("v.txt");
    f.write_text("one").await.unwrap();
    f.write_text("two").await.unwrap();
    assert!(f.versions().await.unwrap().is_empty());
    assert_eq!(
        f.version("x").read().await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(!b.storage.capabilities("t").unwrap().versions);
}

pub async fn relative_mounts(k: Kind) {
    let b = backend(k).await;
    let s = &b.storage;
    b.node("2026/keep.txt").write_text("sibling").await.unwrap();
    s.configure(vec![
        MountConfig::relative("rel", "t", "2026/reports"),
        MountConfig::relative("ro", "t", "/2026//reports/").permissions(Permissions::ReadOnly),
        MountConfig::relative("deep", "rel", "q1"),
    ])
    .await
    .unwrap();
    let n = |p: &str| s.node(p).unwrap();
    n("rel:q1/a.txt").write_text("A").await.unwrap();
    assert_eq!(
        b.node("2026/reports/q1/a.txt").read_text().await.unwrap(),
        "A"
    );
    assert_eq!(n("deep:a.txt").read_text().await.unwrap(), "A");
    assert_eq!(n("ro:q1/a.txt").read_text().await.unwrap(), "A");
    let names: Vec<String> = n("rel:")
        .list()
        .await
        .unwrap()
        .iter()
        .map(|x| x.basename().to_string())
        .collect();
    assert_eq!(names, ["q1"]);
    // narrowed: read-only
    let e = n("ro:q1/b.txt").write_text("no").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert_eq!(
        n("ro:q1/a.txt").delete().await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert!(!s.capabilities("ro").unwrap().write);
    // paths cannot climb out
    for bad in [
        "rel:..",
        "rel:../keep.txt",
        "rel:q1/../../keep.txt",
        "deep:../../keep.txt",
    ] {
        assert_eq!(
            s.node(bad).unwrap_err().kind(),
            ErrorKind::InvalidPath,
            "{bad}"
        );
    }
    assert!(!n("rel:/keep.txt").exists().await.unwrap());
    // moves, copies and a tree delete stay inside
    n("rel:q1/a.txt").copy(&n("rel:q2/a.txt")).await.unwrap();
    n("rel:q2/a.txt").move_to(&n("rel:q2/b.txt")).await.unwrap();
    assert_eq!(
        b.node("2026/reports/q2/b.txt").read_text().await.unwrap(),
        "A"
    );
    n("rel:q2").delete().await.unwrap();
    assert!(!b.node("2026/reports/q2").exists().await.unwrap());
    assert_eq!(
        b.node("2026/keep.txt").read_text().await.unwrap(),
        "sibling"
    );
    assert_eq!(n("rel:q1/a.txt").md5hash().await.unwrap(), md5_of(b"A"));
    // wider than the parent: refused, naming the key; unknown parent: named too
    let mut tro = b.config.clone().permissions(Permissions::ReadOnly);
    tro.name = "tro".into();
    let s2 = AsyncStorageManager::new();
    s2.configure(vec![tro]).await.unwrap();
    let e = s2
        .configure(vec![
            MountConfig::relative("w", "tro", "x").permissions(Permissions::Delete)
        ])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(
        e.to_string().contains("mount \"w\": key \"permissions\""),
        "{e}"
    );
    s2.configure(vec![MountConfig::relative("inherits", "tro", "2026")])
        .await
        .unwrap();
    assert!(!s2.capabilities("inherits").unwrap().write);
    if k != Kind::Memory {
        // (a memory config built again is a new, empty store)
        assert_eq!(
            s2.node("inherits:keep.txt")
                .unwrap()
                .read_text()
                .await
                .unwrap(),
            "sibling"
        );
    }
    let e = s2
        .configure(vec![MountConfig::relative("orphan", "nope", "x")])
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("mount \"orphan\": key \"parent\""),
        "{e}"
    );
    let e = s2
        .configure(vec![MountConfig::relative("up", "tro", "../x")])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("key \"path\""), "{e}");
}

pub async fn capabilities_as_data(k: Kind) {
    let b = backend(k).await;
    let c = b.storage.capabilities("t").unwrap();
    assert!(c.read && c.write && c.delete && c.list, "{c:?}");
    assert_eq!(c.metadata, keeps_metadata(k), "{c:?}");
    assert_eq!(c.presign, presigns(k) || k == Kind::Gcs, "{c:?}");
    assert_eq!(c.local_path, k == Kind::Local, "{c:?}");
    assert_eq!(
        c.posix,
        k != Kind::Sftp && k != Kind::Ftp && k != Kind::Webdav,
        "{c:?}"
    );
    assert!(c.names().contains(&"read"));
    let e = b.storage.capabilities("nope").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

pub async fn one_request_per_small_write_and_read(k: Kind) {
    let b = backend(k).await;
    let f = b.node("req/a.txt");
    let c = f.mount().backend_requests();
    let total = || c.snapshot().iter().map(|(_, n)| n).sum::<u64>();
    let before = total();
    f.write(vec![1u8; 4096]).await.unwrap();
    if k.is_object() {
        // nothing asked before the PUT
        assert_eq!(total() - before, 1, "write: {:?}", c.snapshot());
    }
    let before = total();
    assert_eq!(f.read().await.unwrap(), vec![1u8; 4096]);
    assert_eq!(total() - before, 1, "read: {:?}", c.snapshot());
    // what a failed read was is asked after it
    let e = b.node("req/none").read().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = b.node("req").read().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::IsADirectory, "{e}");
    let e = b.node("").write("x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::IsADirectory, "{e}");
    // an empty file and one of several chunks read whole
    let g = b.node("req/empty");
    g.write(Vec::new()).await.unwrap();
    assert!(g.read().await.unwrap().is_empty());
    let big: Vec<u8> = (0..(5u32 << 20)).map(|i| (i % 249) as u8).collect();
    let h = b.node("req/big");
    h.write(big.clone()).await.unwrap();
    assert!(h.read().await.unwrap() == big);
}

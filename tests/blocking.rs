//! The blocking `StorageManager`: same API, its own runtime, safe inside another runtime.

use genro_storage::{ErrorKind, MountConfig, StorageManager};

#[test]
fn blocking_api_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let s = StorageManager::new();
    s.configure(vec![
        MountConfig::local("local", tmp.path()),
        MountConfig::memory("mem"),
    ])
    .unwrap();
    let n = s.node("local:dir/test.txt").unwrap();
    n.write(b"Hello".to_vec()).unwrap();
    assert_eq!(n.read().unwrap(), b"Hello");
    assert!(n.exists().unwrap() && n.is_file().unwrap() && !n.is_dir().unwrap());
    assert_eq!(n.size().unwrap(), 5);
    n.mtime().unwrap();
    let m = s.node("mem:copy.txt").unwrap();
    n.copy(&m).unwrap();
    assert_eq!(m.read_text().unwrap(), "Hello");
    let names: Vec<String> = n
        .parent()
        .list()
        .unwrap()
        .iter()
        .map(|c| c.basename().to_string())
        .collect();
    assert_eq!(names, ["test.txt"]);
    m.move_to(&s.node("mem:moved.txt").unwrap()).unwrap();
    assert!(!m.exists().unwrap());
    n.parent().delete().unwrap();
    assert!(!n.exists().unwrap());
    assert!(s.node("nope:x").is_err());
    s.close_all().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_api_inside_a_multi_thread_runtime_works() {
    let s = StorageManager::new();
    s.configure(vec![MountConfig::memory("mem")]).unwrap();
    let n = s.node("mem:a.txt").unwrap();
    n.write_text("inside").unwrap();
    assert_eq!(n.read_text().unwrap(), "inside");
    drop(s); // dropping its runtime here must not panic
}

#[tokio::test(flavor = "current_thread")]
async fn blocking_api_inside_a_current_thread_runtime_is_a_clear_error() {
    let s = StorageManager::new();
    let e = s.configure(vec![MountConfig::memory("mem")]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Runtime);
    assert!(e.to_string().contains("AsyncStorageManager"), "{e}");
}

/// `StorageManager::new()` is infallible, as `AsyncStorageManager::new()` is (the seed's
/// `StorageManager()` translates to it): the runtime starts at the first call that needs it,
/// also when several threads make that call together; a manager never used starts none.
#[test]
fn new_is_infallible_and_the_runtime_starts_on_first_use() {
    let unused = StorageManager::new();
    drop(unused);
    let s = StorageManager::default();
    s.configure(vec![MountConfig::memory("m")]).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                let n = s.node(&format!("m:t{i}")).unwrap();
                n.write_text("x").unwrap();
                n.read_text().unwrap()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), "x");
    }
}

/// The blocking node has the library's breadth too: hashes, metadata, URLs, local paths,
/// names, versions, capabilities, relative mounts.
#[test]
fn blocking_node_has_the_same_breadth() {
    use genro_storage::LocalPathMode;
    let dir = tempfile::tempdir().unwrap();
    let storage = StorageManager::new();
    storage
        .configure(vec![
            MountConfig::memory("mem"),
            MountConfig::local("site", dir.path()).base_url("http://localhost:8000/s"),
            MountConfig::relative("sub", "mem", "a"),
        ])
        .unwrap();
    let f = storage.node("mem:a/hello.txt").unwrap();
    f.write_text("hello").unwrap();
    assert_eq!(f.md5hash().unwrap(), "5d41402abc4b2a76b9719d911017c592");
    assert!(!f.write_if_changed("hello").unwrap());
    f.set_metadata([("k".to_string(), "v".to_string())].into())
        .unwrap();
    assert_eq!(f.metadata().unwrap()["k"], "v");
    assert!(f.versions().unwrap().is_empty());
    assert_eq!(f.url(std::time::Duration::from_secs(1)).unwrap(), None);
    assert_eq!(
        (f.mimetype(), f.ext(), f.dirname()),
        ("text/plain".to_string(), "txt", "mem:a".to_string())
    );
    let g = f.local_path(LocalPathMode::ReadWrite).unwrap();
    assert!(g.is_temporary());
    std::fs::write(g.path(), "bye").unwrap();
    g.commit().unwrap();
    assert_eq!(
        storage.node("sub:hello.txt").unwrap().read_text().unwrap(),
        "bye"
    );
    let s = storage.node("site:x y.txt").unwrap();
    assert_eq!(
        s.url(std::time::Duration::from_secs(1)).unwrap().as_deref(),
        Some("http://localhost:8000/s/x%20y.txt")
    );
    assert!(storage.capabilities("site").unwrap().local_path);
    assert!(storage.capabilities("sub").unwrap().metadata);
    assert!(storage.remove_mount("site") && !storage.remove_mount("site"));
    assert!(!storage.has_mount("site") && storage.node("site:x").is_err());
}

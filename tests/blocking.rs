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

//! The opendal-service protocols against servers on 127.0.0.1: read-only HTTP over the
//! in-process WebDAV server's plain GET (ranged reads; writes refused; no listing).

mod common;

use genro_storage::{AsyncStorageManager, ErrorKind, MountConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_mount_reads_ranges_and_refuses_changes() {
    let (endpoint, dir) = common::dav_server();
    let sub = format!("http-{}", std::process::id());
    std::fs::create_dir_all(dir.join(&sub).join("d")).unwrap();
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join(&sub).join("d/f.bin"), &body).unwrap();
    let storage = AsyncStorageManager::new();
    storage
        .configure(vec![
            MountConfig::http("h", endpoint).option("root", format!("/{sub}/"))
        ])
        .await
        .unwrap();
    let f = storage.node("h:d/f.bin").unwrap();
    assert!(f.exists().await.unwrap());
    assert_eq!(f.size().await.unwrap(), 100_000);
    assert_eq!(f.read().await.unwrap(), body);
    assert_eq!(
        &f.read_range(1000, 1010).await.unwrap()[..],
        &body[1000..1010]
    );
    assert!(!storage.node("h:d/none").unwrap().exists().await.unwrap());
    let e = f.write("x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ReadOnly, "{e}");
    let e = f.delete().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ReadOnly, "{e}");
}

/// A server that ignores Range (Python's http.server answers 200 with the whole file): a
/// read at an offset fails with Unsupported rather than returning the file's first bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_mount_refuses_a_server_that_ignores_range() {
    let dir = common::servers::scratch("httpd");
    let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("f.bin"), &body).unwrap();
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(dir.join("docs/g.txt"), "below").unwrap();
    let port = common::servers::free_port(0);
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
        .arg(&dir)
        .arg(port.to_string());
    let mut server = common::servers::Proc::spawn(cmd, &dir.join("httpd.log")).unwrap();
    server
        .wait_port(
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            std::time::Duration::from_secs(10),
        )
        .unwrap();
    let storage = AsyncStorageManager::new();
    storage
        .configure(vec![MountConfig::http(
            "h",
            format!("http://127.0.0.1:{port}"),
        )])
        .await
        .unwrap();
    let f = storage.node("h:f.bin").unwrap();
    assert_eq!(f.read().await.unwrap(), body);
    let e = f.read_range(1000, 1010).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("Range"), "{e}");
    // http.server redirects `docs` to `docs/` (as Apache's DirectorySlash does): a directory,
    // and a missing name is missing, not a directory
    assert!(storage.node("h:docs").unwrap().is_dir().await.unwrap());
    assert_eq!(
        storage
            .node("h:docs/g.txt")
            .unwrap()
            .read_text()
            .await
            .unwrap(),
        "below"
    );
    assert!(!storage.node("h:nothing").unwrap().exists().await.unwrap());
}

//! `examples/axum_server.rs`, started on 127.0.0.1 and driven with a real HTTP client:
//! upload, download with size and mtime, 404, a parallel backup with a status per file, and
//! `close_all` on graceful shutdown.

#[allow(dead_code)]
#[path = "../examples/axum_server.rs"]
mod axum_server;

use axum_server::{BackupStatus, Uploaded};
use genro_storage::{AsyncStorageManager, MountConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_download_backup_and_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = AsyncStorageManager::new();
    storage
        .configure(vec![
            MountConfig::memory("uploads"),
            MountConfig::local("backups", tmp.path().join("backups")).create(true),
        ])
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(axum_server::serve(listener, storage.clone(), async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();

    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let r = http
        .post(format!("{base}/upload/docs/a.bin"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let up: Uploaded = r.json().await.unwrap();
    assert_eq!(
        up,
        Uploaded {
            path: "uploads:docs/a.bin".into(),
            size: 100_000
        }
    );
    http.post(format!("{base}/upload/b.txt"))
        .body("bee")
        .send()
        .await
        .unwrap();

    let r = http
        .get(format!("{base}/files/docs/a.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "100000");
    let modified = r.headers()["last-modified"].to_str().unwrap().to_string();
    assert!(
        modified.ends_with(" GMT") && modified.len() == 29,
        "{modified}"
    );
    assert!(r.bytes().await.unwrap() == body);
    assert_eq!(
        http.get(format!("{base}/files/nope.txt"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        http.get(format!("{base}/files/docs"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );

    let r = http
        .post(format!("{base}/backup"))
        .json(&serde_json::json!({"paths": ["docs/a.bin", "b.txt", "missing.txt"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let statuses: Vec<BackupStatus> = r.json().await.unwrap();
    let st: Vec<(&str, &str)> = statuses
        .iter()
        .map(|s| (s.path.as_str(), s.status.as_str()))
        .collect();
    assert_eq!(
        st,
        [
            ("docs/a.bin", "ok"),
            ("b.txt", "ok"),
            ("missing.txt", "error")
        ]
    );
    assert!(statuses[2]
        .error
        .as_deref()
        .unwrap()
        .contains("missing.txt"));
    assert!(std::fs::read(tmp.path().join("backups/docs/a.bin")).unwrap() == body);

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(
        storage.mount_names().is_empty(),
        "close_all ran on shutdown"
    );
}

#[test]
fn http_dates() {
    let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_685_324);
    assert_eq!(axum_server::http_date(t), "Thu, 26 Nov 2026 09:28:44 GMT");
}

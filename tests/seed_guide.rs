//! genro-storage's (Python) README guide, translated line by line: its "Quick Example"
//! (sync) and "Async Usage", each Python line as a comment above its Rust form. What Rust
//! leaves out on purpose (base64 mounts, `call`, `serve`, callable paths, `to_base64`,
//! `fill_from_url`) is named where the guide uses it; the README's "Coming from
//! genro-storage (Python)" table gives the reasons.

mod common;

use std::time::Duration;

use genro_storage::{
    AsyncStorageManager, CopyOptions, LocalPathMode, MountConfig, Permissions, Skip, StorageManager,
};

/// The S3 mount of the guide, on the tests' S3 server.
fn uploads(name: &str) -> MountConfig {
    common::s3_mount(name, &common::unique("guide"))
}

#[test]
fn quick_example_sync() {
    let home = tempfile::tempdir().unwrap();
    // storage = StorageManager()
    let storage = StorageManager::new();
    // storage.configure([
    //     {'name': 'home', 'protocol': 'local', 'base_path': '/home/user'},
    //     {'name': 'uploads', 'protocol': 's3', 'bucket': 'my-app-uploads'},
    //     {'name': 'backups', 'protocol': 'gcs', ..., 'permissions': 'readwrite'},
    //     {'name': 'public', 'protocol': 'http', ..., 'permissions': 'readonly'},
    //     {'name': 'data', 'protocol': 'base64'}   (not in Rust: see the README)
    // ])
    // (backups: a memory mount stands in for GCS here; public: read-only)
    storage
        .configure(vec![
            MountConfig::local("home", home.path()),
            uploads("uploads"),
            MountConfig::memory("backups").permissions(Permissions::ReadWrite),
            MountConfig::memory("public").permissions(Permissions::ReadOnly),
        ])
        .unwrap();
    storage
        .node("uploads:users/123/avatar.jpg")
        .unwrap()
        .write(vec![0xffu8, 0xd8, 0xff, 0xe0])
        .unwrap();

    // node = storage.node('uploads:users/123/avatar.jpg')
    let node = storage.node("uploads:users/123/avatar.jpg").unwrap();
    // if node.exists():
    if node.exists().unwrap() {
        //     node.copy_to(storage.node('home:cache/avatar.jpg'))
        node.copy(&storage.node("home:cache/avatar.jpg").unwrap())
            .unwrap();
        //     data = node.read_bytes()
        let data = node.read().unwrap();
        assert_eq!(data, [0xff, 0xd8, 0xff, 0xe0]);
        //     node.copy_to(storage.node('backups:avatars/user_123.jpg'))
        node.copy(&storage.node("backups:avatars/user_123.jpg").unwrap())
            .unwrap();
    }
    assert!(home.path().join("cache/avatar.jpg").exists());

    // docs = storage.node('home:documents')
    // s3_backup = storage.node('uploads:backup/documents')
    let docs = storage.node("home:documents").unwrap();
    for i in 0..3 {
        docs.child(&format!("d{i}.txt"))
            .unwrap()
            .write_text(&format!("doc {i}"))
            .unwrap();
    }
    let s3_backup = storage.node("uploads:backup/documents").unwrap();
    // docs.copy_to(s3_backup, skip='exists')
    let r = docs
        .copy_with(
            &s3_backup,
            &CopyOptions {
                skip: Skip::Exists,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.copied, 3);
    // docs.copy_to(s3_backup, skip='size')
    let r = docs
        .copy_with(
            &s3_backup,
            &CopyOptions {
                skip: Skip::Size,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((r.copied, r.skipped.len()), (0, 3));
    // docs.copy_to(s3_backup, skip='hash')
    let r = docs
        .copy_with(
            &s3_backup,
            &CopyOptions {
                skip: Skip::Hash,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((r.copied, r.skipped.len()), (0, 3));

    // video = storage.node('uploads:video.mp4')
    // video.call('ffmpeg', ...)   (not in Rust: local_path and std::process::Command)
    // with video.local_path(mode='r') as local_path:
    //     subprocess.run(['ffmpeg', '-i', local_path, 'output.mp4'])
    let video = storage.node("uploads:video.mp4").unwrap();
    video.write(b"not really a video".to_vec()).unwrap();
    let local = video.local_path(LocalPathMode::Read).unwrap();
    let out = std::process::Command::new("wc")
        .arg("-c")
        .arg(local.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("18 "));
    drop(local);

    // node.serve(environ, ...)   (not in Rust: examples/axum_server.rs serves files)

    // doc = storage.node('uploads:report.pdf')
    // print(doc.mimetype)  # 'application/pdf'
    let doc = storage.node("uploads:report.pdf").unwrap();
    assert_eq!(doc.mimetype(), "application/pdf");

    // storage.configure([{'name': 'user', 'protocol': 'local', 'base_path': get_user_storage}])
    // (callable paths are not in Rust: configure a mount per user, or a relative mount)
    storage
        .configure(vec![MountConfig::relative("user", "home", "users/123")])
        .unwrap();
    storage
        .node("user:notes.txt")
        .unwrap()
        .write_text("mine")
        .unwrap();
    assert!(home.path().join("users/123/notes.txt").exists());

    // file = storage.node('uploads:document.pdf')
    // file.set_metadata({'Author': 'John Doe', 'Department': 'Engineering'})
    let file = storage.node("uploads:document.pdf").unwrap();
    file.write(b"%PDF".to_vec()).unwrap();
    file.set_metadata(
        [("Author", "John Doe"), ("Department", "Engineering")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
    .unwrap();
    let m = file.metadata().unwrap();
    assert_eq!(m["author"], "John Doe");
    assert_eq!(m["department"], "Engineering");

    // url = file.url(expires_in=3600)  # S3 presigned URL
    let url = file.url(Duration::from_secs(3600)).unwrap();
    assert!(url.is_some_and(|u| u.contains("X-Amz-Signature")));

    // img.to_base64(); remote.fill_from_url(...)   (not in Rust: see the README)
    storage.close_all().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_usage() {
    let cache = tempfile::tempdir().unwrap();
    // storage = StorageManager()
    let storage = AsyncStorageManager::new();
    // storage.configure([
    //     {'name': 'uploads', 'protocol': 's3', 'bucket': 'my-app-uploads'},
    //     {'name': 'cache', 'protocol': 'local', 'base_path': '/tmp/cache'}
    // ])
    storage
        .configure(vec![
            uploads("uploads"),
            MountConfig::local("cache", cache.path()),
            MountConfig::memory("backups"),
        ])
        .await
        .unwrap();
    storage
        .node("uploads:in/a.dat")
        .unwrap()
        .write(b"abc".to_vec())
        .await
        .unwrap();

    // async def process_file(file_path: str):
    let process_file = |file_path: &str| {
        let storage = storage.clone();
        let file_path = file_path.to_string();
        async move {
            // node = storage.node(f'uploads:{file_path}')
            let node = storage.node(&format!("uploads:{file_path}"))?;
            // if await node.exists():
            if node.exists().await? {
                // data = await node.read_bytes()
                let data = node.read().await?;
                // processed = process_data(data)
                let processed: Vec<u8> = data.iter().map(|b| b.to_ascii_uppercase()).collect();
                // cache_node = storage.node('cache:processed.dat')
                let cache_node = storage.node("cache:processed.dat")?;
                // await cache_node.write_bytes(processed)
                cache_node.write(processed.clone()).await?;
                // return processed
                return Ok(processed);
            }
            // raise FileNotFoundError(file_path)
            Err(genro_storage::Error::new(
                genro_storage::ErrorKind::NotFound,
                file_path,
                "no such file",
            ))
        }
    };
    assert_eq!(process_file("in/a.dat").await.unwrap(), b"ABC");
    assert_eq!(
        process_file("in/none").await.unwrap_err().kind(),
        genro_storage::ErrorKind::NotFound
    );

    // @app.get("/files/{filepath:path}") ... return {"data": ..., "size": ..., "mime_type": node.mimetype}
    let node = storage.node("uploads:in/a.dat").unwrap();
    assert!(node.exists().await.unwrap());
    let (data, size, mime) = (
        node.read().await.unwrap(),
        node.size().await.unwrap(),
        node.mimetype(),
    );
    assert_eq!(
        (data.len() as u64, size, mime.as_str()),
        (3, 3, "application/octet-stream")
    );

    // async def backup_files(file_list):
    //     async def backup_one(filepath):
    //         source = storage.node(f'uploads:{filepath}')
    //         target = storage.node(f'backups:{filepath}')
    //         data = await source.read_bytes()
    //         await target.write_bytes(data)
    //     await asyncio.gather(*[backup_one(f) for f in file_list])
    let file_list: Vec<String> = (0..10).map(|i| format!("many/{i}.txt")).collect();
    for f in &file_list {
        storage
            .node(&format!("uploads:{f}"))
            .unwrap()
            .write_text(f)
            .await
            .unwrap();
    }
    let backup_one = |filepath: String| {
        let storage = storage.clone();
        async move {
            let source = storage.node(&format!("uploads:{filepath}"))?;
            let target = storage.node(&format!("backups:{filepath}"))?;
            let data = source.read().await?;
            target.write(data).await
        }
    };
    for r in futures::future::join_all(file_list.iter().cloned().map(backup_one)).await {
        r.unwrap();
    }
    assert_eq!(
        storage
            .node("backups:many/7.txt")
            .unwrap()
            .read_text()
            .await
            .unwrap(),
        "many/7.txt"
    );
}

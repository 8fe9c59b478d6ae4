//! Test backends: a local temp dir, a memory mount, and S3 on a real server on 127.0.0.1
//! (s3s-fs started in-process, or the server named by `GENRO_S3_ENDPOINT`, e.g. moto).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use genro_storage::{AsyncStorageManager, MountConfig};

pub const ACCESS_KEY: &str = "genro-test";
pub const SECRET_KEY: &str = "genro-test-secret";
pub const BUCKET: &str = "genro-test";

/// Which backend a suite case runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Local,
    Memory,
    S3,
}

/// A configured manager with one mount called `t` on the chosen backend, plus what keeps it alive.
pub struct Backend {
    pub kind: Kind,
    pub storage: AsyncStorageManager,
    pub config: MountConfig,
    pub tmp: tempfile::TempDir,
}

impl Backend {
    pub fn node(&self, path: &str) -> genro_storage::AsyncNode {
        self.storage.node(&format!("t:{path}")).unwrap()
    }
    /// True when the S3 server keeps directory markers and `x` beside `x/y` (moto does,
    /// s3s-fs does not). Local and memory always do what a filesystem does.
    pub fn faithful(&self) -> bool {
        self.kind != Kind::S3 || external_s3().is_some()
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(tag: &str) -> String {
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The mount config for a fresh, empty namespace on `kind`.
pub fn mount_config(kind: Kind, name: &str, tmp: &tempfile::TempDir) -> MountConfig {
    match kind {
        Kind::Local => {
            let root = tmp.path().join(unique("root"));
            std::fs::create_dir_all(&root).unwrap();
            MountConfig::local(name, root)
        }
        Kind::Memory => MountConfig::memory(name),
        Kind::S3 => s3_mount(name, &unique("p")),
    }
}

pub fn s3_mount(name: &str, prefix: &str) -> MountConfig {
    MountConfig::s3(name, BUCKET)
        .endpoint_url(s3_endpoint())
        .prefix(prefix)
        .access_key(ACCESS_KEY)
        .secret_key(SECRET_KEY)
}

pub async fn backend(kind: Kind) -> Backend {
    let tmp = tempfile::tempdir().unwrap();
    let config = mount_config(kind, "t", &tmp);
    let storage = AsyncStorageManager::new();
    storage.configure(vec![config.clone()]).await.unwrap();
    Backend {
        kind,
        storage,
        config,
        tmp,
    }
}

/// The endpoint of an S3 server started outside the tests (moto in `.ci/run`).
pub fn external_s3() -> Option<String> {
    std::env::var("GENRO_S3_ENDPOINT")
        .ok()
        .filter(|s| !s.is_empty())
}

/// The S3 endpoint the tests use: the external one, or s3s-fs started once per test binary
/// on its own thread and runtime. Either must answer; a test never goes on without it.
pub fn s3_endpoint() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            let endpoint = match external_s3() {
                Some(e) => e,
                None => start_s3s_fs(),
            };
            let addr: SocketAddr = endpoint
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .parse()
                .unwrap_or_else(|e| {
                    panic!("GENRO_S3_ENDPOINT {endpoint:?} is not http://IP:PORT: {e}")
                });
            create_bucket(addr);
            endpoint
        })
        .clone()
}

fn start_s3s_fs() -> String {
    let dir = tempfile::tempdir().unwrap().keep();
    std::fs::create_dir_all(dir.join(BUCKET)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("s3s-fs".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                use hyper_util::rt::{TokioExecutor, TokioIo};
                use hyper_util::server::conn::auto::Builder as ConnBuilder;
                let fs = s3s_fs::FileSystem::new(&dir).expect("s3s-fs root");
                let service = {
                    let mut b = s3s::service::S3ServiceBuilder::new(fs);
                    b.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
                    b.build()
                };
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind 127.0.0.1 for the test S3 server");
                tx.send(listener.local_addr().unwrap()).unwrap();
                let http = ConnBuilder::new(TokioExecutor::new());
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        continue;
                    };
                    let conn = http
                        .serve_connection(TokioIo::new(socket), service.clone())
                        .into_owned();
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                }
            });
        })
        .unwrap();
    let addr = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the in-process S3 server (s3s-fs) did not start");
    format!("http://{addr}")
}

/// Create the test bucket with a plain HTTP PUT (moto accepts it unsigned; s3s-fs has it
/// already as a directory and answers an error we ignore). Fails when nothing listens.
fn create_bucket(addr: SocketAddr) {
    let mut last = None;
    for _ in 0..50 {
        match TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1)) {
            Ok(mut s) => {
                let req = format!(
                    "PUT /{BUCKET} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                s.write_all(req.as_bytes()).unwrap();
                let mut resp = String::new();
                let _ = s.read_to_string(&mut resp);
                return;
            }
            Err(e) => {
                last = Some(e);
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
    panic!("cannot reach the S3 server at {addr}: {last:?}");
}

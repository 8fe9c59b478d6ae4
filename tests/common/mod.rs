//! Test backends: a local temp dir, a memory mount, S3 on a real server on 127.0.0.1 (s3s-fs
//! started in-process, or the server named by `GENRO_S3_ENDPOINT`, e.g. moto or Ceph RGW),
//! WebDAV (dav-server, in-process), and SFTP, FTP, Azure Blob and GCS on servers started as
//! child processes (servers.rs).
#![allow(dead_code)]

pub mod servers;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use genro_storage::{AsyncStorageManager, MountConfig};

pub const ACCESS_KEY: &str = "genro-test";
pub const SECRET_KEY: &str = "genro-test-secret";
pub const BUCKET: &str = "genro-test";

/// The whole response (status line, headers, body) of a plain HTTP GET of `path` on
/// 127.0.0.1:`port` (the daemon's `--metrics` endpoint).
pub fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Which backend a suite case runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Local,
    Memory,
    S3,
    /// WebDAV on dav-server (Rust, in-process) over a temp dir.
    Webdav,
    /// SFTP on sshd.
    Sftp,
    /// FTP on pyftpdlib.
    Ftp,
    /// Azure Blob on Azurite.
    Azblob,
    /// GCS on fake-gcs-server.
    Gcs,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Local,
        Kind::Memory,
        Kind::S3,
        Kind::Webdav,
        Kind::Sftp,
        Kind::Ftp,
        Kind::Azblob,
        Kind::Gcs,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Kind::Local => "local",
            Kind::Memory => "memory",
            Kind::S3 => "s3",
            Kind::Webdav => "webdav",
            Kind::Sftp => "sftp",
            Kind::Ftp => "ftp",
            Kind::Azblob => "azblob",
            Kind::Gcs => "gcs",
        }
    }
    /// Start (once per test binary) the server this backend needs; the error says why not.
    pub fn server(self) -> Result<(), String> {
        match self {
            Kind::Sftp => servers::sftp().map(drop),
            Kind::Ftp => servers::ftp().map(drop),
            Kind::Azblob => servers::azurite().map(drop),
            Kind::Gcs => servers::gcs().map(drop),
            _ => Ok(()),
        }
    }
    /// Install this backend's server program if it is missing (scripts/test-servers.sh).
    pub fn provision(self) -> Result<(), String> {
        match self {
            Kind::Sftp | Kind::Ftp | Kind::Azblob | Kind::Gcs => servers::provision(),
            _ => Ok(()),
        }
    }
    /// Object stores: prefixes, not directories (an empty directory is a marker).
    pub fn is_object(self) -> bool {
        matches!(self, Kind::S3 | Kind::Azblob | Kind::Gcs)
    }
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

pub fn unique(tag: &str) -> String {
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
        Kind::Webdav => {
            let (endpoint, dir) = dav_server();
            let sub = unique("dav");
            std::fs::create_dir_all(dir.join(&sub)).unwrap();
            MountConfig::webdav(name, endpoint).option("root", format!("/{sub}/"))
        }
        Kind::Sftp => {
            let s = servers::sftp().unwrap_or_else(|e| panic!("SFTP test server: {e}"));
            let root = s.data.join(unique("sftp"));
            std::fs::create_dir_all(&root).unwrap();
            MountConfig::sftp(name, &s.endpoint)
                .option("user", &s.user)
                .option("key", s.key.to_str().unwrap())
                .option("known_hosts_strategy", "accept")
                .option("root", root.to_str().unwrap())
        }
        Kind::Ftp => {
            let s = servers::ftp().unwrap_or_else(|e| panic!("FTP test server: {e}"));
            let sub = unique("ftp");
            std::fs::create_dir_all(s.data.join(&sub)).unwrap();
            MountConfig::ftp(name, &s.endpoint)
                .option("user", servers::FTP_USER)
                .secret("password", servers::FTP_PASSWORD)
                .option("root", format!("/{sub}"))
        }
        Kind::Azblob => {
            let s = servers::azurite().unwrap_or_else(|e| panic!("Azure test server: {e}"));
            MountConfig::azblob(name, &s.endpoint, servers::AZURE_CONTAINER)
                .option("account_name", servers::AZURE_ACCOUNT)
                .secret("account_key", servers::AZURE_KEY)
                .option("root", format!("/{}/", unique("az")))
        }
        Kind::Gcs => {
            let s = servers::gcs().unwrap_or_else(|e| panic!("GCS test server: {e}"));
            MountConfig::gcs(name, servers::GCS_BUCKET)
                .option("endpoint", &s.endpoint)
                .option("allow_anonymous", "true")
                .option("root", format!("/{}/", unique("gcs")))
                // fake-gcs-server has neither GCS's XML multipart nor its batch endpoint
                .multipart(false)
                .batch_delete(false)
        }
    }
}

/// A WebDAV server (dav-server's LocalFs) started once per test binary on 127.0.0.1, on its
/// own thread and runtime, serving a temp dir: (endpoint, the dir). It also answers plain
/// GET with ranges, which the read-only HTTP mounts use.
pub fn dav_server() -> (String, std::path::PathBuf) {
    static SERVER: OnceLock<(String, std::path::PathBuf)> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let dir = servers::scratch("dav");
            let served = dir.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("dav-server".into())
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async move {
                        use hyper_util::rt::{TokioExecutor, TokioIo};
                        use hyper_util::server::conn::auto::Builder as ConnBuilder;
                        let dav = dav_server::DavHandler::builder()
                            .filesystem(dav_server::localfs::LocalFs::new(
                                &served, false, false, false,
                            ))
                            .locksystem(dav_server::fakels::FakeLs::new())
                            .build_handler();
                        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                            .await
                            .expect("bind 127.0.0.1 for the test WebDAV server");
                        tx.send(listener.local_addr().unwrap()).unwrap();
                        let http = ConnBuilder::new(TokioExecutor::new());
                        loop {
                            let Ok((socket, _)) = listener.accept().await else {
                                continue;
                            };
                            let dav = dav.clone();
                            let service = hyper::service::service_fn(move |req| {
                                let dav = dav.clone();
                                async move {
                                    Ok::<_, std::convert::Infallible>(dav.handle(req).await)
                                }
                            });
                            let conn = http
                                .serve_connection(TokioIo::new(socket), service)
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
                .expect("the in-process WebDAV server did not start");
            (format!("http://{addr}"), dir)
        })
        .clone()
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
    let dir = servers::scratch("s3s");
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
                    let _ = socket.set_nodelay(true);
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

#[cfg(feature = "cli")]
mod daemon;
#[cfg(feature = "cli")]
#[allow(unused_imports)]
pub use daemon::*;

/// Unmounts `0` (lazily) when dropped, if something is still mounted there: a test that
/// mounts outside [`Daemon`] and then fails leaves no stale mount behind.
pub struct UnmountOnDrop(pub std::path::PathBuf);

impl Drop for UnmountOnDrop {
    fn drop(&mut self) {
        if is_mounted(&self.0) {
            let c = std::ffi::CString::new(self.0.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Is something mounted exactly at `p`?
pub fn is_mounted(p: &std::path::Path) -> bool {
    let want = p.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want))
}

/// A TCP proxy in front of the S3 server that a test can cut (`down`: connections reset and
/// new ones closed at once), stall (`hang`: connections accepted, nothing forwarded) and
/// restore (`up`). It stands for a server that dies, hangs or comes back.
pub struct FaultProxy {
    pub addr: SocketAddr,
    state: std::sync::Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    /// 0 up, 1 down, 2 hang.
    mode: std::sync::atomic::AtomicU8,
    conns: std::sync::Mutex<Vec<TcpStream>>,
}

const UP: u8 = 0;
const DOWN: u8 = 1;
const HANG: u8 = 2;

impl FaultProxy {
    /// A proxy to the tests' S3 server.
    pub fn start() -> FaultProxy {
        let upstream: SocketAddr = s3_endpoint()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = std::sync::Arc::new(ProxyState::default());
        let st = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                match st.mode.load(Ordering::SeqCst) {
                    DOWN => drop(client),
                    HANG => st.conns.lock().unwrap().push(client),
                    _ => {
                        let Ok(server) = TcpStream::connect(upstream) else {
                            continue;
                        };
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        {
                            let mut conns = st.conns.lock().unwrap();
                            conns.push(client.try_clone().unwrap());
                            conns.push(server.try_clone().unwrap());
                        }
                        for (from, to) in [
                            (client.try_clone().unwrap(), server.try_clone().unwrap()),
                            (server, client),
                        ] {
                            let st = st.clone();
                            std::thread::spawn(move || pump(from, to, &st));
                        }
                    }
                }
            }
        });
        FaultProxy { addr, state }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn cut_all(&self) {
        for c in self.state.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    /// The server dies: every connection is reset, new ones are closed at once.
    pub fn down(&self) {
        self.state.mode.store(DOWN, Ordering::SeqCst);
        self.cut_all();
    }

    /// The server hangs: connections stay open and nothing more is forwarded.
    pub fn hang(&self) {
        self.state.mode.store(HANG, Ordering::SeqCst);
    }

    /// The server is back; connections held by `hang` are reset.
    pub fn up(&self) {
        let was = self.state.mode.swap(UP, Ordering::SeqCst);
        if was == HANG {
            self.cut_all();
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.down();
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, st: &ProxyState) {
    let _ = from.set_read_timeout(Some(std::time::Duration::from_millis(50)));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match st.mode.load(Ordering::SeqCst) {
            DOWN => break,
            HANG => {
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            }
            _ => {}
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                while st.mode.load(Ordering::SeqCst) == HANG {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                if st.mode.load(Ordering::SeqCst) == DOWN || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
    let _ = from.shutdown(std::net::Shutdown::Read);
}

/// xorshift64*: small, seedable, good enough to pick operations.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Under CI (`CI=true`) a missing server or FUSE fails a test; it never skips.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// `GENRO_LONG=1`: the soak mode of the model, fsx and concurrency tests.
pub fn long_mode() -> bool {
    std::env::var("GENRO_LONG").is_ok_and(|v| !v.is_empty() && v != "0")
}

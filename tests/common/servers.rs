//! Test servers run as child processes on 127.0.0.1 (sshd, pyftpdlib, Azurite, fake-gcs-server):
//! provisioned once by scripts/test-servers.sh, started once per test binary each in its own
//! process group, polled until ready, and killed with their group when the test binary exits.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A server process and its process group: the group is killed on drop. Servers shared by a
/// test binary live in statics, which are never dropped; they go with the binary through
/// PR_SET_PDEATHSIG, set on the keeper thread that spawned them (a thread that never ends).
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Start `cmd` in its own process group, its output to `log`.
    pub fn spawn(mut cmd: Command, log: &Path) -> Result<Proc, String> {
        let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().unwrap();
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let program = format!("{:?}", cmd.get_program());
        let (tx, rx) = mpsc::channel();
        keeper()
            .lock()
            .unwrap()
            .send(Box::new(move || {
                let _ = tx.send(cmd.spawn());
            }))
            .unwrap();
        let child = rx
            .recv()
            .unwrap()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        Ok(Proc {
            child,
            log: log.to_path_buf(),
        })
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Poll until `addr` accepts a connection (at most `limit`); fails when the process exits.
    pub fn wait_port(&mut self, addr: SocketAddr, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}: {}", self.log_text()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not listening on {addr} after {limit:?}: {}",
                    self.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the group this process leads (setsid above).
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The thread that spawns every server, so that their parent thread outlives every test.
fn keeper() -> &'static Mutex<mpsc::Sender<Job>> {
    static KEEPER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("server-keeper".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
                loop {
                    std::thread::park();
                }
            })
            .unwrap();
        Mutex::new(tx)
    })
}

/// A port nothing listens on, with `extra` free ports after it (FTP's passive range).
pub fn free_port(extra: u16) -> u16 {
    if extra == 0 {
        return TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
    }
    let seed = std::process::id() as u64 * 7919 + Instant::now().elapsed().as_nanos() as u64;
    let mut rng = super::Rng(seed | 1);
    for _ in 0..200 {
        let base = 20_000 + rng.below(30_000) as u16;
        if (base..=base + extra).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    panic!("no run of {extra} free ports on 127.0.0.1");
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Where scripts/test-servers.sh installs (`GENRO_TEST_SERVERS`, default target/test-servers).
pub fn servers_dir() -> PathBuf {
    std::env::var_os("GENRO_TEST_SERVERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-servers"))
}

const PROGRAMS: &[(&str, &str)] = &[
    ("sshd", "sshd/usr/sbin/sshd"),
    ("pyftpdlib", "ftpd/ftpd.py"),
    ("azurite", "azurite/node_modules/.bin/azurite-blob"),
    ("fake-gcs-server", "gcs/fake-gcs-server"),
];

/// Install the server programs that are missing (once per test binary).
pub fn provision() -> Result<(), String> {
    static INSTALL: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALL
        .get_or_init(|| {
            let users = Command::new("getent").args(["passwd", "sshd"]).output();
            if PROGRAMS
                .iter()
                .all(|(_, rel)| servers_dir().join(rel).exists())
                && users.is_ok_and(|o| o.status.success())
            {
                return Ok(());
            }
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-servers.sh");
            let out = Command::new("bash")
                .arg(script)
                .arg("install")
                .arg(servers_dir())
                .output()
                .map_err(|e| format!("{script}: {e}"))?;
            let missing: Vec<&str> = PROGRAMS
                .iter()
                .filter(|(_, rel)| !servers_dir().join(rel).exists())
                .map(|(n, _)| *n)
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "scripts/test-servers.sh could not install {} into {}: {}",
                    missing.join(", "),
                    servers_dir().display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        })
        .clone()
}

/// The path of server `name`'s program, installing the servers first when it is missing.
fn program(name: &str, rel: &str) -> Result<PathBuf, String> {
    let path = servers_dir().join(rel);
    // (sshd also needs libwrap unpacked beside it: an older install lacks it)
    let libwrap = servers_dir().join("sshd/usr/lib/x86_64-linux-gnu/libwrap.so.0");
    if !path.exists() || (name == "sshd" && !libwrap.exists()) {
        provision()?;
    }
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "the {name} test server is not at {}",
            path.display()
        ))
    }
}

/// Kill what still runs with `dir` in its command line: the SSH control masters that
/// opendal's SFTP client leaves behind (`ssh -M -f -o ControlPersist=yes … -i DIR/client`)
/// when the process that started them was killed, and with them the server sessions they hold.
fn kill_users_of(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            // SAFETY: kill(2) of a process found by its command line.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// A directory for a server shared by this test binary, `genro-test-PID-TAG-N` in the temp
/// dir. Shared servers live as long as the binary and are never dropped, so their
/// directories stay behind; the first call of each binary removes those of binaries that
/// have exited (their PID is gone), so a run leaves at most its own.
pub fn scratch(tag: &str) -> PathBuf {
    static SWEEP: std::sync::Once = std::sync::Once::new();
    let tmp = std::env::temp_dir();
    SWEEP.call_once(|| {
        let Ok(entries) = std::fs::read_dir(&tmp) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix("genro-test-")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            // SAFETY: kill with signal 0 only checks that the process exists.
            let alive = unsafe { libc::kill(pid, 0) } == 0
                || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
            if !alive {
                kill_users_of(&e.path());
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    });
    tempfile::Builder::new()
        .prefix(&format!("genro-test-{}-{tag}-", std::process::id()))
        .tempdir_in(&tmp)
        .unwrap()
        .keep()
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// sshd on 127.0.0.1 with a temporary host key and one client key for the current user.
pub struct Sftp {
    pub endpoint: String,
    pub user: String,
    /// The client's private key.
    pub key: PathBuf,
    /// A directory on this host that tests create their roots in.
    pub data: PathBuf,
    _proc: Proc,
}

pub fn sftp() -> Result<&'static Sftp, String> {
    static S: OnceLock<Result<Sftp, String>> = OnceLock::new();
    S.get_or_init(start_sftp).as_ref().map_err(Clone::clone)
}

fn start_sftp() -> Result<Sftp, String> {
    let sshd = program("sshd", "sshd/usr/sbin/sshd")?;
    let dir = scratch("sshd");
    for k in ["host", "client"] {
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.join(k)))?;
    }
    std::fs::copy(dir.join("client.pub"), dir.join("authorized_keys")).unwrap();
    // sshd's privilege separation directory
    std::fs::create_dir_all("/run/sshd").map_err(|e| format!("/run/sshd: {e}"))?;
    let port = free_port(0);
    let cfg = dir.join("sshd_config");
    std::fs::write(
        &cfg,
        format!(
            "ListenAddress 127.0.0.1:{port}\nHostKey {d}/host\nAuthorizedKeysFile {d}/authorized_keys\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
             StrictModes no\nUsePAM no\nPidFile none\nMaxStartups 100\nMaxSessions 100\n\
             Subsystem sftp internal-sftp\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(&sshd);
    cmd.arg("-D").arg("-e").arg("-f").arg(&cfg);
    // the libraries unpacked beside it (libwrap0: scripts/test-servers.sh)
    let root = sshd
        .ancestors()
        .nth(3)
        .expect("sshd/usr/sbin/sshd")
        .to_path_buf();
    let libs = ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"].map(|l| root.join(l));
    let old = std::env::var_os("LD_LIBRARY_PATH").unwrap_or_default();
    let all = libs.into_iter().chain(std::env::split_paths(&old));
    cmd.env("LD_LIBRARY_PATH", std::env::join_paths(all).expect("paths"));
    let mut proc = Proc::spawn(cmd, &dir.join("sshd.log"))?;
    proc.wait_port(addr(port), Duration::from_secs(10))
        .map_err(|e| format!("sshd: {e}"))?;
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    Ok(Sftp {
        endpoint: format!("ssh://127.0.0.1:{port}"),
        user: current_user(),
        key: dir.join("client"),
        data,
        _proc: proc,
    })
}

fn current_user() -> String {
    // SAFETY: getpwuid returns a pointer into static storage or null.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        assert!(!pw.is_null(), "the current uid has no passwd entry");
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

pub const FTP_USER: &str = "genro";
pub const FTP_PASSWORD: &str = "genro-ftp-secret";

/// pyftpdlib serving a temp dir as user `FTP_USER`.
pub struct Ftp {
    pub endpoint: String,
    pub data: PathBuf,
    _proc: Proc,
}

pub fn ftp() -> Result<&'static Ftp, String> {
    static S: OnceLock<Result<Ftp, String>> = OnceLock::new();
    S.get_or_init(start_ftp).as_ref().map_err(Clone::clone)
}

fn start_ftp() -> Result<Ftp, String> {
    let script = program("pyftpdlib", "ftpd/ftpd.py")?;
    let dir = scratch("ftpd");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let port = free_port(40);
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .arg(port.to_string())
        .arg(&data)
        .arg(FTP_USER)
        .arg(FTP_PASSWORD);
    let mut proc = Proc::spawn(cmd, &dir.join("ftpd.log"))?;
    proc.wait_port(addr(port), Duration::from_secs(10))
        .map_err(|e| format!("pyftpdlib: {e}"))?;
    Ok(Ftp {
        endpoint: format!("ftp://127.0.0.1:{port}"),
        data,
        _proc: proc,
    })
}

/// Azurite's well-known development account.
pub const AZURE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
pub const AZURE_CONTAINER: &str = "genro";

/// Azurite's blob service in memory, with the container `AZURE_CONTAINER`.
pub struct Azurite {
    /// `http://127.0.0.1:P/devstoreaccount1`
    pub endpoint: String,
    _proc: Proc,
}

pub fn azurite() -> Result<&'static Azurite, String> {
    static S: OnceLock<Result<Azurite, String>> = OnceLock::new();
    S.get_or_init(start_azurite).as_ref().map_err(Clone::clone)
}

fn start_azurite() -> Result<Azurite, String> {
    let bin = program("azurite", "azurite/node_modules/.bin/azurite-blob")?;
    let dir = scratch("azurite");
    let port = free_port(0);
    let mut cmd = Command::new(&bin);
    cmd.args(["--blobHost", "127.0.0.1", "--blobPort"])
        .arg(port.to_string())
        .args([
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ])
        .current_dir(&dir);
    let mut proc = Proc::spawn(cmd, &dir.join("azurite.log"))?;
    proc.wait_port(addr(port), Duration::from_secs(10))
        .map_err(|e| format!("azurite: {e}"))?;
    create_container(addr(port))?;
    Ok(Azurite {
        endpoint: format!("http://127.0.0.1:{port}/{AZURE_ACCOUNT}"),
        _proc: proc,
    })
}

/// `PUT /devstoreaccount1/genro?restype=container`, signed with SharedKey.
fn create_container(at: SocketAddr) -> Result<(), String> {
    use base64::Engine;
    use hmac::Mac;
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let version = "2021-08-06";
    let path = format!("/{AZURE_ACCOUNT}/{AZURE_CONTAINER}");
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZURE_ACCOUNT}{path}\nrestype:container"
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(AZURE_KEY)
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(to_sign.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let req = format!(
        "PUT {path}?restype=container HTTP/1.1\r\nHost: {at}\r\nx-ms-date: {date}\r\nx-ms-version: {version}\r\n\
         Authorization: SharedKey {AZURE_ACCOUNT}:{sig}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let status = http_once(at, &req)?;
    // 201 created, 409 already there
    if status.starts_with("HTTP/1.1 201") || status.starts_with("HTTP/1.1 409") {
        Ok(())
    } else {
        Err(format!("azurite refused to create the container: {status}"))
    }
}

/// Send one HTTP/1.1 request; returns the whole answer.
fn http_once(at: SocketAddr, req: &str) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&at, Duration::from_secs(5))
        .map_err(|e| format!("{at}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    Ok(resp)
}

pub const GCS_BUCKET: &str = "genro";

/// fake-gcs-server in memory, with the bucket `GCS_BUCKET`.
pub struct FakeGcs {
    pub endpoint: String,
    _proc: Proc,
}

pub fn gcs() -> Result<&'static FakeGcs, String> {
    static S: OnceLock<Result<FakeGcs, String>> = OnceLock::new();
    S.get_or_init(start_gcs).as_ref().map_err(Clone::clone)
}

fn start_gcs() -> Result<FakeGcs, String> {
    let bin = program("fake-gcs-server", "gcs/fake-gcs-server")?;
    let dir = scratch("gcs");
    let port = free_port(0);
    let url = format!("http://127.0.0.1:{port}");
    let mut cmd = Command::new(&bin);
    cmd.args(["-scheme", "http", "-host", "127.0.0.1", "-port"])
        .arg(port.to_string())
        .args(["-backend", "memory", "-log-level", "warn", "-public-host"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-external-url")
        .arg(&url);
    let mut proc = Proc::spawn(cmd, &dir.join("gcs.log"))?;
    proc.wait_port(addr(port), Duration::from_secs(10))
        .map_err(|e| format!("fake-gcs-server: {e}"))?;
    let body = format!("{{\"name\": \"{GCS_BUCKET}\"}}");
    let req = format!(
        "POST /storage/v1/b?project=genro HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let status = http_once(addr(port), &req)?;
    if !(status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.1 409")) {
        return Err(format!("fake-gcs-server refused the bucket: {status}"));
    }
    Ok(FakeGcs {
        endpoint: url,
        _proc: proc,
    })
}

//! Secrets stay secret: a daemon logging at trace level, with S3 operations that succeed and
//! fail (a wrong key, a dead endpoint), and `config check`, never print a secret key (nor its
//! base64 form); a config that holds a secret is refused while group or others may read it.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_genro-storage");
const WRONG: &str = "WRONG-secret-4e1f9a";
const DEAD: &str = "DEAD-secret-77c2d0";
const FROM_FILE: &str = "FILE-secret-0b93e5";

fn base64(s: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// A config with three S3 mounts: `good` (the server's keys), `wrong` (a wrong secret),
/// `dead` (an endpoint nobody answers), and `file` (its secret in a secret file).
fn config(dir: &Path) -> std::path::PathBuf {
    let endpoint = common::s3_endpoint();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let secret_file = dir.join("s3.secret");
    fs::write(&secret_file, format!("{}\n", common::SECRET_KEY)).unwrap();
    chmod(&secret_file, 0o600);
    let prefix = format!("secrets-{}", std::process::id());
    let mount = |name: &str, endpoint: &str, secret: &str| {
        format!(
            "[[mount]]\nname = \"{name}\"\nprotocol = \"s3\"\nbucket = \"{}\"\nprefix = \"{prefix}\"\n\
             endpoint_url = \"{endpoint}\"\naccess_key = \"{}\"\n{secret}\ntimeout = 2\nretries = 0\n\n",
            common::BUCKET,
            common::ACCESS_KEY,
        )
    };
    let text = mount(
        "good",
        &endpoint,
        &format!("secret_key = \"{}\"", common::SECRET_KEY),
    ) + &mount("wrong", &endpoint, &format!("secret_key = \"{WRONG}\""))
        + &mount("dead", &dead, &format!("secret_key = \"{DEAD}\""))
        + &mount("file", &endpoint, "secret_key_file = \"s3.secret\"");
    let cfg = dir.join("mounts.toml");
    fs::write(&cfg, text).unwrap();
    chmod(&cfg, 0o600);
    cfg
}

fn run(args: &[&str], cwd: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn no_secret_reaches_the_log_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let log = dir.path().join("daemon.log");
    let mut child = Command::new(BIN)
        .args(["--log-level", "trace", "mount"])
        .arg(&mnt)
        .arg("--config")
        .arg(&cfg)
        .env("RUST_LOG", "trace")
        .stdout(fs::File::create(dir.path().join("daemon.out")).unwrap())
        .stderr(fs::File::create(&log).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let guard = common::UnmountOnDrop(mnt.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(common::is_mounted(&mnt) && mnt.join("good").is_dir()) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the daemon exited: {}",
            fs::read_to_string(&log).unwrap()
        );
        assert!(Instant::now() < deadline, "not mounted in 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    // what succeeds: a write, a read, a chmod (our own signed CopyObject), a listing
    fs::write(mnt.join("good/f.txt"), "hello").unwrap();
    assert_eq!(fs::read_to_string(mnt.join("good/f.txt")).unwrap(), "hello");
    chmod(&mnt.join("good/f.txt"), 0o750);
    assert_eq!(fs::read_to_string(mnt.join("file/f.txt")).unwrap(), "hello");
    assert!(fs::read_dir(mnt.join("good")).unwrap().count() >= 1);
    // what fails: an endpoint nobody answers, and (where the server checks signatures:
    // s3s-fs, not moto) a wrong secret
    assert!(fs::read_dir(mnt.join("dead"))
        .and_then(|d| d.collect::<Result<Vec<_>, _>>())
        .is_err());
    let wrong = fs::read_dir(mnt.join("wrong")).and_then(|d| d.collect::<Result<Vec<_>, _>>());
    if common::external_s3().is_none() {
        assert!(wrong.is_err(), "s3s-fs took a wrong secret");
    }
    let _ = fs::write(mnt.join("dead/x"), "x");
    let _ = fs::write(mnt.join("wrong/x"), "x");
    // the same through the library's command line, and config check
    let (_, ls) = run(
        &["--config", cfg.to_str().unwrap(), "ls", "wrong:"],
        dir.path(),
    );
    let (_, ls_dead) = run(
        &["--config", cfg.to_str().unwrap(), "ls", "dead:"],
        dir.path(),
    );
    let (ok, check) = run(
        &["--config", cfg.to_str().unwrap(), "config", "check"],
        dir.path(),
    );
    assert!(ok, "config check: {check}");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    drop(guard);
    let daemon = fs::read_to_string(&log).unwrap()
        + &fs::read_to_string(dir.path().join("daemon.out")).unwrap();
    assert!(
        daemon.contains("TRACE") || daemon.contains("trace"),
        "no trace-level output: the test would prove nothing"
    );
    assert!(
        daemon.lines().count() > 50,
        "too little output to prove anything: {daemon}"
    );
    for (what, text) in [
        ("daemon", &daemon),
        ("ls wrong:", &ls),
        ("ls dead:", &ls_dead),
        ("config check", &check),
    ] {
        for secret in [common::SECRET_KEY, WRONG, DEAD, FROM_FILE] {
            for form in [secret.to_string(), base64(secret)] {
                assert!(!text.contains(&form), "{what} shows the secret {form:?}");
            }
        }
    }
}

#[test]
fn a_config_holding_a_secret_is_refused_while_others_may_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let c = cfg.to_str().unwrap();
    chmod(&cfg, 0o644);
    let (ok, out) = run(&["--config", c, "config", "check"], dir.path());
    assert!(!ok);
    assert!(
        out.contains(&format!("chmod 600 {c}")) && out.contains("0644"),
        "{out}"
    );
    assert!(!out.contains(common::SECRET_KEY), "{out}");
    // the override accepts it, with a warning
    let (ok, out) = run(
        &["--config", c, "--allow-insecure-config", "config", "check"],
        dir.path(),
    );
    assert!(ok, "{out}");
    assert!(out.contains("--allow-insecure-config"), "no warning: {out}");
    // a secret file open to others is refused the same way, naming its key
    chmod(&cfg, 0o600);
    let secret = dir.path().join("s3.secret");
    chmod(&secret, 0o640);
    let (ok, out) = run(&["--config", c, "config", "check"], dir.path());
    assert!(!ok);
    assert!(
        out.contains("secret_key_file") && out.contains(&format!("chmod 600 {}", secret.display())),
        "{out}"
    );
    chmod(&secret, 0o600);
    assert!(run(&["--config", c, "config", "check"], dir.path()).0);
}

#[test]
fn a_config_without_secrets_may_stay_world_readable() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("s3.secret");
    fs::write(&secret, FROM_FILE).unwrap();
    chmod(&secret, 0o600);
    let cfg = dir.path().join("mounts.toml");
    fs::write(
        &cfg,
        "[[mount]]\nname = \"b\"\nprotocol = \"s3\"\nbucket = \"x\"\nendpoint_url = \"http://127.0.0.1:9\"\n\
         access_key = \"AKID\"\nsecret_key_file = \"s3.secret\"\n",
    )
    .unwrap();
    chmod(&cfg, 0o644);
    let (ok, out) = run(
        &["--config", cfg.to_str().unwrap(), "config", "check"],
        dir.path(),
    );
    assert!(ok, "{out}");
    assert!(!out.contains(FROM_FILE), "{out}");
}

#[test]
fn keys_from_the_environment_work_and_stay_out_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("mounts.toml");
    fs::write(
        &cfg,
        format!(
            "[[mount]]\nname = \"e\"\nprotocol = \"s3\"\nbucket = \"{}\"\nendpoint_url = \"{}\"\n",
            common::BUCKET,
            common::s3_endpoint()
        ),
    )
    .unwrap();
    chmod(&cfg, 0o644); // no secret inside: it may stay world-readable
    let out = Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap(), "ls", "e:"])
        .current_dir(dir.path())
        .env("RUST_LOG", "trace")
        .env("AWS_ACCESS_KEY_ID", common::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", common::SECRET_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    for form in [common::SECRET_KEY.to_string(), base64(common::SECRET_KEY)] {
        assert!(!text.contains(&form), "the log shows {form:?}");
    }
}

//! The daemon under test: `genro-storage mount` as a child process (needs the `cli` feature).

use super::*;

/// A `genro-storage mount` daemon started as a child process on a fresh mountpoint, with a
/// mount `t` on the backend under test and a memory mount `other`. It is stopped with SIGTERM
/// on drop. A daemon that cannot mount fails the test: it never goes on without FUSE.
pub struct Daemon {
    pub kind: Kind,
    pub mnt: std::path::PathBuf,
    pub child: Option<std::process::Child>,
    pub dir: tempfile::TempDir,
    pub config: MountConfig,
    pub log: std::path::PathBuf,
}

fn toml_mount(c: &MountConfig) -> String {
    use genro_storage::Backend;
    let mut s = format!(
        "[[mount]]\nname = \"{}\"\npermissions = \"{}\"\n",
        c.name,
        c.permissions.as_str()
    );
    match &c.backend {
        Backend::Local { root, .. } => {
            s += &format!("protocol = \"local\"\nroot_path = \"{}\"\n", root.display())
        }
        Backend::Memory { max_size } => {
            s += &format!("protocol = \"memory\"\nmax_size = {max_size}\n")
        }
        Backend::S3 {
            bucket,
            prefix,
            endpoint_url,
            access_key,
            secret_key,
            timeout,
            retries,
            cache_ttl,
            ..
        } => {
            s += &format!(
                "protocol = \"s3\"\nbucket = \"{bucket}\"\ntimeout = {}\nretries = {retries}\n",
                timeout.as_secs_f64()
            );
            if let Some(t) = cache_ttl {
                s += &format!("cache_ttl = {}\n", t.as_secs_f64());
            }
            for (k, v) in [("prefix", prefix), ("endpoint_url", endpoint_url)] {
                if let Some(v) = v {
                    s += &format!("{k} = \"{v}\"\n");
                }
            }
            for (k, v) in [("access_key", access_key), ("secret_key", secret_key)] {
                if let Some(v) = v {
                    s += &format!("{k} = \"{}\"\n", v.expose());
                }
            }
        }
        Backend::Relative { parent, path, .. } => {
            s += &format!("protocol = \"relative\"\nparent = \"{parent}\"\npath = \"{path}\"\n")
        }
        Backend::Service(c) => {
            s += &format!(
                "protocol = \"{}\"\ntimeout = {}\nretries = {}\n",
                c.service.name(),
                c.timeout.as_secs_f64(),
                c.retries
            );
            for (k, v) in &c.options {
                if c.service.flags().contains(&k.as_str()) {
                    s += &format!("{k} = {v}\n");
                } else {
                    s += &format!("{k} = \"{v}\"\n");
                }
            }
            for (k, v) in &c.secrets {
                s += &format!("{k} = \"{}\"\n", v.expose());
            }
            s += &format!(
                "multipart = {}\nbatch_delete = {}\n",
                c.multipart, c.batch_delete
            );
        }
    }
    s + "\n"
}

impl Daemon {
    pub fn start(kind: Kind) -> Daemon {
        Self::start_with(kind, &[], |c| c)
    }

    /// Start with extra command-line flags and a chance to adjust the mount config.
    pub fn start_with(
        kind: Kind,
        flags: &[&str],
        adjust: impl FnOnce(MountConfig) -> MountConfig,
    ) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let config = adjust(mount_config(kind, "t", &dir));
        Self::spawn(kind, dir, config, flags, "")
    }

    /// Start with extra command-line flags and extra `[[mount]]` tables after `t` and
    /// `other` (relative mounts over `t`).
    pub fn start_with_toml(kind: Kind, flags: &[&str], extra_toml: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let config = mount_config(kind, "t", &dir);
        Self::spawn(kind, dir, config, flags, extra_toml)
    }

    fn spawn(
        kind: Kind,
        dir: tempfile::TempDir,
        config: MountConfig,
        flags: &[&str],
        extra_toml: &str,
    ) -> Daemon {
        let mnt = dir.path().join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let cfg = dir.path().join("mounts.toml");
        let text = toml_mount(&config) + &toml_mount(&MountConfig::memory("other")) + extra_toml;
        std::fs::write(&cfg, text).unwrap();
        // (it may hold a secret: closed to group and others, or the daemon refuses it)
        std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let log = dir.path().join("daemon.log");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_genro-storage"))
            .arg("mount")
            .arg(&mnt)
            .arg("--config")
            .arg(&cfg)
            .args(flags)
            .env(
                "RUST_LOG",
                std::env::var("GENRO_TEST_LOG")
                    .unwrap_or("warn,fuser=error,genro_storage::stats=info".into()),
            )
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start genro-storage");
        let mut d = Daemon {
            kind,
            mnt,
            child: Some(child),
            dir,
            config,
            log,
        };
        d.wait_mounted();
        d
    }

    fn wait_mounted(&mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if is_mounted(&self.mnt) && self.mnt.join("t").is_dir() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "genro-storage mount exited with {status} before mounting (FUSE needs root and /dev/fuse): {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "genro-storage did not mount within 20 s: {}",
                    self.log_text()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A path inside the mount `t`.
    pub fn path(&self, p: &str) -> std::path::PathBuf {
        self.mnt.join("t").join(p)
    }

    /// Run a shell script with the mount `t` as the working directory; returns stdout.
    pub fn sh(&self, script: &str) -> String {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("set -euo pipefail\n{script}"))
            .current_dir(self.mnt.join("t"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "script failed ({:?}):\n{script}\nstdout: {}\nstderr: {}\ndaemon: {}",
            self.kind,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Send SIGTERM and wait for the daemon to exit; returns its exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) with a valid pid and signal.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "the daemon did not exit within 30 s of SIGTERM: {}",
                    self.log_text()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// A manager on the same backend namespace, to check what reached the backend.
    pub async fn backend_storage(&self) -> AsyncStorageManager {
        let s = AsyncStorageManager::new();
        s.configure(vec![self.config.clone()]).await.unwrap();
        s
    }

    /// Write `data` to `path` of the mount's backend directly (behind the daemon's back).
    pub fn backend_write(&self, path: &str, data: &[u8]) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let s = self.backend_storage().await;
            let n = s.node(&format!("t:{path}")).unwrap();
            n.write(data.to_vec()).await.unwrap();
        })
    }
}

impl Daemon {
    /// Stop the daemon (SIGTERM: open files are uploaded) and mount the same config again
    /// with a new daemon: what survives is what the backend holds.
    pub fn remount(mut self) -> Daemon {
        self.halt();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        // the old value's drop must not unmount the new daemon's mountpoint
        self.mnt = self.dir.path().to_path_buf();
        Self::spawn(self.kind, dir, self.config.clone(), &[], "")
    }

    fn halt(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) with a valid pid and signal.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            for _ in 0..500 {
                if c.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if is_mounted(&self.mnt) {
            let c = std::ffi::CString::new(self.mnt.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.halt();
        if std::thread::panicking() {
            // a failing test keeps the daemon's log (GENRO_TEST_LOG=trace for every request)
            let keep = std::env::temp_dir().join(format!(
                "genro-daemon-{}-{}.log",
                std::process::id(),
                self.mnt
                    .parent()
                    .and_then(|d| d.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ));
            if std::fs::copy(&self.log, &keep).is_ok() {
                eprintln!("daemon log kept at {}", keep.display());
            }
        }
    }
}

//! What each subcommand does: `mount`, `ls`, `cat`, `cp`, `mv`, `rm`, `stat`, `mkdir` and
//! `config check`, on `mount:path` arguments (and plain local paths for `cp` and `mv`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::progress::Bar;
use crate::cli::{Cli, Command, ConfigCommand, MountArgs, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::config::{Backend, Config, MountConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::storage::copy::CopyOptions;
use crate::storage::manager::AsyncStorageManager;
use crate::storage::mount::{Entry, Mount};
use crate::storage::node::AsyncNode;

/// The mount that serves plain local paths of `cp` and `mv`: the host's `/`.
const HOST: &str = "_host_";

/// Run a parsed command line; returns the exit status.
pub fn run(cli: Cli) -> u8 {
    let source = Source {
        path: cli.config,
        allow_insecure: cli.allow_insecure_config,
    };
    match cli.command {
        Command::Mount(args) => mount(source, args),
        Command::Config(ConfigCommand::Check) => config_check(source),
        cmd => {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return fail("runtime", &Error::from_io("tokio runtime", e)),
            };
            rt.block_on(files(source, cmd))
        }
    }
}

fn fail(cmd: &str, e: &dyn std::fmt::Display) -> u8 {
    eprintln!("genro-storage: {cmd}: {e}");
    EXIT_FAILED
}

/// Where the config comes from: `--config`, and whether `--allow-insecure-config` was given.
#[derive(Clone)]
struct Source {
    path: Option<PathBuf>,
    allow_insecure: bool,
}

/// The config: the file named, or `./mounts.toml`; an absent default is an empty config
/// when `optional` (commands on plain local paths need none).
fn load(config: Source, optional: bool) -> std::result::Result<Config, u8> {
    let named = config.path.is_some();
    let path = config.path.unwrap_or_else(|| PathBuf::from("mounts.toml"));
    if optional && !named && !path.exists() {
        return Ok(Config::default());
    }
    Config::load(&path, config.allow_insecure).map_err(|e| {
        eprintln!("genro-storage: {e}");
        EXIT_USAGE
    })
}

fn mount(config: Source, args: MountArgs) -> u8 {
    let cfg = match load(config, false) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mountpoint = args.mountpoint.clone();
    match crate::fuse::run(&cfg, &mountpoint, args.into()) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("genro-storage: {e}");
            if e.kind() == ErrorKind::Config {
                EXIT_USAGE
            } else {
                EXIT_FAILED
            }
        }
    }
}

/// `config check`: validate, then one block per mount with what its backend supports.
fn config_check(config: Source) -> u8 {
    let path = config
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from("mounts.toml"));
    let cfg = match load(config, false) {
        Ok(c) => c,
        Err(code) => return code,
    };
    println!("{}: valid, {} mount(s)", path.display(), cfg.mounts.len());
    let mounts = match crate::storage::manager::build_mounts(cfg.mounts.clone(), &[]) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("genro-storage: {e}");
            return EXIT_USAGE;
        }
    };
    for (m, mount) in cfg.mounts.iter().zip(mounts) {
        println!();
        println!(
            "{}  {}  {}  permissions {}",
            m.name,
            m.backend.protocol(),
            match mount.relative_to() {
                Some((p, d)) => format!("{p}:{d} (over {})", where_of(mount.config())),
                None => where_of(m),
            },
            mount.permissions().as_str()
        );
        println!(
            "  {:<20} {}",
            "capabilities",
            mount.capabilities().names().join(", ")
        );
        for (what, how) in semantics(&mount) {
            println!("  {what:<20} {how}");
        }
    }
    EXIT_OK
}

fn where_of(m: &MountConfig) -> String {
    match &m.backend {
        Backend::Local { root, .. } => root.display().to_string(),
        Backend::Relative { parent, path, .. } => format!("{parent}:{path}"),
        Backend::Memory { .. } => "process memory".into(),
        Backend::S3 {
            bucket,
            prefix,
            endpoint_url,
            region,
            timeout,
            retries,
            cache_ttl,
            ..
        } => format!(
            "s3://{bucket}/{} at {} ({region}; timeout {} s, {retries} retries{})",
            prefix.as_deref().unwrap_or(""),
            endpoint_url.as_deref().unwrap_or("AWS"),
            timeout.as_secs_f64(),
            match cache_ttl {
                Some(t) => format!(", daemon cache {} s", t.as_secs_f64()),
                None => String::new(),
            }
        ),
        Backend::Service(s) => {
            let at = ["endpoint", "bucket", "container", "root"]
                .iter()
                .filter_map(|k| s.options.get(*k).map(|v| format!("{k} {v}")))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "{} ({at}; timeout {} s, {} retries{})",
                s.service.name(),
                s.timeout.as_secs_f64(),
                s.retries,
                match s.cache_ttl {
                    Some(t) => format!(", daemon cache {} s", t.as_secs_f64()),
                    None => String::new(),
                }
            )
        }
    }
}

/// What the daemon and the library do on this mount, from the backend's capabilities: the
/// same rules as the README's Semantics table.
pub fn semantics(m: &Mount) -> Vec<(&'static str, String)> {
    let caps = m.capability();
    let local = m.local_root().is_some();
    let object = |s: &str| s.to_string();
    let rename = if local {
        object("native, atomic (rename(2))")
    } else if caps.rename {
        object("native (directories too, at once)")
    } else if caps.copy {
        object("server-side copy + delete (directories: not atomic)")
    } else {
        object("streamed copy + delete (directories: not atomic)")
    };
    let kept = if m.is_s3() {
        "kept in the object's metadata (s3fs's x-amz-meta-mode, -uid, -gid, -mtime)"
    } else if m.is_memory() {
        "kept with the object, as long as the memory mount"
    } else if m.keeps_posix() && m.prefix_dirs() {
        "kept in the object's user metadata (mode, uid, gid, mtime), changed in place"
    } else if m.keeps_posix() {
        "kept in the backend's user metadata, set at upload"
    } else {
        "not kept by this backend"
    };
    let attrs = if m.keeps_posix() || local {
        object(kept)
    } else {
        object("not kept by this backend: new entries show file_mode and dir_mode; chmod and chown to another value fail with EOPNOTSUPP")
    };
    let times = if m.keeps_posix() {
        format!("the last write's (Last-Modified where none is kept); set times {kept}")
    } else {
        object("the server's; setting a time other than now fails with EOPNOTSUPP (touch re-uploads the file)")
    };
    let mut out = vec![
        ("read", object("ranged, clamped to the size")),
        (
            "write, append",
            if local {
                object("in place (FUSE passthrough)")
            } else {
                object("staged, uploaded by close/fsync")
            },
        ),
        ("rename", rename),
        (
            "copy (library)",
            if caps.copy {
                object("server-side")
            } else {
                object("streamed")
            },
        ),
        (
            "modes, owners",
            if local { object("on disk") } else { attrs },
        ),
        ("mtime", if local { object("on disk") } else { times }),
        (
            "symlinks, hard links",
            if local {
                object("yes (never followed by the daemon)")
            } else if m.keeps_posix() {
                object("symlinks, FIFOs, sockets, devices as objects carrying their type; hard links no (EPERM)")
            } else {
                object("no (EPERM): the backend keeps no file types")
            },
        ),
        (
            "empty directories",
            if m.prefix_dirs() {
                object("marker objects (dir/); only while the daemon runs on servers without them")
            } else if caps.create_dir {
                object("yes")
            } else {
                object("only while the daemon runs")
            },
        ),
    ];
    if m.is_memory() {
        out.push((
            "lifetime",
            object("the process (each memory mount is its own)"),
        ));
    }
    if !m.permissions().can_write() {
        out.push(("changes", object("refused (EROFS)")));
    } else if !m.permissions().can_delete() {
        out.push(("deletes", object("refused (EACCES)")));
    }
    out
}

/// The manager for file commands, with the host's `/` as a mount for plain local paths.
struct Paths {
    storage: AsyncStorageManager,
    names: Vec<String>,
}

impl Paths {
    async fn new(cfg: &Config) -> Result<Paths> {
        let storage = AsyncStorageManager::new();
        let mut mounts = cfg.mounts.clone();
        let names = mounts.iter().map(|m| m.name.clone()).collect();
        mounts.push(MountConfig::local(HOST, "/"));
        storage.configure(mounts).await?;
        Ok(Paths { storage, names })
    }

    /// `mount:path`, or (when `local_ok`) a plain local path.
    fn node(&self, arg: &str, local_ok: bool) -> Result<AsyncNode> {
        if let Some((name, _)) = arg.split_once(':') {
            if self.names.iter().any(|n| n == name) {
                return self.storage.node(arg);
            }
            if !local_ok {
                return Err(Error::new(
                    ErrorKind::InvalidPath,
                    arg,
                    format!(
                        "no mount named {name:?} (configured: {})",
                        self.names.join(", ")
                    ),
                ));
            }
        } else if !local_ok {
            return Err(Error::new(
                ErrorKind::InvalidPath,
                arg,
                "expected mount:path",
            ));
        }
        let abs = absolute(Path::new(arg)).map_err(|e| Error::from_io(arg.to_string(), e))?;
        let p = abs
            .to_str()
            .ok_or_else(|| Error::new(ErrorKind::InvalidPath, arg, "is not valid UTF-8"))?;
        self.storage
            .node(&format!("{HOST}:{}", p.trim_start_matches('/')))
    }
}

/// An absolute path with `.` and `..` resolved lexically (the parent's symlinks resolved by
/// the host when it exists), as the user's shell meant it.
fn absolute(p: &Path) -> std::io::Result<PathBuf> {
    let abs = std::path::absolute(p)?;
    if let (Some(parent), Some(name)) = (abs.parent(), abs.file_name()) {
        if let Ok(real) = parent.canonicalize() {
            return Ok(real.join(name));
        }
    }
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    Ok(out)
}

/// A path for messages: `mount:path`, or the plain path for local ones.
fn shown(n: &AsyncNode) -> String {
    let full = n.fullpath();
    match full.strip_prefix(&format!("{HOST}:")) {
        Some(p) => format!("/{p}"),
        None => full,
    }
}

async fn files(config: Source, cmd: Command) -> u8 {
    let cfg = match load(config, true) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let paths = match Paths::new(&cfg).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("genro-storage: {e}");
            return EXIT_USAGE;
        }
    };
    let mut status = EXIT_OK;
    let mut each = |name: &str, r: Result<()>| {
        if let Err(e) = r {
            status = fail(name, &e);
        }
    };
    match cmd {
        Command::Ls { long, paths: args } => {
            let many = args.len() > 1;
            for (i, a) in args.iter().enumerate() {
                let r = async {
                    let n = paths.node(a, false)?;
                    ls(&n, long, many, i > 0).await
                }
                .await;
                each("ls", r);
            }
        }
        Command::Cat { paths: args } => {
            for a in &args {
                let r = async { cat(&paths.node(a, false)?).await }.await;
                if let Err(e) = &r {
                    if e.errno() == libc::EPIPE {
                        return status;
                    }
                }
                each("cat", r);
            }
        }
        Command::Stat { paths: args } => {
            for a in &args {
                let r = async {
                    let n = paths.node(a, false)?;
                    let e = n.mount().stat_required(n.path()).await?;
                    println!("{}", shown(&n));
                    println!("  type: {}", if e.is_dir() { "directory" } else { "file" });
                    println!("  size: {}", e.size);
                    println!("  modified: {}", utc(e.mtime));
                    if let Some(t) = &e.etag {
                        println!("  etag: {t}");
                    }
                    Ok(())
                }
                .await;
                each("stat", r);
            }
        }
        Command::Mkdir {
            parents,
            paths: args,
        } => {
            for a in &args {
                let r = async {
                    let n = paths.node(a, false)?;
                    if !parents {
                        if n.exists().await? {
                            return Err(Error::new(ErrorKind::AlreadyExists, shown(&n), "exists"));
                        }
                        let p = n.parent();
                        if !p.is_dir().await? {
                            return Err(Error::new(
                                ErrorKind::NotFound,
                                shown(&p),
                                "no such directory (use -p)",
                            ));
                        }
                    }
                    n.mkdir().await
                }
                .await;
                each("mkdir", r);
            }
        }
        Command::Rm {
            recursive,
            force,
            paths: args,
        } => {
            for a in &args {
                let r = async {
                    let n = paths.node(a, false)?;
                    match n.stat().await? {
                        None if force => Ok(()),
                        None => Err(Error::new(
                            ErrorKind::NotFound,
                            shown(&n),
                            "no such file or directory",
                        )),
                        Some(e) if e.is_dir() && !recursive => {
                            Err(Error::is_a_directory(format!("{} (use -r)", shown(&n))))
                        }
                        Some(_) => n.delete().await,
                    }
                }
                .await;
                each("rm", r);
            }
        }
        Command::Mv { src, dest } => {
            let r = async {
                let s = paths.node(&src, true)?;
                let d = into_dir(&s, paths.node(&dest, true)?).await?;
                s.move_to(&d).await
            }
            .await;
            each("mv", r);
        }
        Command::Cp {
            recursive,
            skip,
            include,
            exclude,
            jobs,
            quiet,
            paths: mut args,
        } => {
            let dest = args.pop().expect("clap requires two paths");
            let opts = CopyOptions {
                skip,
                include,
                exclude,
                concurrency: jobs.max(1),
                ..CopyOptions::default()
            };
            status = cp(&paths, &args, &dest, recursive, quiet, opts).await;
        }
        Command::Mount(_) | Command::Config(_) => unreachable!("handled by run"),
    }
    status
}

/// Copying into an existing directory means to the source's name inside it.
async fn into_dir(src: &AsyncNode, dest: AsyncNode) -> Result<AsyncNode> {
    if dest.is_dir().await? && !src.basename().is_empty() {
        dest.child(src.basename())
    } else {
        Ok(dest)
    }
}

async fn cp(
    paths: &Paths,
    sources: &[String],
    dest: &str,
    recursive: bool,
    quiet: bool,
    mut opts: CopyOptions,
) -> u8 {
    let dest = match paths.node(dest, true) {
        Ok(d) => d,
        Err(e) => return fail("cp", &e),
    };
    if sources.len() > 1 && !matches!(dest.is_dir().await, Ok(true)) {
        return fail(
            "cp",
            &format!("{}: target is not a directory", shown(&dest)),
        );
    }
    let bar = (!quiet).then(Bar::stderr).flatten().map(Arc::new);
    let mut status = EXIT_OK;
    for s in sources {
        let r: Result<()> = async {
            let src = paths.node(s, true)?;
            let e: Entry = src.mount().stat_required(src.path()).await?;
            if e.is_dir() && !recursive {
                return Err(Error::is_a_directory(format!("{} (use -r)", shown(&src))));
            }
            let to = into_dir(&src, dest.clone()).await?;
            if let Some(b) = &bar {
                let b = b.clone();
                opts.on_progress = Some(Arc::new(move |p| b.show(p)));
            }
            let report = src.copy_with(&to, &opts).await?;
            if let Some(b) = &bar {
                b.finish(&format!(
                    "{} → {}: {} copied, {} skipped, {} failed",
                    shown(&src),
                    shown(&to),
                    report.copied,
                    report.skipped.len(),
                    report.failed.len()
                ));
            }
            for (p, e) in &report.failed {
                status = fail("cp", &format!("{p}: {e}"));
            }
            Ok(())
        }
        .await;
        if let Err(e) = r {
            status = fail("cp", &e);
        }
    }
    status
}

async fn ls(n: &AsyncNode, long: bool, header: bool, gap: bool) -> Result<()> {
    let e = n.mount().stat_required(n.path()).await?;
    let mut out = std::io::stdout().lock();
    let io = |e| Error::from_io("stdout", e);
    if !e.is_dir() {
        return line(&mut out, long, &shown(n), &e).map_err(io);
    }
    if gap {
        writeln!(out).map_err(io)?;
    }
    if header {
        writeln!(out, "{}:", shown(n)).map_err(io)?;
    }
    let mut children = n.list_entries().await?;
    children.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, e) in children {
        let name = if e.is_dir() { format!("{name}/") } else { name };
        line(&mut out, long, &name, &e).map_err(io)?;
    }
    Ok(())
}

fn line(out: &mut impl Write, long: bool, name: &str, e: &Entry) -> std::io::Result<()> {
    if long {
        let t = if e.is_dir() { 'd' } else { '-' };
        writeln!(out, "{t} {:>12} {} {name}", e.size, utc(e.mtime))
    } else {
        writeln!(out, "{name}")
    }
}

async fn cat(n: &AsyncNode) -> Result<()> {
    let r = n.reader().await?;
    let mut out = std::io::stdout().lock();
    let mut off = 0;
    while off < r.size() {
        let end = (off + (4 << 20)).min(r.size());
        let buf = r.read_range(off, end).await?;
        out.write_all(&buf)
            .map_err(|e| Error::from_io("stdout", e))?;
        off = end;
    }
    out.flush().map_err(|e| Error::from_io("stdout", e))
}

pub use crate::storage::posix::utc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        let at = |s| std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s);
        assert_eq!(utc(at(0)), "1970-01-01 00:00:00");
        assert_eq!(utc(at(951_782_400)), "2000-02-29 00:00:00");
        assert_eq!(utc(at(1_795_685_324)), "2026-11-26 09:28:44");
    }

    #[test]
    fn absolute_resolves_dots() {
        assert_eq!(
            absolute(Path::new("/a/b/../c/./d")).unwrap(),
            PathBuf::from("/a/c/d")
        );
    }
}

//! The `genro-storage` command line: subcommands, their flags and help, and the exit statuses
//! scripts rely on (0 done, 1 an operation failed, 2 bad usage or config).

pub mod commands;
pub mod helper;
pub mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::fuse::{parse_mode, parse_secs, DaemonOptions};
use crate::storage::copy::Skip;

/// Exit status: everything done.
pub const EXIT_OK: u8 = 0;
/// Exit status: an operation failed (a file missing, a backend error…); others may be done.
pub const EXIT_FAILED: u8 = 1;
/// Exit status: bad usage or a bad config; nothing was done.
pub const EXIT_USAGE: u8 = 2;

const EXAMPLES: &str = "\
Examples:
  genro-storage mount ./mnt                      serve mounts.toml at ./mnt until Ctrl-C
  genro-storage ls -l data:reports               list a directory of the mount \"data\"
  genro-storage cp -r ./photos s3:backup/photos  copy a local tree to S3, with a progress bar
  genro-storage cp -r --skip size data: mem:     copy what differs in size
  genro-storage cat data:notes.txt | wc -l
  genro-storage config check                     validate mounts.toml; what each mount supports

Paths are mount:path (a name from the config) or plain local paths (cp, mv).
Exit status: 0 done, 1 an operation failed, 2 bad usage or config.";

/// Named storage mounts (local, memory, S3, SFTP, WebDAV, Azure Blob, GCS, FTP, HTTP): a FUSE
/// filesystem and the tools around it.
#[derive(Parser, Debug)]
#[command(version, about, after_help = EXAMPLES)]
pub struct Cli {
    /// The config file (default ./mounts.toml; for cp/mv of plain local paths it may be absent).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log level: error, warn, info, debug or trace (default info; RUST_LOG wins when set).
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Append logs to this file instead of stderr.
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Accept a config (or a secret file it names) that holds a secret although group or
    /// others may read it (refused otherwise, with the chmod that fixes it).
    #[arg(long, global = true)]
    pub allow_insecure_config: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Mount every configured mount as <MOUNTPOINT>/<name> and serve until SIGINT, SIGTERM or umount.
    #[command(
        after_help = "Examples:\n  genro-storage mount ./mnt\n  genro-storage mount /srv/storage --config /etc/genro-storage/mounts.toml -o allow_other\n\nSIGUSR1 writes per-mount counters to the log."
    )]
    Mount(MountArgs),
    /// List directories (or show files) at mount:path.
    #[command(after_help = "Example:\n  genro-storage ls -l data:reports s3:")]
    Ls {
        /// Long format: type, size, modification time (UTC), name.
        #[arg(short = 'l')]
        long: bool,
        /// mount:path, one or more.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Write files to stdout.
    #[command(after_help = "Example:\n  genro-storage cat data:a.txt data:b.txt > both.txt")]
    Cat {
        /// mount:path, one or more.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Copy files and trees between mounts and local paths.
    #[command(
        after_help = "Examples:\n  genro-storage cp data:a.txt s3:a.txt\n  genro-storage cp -r --skip hash --exclude '*.tmp' ./site s3:site\n\nA glob without '/' matches file names, one with '/' paths below the source.\nA progress bar (bytes, rate, ETA) shows on a terminal; piped, cp is quiet."
    )]
    Cp {
        /// Copy directories and everything below them.
        #[arg(short = 'r', short_alias = 'R', long = "recursive")]
        recursive: bool,
        /// Which files to leave alone: never, exists, size, hash.
        #[arg(long, default_value = "never", value_name = "RULE")]
        skip: Skip,
        /// Copy only files matching this glob (repeatable).
        #[arg(long, value_name = "GLOB")]
        include: Vec<String>,
        /// Leave out files matching this glob (repeatable).
        #[arg(long, value_name = "GLOB")]
        exclude: Vec<String>,
        /// Files copied at once.
        #[arg(short = 'j', long, default_value_t = 8)]
        jobs: usize,
        /// No progress bar, no summary.
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Sources, then the destination (an existing directory when several sources).
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
    },
    /// Move (rename) a file or tree.
    #[command(after_help = "Example:\n  genro-storage mv data:inbox/a.txt data:done/a.txt")]
    Mv {
        /// Source.
        src: String,
        /// Destination (into it when it is an existing directory).
        dest: String,
    },
    /// Remove files (and trees with -r).
    #[command(after_help = "Example:\n  genro-storage rm -r data:tmp")]
    Rm {
        /// Remove directories and everything below them.
        #[arg(short = 'r', short_alias = 'R', long = "recursive")]
        recursive: bool,
        /// Missing paths are not an error.
        #[arg(short = 'f', long)]
        force: bool,
        /// mount:path, one or more.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Show type, size, modification time and ETag.
    #[command(after_help = "Example:\n  genro-storage stat s3:report.pdf")]
    Stat {
        /// mount:path, one or more.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Create directories.
    #[command(after_help = "Example:\n  genro-storage mkdir -p data:a/b/c")]
    Mkdir {
        /// Create parents as needed; an existing directory is fine.
        #[arg(short = 'p', long)]
        parents: bool,
        /// mount:path, one or more.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Work with the config file.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `config` subcommands.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate the config and print, per mount, what its backend supports.
    #[command(
        after_help = "Example:\n  genro-storage config check --config /etc/genro-storage/mounts.toml"
    )]
    Check,
}

/// The daemon's flags (the `[fuse]` table has the same names with `_`).
#[derive(Args, Debug, Clone, Default)]
pub struct MountArgs {
    /// An existing, empty directory.
    pub mountpoint: PathBuf,
    /// Refuse every change with EROFS.
    #[arg(long)]
    pub read_only: bool,
    /// Let other users in (turns on default_permissions).
    #[arg(long)]
    pub allow_other: bool,
    /// Owner shown on memory and S3 mounts.
    #[arg(long)]
    pub uid: Option<u32>,
    /// Group shown on memory and S3 mounts.
    #[arg(long)]
    pub gid: Option<u32>,
    /// File mode on memory and S3 mounts (octal, default 0644).
    #[arg(long, value_parser = parse_mode)]
    pub file_mode: Option<u16>,
    /// Directory mode on memory and S3 mounts (octal, default 0755).
    #[arg(long, value_parser = parse_mode)]
    pub dir_mode: Option<u16>,
    /// Attribute and entry TTL in seconds (default 1).
    #[arg(long, value_parser = secs)]
    pub attr_ttl: Option<std::time::Duration>,
    /// TTL of negative entries in seconds (default: the attribute TTL).
    #[arg(long, value_parser = secs)]
    pub negative_ttl: Option<std::time::Duration>,
    /// Where dirty data is staged (default: a private temp dir).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// The most staged data may take in the cache dir, such as 20GiB (default: half the
    /// free space of its filesystem at start); writes past it fail with ENOSPC.
    #[arg(long, value_parser = size)]
    pub cache_max_size: Option<u64>,
    /// Threads that serve FUSE requests (default 8; requests on S3 mounts wait on the runtime, not on them).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Mount options, comma separated, as mount(8) takes them (ro, nonempty, allow_other,
    /// noatime, fsname=SOURCE, mount=NAME…).
    #[arg(short = 'o', value_delimiter = ',')]
    pub options: Vec<String>,
    /// Serve only the mount NAME, at the mountpoint's root (like `s3fs bucket /mnt`).
    #[arg(long, value_name = "NAME")]
    pub mount: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (such as 127.0.0.1:9464): FUSE and
    /// backend requests by kind, bytes, errors by errno, cache hits, pending uploads.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Serve FUSE over io_uring: one queue per CPU, its thread pinned there (Linux 6.14+;
    /// enable it first with `echo Y > /sys/module/fuse/parameters/enable_uring`). Where the
    /// kernel does not offer it, the daemon warns and serves /dev/fuse.
    #[arg(long, env = "GENRO_STORAGE_IO_URING", value_parser = clap::builder::BoolishValueParser::new())]
    pub io_uring: bool,
    /// Requests each io_uring queue holds at once (at most 1024); each entry keeps a buffer
    /// of max_write (1 MiB) plus a page. Default 32, fewer past 7 CPUs (the queues' buffers
    /// stay under 256 MiB), at least 4.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub io_uring_queue_depth: Option<u16>,
}

fn size(s: &str) -> Result<u64, String> {
    crate::config::parse_size(s)
        .ok_or_else(|| format!("{s:?} is not a size such as 512MiB, 2G or 1000000"))
}

fn secs(s: &str) -> Result<std::time::Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    parse_secs(v)
}

impl From<MountArgs> for DaemonOptions {
    fn from(a: MountArgs) -> Self {
        DaemonOptions {
            read_only: a.read_only,
            allow_other: a.allow_other,
            uid: a.uid,
            gid: a.gid,
            file_mode: a.file_mode,
            dir_mode: a.dir_mode,
            attr_ttl: a.attr_ttl,
            negative_ttl: a.negative_ttl,
            cache_dir: a.cache_dir,
            cache_max_size: a.cache_max_size,
            threads: a.threads,
            options: a.options,
            only: a.mount,
            metrics: a.metrics,
            io_uring: a.io_uring,
            io_uring_queue_depth: a.io_uring_queue_depth,
        }
    }
}

/// Run the command line; `argv[0]` named `mount.fuse.genro-storage` or `mount.genro-storage`
/// is mount(8)'s helper convention (see [`helper`]).
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let name = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // mount(8)'s helper: called as mount.fuse.genro-storage, or by fuse3's mount.fuse3 as
    // `genro-storage CONFIG MOUNTPOINT -o …` (a first argument that is no subcommand).
    let first = args.get(1).and_then(|a| a.to_str()).unwrap_or("-");
    let subcommand = <Cli as clap::CommandFactory>::command()
        .get_subcommands()
        .any(|c| c.get_name() == first)
        || first == "help";
    if name.starts_with("mount.") || (!first.starts_with('-') && !subcommand) {
        return ExitCode::from(helper::run(&args[1..]));
    }
    let cli = Cli::parse_from(args);
    if let Err(e) = crate::logging::init(cli.log_level.as_deref(), cli.log_file.as_deref()) {
        eprintln!("genro-storage: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    ExitCode::from(commands::run(cli))
}

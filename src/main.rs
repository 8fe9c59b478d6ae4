//! The `genro-storage` command: parse the command line, load the config, run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use genro_storage::fuse::{parse_mode, parse_secs, DaemonOptions};
use genro_storage::Config;

#[derive(Parser)]
#[command(
    version,
    about = "Named storage mounts (local, memory, S3) as one FUSE filesystem"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mount every configured mount as <MOUNTPOINT>/<name> and serve until SIGINT, SIGTERM or umount.
    #[command(
        after_help = "Example:\n  genro-storage mount ./mnt\n  genro-storage mount /srv/storage --config /etc/genro/mounts.toml -o allow_other"
    )]
    Mount {
        /// An existing, empty directory.
        mountpoint: PathBuf,
        /// The config file.
        #[arg(long, default_value = "mounts.toml")]
        config: PathBuf,
        /// Refuse every change with EROFS.
        #[arg(long)]
        read_only: bool,
        /// Let other users in (turns on default_permissions).
        #[arg(long)]
        allow_other: bool,
        /// Owner shown on memory and S3 mounts.
        #[arg(long)]
        uid: Option<u32>,
        /// Group shown on memory and S3 mounts.
        #[arg(long)]
        gid: Option<u32>,
        /// File mode on memory and S3 mounts (octal, default 0644).
        #[arg(long, value_parser = parse_mode)]
        file_mode: Option<u16>,
        /// Directory mode on memory and S3 mounts (octal, default 0755).
        #[arg(long, value_parser = parse_mode)]
        dir_mode: Option<u16>,
        /// Attribute and entry TTL in seconds (default 1).
        #[arg(long)]
        attr_ttl: Option<f64>,
        /// TTL of negative entries in seconds (default: the attribute TTL).
        #[arg(long)]
        negative_ttl: Option<f64>,
        /// Where dirty data is staged (default: a private temp dir).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Threads that serve FUSE requests (default 8; requests on S3 mounts wait on the runtime, not on them).
        #[arg(long)]
        threads: Option<usize>,
        /// Mount options, comma separated, as mount(8) takes them (ro, nonempty, allow_other, noatime…).
        #[arg(short = 'o', value_delimiter = ',')]
        options: Vec<String>,
    },
}

fn secs(v: Option<f64>, flag: &str) -> Result<Option<Duration>, String> {
    v.map(parse_secs)
        .transpose()
        .map_err(|e| format!("--{flag}: {e}"))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,fuser=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Mount {
            mountpoint,
            config,
            read_only,
            allow_other,
            uid,
            gid,
            file_mode,
            dir_mode,
            attr_ttl,
            negative_ttl,
            cache_dir,
            threads,
            options,
        } => (|| -> Result<(), Failure> {
            let cfg = Config::from_file(&config).map_err(Failure::Usage)?;
            let opts = DaemonOptions {
                read_only,
                allow_other,
                uid,
                gid,
                file_mode,
                dir_mode,
                attr_ttl: secs(attr_ttl, "attr-ttl").map_err(Failure::Flag)?,
                negative_ttl: secs(negative_ttl, "negative-ttl").map_err(Failure::Flag)?,
                cache_dir,
                threads,
                options,
            };
            genro_storage::fuse::run(&cfg, &mountpoint, opts).map_err(Failure::Failed)
        })(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("genro-storage: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Flag(e)) => {
            eprintln!("genro-storage: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(e)) => {
            eprintln!("genro-storage: {e}");
            ExitCode::from(if e.kind() == genro_storage::ErrorKind::Config {
                2
            } else {
                1
            })
        }
    }
}

/// Why the command failed: exit status 2 for bad usage or config, 1 for a failed operation.
enum Failure {
    Usage(genro_storage::Error),
    Flag(String),
    Failed(genro_storage::Error),
}

//! Logs: `RUST_LOG` or `--log-level`, to stderr or `--log-file`; under systemd (the journal
//! connected to stderr, `JOURNAL_STREAM` set) each line starts with its syslog priority
//! (`<3>` error … `<7>` debug) and carries no timestamp or colour, as the journal wants.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Install the global subscriber. `level` is used when `RUST_LOG` is unset (default `info`).
pub fn init(level: Option<&str>, file: Option<&std::path::Path>) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()) {
        Some(v) => EnvFilter::try_new(&v).map_err(|e| format!("RUST_LOG={v:?}: {e}"))?,
        None => {
            let l = level.unwrap_or("info");
            if !["error", "warn", "info", "debug", "trace", "off"].contains(&l) {
                return Err(format!(
                    "--log-level {l:?}: valid levels are error, warn, info, debug, trace, off"
                ));
            }
            // fuser speaks through the `log` crate; its unmount warnings after ours are noise.
            // The SFTP client logs every session's start and end at info.
            EnvFilter::try_new(format!(
                "{l},fuser=error,log=error,openssh_sftp_client=warn,openssh=warn"
            ))
            .map_err(|e| e.to_string())?
        }
    };
    // A line that cannot be written is dropped: tracing's default reports it with
    // `eprintln!`, which panics when stderr is a closed pipe (mount(8)'s helper exits once
    // the mount is up), and a panic there would take the filesystem down with it.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .log_internal_errors(false);
    let journal = file.is_none() && std::env::var_os("JOURNAL_STREAM").is_some();
    let result = match (file, journal) {
        (Some(path), _) => {
            use std::os::unix::fs::OpenOptionsExt;
            // (0640 whatever the umask: the daemon runs with umask 0)
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .open(path)
                .map_err(|e| format!("--log-file {}: {e}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .try_init()
        }
        (None, true) => builder
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .event_format(Journal)
            .try_init(),
        // SAFETY: isatty only inspects the descriptor.
        (None, false) => builder
            .with_ansi(unsafe { libc::isatty(2) } == 1)
            .with_writer(std::io::stderr)
            .try_init(),
    };
    result.map_err(|e| e.to_string())
}

/// One line per event, `<priority>target: message fields`, for systemd's journal.
struct Journal;

impl<S, N> FormatEvent<S, N> for Journal
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(
            w,
            "<{}>{}: ",
            priority(*event.metadata().level()),
            event.metadata().target()
        )?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// syslog priority of a level.
fn priority(l: Level) -> u8 {
    match l {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

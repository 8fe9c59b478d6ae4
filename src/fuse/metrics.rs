//! The daemon's Prometheus endpoint (`--metrics ADDR`, `[fuse] metrics`): the SIGUSR1
//! counters and each mount's backend requests by kind, as Prometheus text at `/metrics`.
//! Off unless asked for; it binds only the address given.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::error::{Error, Result};
use crate::fuse::fs::Fs;
use crate::fuse::stats::Snapshot;
use crate::storage::mount::Mount;

type Labels = Vec<(&'static str, String)>;

/// The name of an errno (`ENOENT`), or its number for the rare ones.
fn errno_name(n: i32) -> String {
    let name = match n {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::ENODATA => "ENODATA",
        libc::ENOTSUP => "ENOTSUP",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EINTR => "EINTR",
        _ => return n.to_string(),
    };
    name.to_string()
}

/// The Prometheus text of these counters (OpenMetrics text format).
pub fn render(
    snaps: &[Snapshot],
    mounts: &[Arc<Mount>],
    transport: &fuser::TransportState,
) -> String {
    let mut reg = Registry::with_prefix("genro_storage");
    let t = Family::<Labels, Gauge>::default();
    reg.register(
        "fuse_transport",
        "The transport serving FUSE requests (1 for the one in use): dev_fuse or io_uring",
        t.clone(),
    );
    for (name, kind) in [
        ("dev_fuse", fuser::Transport::DevFuse),
        ("io_uring", fuser::Transport::IoUring),
    ] {
        t.get_or_create(&vec![("transport", name.to_string())])
            .set(i64::from(transport.get() == kind));
    }
    let ring = Counter::<u64>::default();
    reg.register(
        "fuse_ring_requests",
        "FUSE requests that came on the io_uring queues",
        ring.clone(),
    );
    ring.inc_by(transport.ring_requests());
    let counter = |reg: &mut Registry, name: &str, help: &str| {
        let f = Family::<Labels, Counter>::default();
        reg.register(name, help, f.clone());
        f
    };
    let fuse_requests = counter(&mut reg, "fuse_requests", "FUSE requests by operation");
    let backend_requests = counter(
        &mut reg,
        "backend_requests",
        "Backend requests by kind (stat is a HEAD, read one ranged GET, write one upload, list one listing)",
    );
    let backend_errors = counter(&mut reg, "backend_errors", "Backend requests that failed");
    let bytes = counter(
        &mut reg,
        "bytes",
        "Bytes moved, by direction (read, written) and side (fuse: through the daemon; backend: to and from the backend)",
    );
    let errors = counter(
        &mut reg,
        "fuse_errors",
        "FUSE requests answered with an error, by errno",
    );
    let cache = counter(
        &mut reg,
        "attr_cache_lookups",
        "Attribute lookups, by result (hit: answered by the cache; miss: went to the backend)",
    );
    let gauge = |reg: &mut Registry, name: &str, help: &str| {
        let f = Family::<Labels, Gauge>::default();
        reg.register(name, help, f.clone());
        f
    };
    let pending = gauge(
        &mut reg,
        "pending_uploads",
        "Open files with data not uploaded yet",
    );
    let open = gauge(&mut reg, "open_files", "Files open through the daemon");
    let m = |name: &str| vec![("mount", name.to_string())];
    let with = |name: &str, k: &'static str, v: String| {
        let mut l = m(name);
        l.push((k, v));
        l
    };
    for s in snaps {
        for (op, n) in &s.requests {
            fuse_requests
                .get_or_create(&with(&s.mount, "op", op.to_string()))
                .inc_by(*n);
        }
        for (errno, n) in &s.errnos {
            errors
                .get_or_create(&with(&s.mount, "errno", errno_name(*errno)))
                .inc_by(*n);
        }
        let side = |dir: &str, side: &str| {
            let mut l = m(&s.mount);
            l.push(("direction", dir.to_string()));
            l.push(("side", side.to_string()));
            l
        };
        bytes
            .get_or_create(&side("read", "fuse"))
            .inc_by(s.bytes_read);
        bytes
            .get_or_create(&side("written", "fuse"))
            .inc_by(s.bytes_written);
        cache
            .get_or_create(&with(&s.mount, "result", "hit".into()))
            .inc_by(s.cache_hits);
        cache
            .get_or_create(&with(&s.mount, "result", "miss".into()))
            .inc_by(s.cache_misses);
        pending
            .get_or_create(&m(&s.mount))
            .set(s.pending_uploads as i64);
        open.get_or_create(&m(&s.mount)).set(s.open_files as i64);
        if let Some(mount) = mounts.iter().find(|x| x.name() == s.mount) {
            let c = mount.backend_requests();
            for (kind, n) in c.snapshot() {
                backend_requests
                    .get_or_create(&with(&s.mount, "kind", kind.to_string()))
                    .inc_by(n);
            }
            let get =
                |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            backend_errors
                .get_or_create(&m(&s.mount))
                .inc_by(get(&c.errors));
            bytes
                .get_or_create(&side("read", "backend"))
                .inc_by(get(&c.bytes_read));
            bytes
                .get_or_create(&side("written", "backend"))
                .inc_by(get(&c.bytes_written));
        }
    }
    let mut out = String::new();
    // (writing to a String cannot fail)
    let _ = encode(&mut out, &reg);
    out
}

/// Bind `addr` (failing at once, naming it, when it cannot be bound) and serve `/metrics`
/// on the current runtime until the daemon stops.
pub async fn serve(addr: SocketAddr, fs: Arc<Fs>, transport: fuser::TransportState) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::config("--metrics", format!("cannot listen on {addr}: {e}")))?;
    tracing::info!(%addr, "metrics at http://{addr}/metrics");
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // (out of descriptors, say: wait rather than spin on the error)
                    tracing::warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let fs = fs.clone();
            let transport = transport.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let fs = fs.clone();
                        let transport = transport.clone();
                        async move {
                            let resp = if req.uri().path() == "/metrics"
                                && req.method() == hyper::Method::GET
                            {
                                let text =
                                    render(&fs.stats_report().await, fs.mounts(), &transport);
                                hyper::Response::builder()
                                .header(
                                    "content-type",
                                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                )
                                .body(Full::new(Bytes::from(text)))
                            } else {
                                hyper::Response::builder().status(404).body(Full::new(
                                    Bytes::from_static(b"only /metrics is served\n"),
                                ))
                            };
                            resp
                        }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await
                {
                    tracing::debug!(error = %e, "metrics connection");
                }
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_by_mount() {
        let m = Mount::new(crate::config::MountConfig::memory("mem")).unwrap();
        m.backend_requests()
            .count(crate::storage::mount::counting::Req::Read);
        let snap = Snapshot {
            mount: "mem".into(),
            requests: vec![("lookup", 3), ("read", 2)],
            bytes_read: 10,
            bytes_written: 20,
            errors: 1,
            cache_hits: 4,
            cache_misses: 5,
            pending_uploads: 1,
            open_files: 2,
            errnos: vec![(libc::ENOENT, 1)],
        };
        let text = render(&[snap], &[m], &fuser::TransportState::default());
        for want in [
            r#"genro_storage_fuse_requests_total{mount="mem",op="lookup"} 3"#,
            r#"genro_storage_backend_requests_total{mount="mem",kind="read"} 1"#,
            r#"genro_storage_backend_requests_total{mount="mem",kind="list"} 0"#,
            r#"genro_storage_fuse_errors_total{mount="mem",errno="ENOENT"} 1"#,
            r#"genro_storage_bytes_total{mount="mem",direction="written",side="fuse"} 20"#,
            r#"genro_storage_attr_cache_lookups_total{mount="mem",result="miss"} 5"#,
            r#"genro_storage_pending_uploads{mount="mem"} 1"#,
            r#"genro_storage_open_files{mount="mem"} 2"#,
            // a session not started yet serves on neither transport
            r#"genro_storage_fuse_transport{transport="io_uring"} 0"#,
            r#"genro_storage_fuse_ring_requests_total 0"#,
            "# EOF",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
    }
}

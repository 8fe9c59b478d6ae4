//! The seed's web section in Rust: an axum server over two mounts, `uploads` and `backups`.
//!
//! - `GET /files/{*path}`: the file from `uploads:` with `Content-Length` and
//!   `Last-Modified` (404 when missing, 400 for a directory or a bad path);
//! - `POST /upload/{*path}`: the request body becomes `uploads:path` (201, JSON with the size);
//! - `POST /backup`: `{"paths": [...]}` copied from `uploads:` to `backups:` in parallel, one
//!   status per file.
//!
//! The storage lives in the app state; `close_all` runs on graceful shutdown (Ctrl-C).
//!
//! ```sh
//! cargo run --example axum_server            # ./data/uploads and ./data/backups, port 3000
//! GENRO_CONFIG=mounts.toml GENRO_ADDR=127.0.0.1:8080 cargo run --example axum_server
//! curl --data-binary @report.pdf localhost:3000/upload/reports/r.pdf
//! curl localhost:3000/files/reports/r.pdf -o r.pdf
//! curl -H 'content-type: application/json' -d '{"paths":["reports/r.pdf"]}' localhost:3000/backup
//! ```

use std::future::Future;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use genro_storage::{AsyncStorageManager, ErrorKind, MountConfig};
use serde::{Deserialize, Serialize};

/// What the handlers share: the storage manager.
#[derive(Clone)]
pub struct AppState {
    /// The configured mounts (`uploads` and `backups` at least).
    pub storage: AsyncStorageManager,
}

/// The routes over `storage`.
pub fn app(storage: AsyncStorageManager) -> Router {
    Router::new()
        .route("/files/{*path}", get(get_file))
        .route("/upload/{*path}", post(upload))
        .route("/backup", post(backup))
        .with_state(AppState { storage })
}

/// Serve `storage` on `listener` until `shutdown` completes, then close every mount.
pub async fn serve(
    listener: tokio::net::TcpListener,
    storage: AsyncStorageManager,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(storage.clone()))
        .with_graceful_shutdown(shutdown)
        .await?;
    storage.close_all().await.map_err(std::io::Error::other)
}

fn error(e: genro_storage::Error) -> Response {
    let status = match e.kind() {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::InvalidPath | ErrorKind::IsADirectory | ErrorKind::NotADirectory => {
            StatusCode::BAD_REQUEST
        }
        ErrorKind::PermissionDenied | ErrorKind::ReadOnly => StatusCode::FORBIDDEN,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, e.to_string()).into_response()
}

async fn get_file(State(s): State<AppState>, Path(path): Path<String>) -> Response {
    let node = match s.storage.node(&format!("uploads:{path}")) {
        Ok(n) => n,
        Err(e) => return error(e),
    };
    let entry = match node.stat().await {
        Ok(Some(e)) if !e.is_dir() => e,
        Ok(Some(_)) => return (StatusCode::BAD_REQUEST, "a directory").into_response(),
        Ok(None) => return (StatusCode::NOT_FOUND, format!("no file {path}")).into_response(),
        Err(e) => return error(e),
    };
    match node.read().await {
        Ok(data) => (
            [
                (header::CONTENT_LENGTH, entry.size.to_string()),
                (header::LAST_MODIFIED, http_date(entry.mtime)),
                (header::CONTENT_TYPE, "application/octet-stream".into()),
            ],
            data,
        )
            .into_response(),
        Err(e) => error(e),
    }
}

/// The answer to an upload.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct Uploaded {
    /// Where the file went (`uploads:path`).
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
}

async fn upload(State(s): State<AppState>, Path(path): Path<String>, body: Bytes) -> Response {
    let node = match s.storage.node(&format!("uploads:{path}")) {
        Ok(n) => n,
        Err(e) => return error(e),
    };
    let size = body.len() as u64;
    match node.write(body).await {
        Ok(()) => (
            StatusCode::CREATED,
            Json(Uploaded {
                path: node.fullpath(),
                size,
            }),
        )
            .into_response(),
        Err(e) => error(e),
    }
}

/// A backup request: paths below `uploads:`.
#[derive(Serialize, Deserialize, Debug)]
pub struct BackupRequest {
    /// The files to copy to `backups:`.
    pub paths: Vec<String>,
}

/// The outcome for one file of a backup.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct BackupStatus {
    /// The path below `uploads:`.
    pub path: String,
    /// `ok` or `error`.
    pub status: String,
    /// What went wrong, for `error`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

async fn backup(State(s): State<AppState>, Json(req): Json<BackupRequest>) -> Response {
    let copies = req.paths.iter().map(|p| {
        let storage = s.storage.clone();
        async move {
            let r = async {
                let src = storage.node(&format!("uploads:{p}"))?;
                let dst = storage.node(&format!("backups:{p}"))?;
                src.copy(&dst).await
            }
            .await;
            BackupStatus {
                path: p.clone(),
                status: if r.is_ok() { "ok" } else { "error" }.into(),
                error: r.err().map(|e| e.to_string()),
            }
        }
    });
    Json(futures::future::join_all(copies).await).into_response()
}

/// An HTTP date: `Thu, 26 Nov 2026 10:00:00 GMT`.
pub fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().init();
    let storage = AsyncStorageManager::new();
    let configured = match std::env::var("GENRO_CONFIG") {
        Ok(file) => storage.configure_file(&file).await.map(|_| ()),
        Err(_) => {
            storage
                .configure(vec![
                    MountConfig::local("uploads", "data/uploads").create(true),
                    MountConfig::local("backups", "data/backups").create(true),
                ])
                .await
        }
    };
    configured.map_err(std::io::Error::other)?;
    let addr = std::env::var("GENRO_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!("serving on http://{addr}");
    serve(listener, storage, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

//! The seed's parallel pattern on S3, for `benches/library_vs_python.py`: N small writes at
//! once (`join_all`), then N reads at once, timed, with the backend requests they cost.
//!
//! `cargo run --release --example parallel_pattern -- ENDPOINT BUCKET PREFIX N`
//! (`CONC=k` keeps at most k operations in flight; default: all N at once, as `join_all`;
//! `MAX_IN_FLIGHT=m` sets the mount's `max_in_flight`, default 64; `KEY`/`SECRET` the keys,
//! default bench/bench-secret)

use std::time::Instant;

use genro_storage::{AsyncStorageManager, MountConfig};

#[tokio::main]
async fn main() -> genro_storage::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, endpoint, bucket, prefix, n] = &args[..] else {
        eprintln!("usage: parallel_pattern ENDPOINT BUCKET PREFIX N");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("N");
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let mut config = MountConfig::s3("s3", bucket)
        .endpoint_url(endpoint)
        .access_key(env("KEY", "bench"))
        .secret_key(env("SECRET", "bench-secret"))
        .prefix(prefix);
    if let Ok(m) = std::env::var("MAX_IN_FLIGHT") {
        config = config.max_in_flight(m.parse().expect("MAX_IN_FLIGHT"));
    }
    let storage = AsyncStorageManager::new();
    storage.configure(vec![config]).await?;
    let nodes: Vec<_> = (0..n)
        .map(|i| storage.node(&format!("s3:f{i}.txt")))
        .collect::<genro_storage::Result<_>>()?;
    let body = vec![b'x'; 4096];
    let t = Instant::now();
    let k: usize = std::env::var("CONC")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    use futures::StreamExt;
    let rs: Vec<_> = futures::stream::iter(nodes.iter().map(|f| f.write(body.clone())))
        .buffer_unordered(k)
        .collect()
        .await;
    for r in rs {
        r?;
    }
    let w = t.elapsed();
    let rs: Vec<_> = futures::stream::iter(nodes.iter().map(|f| f.read()))
        .buffer_unordered(k)
        .collect()
        .await;
    for r in rs {
        assert_eq!(r?.len(), 4096);
    }
    let total = t.elapsed();
    let reqs: u64 = storage
        .mount("s3")?
        .backend_requests()
        .snapshot()
        .iter()
        .map(|(_, n)| n)
        .sum();
    println!(
        "{{\"seconds\": {:.4}, \"write_seconds\": {:.4}, \"requests\": {reqs}, \"ops\": {}}}",
        total.as_secs_f64(),
        w.as_secs_f64(),
        2 * n
    );
    Ok(())
}

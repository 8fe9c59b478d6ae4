//! S3's `max_in_flight`: the library's whole-object writes and reads in flight on one mount
//! are at most that many, however many are started at once. Checked against a server that
//! accepts connections and never answers (each request in flight holds one connection).

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use genro_storage::{AsyncStorageManager, ErrorKind, MountConfig};

/// A server that takes connections and answers nothing: the connections it holds.
fn hung_server() -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let count = n.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(c);
        }
    });
    (format!("http://{addr}"), n)
}

async fn started_at_once(max: Option<usize>, ops: usize, read: bool) -> usize {
    let (endpoint, conns) = hung_server();
    let mut m = MountConfig::s3("s3", "b")
        .endpoint_url(endpoint)
        .access_key("k")
        .secret_key("s")
        .timeout(Duration::from_millis(1500))
        .retries(0);
    if let Some(max) = max {
        m = m.max_in_flight(max);
    }
    let storage = AsyncStorageManager::new();
    storage.configure(vec![m]).await.unwrap();
    let tasks: Vec<_> = (0..ops)
        .map(|i| {
            let node = storage.node(&format!("s3:f{i}")).unwrap();
            tokio::spawn(async move {
                if read {
                    node.read().await.map(|_| ())
                } else {
                    node.write(vec![1u8; 10]).await
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let seen = conns.load(Ordering::SeqCst);
    for t in tasks {
        let e = t.await.unwrap().unwrap_err();
        assert_ne!(e.kind(), ErrorKind::NotFound, "{e}");
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_object_writes_and_reads_in_flight_stop_at_max_in_flight() {
    assert_eq!(
        started_at_once(Some(3), 10, false).await,
        3,
        "writes, max 3"
    );
    assert_eq!(started_at_once(Some(3), 10, true).await, 3, "reads, max 3");
    // the default, 64, lets 10 go at once
    assert_eq!(
        started_at_once(None, 10, false).await,
        10,
        "writes, default"
    );
}

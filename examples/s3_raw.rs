//! The S3 ceiling for benchmarks: the same workload through the opendal client directly,
//! with no filesystem in between. `s3_raw ENDPOINT BUCKET` prints `name value unit` lines.

use std::time::Instant;

use genro_storage::{AsyncStorageManager, MountConfig};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let endpoint = args.next().expect("usage: s3_raw ENDPOINT BUCKET");
    let bucket = args.next().expect("usage: s3_raw ENDPOINT BUCKET");
    let s = AsyncStorageManager::new();
    s.configure(vec![MountConfig::s3("s3", bucket)
        .endpoint_url(endpoint)
        .prefix("raw")
        .access_key("bench")
        .secret_key("bench-secret")])
        .await
        .unwrap();
    let size: u64 = 1 << 30;
    let block = vec![7u8; 8 << 20];
    let big = s.node("s3:seq").unwrap();
    let t = Instant::now();
    let mut w = big.writer().await.unwrap();
    for _ in 0..size / block.len() as u64 {
        w.write(block.clone()).await.unwrap();
    }
    w.close().await.unwrap();
    println!("seq_write {:.1} MiB/s", 1024.0 / t.elapsed().as_secs_f64());
    let t = Instant::now();
    let r = big.reader().await.unwrap();
    // sequential: 32 MiB at a time, each fetched as 8 MiB parts, 4 in parallel
    let mut off = 0;
    while off < size {
        let got = r.read_range(off, off + (32 << 20)).await.unwrap();
        off += got.len() as u64;
    }
    println!("seq_read {:.1} MiB/s", 1024.0 / t.elapsed().as_secs_f64());
    let t = Instant::now();
    for i in 0..2000 {
        s.node(&format!("s3:small/f{i}"))
            .unwrap()
            .write(vec![1u8; 4096])
            .await
            .unwrap();
    }
    println!(
        "small_create {:.0} files/s",
        2000.0 / t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let n = s
        .node("s3:small")
        .unwrap()
        .list_entries()
        .await
        .unwrap()
        .len();
    assert_eq!(n, 2000);
    println!("list_2000 {:.3} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    for i in 0..2000 {
        s.node(&format!("s3:small/f{i}"))
            .unwrap()
            .read()
            .await
            .unwrap();
    }
    println!(
        "small_read {:.0} files/s",
        2000.0 / t.elapsed().as_secs_f64()
    );
    s.node("s3:")
        .unwrap()
        .child("small")
        .unwrap()
        .delete()
        .await
        .unwrap();
    big.delete().await.unwrap();
}

//! A loopback S3 server (s3s-fs) for benchmarks: `s3_server ROOT PORT`. Each directory under
//! ROOT is a bucket. Credentials: access key `bench`, secret `bench-secret`.

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let root = args.next().expect("usage: s3_server ROOT PORT");
    let port: u16 = args
        .next()
        .expect("usage: s3_server ROOT PORT")
        .parse()
        .expect("PORT");
    let fs = s3s_fs::FileSystem::new(&root).expect("s3s-fs root");
    let service = {
        let mut b = s3s::service::S3ServiceBuilder::new(fs);
        b.set_auth(s3s::auth::SimpleAuth::from_single("bench", "bench-secret"));
        b.build()
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    eprintln!("s3_server listening on http://127.0.0.1:{port}");
    let http = ConnBuilder::new(TokioExecutor::new());
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        // without it, small responses wait for the peer's delayed ACK (~40 ms each)
        let _ = socket.set_nodelay(true);
        let conn = http
            .serve_connection(TokioIo::new(socket), service.clone())
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

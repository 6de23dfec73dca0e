//! An S3-compatible server for kubus's tests: `kubus-test-s3 ROOT ACCESS_KEY SECRET_KEY` serves the directories
//! under ROOT as buckets on a free loopback port, prints `http://127.0.0.1:PORT` on its first line, and runs until
//! its standard input closes (so it ends with the test that started it, however that ends).
//!
//! s3s-fs checks a conditional write (`If-None-Match: *`, `If-Match`) and then writes, as two steps: two writers
//! of one Delta commit file could both pass the check. And it keeps an object's ETag in a file of its own, written
//! after the object: a read between the two gets the old content with the new ETag, and a write conditional on
//! that ETag then passes over the change it never saw. S3 and MinIO decide such writes atomically and give an
//! object's content with its own ETag, and kubus relies on both; so here a conditional write waits for the one
//! before it and for reads under way, and a read for the conditional write under way.

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Method, Request, header};
use hyper_util::rt::TokioIo;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use s3s_fs::FileSystem;
use std::sync::Arc;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, access_key, secret_key] = args.as_slice() else {
        return Err("usage: kubus-test-s3 ROOT ACCESS_KEY SECRET_KEY".into());
    };
    let mut builder = S3ServiceBuilder::new(FileSystem::new(root).map_err(|e| format!("{root}: {e:?}"))?);
    builder.set_auth(SimpleAuth::from_single(access_key.as_str(), secret_key.as_str()));
    let service = builder.build();
    let conditional = Arc::new(tokio::sync::RwLock::new(()));

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let mut stdout = tokio::io::stdout();
    stdout.write_all(format!("http://{}\n", listener.local_addr()?).as_bytes()).await?;
    stdout.flush().await?;

    let serve = async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else { continue };
            // As storage servers do: a response's last segment goes out at once, not after the client's delayed
            // acknowledgement of the one before (40 ms on Linux per request).
            let _ = socket.set_nodelay(true);
            let (service, conditional) = (service.clone(), conditional.clone());
            let handle = hyper::service::service_fn(move |request: Request<Incoming>| {
                let (service, conditional) = (service.clone(), conditional.clone());
                async move {
                    let writes = matches!(*request.method(), Method::PUT | Method::POST);
                    let checked =
                        [header::IF_NONE_MATCH, header::IF_MATCH].iter().any(|h| request.headers().contains_key(h));
                    // A read holds its turn until the object is open and its ETag read; the body then comes from
                    // the open file, which a later write (a rename over it) leaves as it was.
                    let (_write, _read) = match *request.method() {
                        _ if writes && checked => (Some(conditional.write().await), None),
                        Method::GET | Method::HEAD => (None, Some(conditional.read().await)),
                        _ => (None, None),
                    };
                    service.call(request.map(s3s::Body::from)).await
                }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(socket), handle));
        }
    };
    let stdin_closed = async {
        let mut sink = [0u8; 64];
        while tokio::io::stdin().read(&mut sink).await.is_ok_and(|n| n > 0) {}
    };
    tokio::select! {
        () = serve => {}
        () = stdin_closed => {}
    }
    Ok(())
}

//! Trailers through parking, end to end: a chunked request with trailers, by cluster DNS
//! name, through the data-plane stand-in (it picks an endpoint and connects, as kube-proxy
//! does: the bytes on the connection are the caller's own) to the binary's parking listener,
//! which holds it while the app starts and forwards it; the app's trailers come back.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::TokioIo;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::dataplane::{self, Answer};
use crate::parking::world::*;

/// The app: a hyper server that answers `app saw <method> <uri> <body> x-checksum=<the
/// request's trailer>` with a trailer `x-echo-checksum` of the same value; counts requests.
struct EchoApp {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl EchoApp {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind app");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        counted.fetch_add(1, Ordering::SeqCst);
                        echo(req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, hits }
    }
}

async fn echo(
    req: Request<Incoming>,
) -> Result<Response<impl hyper::body::Body<Data = Bytes, Error = Infallible>>, hyper::Error> {
    let (parts, body) = req.into_parts();
    let collected = body.collect().await?;
    let checksum = collected
        .trailers()
        .and_then(|t| t.get("x-checksum"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_owned();
    let text = format!(
        "app saw {} {} {} x-checksum={checksum}",
        parts.method,
        parts.uri,
        String::from_utf8_lossy(&collected.to_bytes())
    );
    let mut trailers = HeaderMap::new();
    trailers.insert("x-echo-checksum", checksum.parse().expect("header value"));
    // A stream of frames has no known length, so the answer is chunked and can carry
    // trailers (a body of known length would be sent with `Content-Length` and none).
    let frames = [Frame::data(Bytes::from(text)), Frame::trailers(trailers)];
    let body = StreamBody::new(futures::stream::iter(frames.map(Ok)));
    Ok(Response::builder()
        .header("trailer", "x-echo-checksum")
        .header("x-app", "web")
        .body(body)
        .expect("response"))
}

/// A chunked body's data and its trailer lines (lowercase); Err when it is cut short.
fn dechunk(raw: &str) -> Result<(String, Vec<String>), String> {
    let (mut rest, mut data) = (raw, String::new());
    loop {
        let (size, after) = rest
            .split_once("\r\n")
            .ok_or_else(|| format!("no chunk size in {rest:?}"))?;
        let hex = size.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(hex, 16).map_err(|e| format!("size {hex:?}: {e}"))?;
        if size == 0 {
            // The trailer section: header lines, then an empty line.
            if after != "\r\n" && !after.ends_with("\r\n\r\n") {
                return Err(format!("no end of the trailer section: {after:?}"));
            }
            let trailers = after
                .split("\r\n")
                .take_while(|l| !l.is_empty())
                .map(str::to_ascii_lowercase)
                .collect();
            return Ok((data, trailers));
        }
        let chunk = after
            .get(..size)
            .ok_or_else(|| format!("chunk of {size} cut short: {after:?}"))?;
        data.push_str(chunk);
        rest = after[size..]
            .strip_prefix("\r\n")
            .ok_or_else(|| format!("no CRLF after a chunk: {after:?}"))?;
    }
}

#[sqlx::test(migrator = "idle_scaler_postgres::MIGRATOR")]
async fn a_chunked_request_by_dns_name_reaches_the_app_with_method_body_and_trailers_and_its_trailers_come_back(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let w = world(&opts).await;
    let app = EchoApp::start().await;
    w.fake
        .set_app_endpoint("apps", "web", &app.addr.to_string());
    w.fake.set_ready_delay(Duration::from_millis(300));
    let mut daemon = w.daemon().await;
    w.parked(&mut daemon).await;
    assert_eq!(
        dataplane::endpoints(&w.fake, "apps", "web", "http"),
        [format!("127.0.0.1:{}", w.port).parse().expect("addr")],
        "the data plane sends callers to the parking listener"
    );

    let mut stream = dataplane::connect(&w.fake, ip(APPS_POD), ("apps", "web"))
        .await
        .expect("connect");
    // Two chunks, then a trailer the caller declared; `TE: trailers` says it takes them back.
    let request = "PUT /orders/7?v=2 HTTP/1.1\r\nHost: web.apps.svc.cluster.local\r\n\
                   Transfer-Encoding: chunked\r\nTE: trailers\r\nTrailer: x-checksum\r\n\
                   Connection: close\r\n\r\n\
                   d\r\nfirst chunk, \r\nc\r\nsecond chunk\r\n0\r\nx-checksum: c0ffee\r\n\r\n";
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut raw = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut raw))
        .await
        .expect("an answer within the deadline")
        .expect("read answer");

    let answer = Answer::parse(&raw).expect("a complete answer");
    assert_eq!(answer.status, 200, "{answer:?}\n{}", daemon.output());
    assert!(
        answer.head.contains("\r\nx-app: web"),
        "the app answered: {answer:?}"
    );
    assert!(
        answer.head.contains("\r\ntransfer-encoding: chunked"),
        "{answer:?}"
    );
    let (body, trailers) = dechunk(&answer.body).expect("a whole chunked body");
    assert_eq!(
        body, "app saw PUT /orders/7?v=2 first chunk, second chunk x-checksum=c0ffee",
        "method, body and the request's trailer reached the app"
    );
    assert_eq!(
        trailers,
        ["x-echo-checksum: c0ffee"],
        "the app's trailer reached the caller"
    );
    assert_eq!(app.hits.load(Ordering::SeqCst), 1);
    assert_eq!(w.fake.replicas("apps", "web"), Some(1));
}

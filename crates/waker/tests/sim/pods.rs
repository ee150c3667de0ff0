//! The apps' pods: tiny HTTP servers that record every request they receive (id, method,
//! path, body hash, which pod) before they answer, so a request that reached a pod is known
//! even when the pod then breaks the exchange. A pod can stop listening for a while (ready,
//! yet refusing connections), cut a request off after its headers, or cut its answer off.

use std::hash::Hasher;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The header carrying a request's id.
pub const ID: &str = "x-sim-id";

/// How a pod treats the requests it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Reads the body, answers `200` with `ok <id>` and `x-pod`.
    Normal,
    /// Closes the connection after the request's headers, with no answer.
    CutRequest,
    /// Reads the body, then sends `200` with a `Content-Length` it never fulfils.
    CutAnswer,
}

/// What a pod received.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: u64,
    pub pod: usize,
    pub method: String,
    pub path: String,
    /// The body's hash; `None` when the pod cut the request before reading it.
    pub hash: Option<u64>,
    pub mode: Mode,
}

/// The log all pods write to.
pub type Log = Arc<Mutex<Vec<Received>>>;

/// The body hash the clients and the pods agree on (SipHash with fixed keys).
pub fn hash(body: &[u8]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    h.write(body);
    h.finish()
}

/// One pod of an app (`app`: index into the apps; `None`: a pod no parked Service owns).
pub struct Pod {
    pub index: usize,
    pub app: Option<usize>,
    pub addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    log: Log,
    /// The accept loop while the pod listens, and what stops it.
    listening: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl Pod {
    pub async fn start(index: usize, app: Option<usize>, log: Log) -> Self {
        let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind pod");
        let mut pod = Self {
            index,
            app,
            addr: socket.local_addr().expect("addr"),
            mode: Arc::new(Mutex::new(Mode::Normal)),
            log,
            listening: None,
        };
        pod.accept(socket);
        pod
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap_or_else(PoisonError::into_inner) = mode;
    }

    pub fn listens(&self) -> bool {
        self.listening.is_some()
    }

    /// Stops listening: new connections are refused, open ones are still served.
    pub async fn refuse(&mut self) {
        if let Some((stop, task)) = self.listening.take() {
            stop.cancel();
            // The socket is closed once the loop has ended.
            task.await.expect("accept loop");
        }
    }

    /// Listens again: on the same address, or on a new one if another socket of the machine
    /// took the port meanwhile (a restarted pod's new address); whether the address changed.
    pub async fn listen(&mut self) -> bool {
        if self.listening.is_some() {
            return false;
        }
        let (socket, moved) = match TcpListener::bind(self.addr).await {
            Ok(socket) => (socket, false),
            Err(_) => {
                let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind pod");
                self.addr = socket.local_addr().expect("addr");
                (socket, true)
            }
        };
        self.accept(socket);
        moved
    }

    fn accept(&mut self, socket: TcpListener) {
        let stop = CancellationToken::new();
        let (index, mode, log) = (self.index, self.mode.clone(), self.log.clone());
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                loop {
                    let stream = tokio::select! {
                        () = stop.cancelled() => return,
                        accepted = socket.accept() => match accepted {
                            Ok((stream, _)) => stream,
                            Err(_) => continue,
                        },
                    };
                    let (mode, log) = (mode.clone(), log.clone());
                    tokio::spawn(async move {
                        let service = service_fn(move |req| {
                            let now = *mode.lock().unwrap_or_else(PoisonError::into_inner);
                            answer(req, index, now, log.clone())
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        self.listening = Some((stop, task));
    }
}

type Cut =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send>>;
type Answer = http_body_util::Either<Full<Bytes>, StreamBody<Cut>>;

/// How long a pod that cuts its answer waits after the first chunk.
const CUT_AFTER: std::time::Duration = std::time::Duration::from_millis(10);

async fn answer(
    req: Request<Incoming>,
    pod: usize,
    mode: Mode,
    log: Log,
) -> Result<Response<Answer>, std::io::Error> {
    let id = req
        .headers()
        .get(ID)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    let (parts, body) = req.into_parts();
    let mut received = Received {
        id,
        pod,
        method: parts.method.to_string(),
        path: parts.uri.to_string(),
        hash: None,
        mode,
    };
    if mode == Mode::CutRequest {
        log.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(received);
        // An error from the service: hyper closes the connection without an answer.
        return Err(std::io::Error::other("pod cut the request"));
    }
    let Ok(body) = body.collect().await else {
        // The body broke off on the way: recorded (it reached the pod) without a hash.
        log.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(received);
        return Err(std::io::Error::other("request body broken"));
    };
    received.hash = Some(hash(&body.to_bytes()));
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(received);
    let res = Response::builder().header("x-pod", pod.to_string());
    let res = if mode == Mode::CutAnswer {
        // The head and a first chunk go out before the pod breaks off (a cut at once would
        // take the buffered head with it, and the listener would see no answer at all).
        let cut: Cut = Box::pin(futures::stream::unfold(0, |n| async move {
            match n {
                0 => Some((Ok(Frame::data(Bytes::from_static(b"partial"))), 1)),
                1 => {
                    tokio::time::sleep(CUT_AFTER).await;
                    Some((Err(std::io::Error::other("pod cut its answer")), 2))
                }
                _ => None,
            }
        }));
        res.header("content-length", "1000")
            .body(http_body_util::Either::Right(StreamBody::new(cut)))
    } else {
        res.status(StatusCode::OK)
            .body(http_body_util::Either::Left(Full::new(Bytes::from(
                format!("ok {id}"),
            ))))
    };
    Ok(res.expect("answer"))
}

//! A raw HTTP/1.1 client: one request per connection (`Connection: close`), no redirect
//! followed, no retry, from a chosen source address when a test needs the server to see a
//! particular caller.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// One answer.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Header names in lowercase; a repeated header keeps its last value.
    pub headers: HashMap<String, String>,
    /// The body, de-chunked.
    pub body: String,
}

/// One request.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The request target (`/path?query`).
    pub path: &'a str,
    /// Extra headers; a `Host` here replaces the default (the server's address).
    pub headers: &'a [(&'a str, &'a str)],
    /// The body (`Content-Length` is set for a non-empty body and for every `POST`).
    pub body: &'a str,
}

impl<'a> Call<'a> {
    /// `GET path`.
    pub fn get(path: &'a str) -> Self {
        Self {
            method: "GET",
            path,
            headers: &[],
            body: "",
        }
    }
}

/// [`Call`] to `127.0.0.1:port`.
///
/// # Panics
/// When the connection fails or gives no complete answer.
pub async fn call(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    let request = Call {
        method,
        path,
        headers,
        body,
    };
    send(None, to, request)
        .await
        .unwrap_or_else(|e| panic!("{method} {path} to {to}: {e}"))
}

/// Sends `request` to `to` from `source` (any address when `None`) and reads the answer: Err
/// when the connection fails or ends before a complete answer (an empty reply).
pub async fn send(
    source: Option<IpAddr>,
    to: SocketAddr,
    request: Call<'_>,
) -> Result<Answer, String> {
    let mut stream = connect(source, to).await?;
    let Call {
        method,
        path,
        headers,
        body,
    } = request;
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {to}\r\n"));
    }
    req.push_str("Connection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    // Read the head, then exactly the body it announces: some servers (chromedriver) keep
    // the connection open despite `Connection: close`.
    let mut raw = Vec::new();
    let mut buf = [0_u8; 8192];
    while !complete(&raw) {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    parse(&String::from_utf8_lossy(&raw))
}

async fn connect(source: Option<IpAddr>, to: SocketAddr) -> Result<TcpStream, String> {
    let Some(source) = source else {
        return TcpStream::connect(to)
            .await
            .map_err(|e| format!("connect {to}: {e}"));
    };
    let socket = if source.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|e| format!("bind {source}: {e}"))?;
    socket
        .connect(to)
        .await
        .map_err(|e| format!("connect {to} from {source}: {e}"))
}

fn complete(raw: &[u8]) -> bool {
    let text = String::from_utf8_lossy(raw);
    let Some((head, rest)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let head = head.to_ascii_lowercase();
    if let Some(len) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return rest.len() >= len;
    }
    head.contains("transfer-encoding: chunked") && rest.ends_with("0\r\n\r\n")
}

fn parse(raw: &str) -> Result<Answer, String> {
    let (head, rest) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no complete answer: {raw:?}"))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status: {head:?}"))?;
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|t| t == "chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n.min(rest.len())]);
        s = rest.get(n + 2..).unwrap_or("");
    }
    out
}

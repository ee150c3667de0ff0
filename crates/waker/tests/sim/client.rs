//! The callers: who calls (a pod of the app's namespace, of a namespace the app lists, of
//! another namespace, an address no pod has, a trusted gateway), by which `Host` form, with
//! which forged headers naming another app, method, body and keep-alive; the model of which
//! app that names and whether the caller may reach it; and the client that sends it.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use idle_scaler_testkit::sim::Rng;

use crate::parking_rig::try_connect_from;
use crate::pods::{ID, hash};

/// A parked app: its Service `namespace/name`, ClusterIP and `idle-scaler.dev/callers`.
pub struct AppSpec {
    pub namespace: &'static str,
    pub name: &'static str,
    pub cluster_ip: &'static str,
    pub callers: &'static [&'static str],
}

/// Two Services named `web` in two namespaces, so a bare name and a foreign endpoint matter.
pub const APPS: [AppSpec; 3] = [
    AppSpec {
        namespace: "apps",
        name: "web",
        cluster_ip: "10.96.0.10",
        callers: &["friends"],
    },
    AppSpec {
        namespace: "apps",
        name: "api",
        cluster_ip: "10.96.0.11",
        callers: &[],
    },
    AppSpec {
        namespace: "shop",
        name: "web",
        cluster_ip: "10.96.0.12",
        callers: &[],
    },
];

/// The trusted gateways' namespace (`waker_gateway_namespaces`).
pub const GATEWAYS: &str = "ingress";

/// A caller: its source address and the namespace of the pod that has it.
pub struct CallerSpec {
    pub ip: &'static str,
    pub namespace: Option<&'static str>,
}

pub const CALLERS: [CallerSpec; 6] = [
    CallerSpec {
        ip: "127.0.0.2",
        namespace: Some("apps"),
    },
    CallerSpec {
        ip: "127.0.0.3",
        namespace: Some("friends"),
    },
    CallerSpec {
        ip: "127.0.0.4",
        namespace: Some("shop"),
    },
    CallerSpec {
        ip: "127.0.0.5",
        namespace: Some("other"),
    },
    CallerSpec {
        ip: "127.0.0.6",
        namespace: None,
    },
    CallerSpec {
        ip: "127.0.0.7",
        namespace: Some(GATEWAYS),
    },
];

/// The caller rule the listener must apply: a gateway, the app's own namespace, a listed one.
pub fn may_call(caller: &CallerSpec, app: &AppSpec) -> bool {
    caller
        .namespace
        .is_some_and(|ns| ns == GATEWAYS || ns == app.namespace || app.callers.contains(&ns))
}

/// One request as sent, what the model expects of it, and which listener took it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub id: u64,
    /// The app the `Host` names (`None`: no parked Service).
    pub app: Option<usize>,
    pub allowed: bool,
    pub method: String,
    pub path: String,
    pub hash: u64,
    /// The second request of a kept-alive connection.
    pub second: bool,
    /// The listener generation it was sent to.
    pub generation: u64,
}

/// What came back.
#[derive(Debug)]
// The errors' texts are read through `Debug`, in a violation's message.
#[allow(dead_code)]
pub enum Outcome {
    /// The connection was not accepted (the listener had stopped).
    NotConnected(String),
    /// The first answer closed the connection: the second request was not sent.
    NotSent,
    Answered {
        status: u16,
        retry_after: Option<String>,
        pod: Option<usize>,
        body: Result<Bytes, String>,
    },
    /// An error instead of a status line (reset, EOF).
    NoAnswer(String),
    /// Nothing within the client's patience.
    Hung,
}

/// A request ready to send.
pub struct Planned {
    pub sent: Sent,
    host: String,
    forged: Vec<(&'static str, String)>,
    browser: bool,
    body: Bytes,
}

impl Planned {
    /// This request, by name, for app `a`.
    pub fn to(mut self, a: usize, caller: &CallerSpec) -> Self {
        let app = &APPS[a];
        self.host = format!("{}.{}", app.name, app.namespace);
        self.sent.app = Some(a);
        self.sent.allowed = may_call(caller, app);
        self
    }
}

/// Draws a request of `caller` with id `id` for the listener generation `generation`.
pub fn plan(rng: &mut Rng, id: u64, caller: &CallerSpec, second: bool, generation: u64) -> Planned {
    let (host, app) = host_form(rng, caller);
    let method = ["GET", "POST", "PUT", "DELETE", "PATCH"][rng.index(5)];
    let size = match (method, rng.below(20)) {
        ("GET" | "DELETE", _) => 0,
        (_, 0) => rng.range(65_536, 262_144),
        (_, 1..=3) => rng.range(2_048, 65_536),
        _ => rng.range(0, 2_048),
    };
    let body: Vec<u8> = (0..size).map(|_| rng.next_u64().to_le_bytes()[0]).collect();
    let mut forged = Vec::new();
    if rng.percent(30) {
        // Another app's name where a proxy or a caller could put it: never what decides.
        let other = &APPS[rng.index(APPS.len())];
        forged.push((
            "x-idle-scaler-target",
            format!("{}/{}", other.namespace, other.name),
        ));
        forged.push(("x-namespace", other.namespace.to_owned()));
        forged.push(("x-service-name", other.name.to_owned()));
    }
    Planned {
        sent: Sent {
            id,
            app,
            allowed: app.is_some_and(|a| may_call(caller, &APPS[a])),
            method: method.to_owned(),
            path: format!("/p/{id}?q={}", rng.below(1000)),
            hash: hash(&body),
            second,
            generation,
        },
        host,
        forged,
        browser: rng.percent(5),
        body: Bytes::from(body),
    }
}

/// A `Host` and the app it names by the lookup rules (DNS forms, ClusterIP, a bare name in
/// the caller's namespace; port, case and a final dot do not matter).
fn host_form(rng: &mut Rng, caller: &CallerSpec) -> (String, Option<usize>) {
    let a = rng.index(APPS.len());
    let app = &APPS[a];
    let port = if rng.percent(30) { ":80" } else { "" };
    let (host, named) = match rng.below(10) {
        0 => {
            let unknown = [
                "nope.apps",
                "web.nowhere",
                "web.apps.svc.other.local",
                "10.96.9.9",
            ];
            (unknown[rng.index(unknown.len())].to_owned(), None)
        }
        1 => {
            let named = APPS
                .iter()
                .position(|s| s.name == app.name && Some(s.namespace) == caller.namespace);
            (app.name.to_owned(), named)
        }
        2 => (app.cluster_ip.to_owned(), Some(a)),
        n => {
            let form = match n % 3 {
                0 => format!("{}.{}", app.name, app.namespace),
                1 => format!("{}.{}.svc", app.name, app.namespace),
                _ => format!("{}.{}.svc.cluster.local", app.name, app.namespace),
            };
            let form = if rng.percent(10) { form + "." } else { form };
            let form = if rng.percent(10) {
                form.to_ascii_uppercase()
            } else {
                form
            };
            (form, Some(a))
        }
    };
    (host + port, named)
}

/// How long a client waits for everything: the waker's timeout and a forward's, with room.
const PATIENCE: Duration = Duration::from_secs(20);

/// Sends `first` (and `second` on the same connection if its answer keeps it open) from
/// `from` to the listener at `to`.
pub async fn run(
    from: &'static str,
    to: SocketAddr,
    first: Planned,
    second: Option<Planned>,
) -> Vec<(Sent, Outcome)> {
    let mut sent = vec![first.sent.clone()];
    sent.extend(second.as_ref().map(|s| s.sent.clone()));
    match tokio::time::timeout(PATIENCE, exchange(from, to, first, second)).await {
        Ok(done) => done,
        Err(_) => sent.into_iter().map(|s| (s, Outcome::Hung)).collect(),
    }
}

async fn exchange(
    from: &'static str,
    to: SocketAddr,
    first: Planned,
    second: Option<Planned>,
) -> Vec<(Sent, Outcome)> {
    let mut done = Vec::new();
    let stream = match try_connect_from(from, to).await {
        Ok(stream) => stream,
        Err(e) => {
            done.push((first.sent, Outcome::NotConnected(e.to_string())));
            if let Some(second) = second {
                done.push((second.sent, Outcome::NotSent));
            }
            return done;
        }
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(pair) => pair,
        Err(e) => {
            done.push((first.sent, Outcome::NotConnected(e.to_string())));
            return done;
        }
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let (outcome, open) = one(&mut sender, &first).await;
    done.push((first.sent, outcome));
    if let Some(second) = second {
        let outcome = if open && sender.ready().await.is_ok() {
            one(&mut sender, &second).await.0
        } else {
            Outcome::NotSent
        };
        done.push((second.sent, outcome));
    }
    done
}

/// One request; whether the connection stays open after it.
async fn one(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    planned: &Planned,
) -> (Outcome, bool) {
    let mut req = Request::builder()
        .method(planned.sent.method.as_str())
        .uri(planned.sent.path.as_str())
        .header("host", planned.host.as_str())
        .header(ID, planned.sent.id.to_string());
    for (k, v) in &planned.forged {
        req = req.header(*k, v.as_str());
    }
    if planned.browser {
        req = req.header("accept", "text/html");
    }
    let req = req.body(Full::new(planned.body.clone())).expect("request");
    let res = match sender.send_request(req).await {
        Ok(res) => res,
        Err(e) => return (Outcome::NoAnswer(e.to_string()), false),
    };
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let status = res.status().as_u16();
    let retry_after = header("retry-after");
    let pod = header("x-pod").and_then(|p| p.parse().ok());
    let open = header("connection").is_none_or(|c| !c.eq_ignore_ascii_case("close"));
    let body = match res.into_body().collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) => Err(e.to_string()),
    };
    let open = open && body.is_ok();
    (
        Outcome::Answered {
            status,
            retry_after,
            pod,
            body,
        },
        open,
    )
}

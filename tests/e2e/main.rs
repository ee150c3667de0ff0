//! End-to-end tests: the built `idle-scaler` binary against PostgreSQL and the fake
//! Kubernetes API server, over real HTTP, with real signals.

mod activity; // the Prometheus activity source through the binary's wiring
mod adaptive; // the adaptive policy through the binary: plan and tick say predicted_use
mod apps; // apps whose process runs while the fake says their pods do (pages, WebSocket echo)
mod artifacts; // deploy/ agrees with the code (metric names, RBAC)
mod cli; // command-line behaviour: bad input, secrets, the demo
mod clusters; // several clusters: two kubeconfigs, a third cluster's rows, one failing alone
mod crash; // kill -9 mid-sleep, then a restart
mod daemon; // the daemon against PostgreSQL and the fake API server
mod dataplane; // parking's world: a data-plane stand-in, the app, pods and slices on the fake
mod gateway; // a real nginx as the gateway, by public hostname: curl, Chromium, WebSocket, trust
mod haproxy; // HAProxy with the fallback listener as backup server, curl following the 307
mod hardening; // hostile connections and input, shutdown mid-wake, a daemon that never worked
mod logs; // log lines: JSON fields once, no forged text line, no credential
mod packaging; // the Containerfile and deploy/ agree (user, port, entrypoint, lean build)
mod parking; // slept apps parked at the parking listener, reached through the data plane, unparked
mod parking_reconcile; // the reconcile parks again a slice deleted by hand, unparks an app woken elsewhere
mod parking_trailers; // a chunked request's trailers to the app and the app's back, through parking
mod secrets; // a failing exec credential plugin: its output and environment shown nowhere
mod support; // helpers: running the binary, HTTP, the database URL

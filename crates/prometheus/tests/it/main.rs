//! The Prometheus activity source against a real Prometheus (the Debian package
//! `prometheus`) scraping an exporter the tests serve and drive themselves, so the real query
//! engine answers the real queries; and against servers that fail in the ways Prometheus can.
//!
//! A new test goes in the module of its topic: `real` (the default template and a tick),
//! `presets` (the other implementations' templates), `auth` (https, credentials, headers),
//! `failures` (servers that fail).

mod auth;
mod failures;
mod presets;
mod real;
mod support;

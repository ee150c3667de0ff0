//! The Prometheus activity source against a real Prometheus (the Debian package
//! `prometheus`) scraping an exporter the tests serve and drive themselves, so the real query
//! engine answers the real queries; and against servers that fail in the ways Prometheus can.

mod failures;
mod real;
mod support;

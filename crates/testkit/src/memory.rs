//! In-memory `Store` with the PostgreSQL adapter's semantics.

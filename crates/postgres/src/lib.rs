//! PostgreSQL store for idle-scaler.

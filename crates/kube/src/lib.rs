//! Kubernetes scaler for idle-scaler.

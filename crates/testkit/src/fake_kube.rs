//! Fake Kubernetes API server (real HTTP on loopback).

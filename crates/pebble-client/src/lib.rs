//! Blocking client for the Pebble HTTP API over its Unix socket (being built).

//! The `postgresql_client` interface (being built).

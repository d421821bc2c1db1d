//! Relation interface libraries shared by Ward's charms.
//!
//! - [`tls_certificates`]: the `tls-certificates` v4 databag schema and the X.509 work
//!   behind it (keys, CSRs, a certificate authority that signs them, checks on both
//!   sides), interoperable with Canonical's Python library.
//! - [`postgresql_client`]: the `postgresql_client` databag schema (database requests,
//!   credentials in secrets, endpoints) for both sides.
//! - [`tls_requirer`]: the requirer side of `tls-certificates` over the charm SDK.
//! - [`scram`]: SCRAM-SHA-256 verifiers and random passwords for PostgreSQL users.

pub mod certificate_transfer;
pub mod pgbouncer_auth;
pub mod postgresql_client;
pub mod postgresql_provider;
pub mod scram;
pub mod sql;
pub mod tls_certificates;
pub mod tls_provider;
pub mod tls_requirer;

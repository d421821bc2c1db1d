//! Relation interface libraries shared by Ward's charms.
//!
//! - [`tls_certificates`]: the `tls-certificates` v4 databag schema and the X.509 work
//!   behind it (keys, CSRs, a certificate authority that signs them, checks on both
//!   sides), interoperable with Canonical's Python library.

pub mod tls_certificates;

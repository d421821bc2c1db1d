//! SCRAM-SHA-256 verifiers for PostgreSQL (being built).

//! Ward's pgbouncer charm (being built).

//! Ward interfaces crate (being built; see the crate README and docs/).

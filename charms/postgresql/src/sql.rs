//! SQL against the primary, as the `operator` superuser: psql through Pebble exec in
//! this unit's workload (the shared [`interfaces::sql`]).

pub use interfaces::sql::{ident, literal, valid_name, Psql, Sql};

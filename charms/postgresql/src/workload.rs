//! The `postgresql` container as the charm uses it: the SDK's [`charm::workload`] surface
//! (files, the Pebble layer, the service), real over Pebble or in memory for tests.

pub use charm::workload::{PebbleWorkload, Workload};

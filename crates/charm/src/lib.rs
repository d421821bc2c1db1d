//! Ward's charm SDK (being built).

/// The Pebble client, re-exported so charms reach their workload containers.
pub use pebble_client as pebble;

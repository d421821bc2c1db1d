//! The uniter: one loop per unit that runs the next hook until idle.

pub mod state;

//! Ward's postgresql charm (being built).

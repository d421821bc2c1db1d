//! End-to-end tests for Ward; the tests live in `tests/tests/`, the charms they deploy
//! in `tests/charms/`.

//! The `cosell` command's pieces, as a library so tests can drive them in-process.

pub mod local;
pub mod onboard;
pub mod ops;

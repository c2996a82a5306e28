//! Test doubles shared by the engine scenario tests.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod drain;
pub mod failing_queue;

//! End-to-end support for Sluice: the demo, and helpers the end-to-end tests
//! share (where the samples and fixtures are, how to find the built
//! binaries, and a guard that never leaves a process behind).
#![forbid(unsafe_code)]

pub mod demo;
pub mod lab;

//! The Sluice low side: key generation, packing images and reports into
//! signed bundles, inspecting them, and sending them over the one-way link,
//! by hand or as a daemon that watches inboxes.
//!
//! ```text
//!  inbox/ ──pack (stream key)──▶ outbox/ ──send──▶ sent/
//!                                   │
//!                                   └──▶ transmit core ──▶ paced UDP ──▶ diode
//! ```
//!
//! It holds at most one role's secret key per stream; a deployment that keeps
//! separation of duties runs one daemon per stream on separate hosts.
#![forbid(unsafe_code)]

pub mod daemon;
pub mod image;
pub mod inspect;
pub mod keyfile;
pub mod keygen;
pub mod pack;
pub mod report;
pub mod send;

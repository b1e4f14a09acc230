//! The Sluice protocol core. It performs no I/O: bytes and the current time
//! go in, bytes, events and the next deadline come out. Everything here can
//! be driven by a fuzzer or a simulated link.
//!
//! ```text
//!  low side                                            high side
//!  ────────                                            ─────────
//!  manifest ──sign──▶ bundle ─┐                  ┌──▶ envelope ──verify──▶ accept
//!   (CBOR)            (file)  │                  │     (announce)
//!                             ▼                  │
//!                      transmit::Transmission    reassembly::Reassembler
//!                      announce + FEC shards ─▶ frame::Datagram ─▶ blocks
//!                                        one-way UDP link
//! ```
//!
//! What it deliberately does not do: open sockets or files, read the clock,
//! spawn threads. The `sender`, `receiver` and `hardware` crates do that.
#![forbid(unsafe_code)]

pub mod blockmap;
pub mod bundle;
pub mod cbor;
pub mod digest;
pub mod fec;
pub mod frame;
pub mod heartbeat;
pub mod id;
pub mod key;
pub mod manifest;
pub mod reassembly;
pub mod transmit;
pub mod trust;

//! The one-way link.
//!
//! This crate is the only part of Sluice that makes socket syscalls. It sets
//! up UDP sockets for a diode NIC ([`socket`]), holds a sender to the link
//! rate ([`pace`]), and defines the [`Link`] a sender writes datagrams to.
//! It also holds a software diode for labs and tests: impairments that wrap
//! any `Link` ([`impair`]) and a relay that puts them between two UDP
//! sockets ([`diode`], and the `sluice-diode` binary).
//!
//! ```text
//!             sluice-diode (one thread)
//!            ┌─────────────────────────────────────────────────────────┐
//!  low side  │ rx socket   ImpairedLink                     UdpLink    │  high side
//!  sender ──►│ (listen) ──► burst ► loss ► corrupt ► dup ──► tx socket ├──► receiver
//!            │     ▲        ► reorder ► rate cap queue       (forward) │
//!            │     └ never written to: nothing flows back              │
//!            └─────────────────────────────────────────────────────────┘
//! ```
//!
//! It does not know the datagram format, FEC or bundles (`sluice-protocol`
//! owns those), and it does no async I/O: sockets are blocking, with
//! timeouts where a thread must notice a stop request.

#![deny(unsafe_code)]

pub mod console;
pub mod diode;
pub mod hostcheck;
pub mod impair;
pub mod link;
pub mod pace;
pub mod rate;
pub mod socket;

pub use diode::{Diode, DiodeConfig, DiodeError, DiodeHandle};
pub use impair::{Burst, ImpairStats, ImpairedLink, ImpairmentError, Impairments};
pub use link::{Link, UdpLink, VecLink};
pub use pace::Pacer;
pub use rate::{Rate, RateParseError};
pub use socket::{BufferReport, SocketOptions, bind_receiver, connect_sender};

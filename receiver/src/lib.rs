//! The Sluice high side: the receiving daemon and the administrator's
//! commands. The receiver is the security boundary: every byte from the
//! link is hostile until a signature over it verifies.
//!
//! ```text
//!  UDP ──▶ daemon (reassembly core) ──▶ spool/ ──verify──▶ quarantine/
//!                  │                                 └──▶ rejected/
//!                  └── trust store (public keys, one role each)
//! ```
//!
//! What it does not do yet: judge images against policy or release them;
//! bundles stop in quarantine.
#![forbid(unsafe_code)]

pub mod admin;
pub mod checkpoint;
pub mod config;
pub mod daemon;
pub mod evidence;
pub mod finalize;
pub mod gate;
pub mod health;
pub mod pipeline;
pub mod record;
pub mod status;
pub mod store;
pub mod trust;
pub mod validate;

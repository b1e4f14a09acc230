//! UDP sockets for a diode NIC.
//!
//! At line rate the receive buffer is the only thing between a scheduling
//! hiccup on the high side and lost datagrams, so the receiver asks for a
//! large one. The kernel silently caps the request at `net.core.rmem_max`
//! (`wmem_max` for sends); [`BufferReport`] reads back what was granted so
//! the daemons can tell the operator which sysctl to raise.
//!
//! Sockets are blocking; callers set read timeouts where they need to poll.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// The receive buffer asked for by default: about 0.3 s at 800 Mbit/s.
pub const DEFAULT_RECV_BUFFER: usize = 32 * 1024 * 1024;

/// The send buffer asked for by default; pacing keeps it from filling.
pub const DEFAULT_SEND_BUFFER: usize = 8 * 1024 * 1024;

/// Kernel buffer sizes to request, in bytes; zero keeps the kernel default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketOptions {
    pub recv_buffer: usize,
    pub send_buffer: usize,
}

impl Default for SocketOptions {
    fn default() -> SocketOptions {
        SocketOptions {
            recv_buffer: DEFAULT_RECV_BUFFER,
            send_buffer: DEFAULT_SEND_BUFFER,
        }
    }
}

/// Buffer sizes asked for and granted, as the kernel reports them.
///
/// A requested size of zero means the buffer was left at the kernel default
/// (a receiver does not size its send buffer, nor a sender its receive one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferReport {
    pub requested_recv: usize,
    pub granted_recv: usize,
    pub requested_send: usize,
    pub granted_send: usize,
}

impl BufferReport {
    /// Whether the kernel granted a smaller receive buffer than requested.
    pub fn recv_capped(&self) -> bool {
        usable(self.granted_recv) < self.requested_recv
    }

    /// Whether the kernel granted a smaller send buffer than requested.
    pub fn send_capped(&self) -> bool {
        usable(self.granted_send) < self.requested_send
    }

    /// Whether either buffer was capped.
    pub fn is_capped(&self) -> bool {
        self.recv_capped() || self.send_capped()
    }

    /// What to tell the operator when a buffer was capped, naming the sysctl.
    pub fn advice(&self) -> Option<String> {
        let recv = self.recv_capped().then(|| {
            cap_message(
                "receive",
                "rmem_max",
                self.requested_recv,
                self.granted_recv,
            )
        });
        let send = self
            .send_capped()
            .then(|| cap_message("send", "wmem_max", self.requested_send, self.granted_send));
        match (recv, send) {
            (Some(recv), Some(send)) => Some(format!("{recv}; {send}")),
            (recv, send) => recv.or(send),
        }
    }
}

/// Binds a socket to receive datagrams on `addr`, with a large receive
/// buffer. Port 0 picks a free port; `local_addr` on the result tells which.
///
/// # Errors
///
/// Fails if the socket cannot be created or bound (address in use, no such
/// local address, permission denied).
pub fn bind_receiver(
    addr: SocketAddr,
    options: &SocketOptions,
) -> io::Result<(UdpSocket, BufferReport)> {
    let socket = udp_socket(addr)?;
    set_recv_buffer(&socket, options.recv_buffer)?;
    socket.bind(&addr.into())?;

    let report = read_back(&socket, options.recv_buffer, 0)?;
    Ok((socket.into(), report))
}

/// Creates a socket connected to `to`, bound to `bind` if given and to an
/// ephemeral port on the unspecified address otherwise.
///
/// # Errors
///
/// Fails if the socket cannot be created, bound or connected.
pub fn connect_sender(
    to: SocketAddr,
    bind: Option<SocketAddr>,
    options: &SocketOptions,
) -> io::Result<(UdpSocket, BufferReport)> {
    let socket = udp_socket(to)?;
    set_send_buffer(&socket, options.send_buffer)?;
    socket.bind(&bind.unwrap_or_else(|| unspecified(to)).into())?;
    socket.connect(&to.into())?;

    let report = read_back(&socket, 0, options.send_buffer)?;
    Ok((socket.into(), report))
}

fn udp_socket(addr: SocketAddr) -> io::Result<Socket> {
    Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
}

// Limitation: the request is capped by net.core.rmem_max / wmem_max. The
// FORCE variants of these options would bypass the cap for a privileged
// process, but socket2 does not offer them without unsafe code, so the
// operator raises the sysctl instead (see `BufferReport::advice`).
fn set_recv_buffer(socket: &Socket, size: usize) -> io::Result<()> {
    if size == 0 {
        return Ok(());
    }
    socket.set_recv_buffer_size(clamp_to_int(size))
}

fn set_send_buffer(socket: &Socket, size: usize) -> io::Result<()> {
    if size == 0 {
        return Ok(());
    }
    socket.set_send_buffer_size(clamp_to_int(size))
}

fn read_back(socket: &Socket, recv: usize, send: usize) -> io::Result<BufferReport> {
    Ok(BufferReport {
        requested_recv: recv,
        granted_recv: socket.recv_buffer_size()?,
        requested_send: send,
        granted_send: socket.send_buffer_size()?,
    })
}

/// The kernel takes buffer sizes as a C int; larger requests mean "as much
/// as allowed".
fn clamp_to_int(size: usize) -> usize {
    size.min(i32::MAX as usize / 2)
}

fn unspecified(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

/// The payload capacity behind a reported buffer size. Linux doubles the
/// requested size to cover its bookkeeping and reports the doubled value.
fn usable(reported: usize) -> usize {
    if cfg!(target_os = "linux") {
        reported / 2
    } else {
        reported
    }
}

fn cap_message(which: &str, sysctl: &str, requested: usize, granted: usize) -> String {
    format!(
        "the kernel capped the {which} buffer at {usable} bytes of {requested} requested; \
         raise it with `sysctl -w net.core.{sysctl}={requested}`",
        usable = usable(granted),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: usize = 64 * 1024;

    fn small() -> SocketOptions {
        SocketOptions {
            recv_buffer: SMALL,
            send_buffer: SMALL,
        }
    }

    fn loopback() -> SocketAddr {
        (Ipv4Addr::LOCALHOST, 0).into()
    }

    #[test]
    fn receiver_binds_an_ephemeral_port_with_the_buffer_asked_for() {
        let (socket, report) = bind_receiver(loopback(), &small()).unwrap();
        let addr = socket.local_addr().unwrap();
        assert_eq!(addr.ip(), Ipv4Addr::LOCALHOST);
        assert_ne!(addr.port(), 0);
        assert_eq!(report.requested_recv, SMALL);
        assert_eq!(usable(report.granted_recv), SMALL);
        assert_eq!(report.requested_send, 0);
        assert!(!report.is_capped());
        assert_eq!(report.advice(), None);
    }

    #[test]
    fn sender_connects_and_reaches_the_receiver() {
        let (receiver, _) = bind_receiver(loopback(), &small()).unwrap();
        let to = receiver.local_addr().unwrap();
        let (sender, report) = connect_sender(to, None, &small()).unwrap();
        assert_eq!(sender.peer_addr().unwrap(), to);
        assert_eq!(usable(report.granted_send), SMALL);
        assert_eq!(report.requested_recv, 0);

        sender.send(b"over the diode").unwrap();
        let mut buf = [0u8; 64];
        let (len, from) = receiver.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"over the diode");
        assert_eq!(from.port(), sender.local_addr().unwrap().port());
    }

    #[test]
    fn sender_binds_where_told() {
        let (receiver, _) = bind_receiver(loopback(), &small()).unwrap();
        let (holder, _) = bind_receiver(loopback(), &small()).unwrap();
        let chosen = holder.local_addr().unwrap();
        drop(holder);

        let to = receiver.local_addr().unwrap();
        let (sender, _) = connect_sender(to, Some(chosen), &small()).unwrap();
        assert_eq!(sender.local_addr().unwrap(), chosen);
    }

    #[test]
    fn binding_a_taken_port_fails() {
        let (taken, _) = bind_receiver(loopback(), &small()).unwrap();
        let error = bind_receiver(taken.local_addr().unwrap(), &small()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn a_capped_buffer_names_the_sysctl_to_raise() {
        let report = BufferReport {
            requested_recv: 32 * 1024 * 1024,
            granted_recv: 2 * 212_992,
            requested_send: 8 * 1024 * 1024,
            granted_send: 16 * 1024 * 1024,
        };
        assert!(report.recv_capped());
        assert!(!report.send_capped());
        let advice = report.advice().unwrap();
        assert!(
            advice.contains("receive buffer at 212992 bytes of 33554432"),
            "{advice}"
        );
        assert!(
            advice.contains("sysctl -w net.core.rmem_max=33554432"),
            "{advice}"
        );
        assert!(!advice.contains("wmem_max"), "{advice}");
    }

    #[test]
    fn both_caps_are_reported() {
        let report = BufferReport {
            requested_recv: 4096,
            granted_recv: 2048,
            requested_send: 4096,
            granted_send: 2048,
        };
        let advice = report.advice().unwrap();
        assert!(
            advice.contains("rmem_max=4096") && advice.contains("wmem_max=4096"),
            "{advice}"
        );
    }

    #[test]
    fn untouched_buffers_are_never_capped() {
        let report = BufferReport {
            requested_recv: 0,
            granted_recv: 0,
            requested_send: 0,
            granted_send: 0,
        };
        assert!(!report.is_capped());
    }

    #[test]
    fn default_options_ask_for_large_buffers() {
        let options = SocketOptions::default();
        assert_eq!(options.recv_buffer, 33_554_432);
        assert_eq!(options.send_buffer, 8_388_608);
    }
}

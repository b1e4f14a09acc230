//! The send side of a one-way link.
//!
//! [`Link`] is the one operation a diode offers: put a datagram on the wire.
//! [`UdpLink`] is the production implementation over a connected socket;
//! [`VecLink`] collects datagrams in memory for tests. The impairment stage
//! in [`crate::impair`] wraps any `Link`, so lab runs exercise the very
//! socket code that production uses.

use std::io;
use std::net::UdpSocket;
use std::thread;
use std::time::Duration;

/// A one-way datagram link: nothing ever comes back.
pub trait Link {
    /// Sends one datagram, whole.
    ///
    /// # Errors
    ///
    /// Fails if the datagram could not be handed to the link; it is lost.
    fn send(&mut self, datagram: &[u8]) -> io::Result<()>;
}

impl<L: Link + ?Sized> Link for &mut L {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        (**self).send(datagram)
    }
}

impl<L: Link + ?Sized> Link for Box<L> {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        (**self).send(datagram)
    }
}

/// How often a send is retried while the kernel is out of buffer space.
const FULL_BUFFER_RETRIES: u32 = 8;

/// The first back-off after a full buffer; it doubles on each retry, so the
/// whole sequence waits about 13 ms, enough for a NIC queue to drain.
const FIRST_BACKOFF: Duration = Duration::from_micros(50);

/// A [`Link`] over a connected UDP socket.
#[derive(Debug)]
pub struct UdpLink {
    socket: UdpSocket,
}

impl UdpLink {
    /// Wraps a socket already connected to the far side of the link.
    pub fn new(socket: UdpSocket) -> UdpLink {
        UdpLink { socket }
    }

    /// The underlying socket.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Gives the socket back.
    pub fn into_inner(self) -> UdpSocket {
        self.socket
    }

    fn send_once(&self, datagram: &[u8]) -> io::Result<()> {
        let sent = self.socket.send(datagram)?;
        if sent != datagram.len() {
            let message = format!("sent {sent} of {} bytes", datagram.len());
            return Err(io::Error::new(io::ErrorKind::WriteZero, message));
        }
        Ok(())
    }
}

impl Link for UdpLink {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        let mut backoff = FIRST_BACKOFF;
        for _ in 0..FULL_BUFFER_RETRIES {
            let Err(error) = self.send_once(datagram) else {
                return Ok(());
            };
            match classify(&error) {
                SendFault::Stale => {}
                SendFault::BufferFull => {
                    thread::sleep(backoff);
                    backoff *= 2;
                }
                SendFault::Fatal => return Err(error),
            }
        }
        self.send_once(datagram)
    }
}

/// How a failed send should be handled.
enum SendFault {
    /// An ICMP error about an earlier datagram, reported on this send. A
    /// one-way link has no use for it; this datagram was not sent yet.
    Stale,
    /// The socket or NIC queue is full; it drains if we wait a little.
    BufferFull,
    Fatal,
}

fn classify(error: &io::Error) -> SendFault {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => SendFault::Stale,
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => SendFault::BufferFull,
        _ if error.raw_os_error() == Some(libc::ENOBUFS) => SendFault::BufferFull,
        _ => SendFault::Fatal,
    }
}

/// A [`Link`] that keeps every datagram in memory, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VecLink {
    datagrams: Vec<Vec<u8>>,
}

impl VecLink {
    /// An empty link.
    pub fn new() -> VecLink {
        VecLink::default()
    }

    /// The datagrams sent so far.
    pub fn datagrams(&self) -> &[Vec<u8>] {
        &self.datagrams
    }

    /// Takes the datagrams sent so far.
    pub fn into_datagrams(self) -> Vec<Vec<u8>> {
        self.datagrams
    }
}

impl Link for VecLink {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        self.datagrams.push(datagram.to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(socket: &UdpSocket) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        let len = socket.recv(&mut buf).unwrap();
        buf[..len].to_vec()
    }

    fn loopback_pair() -> (UdpSocket, UdpSocket) {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let source = UdpSocket::bind("127.0.0.1:0").unwrap();
        source.connect(sink.local_addr().unwrap()).unwrap();
        sink.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (source, sink)
    }

    /// Sends through any `Link` by value, such as `&mut VecLink`.
    fn send_via<L: Link>(mut link: L, datagram: &[u8]) {
        link.send(datagram).unwrap();
    }

    #[test]
    fn vec_link_keeps_datagrams_in_order() {
        let mut link = VecLink::new();
        link.send(b"one").unwrap();
        link.send(b"").unwrap();
        send_via(&mut link, b"three");
        assert_eq!(
            link.datagrams(),
            [b"one".to_vec(), vec![], b"three".to_vec()]
        );
        assert_eq!(link.into_datagrams().len(), 3);
    }

    #[test]
    fn udp_link_delivers_whole_datagrams() {
        let (source, sink) = loopback_pair();
        let mut link: Box<dyn Link> = Box::new(UdpLink::new(source));
        link.send(b"first").unwrap();
        link.send(&[7u8; 1400]).unwrap();

        assert_eq!(receive(&sink), b"first");
        assert_eq!(receive(&sink), &[7u8; 1400][..]);
    }

    #[test]
    fn udp_link_ignores_refusals_from_a_missing_receiver() {
        let (source, sink) = loopback_pair();
        let sink_addr = sink.local_addr().unwrap();
        drop(sink);
        let mut link = UdpLink::new(source);
        for _ in 0..20 {
            link.send(b"into the void").unwrap();
        }

        let sink = UdpSocket::bind(sink_addr).unwrap();
        sink.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        link.send(b"heard").unwrap();
        assert_eq!(receive(&sink), b"heard");
        assert_eq!(link.socket().peer_addr().unwrap(), sink_addr);
        assert_eq!(link.into_inner().peer_addr().unwrap(), sink_addr);
    }

    #[test]
    fn only_buffer_pressure_is_retried() {
        let enobufs = io::Error::from_raw_os_error(libc::ENOBUFS);
        assert!(matches!(classify(&enobufs), SendFault::BufferFull));
        let eagain = io::Error::from(io::ErrorKind::WouldBlock);
        assert!(matches!(classify(&eagain), SendFault::BufferFull));
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert!(matches!(classify(&refused), SendFault::Stale));
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(matches!(classify(&denied), SendFault::Fatal));
    }
}

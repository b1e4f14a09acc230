//! The software diode: a one-way UDP relay with impairments.
//!
//! ```text
//!   sender ──UDP──► rx socket ──► ImpairedLink<UdpLink> ──► tx socket ──UDP──► receiver
//!                   (listen)      burst, loss, corrupt,     (connected to
//!                                 duplicate, reorder,        forward)
//!                                 rate cap
//! ```
//!
//! The receiving socket is only ever read, so nothing reaches the sender,
//! just as with diode hardware. One thread does all the work: it blocks in
//! `recv` with a short timeout, which doubles as the wake-up for the rate
//! cap's queue and for noticing a stop request. Datagrams held back for
//! reordering are let go once the link has been idle for [`IDLE_RELEASE`],
//! so the tail of a transfer is reordered, not lost.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::impair::{ImpairStats, ImpairedLink, ImpairmentError, Impairments};
use crate::link::UdpLink;
use crate::socket::{self, BufferReport, SocketOptions};

/// The longest the relay thread sleeps in `recv` before checking for a stop.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How long the link must be quiet before held-back datagrams are let go.
pub const IDLE_RELEASE: Duration = Duration::from_millis(50);

/// The largest UDP payload, so no datagram is ever truncated.
const MAX_DATAGRAM: usize = 65_535;

/// The shortest read timeout worth a syscall; zero would mean "forever".
const MIN_TIMEOUT: Duration = Duration::from_micros(100);

/// How often a repeating forward error is logged.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Where the diode listens, where it forwards, and what it does in between.
#[derive(Debug, Clone)]
pub struct DiodeConfig {
    pub listen: SocketAddr,
    pub forward: SocketAddr,
    pub impairments: Impairments,
    pub socket: SocketOptions,
}

/// Why a diode could not start.
#[derive(Debug, thiserror::Error)]
pub enum DiodeError {
    #[error("cannot listen on {addr}: {error}")]
    Listen { addr: SocketAddr, error: io::Error },
    #[error("cannot open a socket to forward to {addr}: {error}")]
    Forward { addr: SocketAddr, error: io::Error },
    #[error("forwarding to {forward} would send every datagram back to the diode itself")]
    ForwardsToItself { forward: SocketAddr },
    #[error(transparent)]
    Impairments(#[from] ImpairmentError),
    #[error("cannot start the relay thread: {error}")]
    Thread { error: io::Error },
}

impl From<DiodeError> for io::Error {
    fn from(error: DiodeError) -> io::Error {
        let kind = match &error {
            DiodeError::Listen { error, .. }
            | DiodeError::Forward { error, .. }
            | DiodeError::Thread { error } => error.kind(),
            DiodeError::ForwardsToItself { .. } | DiodeError::Impairments(_) => {
                io::ErrorKind::InvalidInput
            }
        };
        io::Error::new(kind, error)
    }
}

/// Starts diodes; see [`Diode::spawn`].
#[derive(Debug)]
pub enum Diode {}

impl Diode {
    /// Binds the listening socket, connects the forwarding one, and starts
    /// relaying on a thread of its own until the handle is stopped or dropped.
    ///
    /// # Errors
    ///
    /// Fails if the impairments are invalid, a socket cannot be set up, or
    /// the forward address is the diode's own.
    pub fn spawn(config: DiodeConfig) -> Result<DiodeHandle, DiodeError> {
        config.impairments.validate()?;
        let (rx, receive_buffers) = open_listener(&config)?;
        let local_addr = rx.local_addr().map_err(listen_error(&config))?;
        if loops_back(local_addr, config.forward) {
            return Err(DiodeError::ForwardsToItself {
                forward: config.forward,
            });
        }

        let (tx, forward_buffers) = socket::connect_sender(config.forward, None, &config.socket)
            .map_err(|error| DiodeError::Forward {
                addr: config.forward,
                error,
            })?;
        let link = ImpairedLink::new(UdpLink::new(tx), config.impairments)?;
        let shared = Arc::new(Shared::default());
        let thread = spawn_relay(Relay::new(rx, link, Arc::clone(&shared)))?;

        tracing::debug!(listen = %local_addr, forward = %config.forward, "diode relaying");
        let thread = Some(thread);
        Ok(DiodeHandle {
            local_addr,
            receive_buffers,
            forward_buffers,
            shared,
            thread,
        })
    }
}

/// A running diode. Dropping it stops the relay thread.
#[derive(Debug)]
pub struct DiodeHandle {
    local_addr: SocketAddr,
    receive_buffers: BufferReport,
    forward_buffers: BufferReport,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl DiodeHandle {
    /// The address the diode listens on, with the real port if 0 was asked.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters so far.
    pub fn stats(&self) -> ImpairStats {
        self.shared.stats()
    }

    /// Buffer sizes of the listening socket.
    pub fn receive_buffers(&self) -> BufferReport {
        self.receive_buffers
    }

    /// Buffer sizes of the forwarding socket.
    pub fn forward_buffers(&self) -> BufferReport {
        self.forward_buffers
    }

    /// False once the relay thread has ended, which before [`stop`] means it
    /// failed (the reason was logged at error level).
    ///
    /// [`stop`]: DiodeHandle::stop
    pub fn is_running(&self) -> bool {
        self.thread
            .as_ref()
            .is_some_and(|thread| !thread.is_finished())
    }

    /// Stops relaying, sends whatever is still queued or held back, and
    /// returns the final counters.
    pub fn stop(mut self) -> ImpairStats {
        self.halt();
        self.stats()
    }

    fn halt(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let Some(thread) = self.thread.take() else {
            return;
        };
        if thread.join().is_err() {
            tracing::error!("the diode relay thread panicked");
        }
    }
}

impl Drop for DiodeHandle {
    fn drop(&mut self) {
        self.halt();
    }
}

/// State shared between the handle and the relay thread.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    stats: Mutex<ImpairStats>,
}

impl Shared {
    fn stats(&self) -> ImpairStats {
        // Counters stay meaningful even if a holder panicked mid-update.
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, stats: ImpairStats) {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner) = stats;
    }
}

/// The relay thread's state.
struct Relay {
    rx: UdpSocket,
    link: ImpairedLink<UdpLink>,
    shared: Arc<Shared>,
    timeout: Duration,
    last_arrival: Instant,
    errors: ErrorLog,
}

impl Relay {
    fn new(rx: UdpSocket, link: ImpairedLink<UdpLink>, shared: Arc<Shared>) -> Relay {
        let errors = ErrorLog::default();
        let last_arrival = Instant::now();
        Relay {
            rx,
            link,
            shared,
            timeout: POLL_INTERVAL,
            last_arrival,
            errors,
        }
    }

    fn run(mut self) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        while !self.shared.stop.load(Ordering::Acquire) {
            if let Err(error) = self.step(&mut buf) {
                tracing::error!(%error, "diode stopped: cannot receive");
                break;
            }
            self.shared.publish(self.link.stats());
        }

        let flushed = self.link.flush();
        self.errors.note(flushed);
        self.shared.publish(self.link.stats());
    }

    /// Waits for one datagram, or for the next rate-cap departure.
    // Limitation: one datagram per `recv` call. Past a few hundred thousand
    // datagrams a second this thread, not the emulated link, sets the rate;
    // batching with recvmmsg needs a small unsafe `sys` module.
    fn step(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let now = Instant::now();
        let polled = self.link.poll(now);
        self.errors.note(polled);
        self.set_timeout(now)?;

        match self.rx.recv(buf) {
            Ok(len) => self.relay(&buf[..len]),
            Err(error) if is_timeout(&error) => self.on_quiet(),
            Err(error) => return Err(error),
        }
        Ok(())
    }

    fn relay(&mut self, datagram: &[u8]) {
        self.last_arrival = Instant::now();
        let sent = self.link.send_at(self.last_arrival, datagram);
        self.errors.note(sent);
    }

    fn on_quiet(&mut self) {
        if self.link.held() == 0 || self.last_arrival.elapsed() < IDLE_RELEASE {
            return;
        }
        let released = self.link.release_held(Instant::now());
        self.errors.note(released);
    }

    /// Sleeps in `recv` no longer than the next departure or a stop check.
    fn set_timeout(&mut self, now: Instant) -> io::Result<()> {
        let until_departure = self
            .link
            .next_departure()
            .map(|at| at.saturating_duration_since(now));
        let timeout = until_departure
            .map_or(POLL_INTERVAL, |wait| wait.min(POLL_INTERVAL))
            .max(MIN_TIMEOUT);
        if timeout != self.timeout {
            self.rx.set_read_timeout(Some(timeout))?;
            self.timeout = timeout;
        }
        Ok(())
    }
}

/// Logs forward errors at most once per [`ERROR_LOG_INTERVAL`], counting
/// the ones it held back.
#[derive(Debug, Default)]
struct ErrorLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl ErrorLog {
    fn note(&mut self, result: io::Result<()>) {
        let Err(error) = result else {
            return;
        };
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now - last < ERROR_LOG_INTERVAL)
        {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(%error, suppressed = self.suppressed, "diode cannot forward");
        self.last = Some(now);
        self.suppressed = 0;
    }
}

fn open_listener(config: &DiodeConfig) -> Result<(UdpSocket, BufferReport), DiodeError> {
    let (rx, report) =
        socket::bind_receiver(config.listen, &config.socket).map_err(listen_error(config))?;
    rx.set_read_timeout(Some(POLL_INTERVAL))
        .map_err(listen_error(config))?;
    Ok((rx, report))
}

fn listen_error(config: &DiodeConfig) -> impl Fn(io::Error) -> DiodeError {
    let addr = config.listen;
    move |error| DiodeError::Listen { addr, error }
}

fn spawn_relay(relay: Relay) -> Result<JoinHandle<()>, DiodeError> {
    thread::Builder::new()
        .name("sluice-diode".into())
        .spawn(move || relay.run())
        .map_err(|error| DiodeError::Thread { error })
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Whether datagrams sent to `forward` would arrive back at `local`.
fn loops_back(local: SocketAddr, forward: SocketAddr) -> bool {
    let same_host =
        local.ip() == forward.ip() || (local.ip().is_unspecified() && forward.ip().is_loopback());
    local.port() == forward.port() && same_host
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn receive(socket: &UdpSocket) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        let len = socket.recv(&mut buf).unwrap();
        buf[..len].to_vec()
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn config(forward: SocketAddr, impairments: Impairments) -> DiodeConfig {
        let socket = SocketOptions {
            recv_buffer: 1 << 20,
            send_buffer: 1 << 20,
        };
        DiodeConfig {
            listen: addr("127.0.0.1:0"),
            forward,
            impairments,
            socket,
        }
    }

    #[test]
    fn recognises_forwarding_to_itself() {
        assert!(loops_back(addr("127.0.0.1:9000"), addr("127.0.0.1:9000")));
        assert!(loops_back(addr("0.0.0.0:9000"), addr("127.0.0.1:9000")));
        assert!(!loops_back(addr("0.0.0.0:9000"), addr("192.0.2.7:9000")));
        assert!(!loops_back(addr("127.0.0.1:9000"), addr("127.0.0.1:9001")));
    }

    #[test]
    fn refuses_a_taken_listen_address() {
        let taken = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let mut config = config(addr("127.0.0.1:9"), Impairments::default());
        config.listen = taken.local_addr().unwrap();
        let error = Diode::spawn(config).unwrap_err();
        assert!(matches!(error, DiodeError::Listen { .. }), "{error}");
        assert!(
            error.to_string().starts_with("cannot listen on 127.0.0.1:"),
            "{error}"
        );
        assert_eq!(io::Error::from(error).kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn refuses_bad_impairments_before_binding() {
        let impairments = Impairments {
            corrupt: -0.5,
            ..Impairments::default()
        };
        let error = Diode::spawn(config(addr("127.0.0.1:9"), impairments)).unwrap_err();
        let expected = ImpairmentError::Probability {
            name: "corrupt",
            value: -0.5,
        };
        assert!(
            matches!(&error, DiodeError::Impairments(e) if *e == expected),
            "{error}"
        );
        assert_eq!(io::Error::from(error).kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn held_datagrams_go_out_when_the_link_falls_quiet() {
        let sink = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        sink.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let always = Impairments {
            reorder: 1.0,
            ..Impairments::default()
        };
        let diode = Diode::spawn(config(sink.local_addr().unwrap(), always)).unwrap();

        let source = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        source.send_to(b"held", diode.local_addr()).unwrap();
        assert_eq!(receive(&sink), b"held");
        assert!(diode.is_running());
        let stats = diode.stop();
        assert_eq!(
            (stats.received, stats.reordered, stats.forwarded),
            (1, 1, 1)
        );
    }
}

//! `sluice-diode`: a software data diode for labs and tests.
//!
//! Relays UDP datagrams one way from `--listen` to `--forward`, applying
//! loss, bursts, reordering, duplication, corruption and a rate cap. Logs
//! counters every few seconds and a summary when stopped with Ctrl-C or
//! SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use sluice_hardware::impair::parse_probability;
use sluice_hardware::{Burst, Diode, DiodeConfig, DiodeHandle, Impairments, Rate, SocketOptions};

/// How often the main thread looks for a signal or a failed relay.
const TICK: Duration = Duration::from_millis(100);

const AFTER_HELP: &str = "\
Probabilities are written as fractions (0.02) or percentages (2%). Every
random choice follows --seed, so a run can be repeated exactly. Nothing is
ever sent back towards the --listen side.

Example: a lossy, bursty 800 Mbit/s link
  sluice-diode --listen 0.0.0.0:7000 --forward 192.0.2.10:7000 \\
      --loss 0.5% --burst-enter 0.1% --burst-len 20 --rate 800M

Set RUST_LOG (e.g. RUST_LOG=debug) to change how much is logged.";

/// A software data diode: relays UDP datagrams one way, with impairments.
#[derive(Debug, Parser)]
#[command(name = "sluice-diode", version, after_help = AFTER_HELP)]
struct Args {
    /// Address to receive datagrams on (the low side sends here).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: SocketAddr,

    /// Address to forward datagrams to (the high side receives there).
    #[arg(long, value_name = "ADDR:PORT")]
    forward: SocketAddr,

    /// Probability that any one datagram is dropped.
    #[arg(long, value_name = "P", default_value = "0", value_parser = parse_probability)]
    loss: f64,

    /// Probability, per datagram, that a loss burst starts.
    #[arg(long, value_name = "P", requires = "burst_len", value_parser = parse_probability)]
    burst_enter: Option<f64>,

    /// Mean number of datagrams a loss burst drops (at least 1).
    #[arg(long, value_name = "N", requires = "burst_enter")]
    burst_len: Option<f64>,

    /// Probability that a datagram is held back and sent late.
    #[arg(long, value_name = "P", default_value = "0", value_parser = parse_probability)]
    reorder: f64,

    /// How many later datagrams overtake one that is held back.
    #[arg(long, value_name = "N", default_value_t = 3)]
    reorder_depth: usize,

    /// Probability that a datagram is sent twice.
    #[arg(long, value_name = "P", default_value = "0", value_parser = parse_probability)]
    duplicate: f64,

    /// Probability that one bit of a datagram is flipped.
    #[arg(long, value_name = "P", default_value = "0", value_parser = parse_probability)]
    corrupt: f64,

    /// Link rate cap in bit/s, like 800M or 1.5G; excess is queued for up
    /// to 50 ms, then dropped.
    #[arg(long, value_name = "RATE")]
    rate: Option<Rate>,

    /// Seed for every random choice [default: random, and logged].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// Seconds between counter reports in the log.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    stats_interval: u64,
}

impl Args {
    fn impairments(&self, seed: u64) -> Impairments {
        let burst = self.burst_enter.zip(self.burst_len);
        Impairments {
            loss: self.loss,
            burst: burst.map(|(enter, mean_len)| Burst { enter, mean_len }),
            reorder: self.reorder,
            reorder_depth: self.reorder_depth,
            duplicate: self.duplicate,
            corrupt: self.corrupt,
            rate: self.rate,
            seed,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    sluice_hardware::console::init_logging();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sluice-diode: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = Arc::clone(&stop);
    ctrlc::set_handler(move || on_signal.store(true, Ordering::Release))
        .context("cannot install the Ctrl-C / SIGTERM handler")?;

    let seed = args.seed.unwrap_or_else(rand::random);
    let config = DiodeConfig {
        listen: args.listen,
        forward: args.forward,
        impairments: args.impairments(seed),
        socket: SocketOptions::default(),
    };
    let diode = Diode::spawn(config).context("cannot start the diode")?;
    announce(&diode, args, seed);

    let failed = watch(
        &diode,
        &stop,
        Duration::from_secs(args.stats_interval.max(1)),
    );
    let stats = diode.stop();
    tracing::info!(%stats, "diode stopped");
    println!("{stats}");
    if failed {
        anyhow::bail!("the relay stopped on its own; the error above says why");
    }
    Ok(())
}

fn announce(diode: &DiodeHandle, args: &Args, seed: u64) {
    let listen = diode.local_addr();
    let impairments = args.impairments(seed);
    tracing::info!(%listen, forward = %args.forward, seed, ?impairments, "diode relaying");
    let buffers = [diode.receive_buffers(), diode.forward_buffers()];
    for advice in buffers.iter().filter_map(|report| report.advice()) {
        tracing::warn!("{advice}");
    }
}

/// Logs counters until a signal arrives; true if the relay failed instead.
fn watch(diode: &DiodeHandle, stop: &AtomicBool, interval: Duration) -> bool {
    let mut next_report = Instant::now() + interval;
    while !stop.load(Ordering::Acquire) {
        if !diode.is_running() {
            return true;
        }
        if Instant::now() >= next_report {
            tracing::info!(stats = %diode.stats(), "diode counters");
            next_report += interval;
        }
        thread::sleep(TICK);
    }
    false
}

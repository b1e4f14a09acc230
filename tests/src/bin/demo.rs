//! `sluice-demo`: the whole path on one machine, with throwaway keys, the
//! shipped sample image and reports, and a software diode losing 2%.
#![forbid(unsafe_code)]

use std::process::ExitCode;

const HELP: &str = "\
sluice-demo: the whole Sluice path on this machine, on loopback.

Makes throwaway keys, packs the busybox image and scanner reports shipped in
samples/, starts a receiver and a software diode that drops 2% of datagrams,
sends both bundles through it, and shows them verified in quarantine with
the figures of the run. Everything it writes goes to target/sluice-demo/.

Usage: sluice-demo";

fn main() -> ExitCode {
    if std::env::args().skip(1).any(|a| a == "-h" || a == "--help") {
        println!("{HELP}");
        return ExitCode::SUCCESS;
    }
    if let Some(unknown) = std::env::args().nth(1) {
        eprintln!("sluice-demo takes no arguments (got `{unknown}`); see --help");
        return ExitCode::FAILURE;
    }
    match sluice_tests::demo::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("demo failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

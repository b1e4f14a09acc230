//! `sluice-demo`: the whole path on one machine, with throwaway keys, the
//! shipped sample image and reports, and a software diode losing 2%.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    match sluice_tests::demo::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("demo failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

//! What every Sluice program shares at its console: log set-up (`RUST_LOG`
//! filters, default `info`; lines to standard error, colour only to a
//! terminal) and printing to standard output that ends quietly when the
//! reader goes away, as with `| head`.

use std::fmt;
use std::io::{ErrorKind, IsTerminal, Write};

/// Installs the global log subscriber; call once, first thing in `main`.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Prints one line to standard output. A closed pipe ends the program
/// with success, the way Unix tools stop when their reader has had enough;
/// any other write error ends it with failure.
pub fn print_line(args: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    match written {
        Ok(()) => {}
        Err(error) if error.kind() == ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            eprintln!("error: cannot write to standard output: {error}");
            std::process::exit(1);
        }
    }
}

/// `println!` that survives a closed pipe; see [`print_line`].
#[macro_export]
macro_rules! outln {
    () => { $crate::console::print_line(format_args!("")) };
    ($($arg:tt)*) => { $crate::console::print_line(format_args!($($arg)*)) };
}

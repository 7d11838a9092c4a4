//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`; `debug` adds a line per
//! request).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call does nothing.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // actix's HTTP/1 dispatcher logs every request it could not parse at ERROR ("stream
    // error"), although the client is at fault; the emulator logs those answers itself, at
    // INFO. A `RUST_LOG` naming actix_http keeps its own say.
    let names_actix = std::env::var("RUST_LOG").is_ok_and(|v| v.contains("actix_http"));
    let filter = match "actix_http::h1::dispatcher=off".parse() {
        Ok(directive) if !names_actix => filter.add_directive(directive),
        _ => filter,
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

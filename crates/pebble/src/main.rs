//! `ward-pebble`: Ward's Pebble-compatible workload manager.
//!
//! ```text
//! ward-pebble run [--hold] [--create-dirs] [--http ADDR] [--socket PATH] [--verbose]
//! ward-pebble version
//! ```
//! `$PEBBLE` (default /var/lib/pebble/default) holds `layers/`; the socket defaults to
//! `$PEBBLE_SOCKET`, else `$PEBBLE/.pebble.socket`.

use std::path::PathBuf;

const USAGE: &str = "usage: ward-pebble run [--hold] [--create-dirs] [--http ADDR] [--socket PATH] [--verbose]\n       ward-pebble version";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("version") | Some("--version") => {
            println!("{}", pebble::daemon::VERSION);
        }
        Some("run") => {
            let dir = PathBuf::from(
                std::env::var("PEBBLE").unwrap_or_else(|_| "/var/lib/pebble/default".into()),
            );
            let mut opts = pebble::RunOptions {
                socket: std::env::var_os("PEBBLE_SOCKET")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| dir.join(".pebble.socket")),
                dir,
                http: None,
                hold: false,
                create_dirs: false,
            };
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--hold" => opts.hold = true,
                    "--create-dirs" => opts.create_dirs = true,
                    "--verbose" | "-v" => {}
                    "--http" => match it.next() {
                        Some(v) => opts.http = Some(v.clone()),
                        None => fail("--http needs an address"),
                    },
                    "--socket" => match it.next() {
                        Some(v) => opts.socket = PathBuf::from(v),
                        None => fail("--socket needs a path"),
                    },
                    other => fail(&format!("unknown option {other:?}")),
                }
            }
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => fail(&format!("cannot start runtime: {e}")),
            };
            match runtime.block_on(pebble::run(opts)) {
                Ok(code) => std::process::exit(code),
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(1);
                }
            }
        }
        _ => fail("missing command"),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}\n{USAGE}");
    std::process::exit(2);
}

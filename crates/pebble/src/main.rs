//! `ward-pebble`: Ward's Pebble-compatible workload manager.
//!
//! ```text
//! ward-pebble run [--hold] [--create-dirs] [--http ADDR] [--socket PATH] [--verbose]
//! ward-pebble notify <key> [name=value ...]
//! ward-pebble version
//! ```
//! `notify` records a custom notice, as `pebble notify` does (Juju turns it into a
//! `<container>-pebble-custom-notice` event).
//! `$PEBBLE` (default /var/lib/pebble/default) holds `layers/`; the socket defaults to
//! `$PEBBLE_SOCKET`, else `$PEBBLE/.pebble.socket`.

use std::path::PathBuf;

const USAGE: &str = "usage: ward-pebble run [--hold] [--create-dirs] [--http ADDR] [--socket PATH] [--verbose]\n       ward-pebble notify <key> [name=value ...]\n       ward-pebble version";

fn socket_path() -> PathBuf {
    std::env::var_os("PEBBLE_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(
                std::env::var("PEBBLE").unwrap_or_else(|_| "/var/lib/pebble/default".into()),
            )
            .join(".pebble.socket")
        })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("version") | Some("--version") => {
            println!("{}", pebble::daemon::VERSION);
        }
        Some("notify") => {
            let Some(key) = args.get(1) else {
                fail("notify needs a key")
            };
            let mut data = Vec::new();
            for kv in &args[2..] {
                match kv.split_once('=') {
                    Some((k, v)) => data.push((k, v)),
                    None => fail(&format!("notify data {kv:?} is not name=value")),
                }
            }
            match pebble::notify(&socket_path(), key, &data) {
                Ok(id) => println!("Recorded notice {id}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(1);
                }
            }
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

//! Entry point of the pgbouncer charm (being built).

fn main() {
    eprintln!("pgbouncer charm: not built yet");
    std::process::exit(1);
}

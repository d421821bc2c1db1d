//! Entry point of the postgresql charm (being built).

fn main() {
    eprintln!("postgresql charm: not built yet");
    std::process::exit(1);
}

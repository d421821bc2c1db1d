//! The `ward` command line (being built; see issue 5).

fn main() {
    eprintln!("ward: not built yet");
    std::process::exit(1);
}

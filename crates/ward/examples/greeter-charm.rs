//! The SDK's greeter example charm (`crates/charm/examples/greeter.rs`) as a
//! binary, built by `cargo test -p ward` for the CLI tests to deploy as the
//! greeter charm's `dispatch`.

#[path = "../../charm/examples/greeter.rs"]
mod greeter;

fn main() -> std::process::ExitCode {
    charm::run(greeter::Greeter)
}

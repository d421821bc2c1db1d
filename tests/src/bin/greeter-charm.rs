//! The SDK's example charm (`crates/charm/examples/greeter.rs`) as a binary for the
//! end-to-end tests to deploy.

#[path = "../../../crates/charm/examples/greeter.rs"]
mod greeter;

fn main() -> std::process::ExitCode {
    charm::run(greeter::Greeter)
}

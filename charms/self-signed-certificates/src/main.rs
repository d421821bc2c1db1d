//! The self-signed-certificates charm binary: Juju runs it as `dispatch`.

fn main() -> std::process::ExitCode {
    charm::run(self_signed_certificates::SelfSigned::default())
}

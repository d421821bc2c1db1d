//! The postgresql charm binary: Juju runs it as `dispatch`.

fn main() -> std::process::ExitCode {
    charm::run(postgresql_charm::PostgreSql::default())
}

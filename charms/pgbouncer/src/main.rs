//! The pgbouncer charm binary: Juju runs it as `dispatch`.

fn main() -> std::process::ExitCode {
    charm::run(pgbouncer_charm::PgBouncer::default())
}

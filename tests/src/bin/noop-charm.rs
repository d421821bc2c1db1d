//! The Rust no-op charm of the hook-dispatch benchmark: active on every event.

use charm::{Charm, Context, Event, Result, Status};

struct Noop;

impl Charm for Noop {
    fn handle(&mut self, _ctx: &mut Context<'_>, _event: &Event) -> Result<()> {
        Ok(())
    }

    fn collect_unit_status(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        ctx.add_unit_status(Status::active(""));
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    charm::run(Noop)
}

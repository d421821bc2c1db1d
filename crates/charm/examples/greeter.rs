//! A small but complete charm: it shares a greeting and a token over its `greetings`
//! relation, runs a `greet` action, and reports a status a user can act on.
//!
//! Build it and use the binary as the charm's `dispatch` (see docs/), or read
//! `tests/greeter.rs` for how the harness tests it.

use charm::{
    Bag, Charm, Context, Error, Event, Result, SecretOptions, SecretOwner, SecretRead, Status,
};

/// The charm's config, loaded with serde.
#[derive(serde::Deserialize)]
struct Config {
    greeting: String,
}

/// The `greet` action's parameters.
#[derive(serde::Deserialize)]
struct GreetParams {
    name: String,
    #[serde(default)]
    shout: bool,
}

const TOKEN_LABEL: &str = "greeter-token";

/// The greeter charm.
#[derive(Default)]
pub struct Greeter;

impl Greeter {
    fn token(ctx: &mut Context<'_>) -> Result<String> {
        match ctx.secret_info(None, Some(TOKEN_LABEL)) {
            Ok(info) => Ok(info.id),
            Err(Error::SecretNotFound { .. }) => {
                let content: Bag = [("token".to_string(), "t0k3n-for-peers".to_string())].into();
                let opts = SecretOptions {
                    label: Some(TOKEN_LABEL.into()),
                    ..Default::default()
                };
                ctx.add_secret(&content, SecretOwner::Application, &opts)
            }
            Err(e) => Err(e),
        }
    }

    fn publish(ctx: &mut Context<'_>) -> Result<()> {
        let cfg: Config = ctx.config()?.load()?;
        if cfg.greeting.trim().is_empty() {
            return Err(Error::InvalidConfig {
                key: "greeting".into(),
                value: cfg.greeting,
                reason: "must not be empty".into(),
            });
        }
        let address = ctx
            .network("greetings", None)?
            .bind_address()
            .unwrap_or_default()
            .to_string();
        for rel in ctx.relations("greetings")? {
            ctx.set_unit_data(&rel, &[("address".to_string(), address.clone())].into())?;
            if ctx.is_leader()? {
                let token = Self::token(ctx)?;
                ctx.grant_secret(&token, &rel, None)?;
                let data: Bag = [
                    ("greeting".to_string(), cfg.greeting.clone()),
                    ("token-secret".to_string(), token),
                ]
                .into();
                ctx.set_app_data(&rel, &data)?;
            }
        }
        Ok(())
    }
}

impl Charm for Greeter {
    fn handle(&mut self, ctx: &mut Context<'_>, event: &Event) -> Result<()> {
        match event {
            Event::ConfigChanged | Event::LeaderElected => Self::publish(ctx),
            Event::RelationJoined(r) | Event::RelationChanged(r)
                if r.relation.endpoint == "greetings" =>
            {
                Self::publish(ctx)
            }
            Event::SecretChanged(s) => {
                // A peer's token rotated: track the new revision.
                ctx.get_secret(Some(&s.id), None, SecretRead::Refresh)
                    .map(drop)
            }
            Event::Action { name, .. } if name == "greet" => {
                let p: GreetParams = ctx.action_params()?;
                let greeting = ctx.config()?.get_str("greeting")?.unwrap_or_default();
                let mut text = format!("{greeting}, {}!", p.name);
                if p.shout {
                    text = text.to_uppercase();
                }
                ctx.action_log("greeting composed")?;
                ctx.set_results(
                    &serde_json::json!({ "greeting": text, "meta": { "length": text.len() } }),
                )
            }
            _ => Ok(()),
        }
    }

    fn collect_unit_status(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        if ctx.relations("greetings")?.is_empty() {
            ctx.add_unit_status(Status::waiting("waiting for a greetings relation"));
        }
        ctx.add_unit_status(Status::active(""));
        Ok(())
    }

    fn collect_app_status(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        ctx.add_app_status(Status::active(""));
        Ok(())
    }
}

#[allow(
    dead_code,
    reason = "the tests include this file as a module and do not call main"
)]
fn main() -> std::process::ExitCode {
    charm::run(Greeter)
}

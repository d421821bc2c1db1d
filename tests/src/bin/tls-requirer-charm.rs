//! A test charm on [`interfaces::tls_requirer::TlsRequirer`] for the end-to-end TLS tests
//! (`tests/charms/tls-rust-requirer`).
//!
//! Unit mode (config `mode: unit`, the default): each unit asks for a certificate on its
//! address (CN and IP SAN) and its name (`app-N`, a DNS SAN), plus `extra-san` when set
//! (an IP address or a DNS name). App mode (`mode: app`): the leader asks for one
//! certificate for the application, named after it. Once issued, the certificate, CA and
//! chain are written to `cert.pem`, `ca.pem` and `chain.pem` in the charm directory (the
//! key stays in its secret) and the status says `certificate issued for <CN>`.

use std::net::IpAddr;
use std::path::PathBuf;

use charm::{Charm, Context, Error, Event, Result, Status};
use interfaces::tls_certificates::CsrRequest;
use interfaces::tls_requirer::{unit_address_request, Issued, Mode, TlsRequirer};

const ENDPOINT: &str = "certificates";

#[derive(Default)]
struct TlsRequirerCharm {
    /// What this hook saw: the CN asked for, and whether a certificate is in use.
    outcome: Option<(String, bool)>,
    app_mode_follower: bool,
}

fn charm_dir(ctx: &Context<'_>) -> PathBuf {
    ctx.env()
        .charm_dir
        .as_deref()
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}

fn write_files(ctx: &Context<'_>, issued: &Issued) -> Result<()> {
    let dir = charm_dir(ctx);
    for (name, content) in [
        ("cert.pem", issued.certificate.clone()),
        ("ca.pem", issued.ca.clone()),
        ("chain.pem", issued.chain.join("\n")),
    ] {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(content.as_str()) {
            std::fs::write(&path, content)
                .map_err(|e| Error::Charm(format!("cannot write {}: {e}", path.display())))?;
        }
    }
    Ok(())
}

impl Charm for TlsRequirerCharm {
    fn handle(&mut self, ctx: &mut Context<'_>, _event: &Event) -> Result<()> {
        let cfg = ctx.config()?;
        let mode = cfg.get_one_of("mode", &["unit", "app"], "unit")?;
        let extra = cfg.get_str("extra-san")?.unwrap_or_default();
        let (mode, request) = if mode == "app" {
            let name = ctx.app_name().to_string();
            (Mode::App, CsrRequest::new(&name).dns(&name))
        } else {
            let address = ctx.bind_address(ENDPOINT)?;
            let unit = ctx.unit_name().to_string();
            (Mode::Unit, unit_address_request(&unit, &address)?)
        };
        let request = match extra.trim() {
            "" => request,
            san => match san.parse::<IpAddr>() {
                Ok(ip) => request.ip(ip),
                Err(_) => request.dns(san),
            },
        };
        self.app_mode_follower = mode == Mode::App && !ctx.is_leader()?;
        if ctx.relation(ENDPOINT)?.is_none() {
            return Ok(());
        }
        let issued = TlsRequirer::new(ENDPOINT)
            .mode(mode)
            .reconcile(ctx, &request)?;
        if let Some(issued) = &issued {
            write_files(ctx, issued)?;
        }
        self.outcome = Some((request.common_name.clone(), issued.is_some()));
        Ok(())
    }

    fn collect_unit_status(&mut self, ctx: &mut Context<'_>) -> Result<()> {
        ctx.add_unit_status(match &self.outcome {
            _ if self.app_mode_follower => {
                Status::active("the leader holds the application's certificate")
            }
            None => Status::blocked("needs a certificates relation"),
            Some((cn, true)) => Status::active(format!("certificate issued for {cn}")),
            Some((_, false)) => Status::waiting("waiting for a certificate"),
        });
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    charm::run(TlsRequirerCharm::default())
}

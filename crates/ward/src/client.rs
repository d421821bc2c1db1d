//! The CLI's side of the API: HTTPS to 127.0.0.1 pinned to the controller's
//! CA (no other roots are trusted), with the admin token on every call.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api;
use crate::error::{CliError, Context, Result};
use crate::home::Home;

/// A connection to this home's controller.
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    home: Home,
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl Client {
    /// A client for the controller bootstrapped in `home`.
    pub(crate) fn new(home: &Home) -> Result<Client> {
        Self::at(home, home.client_port()?)
    }

    /// A client for the controller of `home` on a given port.
    pub(crate) fn at(home: &Home, port: u16) -> Result<Client> {
        if !home.is_bootstrapped() {
            return Err(CliError::unreachable(format!(
                "no controller is bootstrapped in WARD_HOME={}: run `ward bootstrap` (or set WARD_HOME to the controller's home)",
                home.root.display()
            )));
        }
        let ca = std::fs::read(home.ca_cert())
            .failed(|| format!("reading the controller CA {}", home.ca_cert().display()))?;
        let cert = reqwest::Certificate::from_pem(&ca).map_err(|e| {
            CliError::unreachable(format!(
                "{} is not a PEM certificate ({e}): bootstrap again",
                home.ca_cert().display()
            ))
        })?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(cert)
            .https_only(true)
            .connect_timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .failed(|| "setting up the HTTPS client".into())?;
        Ok(Client {
            http,
            base: format!("https://127.0.0.1:{port}"),
            token: crate::pki::read_token(home)?,
            home: home.clone(),
        })
    }

    fn send_error(&self, e: reqwest::Error) -> CliError {
        let text = chain(&e);
        let lower = text.to_ascii_lowercase();
        if lower.contains("certificate") || lower.contains("unknownissuer") {
            return CliError::unreachable(format!(
                "the server at {} presented a certificate not issued by this controller's CA ({}): {text}. \
                 Another program or another controller holds that port: check WARD_PORT and WARD_HOME, or `ward bootstrap` again",
                self.base,
                self.home.ca_cert().display()
            ));
        }
        if e.is_connect() || e.is_timeout() {
            return CliError::unreachable(format!(
                "cannot reach the controller at {} (WARD_HOME={}): {text}. Is it running? `ward bootstrap` starts it; its log is {}",
                self.base,
                self.home.root.display(),
                self.home.log_file().display()
            ));
        }
        CliError::unreachable(format!(
            "talking to the controller at {}: {text}",
            self.base
        ))
    }

    async fn answer<T: DeserializeOwned>(&self, resp: reqwest::Response) -> Result<T> {
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.send_error(e))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                CliError::failed(format!("the controller's answer did not decode: {e}"))
            });
        }
        let err: api::ApiError = serde_json::from_slice(&bytes).unwrap_or(api::ApiError {
            error: String::from_utf8_lossy(&bytes).into_owned(),
            details: Vec::new(),
            fix: None,
        });
        let mut msg = err.error;
        for d in &err.details {
            msg.push_str(&format!("\n  - {d}"));
        }
        if let Some(f) = err.fix {
            msg.push_str(&format!("\n{f}"));
        }
        Err(match status.as_u16() {
            401 => CliError::unreachable(format!(
                "the controller at {} refused the admin credential in {}: {msg}. It belongs to another controller: check WARD_HOME and WARD_PORT",
                self.base,
                self.home.token().display()
            )),
            400 | 404 | 409 | 422 => CliError::usage(msg),
            _ => CliError::failed(msg),
        })
    }

    /// `GET path`.
    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        self.answer(resp).await
    }

    /// `POST path` with a JSON body.
    pub(crate) async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        self.answer(resp).await
    }

    /// Upload a `.charm` archive.
    pub(crate) async fn upload(&self, bytes: Vec<u8>) -> Result<api::Uploaded> {
        let resp = self
            .http
            .post(format!("{}/v1/charms", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/zip")
            .body(bytes)
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        self.answer(resp).await
    }

    /// `GET path` as a raw streaming response.
    pub(crate) async fn stream(&self, path: &str) -> Result<reqwest::Response> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        match self.answer::<serde_json::Value>(resp).await {
            Err(e) => Err(e),
            Ok(_) => Err(CliError::failed(
                "the controller answered with an error status",
            )),
        }
    }

    /// A chunk of a streaming response.
    pub(crate) async fn chunk(
        &self,
        resp: &mut reqwest::Response,
    ) -> Result<Option<axum::body::Bytes>> {
        resp.chunk().await.map_err(|e| self.send_error(e))
    }
}

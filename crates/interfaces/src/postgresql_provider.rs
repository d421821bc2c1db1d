//! The provider side of `postgresql_client` over the charm SDK: what a leader that hands
//! out databases (the postgresql charm, and PgBouncer in front of it) writes for one
//! client relation. Credentials and TLS facts go into application-owned secrets granted
//! to the relation (or plain fields, as the requirer's `requested-secrets` says); the
//! databag carries the secret URIs, the database, endpoints and version.

use charm::{Bag, Context, RelationId, Result, SecretOptions, SecretOwner, SecretRead};

use crate::postgresql_client::{
    route_fields, Credentials, DatabaseRequest, ProviderData, SecretGroup, TlsInfo,
};

/// The password already given to a client on `rel` (from the `user` secret, or the
/// plain field), if any: a leader keeps it across hooks and leader changes.
pub fn existing_password(ctx: &mut Context<'_>, rel: &RelationId) -> Result<Option<String>> {
    let mine = ctx.app_data(rel)?;
    match mine.get(&SecretGroup::User.key()) {
        Some(id) => Ok(ctx
            .get_secret(Some(id), None, SecretRead::Refresh)?
            .get("password")
            .cloned()),
        None => Ok(mine.get("password").cloned()),
    }
}

/// One answer to a client.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The client's user and password (URIs made from them and the endpoints).
    pub credentials: Credentials,
    /// TLS facts.
    pub tls: TlsInfo,
    /// Database, endpoints, read-only endpoints, version.
    pub data: ProviderData,
}

/// Writes `answer` for the client on `rel` (endpoint `endpoint`), which asked `request`:
/// secrets are made once (labelled `<endpoint>.<id>.<group>.secret`), granted to the
/// relation and updated only when their content changes; databag keys are written only
/// when they change. Only the leader may call this.
pub fn publish(
    ctx: &mut Context<'_>,
    endpoint: &str,
    rel: &RelationId,
    request: &DatabaseRequest,
    answer: &Answer,
) -> Result<()> {
    let mine = ctx.app_data(rel)?;
    let mut fields = answer.credentials.fields();
    fields.extend(answer.tls.fields());
    let (secrets, plain) = route_fields(request, &fields);
    let mut data = Bag::new();
    for (group, content) in secrets {
        match mine.get(&group.key()) {
            Some(id) => {
                if ctx.get_secret(Some(id), None, SecretRead::Refresh)? != content {
                    ctx.set_secret(id, &content, &SecretOptions::default())?;
                }
            }
            None => {
                let id = ctx.add_secret(
                    &content,
                    SecretOwner::Application,
                    &SecretOptions {
                        label: Some(group.label(endpoint, rel.id)),
                        ..Default::default()
                    },
                )?;
                ctx.grant_secret(&id, rel, None)?;
                data.insert(group.key(), id);
            }
        }
    }
    let mut wanted = answer.data.to_bag();
    wanted.extend(plain);
    // Clients that read the flag from the bag (shell charms, Ward's own tests).
    wanted.insert(
        "tls".into(),
        if answer.tls.enabled { "True" } else { "False" }.into(),
    );
    for (k, v) in wanted {
        if mine.get(&k) != Some(&v) {
            data.insert(k, v);
        }
    }
    if !data.is_empty() {
        ctx.set_app_data(rel, &data)?;
    }
    Ok(())
}

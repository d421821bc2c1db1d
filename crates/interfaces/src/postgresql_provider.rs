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
    existing_user_field(ctx, rel, "password")
}

/// A field of the `user` secret (or the plain bag) already given to a client on `rel`.
pub fn existing_user_field(
    ctx: &mut Context<'_>,
    rel: &RelationId,
    field: &str,
) -> Result<Option<String>> {
    let mine = ctx.app_data(rel)?;
    match mine.get(&SecretGroup::User.key()) {
        Some(id) => Ok(ctx
            .get_secret(Some(id), None, SecretRead::Refresh)?
            .get(field)
            .cloned()),
        None => Ok(mine.get(field).cloned()),
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
    /// More fields that belong with the credentials (the pgbouncer auth user's, say):
    /// in the `user` secret when the requirer takes credentials in secrets.
    pub extra_user_fields: Bag,
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
    let (mut secrets, mut plain) = route_fields(request, &fields);
    match secrets.get_mut(&SecretGroup::User) {
        Some(user) => user.extend(answer.extra_user_fields.clone()),
        None => plain.extend(answer.extra_user_fields.clone()),
    }
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

/// Checks a client's request against what the provider allows: the database name
/// (letters, digits, `_` and `-`, at most 63, and not ending in any of `reserved_suffixes`),
/// no entity requests, and extra roles within `allowed_roles` (compared upper-cased).
/// Returns the roles upper-cased, or why the request is refused (naming the field).
pub fn check_request(
    request: &DatabaseRequest,
    allowed_roles: &[&str],
    reserved_suffixes: &[&str],
) -> std::result::Result<Vec<String>, String> {
    if !crate::sql::valid_name(&request.database)
        || reserved_suffixes
            .iter()
            .any(|s| request.database.ends_with(s))
    {
        let suffixes = if reserved_suffixes.is_empty() {
            String::new()
        } else {
            format!(", not ending in {}", reserved_suffixes.join(" or "))
        };
        return Err(format!(
            "database name {:?} is not allowed (letters, digits, _ and -, at most 63, starting with a letter or _{suffixes})",
            request.database
        ));
    }
    if request.entity_type.is_some() {
        return Err("entity-type requests are not supported".into());
    }
    let roles: Vec<String> = request
        .extra_user_roles
        .iter()
        .map(|r| r.to_uppercase())
        .collect();
    if let Some(r) = roles.iter().find(|r| !allowed_roles.contains(&r.as_str())) {
        return Err(format!(
            "extra-user-roles {r} is not allowed (allowed: {})",
            allowed_roles.join(", ")
        ));
    }
    Ok(roles)
}

/// The user a provider makes for the client on relation `relation_id`
/// (`relation_id_<id>`, as upstream).
pub fn client_user(relation_id: u32) -> String {
    format!("relation_id_{relation_id}")
}

/// The SQL (run in one database) that hands what `user` owns there to `new_owner` (an
/// SQL role name as written in SQL: quote it with [`crate::sql::ident`] unless it is a
/// plain lower-case name) and drops the rest of its privileges, so that the role can then
/// be dropped.
pub fn drop_owned_script(user: &str, new_owner: &str) -> String {
    let u = crate::sql::ident(user);
    format!("REASSIGN OWNED BY {u} TO {new_owner};\nDROP OWNED BY {u};\n")
}

/// The SQL that makes a client's user (LOGIN, the extra `roles`, the SCRAM `verifier`:
/// the password never reaches PostgreSQL) and its database, owned by whoever runs it.
pub fn create_client_script(
    user: &str,
    database: &str,
    roles: &[String],
    verifier: &str,
) -> String {
    use crate::sql::{ident, literal};
    let role_opts: String = roles.iter().map(|r| format!(" {r}")).collect();
    let (u, db) = (ident(user), ident(database));
    let (ul, dl) = (literal(user), literal(database));
    format!(
        "SELECT format('CREATE ROLE %I', {ul}) WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {ul})\\gexec\n\
         ALTER ROLE {u} WITH LOGIN{role_opts} PASSWORD {pw};\n\
         SELECT format('CREATE DATABASE %I', {dl}) WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = {dl})\\gexec\n\
         GRANT ALL PRIVILEGES ON DATABASE {db} TO {u};\n",
        pw = literal(verifier),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked() {
        let ok = DatabaseRequest::new("app_db").with_extra_user_roles(["createdb"]);
        assert_eq!(
            check_request(&ok, &["CREATEDB"], &[]),
            Ok(vec!["CREATEDB".to_string()])
        );
        let su = DatabaseRequest::new("app").with_extra_user_roles(["SUPERUSER"]);
        assert_eq!(
            check_request(&su, &["CREATEDB", "CREATEROLE"], &[]),
            Err("extra-user-roles SUPERUSER is not allowed (allowed: CREATEDB, CREATEROLE)".into())
        );
        let ro = DatabaseRequest::new("x_readonly");
        assert!(check_request(&ro, &[], &["_readonly"])
            .unwrap_err()
            .contains("not ending in _readonly"));
        let script = create_client_script("u", "d", &["CREATEDB".into()], "SCRAM-SHA-256$v");
        assert!(script.contains("ALTER ROLE \"u\" WITH LOGIN CREATEDB PASSWORD 'SCRAM-SHA-256$v';"));
    }
}

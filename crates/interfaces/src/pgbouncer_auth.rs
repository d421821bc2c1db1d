//! The auth user and function PgBouncer's `auth_query` needs, as Ward's postgresql charm
//! provides them on `database` (a Ward extension of `postgresql_client`).
//!
//! PgBouncer looks up a client's SCRAM verifier in PostgreSQL. That takes a function
//! that reads `pg_authid`, which only a superuser can own usefully, and Ward's
//! postgresql charm gives no client SUPERUSER. So a requirer that writes
//! [`AUTH_FUNCTION_KEY`]` = "true"` in its application bag gets, from the provider:
//!
//! - an auth user `pgbouncer_auth_<relation user>` with LOGIN and nothing else, whose
//!   name and password arrive in the `user` secret as [`AUTH_USERNAME`] and
//!   [`AUTH_PASSWORD`];
//! - `<auth user>.get_auth(name)`, SECURITY DEFINER and owned by a superuser, installed in
//!   `template1` (so every database created afterwards has it), `postgres` and the
//!   requested database; EXECUTE is granted to the auth user only. It answers only login
//!   roles that are neither superusers nor replication roles, and not the auth user.

use crate::sql::{ident, literal};

/// Requirer application bag key asking for the auth user and function.
pub const AUTH_FUNCTION_KEY: &str = "auth-function";
/// `user` secret field: the auth user's name.
pub const AUTH_USERNAME: &str = "auth-username";
/// `user` secret field: the auth user's password.
pub const AUTH_PASSWORD: &str = "auth-password";

/// The auth user made for the relation user `user`.
pub fn auth_user_for(user: &str) -> String {
    format!("pgbouncer_auth_{}", user.replace('-', "_"))
}

/// PgBouncer's `auth_query` for `auth_user`.
pub fn auth_query(auth_user: &str) -> String {
    format!(
        "SELECT username, password FROM {}.get_auth($1)",
        ident(auth_user)
    )
}

/// The SQL (run by a superuser) that makes the auth user with a SCRAM `verifier`: LOGIN
/// and no other attribute.
pub fn auth_user_script(auth_user: &str, verifier: &str) -> String {
    let l = literal(auth_user);
    format!(
        "SELECT format('CREATE ROLE %I', {l}) WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {l})\\gexec\n\
         ALTER ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD {};\n",
        ident(auth_user),
        literal(verifier)
    )
}

/// The SQL (run by a superuser, in one database) that installs `get_auth`.
pub fn auth_function_script(auth_user: &str) -> String {
    let a = ident(auth_user);
    let al = literal(auth_user);
    format!(
        "CREATE SCHEMA IF NOT EXISTS {a};\n\
         REVOKE ALL ON SCHEMA {a} FROM PUBLIC;\n\
         GRANT USAGE ON SCHEMA {a} TO {a};\n\
         CREATE OR REPLACE FUNCTION {a}.get_auth(uname TEXT) RETURNS TABLE (username TEXT, password TEXT)\n\
         LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $fn$\n\
           SELECT rolname::text, rolpassword::text FROM pg_catalog.pg_authid\n\
           WHERE rolname = uname AND rolcanlogin AND NOT rolsuper AND NOT rolreplication\n\
             AND rolname <> {al} AND (rolvaliduntil IS NULL OR rolvaliduntil >= now())\n\
         $fn$;\n\
         REVOKE ALL ON FUNCTION {a}.get_auth(TEXT) FROM PUBLIC;\n\
         GRANT EXECUTE ON FUNCTION {a}.get_auth(TEXT) TO {a};\n"
    )
}

/// The SQL (run in one database) that removes the function and its schema.
pub fn remove_function_script(auth_user: &str) -> String {
    format!("DROP SCHEMA IF EXISTS {} CASCADE;\n", ident(auth_user))
}

/// A query answering `1` when `get_auth` of `auth_user` exists in the current database.
pub fn function_exists_query(auth_user: &str) -> String {
    format!(
        "SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = {} AND p.proname = 'get_auth';\n",
        literal(auth_user)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_scripts() {
        assert_eq!(
            auth_user_for("relation_id_3"),
            "pgbouncer_auth_relation_id_3"
        );
        assert_eq!(
            auth_query("pgbouncer_auth_relation_id_3"),
            "SELECT username, password FROM \"pgbouncer_auth_relation_id_3\".get_auth($1)"
        );
        let f = auth_function_script("a");
        assert!(f.contains("SECURITY DEFINER") && f.contains("NOT rolsuper"));
        assert!(f.contains("GRANT EXECUTE ON FUNCTION \"a\".get_auth(TEXT) TO \"a\""));
        assert!(auth_user_script("a", "SCRAM-SHA-256$x").contains("NOSUPERUSER"));
    }
}

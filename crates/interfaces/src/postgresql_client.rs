//! The `postgresql_client` interface: the databag schema Canonical's `data_interfaces`
//! library (v0) writes, for both sides, so Ward's charms and upstream's interoperate.
//!
//! - The **requirer** (a client application's leader) puts a [`DatabaseRequest`] in its
//!   application bag: `database`, optionally `extra-user-roles`, `extra-group-roles`,
//!   `entity-type`, `external-node-connectivity`, and `requested-secrets`, the JSON list of
//!   fields it wants delivered in Juju secrets.
//! - The **provider** (the database's leader) answers in its application bag with a
//!   [`ProviderData`]: `database`, `endpoints`, `read-only-endpoints`, `version`, and for
//!   each requested secret group the URI of an application-owned secret granted to the
//!   relation (`secret-user` holding `username`, `password`, `uris`, `read-only-uris`;
//!   `secret-tls` holding `tls`, `tls-ca`). Fields that were not asked for as secrets are
//!   written to the bag as plain values.
//!
//! A request without `requested-secrets` gets [`DEFAULT_REQUESTED_SECRETS`]: every Juju
//! Ward targets has secrets, and a client that omits the list (a shell charm, say) still
//! gets its password out of relation data.
//!
//! ```
//! use interfaces::postgresql_client::{DatabaseRequest, SecretGroup};
//!
//! let bag = [("database".to_string(), "app".to_string()),
//!            ("extra-user-roles".to_string(), "createdb".to_string())].into();
//! let request = DatabaseRequest::parse(&bag).unwrap().expect("a request");
//! assert_eq!(request.database, "app");
//! assert_eq!(request.extra_user_roles, ["createdb"]);
//! assert!(request.wants_secret("password"));
//! assert_eq!(SecretGroup::of("tls-ca"), SecretGroup::Tls);
//! ```

use std::collections::BTreeMap;

/// A relation databag.
pub type Bag = BTreeMap<String, String>;

/// Requirer key: the database the client wants.
pub const DATABASE: &str = "database";
/// Requirer key: comma-separated roles or attributes for the client's user.
pub const EXTRA_USER_ROLES: &str = "extra-user-roles";
/// Requirer key: comma-separated group roles.
pub const EXTRA_GROUP_ROLES: &str = "extra-group-roles";
/// Requirer key: `USER` or `GROUP` (a request for an entity instead of a database user).
pub const ENTITY_TYPE: &str = "entity-type";
/// Requirer key: `"true"` when the client runs outside the model's network.
pub const EXTERNAL_NODE_CONNECTIVITY: &str = "external-node-connectivity";
/// Requirer key: JSON list of the fields to deliver in secrets.
pub const REQUESTED_SECRETS: &str = "requested-secrets";
/// Provider key: comma-separated `host:port` of the primary.
pub const ENDPOINTS: &str = "endpoints";
/// Provider key: comma-separated `host:port` of the replicas.
pub const READ_ONLY_ENDPOINTS: &str = "read-only-endpoints";
/// Provider key: the server's version.
pub const VERSION: &str = "version";

/// The fields a requirer asks for in secrets when it does not say (the library's default).
pub const DEFAULT_REQUESTED_SECRETS: [&str; 8] = [
    "username",
    "password",
    "tls",
    "tls-ca",
    "uris",
    "read-only-uris",
    "entity-name",
    "entity-password",
];

/// A databag that does not follow the schema: the key, the offending value (never a
/// secret field's), and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("postgresql_client field {key}={value:?}: {reason}")]
pub struct SchemaError {
    /// The databag key.
    pub key: String,
    /// Its value as found.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

fn schema_error(key: &str, value: &str, reason: impl Into<String>) -> SchemaError {
    SchemaError {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

fn list(value: Option<&String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn flag(bag: &Bag, key: &str) -> Result<bool, SchemaError> {
    match bag.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" || v.is_empty() => Ok(false),
        Some(_) => Err(schema_error(
            key,
            bag.get(key).map(String::as_str).unwrap_or(""),
            "must be true or false",
        )),
    }
}

/// Whether the entity a request asks for is a user or a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityType {
    /// `USER`
    User,
    /// `GROUP`
    Group,
}

/// What a client asks for, from the requirer's application bag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatabaseRequest {
    /// The database name, as given (not yet checked against the provider's rules).
    pub database: String,
    /// `extra-user-roles`, split on commas, trimmed, case kept.
    pub extra_user_roles: Vec<String>,
    /// `extra-group-roles`, split likewise.
    pub extra_group_roles: Vec<String>,
    /// `entity-type`, when the request is for an entity.
    pub entity_type: Option<EntityType>,
    /// `external-node-connectivity`.
    pub external_node_connectivity: bool,
    /// `requested-secrets` as given; `None` when the key is absent.
    pub requested_secrets: Option<Vec<String>>,
}

impl DatabaseRequest {
    /// A request for `database` with the default secrets.
    pub fn new(database: &str) -> Self {
        Self {
            database: database.into(),
            requested_secrets: Some(
                DEFAULT_REQUESTED_SECRETS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ),
            ..Self::default()
        }
    }

    /// Adds `extra-user-roles`.
    pub fn with_extra_user_roles<S: Into<String>>(
        mut self,
        roles: impl IntoIterator<Item = S>,
    ) -> Self {
        self.extra_user_roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// Reads a request from the requirer's application bag. `Ok(None)` while the bag has
    /// no `database` yet (the requirer has not asked); a malformed field is an error
    /// naming it.
    pub fn parse(bag: &Bag) -> Result<Option<Self>, SchemaError> {
        let Some(database) = bag.get(DATABASE) else {
            return Ok(None);
        };
        if database.trim().is_empty() {
            return Err(schema_error(DATABASE, database, "must not be empty"));
        }
        let entity_type = match bag.get(ENTITY_TYPE).map(|s| s.trim()) {
            None | Some("") => None,
            Some(t) if t.eq_ignore_ascii_case("USER") => Some(EntityType::User),
            Some(t) if t.eq_ignore_ascii_case("GROUP") => Some(EntityType::Group),
            Some(t) => return Err(schema_error(ENTITY_TYPE, t, "must be USER or GROUP")),
        };
        let requested_secrets = match bag.get(REQUESTED_SECRETS) {
            None => None,
            Some(raw) => Some(serde_json::from_str::<Vec<String>>(raw).map_err(|e| {
                schema_error(
                    REQUESTED_SECRETS,
                    raw,
                    format!("must be a JSON list of field names ({e})"),
                )
            })?),
        };
        Ok(Some(Self {
            database: database.trim().to_string(),
            extra_user_roles: list(bag.get(EXTRA_USER_ROLES)),
            extra_group_roles: list(bag.get(EXTRA_GROUP_ROLES)),
            entity_type,
            external_node_connectivity: flag(bag, EXTERNAL_NODE_CONNECTIVITY)?,
            requested_secrets,
        }))
    }

    /// The bag a requirer writes for this request.
    pub fn to_bag(&self) -> Bag {
        let mut bag = Bag::new();
        bag.insert(DATABASE.into(), self.database.clone());
        if !self.extra_user_roles.is_empty() {
            bag.insert(EXTRA_USER_ROLES.into(), self.extra_user_roles.join(","));
        }
        if !self.extra_group_roles.is_empty() {
            bag.insert(EXTRA_GROUP_ROLES.into(), self.extra_group_roles.join(","));
        }
        match self.entity_type {
            Some(EntityType::User) => {
                bag.insert(ENTITY_TYPE.into(), "USER".into());
            }
            Some(EntityType::Group) => {
                bag.insert(ENTITY_TYPE.into(), "GROUP".into());
            }
            None => {}
        }
        if self.external_node_connectivity {
            bag.insert(EXTERNAL_NODE_CONNECTIVITY.into(), "true".into());
        }
        if let Some(secrets) = &self.requested_secrets {
            bag.insert(
                REQUESTED_SECRETS.into(),
                serde_json::Value::from(secrets.clone()).to_string(),
            );
        }
        bag
    }

    /// Whether `field` goes into a secret for this requirer.
    pub fn wants_secret(&self, field: &str) -> bool {
        match &self.requested_secrets {
            Some(list) => list.iter().any(|f| f == field),
            None => DEFAULT_REQUESTED_SECRETS.contains(&field),
        }
    }
}

/// The secret a field travels in, as the library groups them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecretGroup {
    /// `username`, `password`, `uris`, `read-only-uris`.
    User,
    /// `tls`, `tls-ca`.
    Tls,
    /// `mtls-cert`.
    Mtls,
    /// `entity-name`, `entity-password`.
    Entity,
    /// Any other field.
    Extra,
}

impl SecretGroup {
    /// The group of `field`.
    pub fn of(field: &str) -> Self {
        match field {
            "username" | "password" | "uris" | "read-only-uris" => Self::User,
            "tls" | "tls-ca" => Self::Tls,
            "mtls-cert" => Self::Mtls,
            "entity-name" | "entity-password" => Self::Entity,
            _ => Self::Extra,
        }
    }

    /// The group's name (`user`, `tls`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Tls => "tls",
            Self::Mtls => "mtls",
            Self::Entity => "entity",
            Self::Extra => "extra",
        }
    }

    /// The databag key that carries the group's secret URI (`secret-user`, …).
    pub fn key(self) -> String {
        format!("secret-{}", self.name())
    }

    /// The label the owner gives the group's secret: `<endpoint>.<id>.<group>.secret`.
    pub fn label(self, endpoint: &str, relation_id: u32) -> String {
        format!("{endpoint}.{relation_id}.{}.secret", self.name())
    }
}

/// A client's credentials (the `user` group). Debug output hides the password.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    /// The database user.
    pub username: String,
    /// Its password.
    pub password: String,
    /// `postgresql://user:password@host:port/database` of the primary.
    pub uris: Option<String>,
    /// The same for the replicas, when asked for.
    pub read_only_uris: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A PostgreSQL URI, with user name and password percent-encoded.
pub fn uri(username: &str, password: &str, endpoints: &str, database: &str) -> String {
    format!(
        "postgresql://{}:{}@{endpoints}/{}",
        encode(username),
        encode(password),
        encode(database)
    )
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Credentials {
    /// The fields of the `user` group as a secret's (or plain bag's) content; `None`s left out.
    pub fn fields(&self) -> Bag {
        let mut bag = Bag::new();
        bag.insert("username".into(), self.username.clone());
        bag.insert("password".into(), self.password.clone());
        if let Some(u) = &self.uris {
            bag.insert("uris".into(), u.clone());
        }
        if let Some(u) = &self.read_only_uris {
            bag.insert("read-only-uris".into(), u.clone());
        }
        bag
    }

    /// Reads credentials from a secret's content or a plain bag (username and password
    /// required). Errors never carry the password.
    pub fn from_fields(bag: &Bag) -> Result<Self, SchemaError> {
        let username = bag
            .get("username")
            .filter(|u| !u.is_empty())
            .ok_or_else(|| schema_error("username", "", "missing"))?;
        let password = bag
            .get("password")
            .filter(|p| !p.is_empty())
            .ok_or_else(|| schema_error("password", "", "missing"))?;
        Ok(Self {
            username: username.clone(),
            password: password.clone(),
            uris: bag.get("uris").cloned(),
            read_only_uris: bag.get("read-only-uris").cloned(),
        })
    }
}

/// TLS facts for clients (the `tls` group).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsInfo {
    /// Whether the server offers TLS.
    pub enabled: bool,
    /// The CA that signed the server's certificate, PEM.
    pub ca: Option<String>,
}

impl TlsInfo {
    /// The fields of the `tls` group: `tls` is `True`/`False` as the library writes it.
    pub fn fields(&self) -> Bag {
        let mut bag = Bag::new();
        bag.insert(
            "tls".into(),
            if self.enabled { "True" } else { "False" }.into(),
        );
        if let Some(ca) = &self.ca {
            bag.insert("tls-ca".into(), ca.clone());
        }
        bag
    }

    /// Reads the `tls` group.
    pub fn from_fields(bag: &Bag) -> Result<Self, SchemaError> {
        let enabled = match bag.get("tls").map(String::as_str) {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") || v.is_empty() => false,
            Some(v) => return Err(schema_error("tls", v, "must be True or False")),
        };
        Ok(Self {
            enabled,
            ca: bag.get("tls-ca").filter(|c| !c.is_empty()).cloned(),
        })
    }
}

/// The non-secret part of the provider's application bag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProviderData {
    /// The database made for the client.
    pub database: String,
    /// `host:port` of the primary.
    pub endpoints: Vec<String>,
    /// `host:port` of the replicas (the primary when there are none).
    pub read_only_endpoints: Vec<String>,
    /// The server's version, e.g. `15.14`.
    pub version: String,
    /// Secret URIs by group (`secret-user`, `secret-tls`, …).
    pub secrets: BTreeMap<SecretGroup, String>,
}

fn endpoint_list(bag: &Bag, key: &str) -> Result<Vec<String>, SchemaError> {
    let items = list(bag.get(key));
    for item in &items {
        let ok = item
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !ok {
            return Err(schema_error(key, item, "each entry must be host:port"));
        }
    }
    Ok(items)
}

impl ProviderData {
    /// Reads the provider's application bag. `Ok(None)` until the provider has answered
    /// (no `database`, or no `endpoints` yet); malformed fields are errors naming the key.
    pub fn parse(bag: &Bag) -> Result<Option<Self>, SchemaError> {
        let Some(database) = bag.get(DATABASE) else {
            return Ok(None);
        };
        if !bag.contains_key(ENDPOINTS) {
            return Ok(None);
        }
        let mut secrets = BTreeMap::new();
        for group in [
            SecretGroup::User,
            SecretGroup::Tls,
            SecretGroup::Mtls,
            SecretGroup::Entity,
            SecretGroup::Extra,
        ] {
            if let Some(uri) = bag.get(&group.key()) {
                if !uri.starts_with("secret:") {
                    return Err(schema_error(&group.key(), uri, "must be a secret URI"));
                }
                secrets.insert(group, uri.clone());
            }
        }
        Ok(Some(Self {
            database: database.clone(),
            endpoints: endpoint_list(bag, ENDPOINTS)?,
            read_only_endpoints: endpoint_list(bag, READ_ONLY_ENDPOINTS)?,
            version: bag.get(VERSION).cloned().unwrap_or_default(),
            secrets,
        }))
    }

    /// The bag the provider writes (plain fields of a client without secrets are added
    /// by the caller).
    pub fn to_bag(&self) -> Bag {
        let mut bag = Bag::new();
        bag.insert(DATABASE.into(), self.database.clone());
        bag.insert(ENDPOINTS.into(), self.endpoints.join(","));
        bag.insert(
            READ_ONLY_ENDPOINTS.into(),
            self.read_only_endpoints.join(","),
        );
        bag.insert(VERSION.into(), self.version.clone());
        for (group, uri) in &self.secrets {
            bag.insert(group.key(), uri.clone());
        }
        bag
    }
}

/// Splits the fields of one answer between secrets and the plain databag, as the
/// requirer asked: returns (content by secret group, plain fields).
pub fn route_fields(request: &DatabaseRequest, fields: &Bag) -> (BTreeMap<SecretGroup, Bag>, Bag) {
    let mut secrets: BTreeMap<SecretGroup, Bag> = BTreeMap::new();
    let mut plain = Bag::new();
    for (k, v) in fields {
        if request.wants_secret(k) {
            secrets
                .entry(SecretGroup::of(k))
                .or_default()
                .insert(k.clone(), v.clone());
        } else {
            plain.insert(k.clone(), v.clone());
        }
    }
    (secrets, plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bag(kv: &[(&str, &str)]) -> Bag {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_request_round_trips_through_the_bag() {
        let r = DatabaseRequest::new("app").with_extra_user_roles(["CREATEDB", "createrole"]);
        let b = r.to_bag();
        assert_eq!(b["extra-user-roles"], "CREATEDB,createrole");
        assert!(b["requested-secrets"].starts_with("[\"username\""));
        assert_eq!(DatabaseRequest::parse(&b).unwrap(), Some(r));
    }

    #[test]
    fn no_database_means_no_request_yet() {
        assert_eq!(DatabaseRequest::parse(&Bag::new()).unwrap(), None);
        let e = DatabaseRequest::parse(&bag(&[("database", " ")])).unwrap_err();
        assert_eq!(e.key, "database");
    }

    #[test]
    fn malformed_request_fields_are_named() {
        let e = DatabaseRequest::parse(&bag(&[("database", "a"), ("requested-secrets", "user")]))
            .unwrap_err();
        assert_eq!(e.key, "requested-secrets");
        let e = DatabaseRequest::parse(&bag(&[("database", "a"), ("entity-type", "ROBOT")]))
            .unwrap_err();
        assert_eq!(e.key, "entity-type");
        assert!(e.to_string().contains("ROBOT"), "{e}");
        let e = DatabaseRequest::parse(&bag(&[
            ("database", "a"),
            ("external-node-connectivity", "maybe"),
        ]))
        .unwrap_err();
        assert_eq!(e.key, "external-node-connectivity");
    }

    #[test]
    fn fields_go_to_secrets_only_when_asked() {
        let mut r = DatabaseRequest::parse(&bag(&[("database", "a")]))
            .unwrap()
            .unwrap();
        assert!(r.wants_secret("password") && r.wants_secret("tls-ca"));
        r.requested_secrets = Some(vec!["password".into()]);
        let fields = bag(&[("username", "u"), ("password", "p"), ("tls", "True")]);
        let (secrets, plain) = route_fields(&r, &fields);
        assert_eq!(secrets[&SecretGroup::User], bag(&[("password", "p")]));
        assert_eq!(plain, bag(&[("username", "u"), ("tls", "True")]));
    }

    #[test]
    fn provider_data_round_trips_and_checks_endpoints() {
        let p = ProviderData {
            database: "app".into(),
            endpoints: vec!["127.1.0.1:5432".into()],
            read_only_endpoints: vec!["127.1.0.2:5432".into(), "127.1.0.3:5432".into()],
            version: "15.14".into(),
            secrets: [(SecretGroup::User, "secret:abc".to_string())].into(),
        };
        let b = p.to_bag();
        assert_eq!(b["secret-user"], "secret:abc");
        assert_eq!(b["read-only-endpoints"], "127.1.0.2:5432,127.1.0.3:5432");
        assert_eq!(ProviderData::parse(&b).unwrap(), Some(p));
        let mut b2 = b.clone();
        b2.insert("endpoints".into(), "nohost".into());
        assert_eq!(ProviderData::parse(&b2).unwrap_err().key, "endpoints");
        b2 = b;
        b2.insert("secret-tls".into(), "http://x".into());
        assert_eq!(ProviderData::parse(&b2).unwrap_err().key, "secret-tls");
        assert_eq!(
            ProviderData::parse(&bag(&[("database", "a")])).unwrap(),
            None
        );
    }

    #[test]
    fn credentials_hide_the_password_and_need_both_fields() {
        let c = Credentials {
            username: "relation_id_3".into(),
            password: "s3cret".into(),
            uris: Some(uri("relation_id_3", "s3cret", "127.1.0.1:5432", "app")),
            read_only_uris: None,
        };
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(Credentials::from_fields(&c.fields()).unwrap(), c);
        let e = Credentials::from_fields(&bag(&[("username", "u")])).unwrap_err();
        assert_eq!(e.key, "password");
        assert_eq!(
            uri("u", "p@ss:/", "h:1", "d b"),
            "postgresql://u:p%40ss%3A%2F@h:1/d%20b"
        );
    }

    #[test]
    fn tls_fields_use_the_library_spelling() {
        let t = TlsInfo {
            enabled: true,
            ca: Some("PEM".into()),
        };
        assert_eq!(t.fields()["tls"], "True");
        assert_eq!(TlsInfo::from_fields(&t.fields()).unwrap(), t);
        assert_eq!(
            TlsInfo::from_fields(&bag(&[("tls", "yes")]))
                .unwrap_err()
                .key,
            "tls"
        );
    }

    #[test]
    fn secret_groups_have_the_library_names() {
        assert_eq!(SecretGroup::of("read-only-uris"), SecretGroup::User);
        assert_eq!(SecretGroup::User.key(), "secret-user");
        assert_eq!(
            SecretGroup::Tls.label("database", 7),
            "database.7.tls.secret"
        );
        assert_eq!(SecretGroup::of("whatever"), SecretGroup::Extra);
    }
}

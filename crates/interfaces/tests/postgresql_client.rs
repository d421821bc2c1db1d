//! The postgresql_client parsers on arbitrary databags: they never panic, every error names
//! a key that is in the bag, and what they accept round-trips.

use interfaces::postgresql_client::{Bag, DatabaseRequest, ProviderData, SecretGroup};
use proptest::prelude::*;

const KEYS: [&str; 12] = [
    "database",
    "extra-user-roles",
    "extra-group-roles",
    "entity-type",
    "external-node-connectivity",
    "requested-secrets",
    "endpoints",
    "read-only-endpoints",
    "version",
    "secret-user",
    "secret-tls",
    "other",
];

fn any_bag() -> impl Strategy<Value = Bag> {
    proptest::collection::btree_map(
        proptest::sample::select(KEYS.to_vec()).prop_map(str::to_string),
        prop_oneof![
            ".*",
            "[a-z_]{1,10}",
            "(127\\.0\\.0\\.[0-9]{1,2}:[0-9]{1,5},?){0,3}",
            "\\[(\"[a-z-]{1,8}\",?){0,3}\\]",
            "secret:[a-z0-9]{4}",
            "(true|false|True|USER|GROUP)",
        ],
        0..8,
    )
}

proptest! {
    #[test]
    fn request_parsing_never_panics_and_names_a_present_key(bag in any_bag()) {
        match DatabaseRequest::parse(&bag) {
            Ok(Some(r)) => {
                prop_assert!(!r.database.is_empty());
                // What was accepted reads back the same from the bag it writes.
                prop_assert_eq!(DatabaseRequest::parse(&r.to_bag()).unwrap(), Some(r));
            }
            Ok(None) => prop_assert!(!bag.contains_key("database")),
            Err(e) => prop_assert!(bag.contains_key(&e.key), "{e}"),
        }
    }

    #[test]
    fn provider_parsing_never_panics_and_names_a_present_key(bag in any_bag()) {
        match ProviderData::parse(&bag) {
            Ok(Some(p)) => {
                prop_assert_eq!(ProviderData::parse(&p.to_bag()).unwrap(), Some(p.clone()));
                for uri in p.secrets.values() {
                    prop_assert!(uri.starts_with("secret:"));
                }
            }
            Ok(None) => prop_assert!(!bag.contains_key("database") || !bag.contains_key("endpoints")),
            Err(e) => prop_assert!(bag.contains_key(&e.key), "{e}"),
        }
    }
}

#[test]
fn a_request_written_by_canonicals_library_is_read() {
    // As data_interfaces v0 writes it with Juju secrets.
    let bag: Bag = [
        ("database", "myapp"),
        ("extra-user-roles", "SUPERUSER"),
        (
            "requested-secrets",
            r#"["username", "password", "tls", "tls-ca", "uris", "read-only-uris", "entity-name", "entity-password"]"#,
        ),
        ("provided-secrets", r#"["mtls-cert"]"#),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let r = DatabaseRequest::parse(&bag).unwrap().unwrap();
    assert_eq!(r.database, "myapp");
    assert_eq!(r.extra_user_roles, ["SUPERUSER"]);
    assert!(r.wants_secret("read-only-uris"));
    assert!(!r.wants_secret("mtls-cert"));
    assert_eq!(SecretGroup::of("entity-password").key(), "secret-entity");
}

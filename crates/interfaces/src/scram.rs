//! SCRAM-SHA-256 verifiers for PostgreSQL roles, and random passwords.
//!
//! A role's password is set as the verifier PostgreSQL itself would store
//! (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, RFC 5802/7677), computed
//! here so that the plaintext never reaches the server, its logs or `pg_stat_statements`.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// PostgreSQL's default iteration count (`scram_iterations`).
pub const ITERATIONS: u32 = 4096;

/// The length of the passwords Ward makes for PostgreSQL users.
pub const PASSWORD_LENGTH: usize = 32;

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

/// The verifier for `password` with a given salt and iteration count.
pub fn verifier_with(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(&client_key);
    let server_key = hmac(&salted, b"Server Key");
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored_key),
        b64.encode(server_key)
    )
}

/// The verifier for `password` with a fresh 16-byte random salt.
///
/// Passwords are used as UTF-8 bytes without SASLprep; Ward's own passwords are ASCII
/// letters and digits, for which the two agree.
pub fn verifier(password: &str) -> String {
    let salt: [u8; 16] = rand::random();
    verifier_with(password, &salt, ITERATIONS)
}

/// A random password: `len` letters and digits from the operating system's generator.
pub fn random_password(len: usize) -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_rfc7677_test_vector() {
        // RFC 7677 §3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096.
        let salt = base64::engine::general_purpose::STANDARD
            .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
            .unwrap();
        let v = verifier_with("pencil", &salt, 4096);
        // ServerKey from the RFC's server signature derivation; StoredKey = H(ClientKey).
        assert!(
            v.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"),
            "{v}"
        );
        assert!(
            v.ends_with(":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="),
            "{v}"
        );
    }

    #[test]
    fn random_passwords_are_long_and_distinct() {
        let a = random_password(32);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, random_password(32));
        assert_ne!(verifier("x"), verifier("x"), "salted");
    }
}

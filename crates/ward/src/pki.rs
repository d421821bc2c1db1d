//! The controller's CA and server certificate (made once, at bootstrap) and
//! the admin credential.

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::error::{Context, Result};
use crate::home::{write_private, Home};

/// Make the CA, the server certificate (127.0.0.1, localhost) and the admin
/// token unless they exist. Keys and the token are written 0600.
pub(crate) fn ensure(home: &Home) -> Result<()> {
    let have_pki = home.ca_cert().is_file()
        && home.ca_key().is_file()
        && home.server_cert().is_file()
        && home.server_key().is_file();
    if !have_pki {
        let now = time::OffsetDateTime::now_utc();
        let not_before = now - time::Duration::days(1);
        let not_after = now + time::Duration::days(3650);

        let ca_key = KeyPair::generate().failed(|| "generating the controller CA key".into())?;
        let mut ca = CertificateParams::new(Vec::<String>::new())
            .failed(|| "preparing the controller CA".into())?;
        ca.distinguished_name
            .push(DnType::CommonName, "Ward controller CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca.not_before = not_before;
        ca.not_after = not_after;
        let ca_cert = ca
            .self_signed(&ca_key)
            .failed(|| "signing the controller CA".into())?;

        let srv_key = KeyPair::generate().failed(|| "generating the server key".into())?;
        let mut srv = CertificateParams::new(vec!["localhost".to_string()])
            .failed(|| "preparing the server certificate".into())?;
        srv.subject_alt_names
            .push(SanType::IpAddress(std::net::IpAddr::V4(
                std::net::Ipv4Addr::LOCALHOST,
            )));
        srv.distinguished_name
            .push(DnType::CommonName, "Ward controller");
        srv.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        srv.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        srv.use_authority_key_identifier_extension = true;
        srv.not_before = not_before;
        srv.not_after = not_after;
        let srv_cert = srv
            .signed_by(&srv_key, &ca_cert, &ca_key)
            .failed(|| "signing the server certificate".into())?;

        write_private(&home.ca_key(), ca_key.serialize_pem().as_bytes(), 0o600)?;
        write_private(
            &home.server_key(),
            srv_key.serialize_pem().as_bytes(),
            0o600,
        )?;
        write_private(&home.server_cert(), srv_cert.pem().as_bytes(), 0o644)?;
        write_private(&home.ca_cert(), ca_cert.pem().as_bytes(), 0o644)?;
    }
    if !home.token().is_file() {
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        write_private(&home.token(), token.as_bytes(), 0o600)?;
    }
    Ok(())
}

/// The admin token, read from WARD_HOME.
pub(crate) fn read_token(home: &Home) -> Result<String> {
    let t = std::fs::read_to_string(home.token())
        .failed(|| format!("reading the admin credential {}", home.token().display()))?;
    Ok(t.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_private_keys_and_a_token_once() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let home = Home {
            root: d.path().to_path_buf(),
        };
        ensure(&home).unwrap();
        for p in [home.ca_key(), home.server_key(), home.token()] {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        let token = read_token(&home).unwrap();
        assert_eq!(token.len(), 64);
        let ca = std::fs::read(home.ca_cert()).unwrap();
        ensure(&home).unwrap();
        assert_eq!(read_token(&home).unwrap(), token, "kept on re-bootstrap");
        assert_eq!(std::fs::read(home.ca_cert()).unwrap(), ca);
    }
}

//! How many P-256 CSRs per second the CA checks and signs in-process (target ≥ 5,000),
//! next to the cost of making the CSRs, measured in the same run.
//!
//! `cargo run --release -p interfaces --example signing_rate -- [count]`

use std::time::Instant;

use interfaces::tls_certificates::*;

fn main() -> Result<(), TlsError> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let ca = CertificateAuthority::generate(&CaConfig::new("bench CA"))?;
    let t = Instant::now();
    let csrs: Vec<String> = (0..n)
        .map(|i| {
            let key = generate_private_key()?;
            generate_csr(
                &key,
                &CsrRequest::new(&format!("unit-{i}"))
                    .dns(&format!("unit-{i}.ward.local"))
                    .ip("127.1.0.1".parse().unwrap()),
            )
        })
        .collect::<Result<_, _>>()?;
    let make = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for csr in &csrs {
        let checked = validate_csr(csr, false, &CsrPolicy::default())?;
        ca.sign(&checked, 90)?;
    }
    let sign = t.elapsed().as_secs_f64();
    println!("| metric | value |\n|---|---|");
    println!("| CSRs | {n} |");
    println!(
        "| baseline: key + CSR made per second (requirer side) | {:.0} |",
        n as f64 / make
    );
    println!(
        "| CSRs checked (parse, signature, SANs) and signed per second | {:.0} (target ≥ 5,000) |",
        n as f64 / sign
    );
    println!("| signing rate / CSR-making rate | {:.2} |", make / sign);
    Ok(())
}

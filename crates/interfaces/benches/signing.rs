//! CSR validation and signing against a baseline measured in the same run (making a
//! P-256 key), so the numbers compare across machines.
//!
//! Benchmarks (group `tls`): `keygen-baseline` (a P-256 key), `validate` (parse, verify
//! the signature, check the names), `sign` (a validated CSR) and `validate-and-sign`.
//! `cargo bench -p interfaces --bench signing`; `bench/run.sh` turns criterion's
//! estimates into rates and ratios against the baseline.

#![allow(
    missing_docs,
    reason = "criterion_group! defines an undocumented function"
)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use interfaces::tls_certificates::{
    generate_csr, generate_private_key, validate_csr, CaConfig, CertificateAuthority, CsrPolicy,
    CsrRequest,
};

fn csrs(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let key = generate_private_key().expect("key");
            generate_csr(
                &key,
                &CsrRequest::new(&format!("unit-{i}"))
                    .dns(&format!("unit-{i}.ward.local"))
                    .ip("127.1.0.1".parse().expect("ip")),
            )
            .expect("csr")
        })
        .collect()
}

fn signing(c: &mut Criterion) {
    let ca = CertificateAuthority::generate(&CaConfig::new("bench CA")).expect("CA");
    let pool = csrs(64);
    let policy = CsrPolicy::default();
    let mut group = c.benchmark_group("tls");
    group.bench_function("keygen-baseline", |b| {
        b.iter(|| generate_private_key().expect("key"))
    });
    let mut i = 0;
    group.bench_function("validate", |b| {
        b.iter(|| {
            i = (i + 1) % pool.len();
            validate_csr(&pool[i], false, &policy).expect("valid")
        })
    });
    let checked: Vec<_> = pool
        .iter()
        .map(|p| validate_csr(p, false, &policy).expect("valid"))
        .collect();
    let mut j = 0;
    group.bench_function("sign", |b| {
        b.iter(|| {
            j = (j + 1) % checked.len();
            ca.sign(&checked[j], 90).expect("signed")
        })
    });
    group.bench_function("validate-and-sign", |b| {
        b.iter_batched(
            || {
                j = (j + 1) % pool.len();
                &pool[j]
            },
            |csr| ca.sign(&validate_csr(csr, false, &policy).expect("valid"), 90),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, signing);
criterion_main!(benches);

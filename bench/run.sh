#!/usr/bin/env bash
# Runs every Ward benchmark in release and collects their tables in bench/results/latest.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p bench/results
out=bench/results/latest.md
{
  echo "# Ward benchmarks, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
  echo
  echo "## controller: 1,000-unit settle"
  cargo build --release --quiet -p controller --bins --examples
  cargo run --release --quiet -p controller --example settle_bench -- 1000
  echo
  echo "## ward-pebble: API latency, RSS with 10 services, idle CPU"
  cargo build --release --quiet -p pebble --bins --examples
  "${CARGO_TARGET_DIR:-target}/release/examples/pebble_bench" "${CARGO_TARGET_DIR:-target}/release/ward-pebble"
  echo
  echo "## tls-certificates: CSR signing rate"
  cargo run --release --quiet -p interfaces --example signing_rate -- 2000
  echo
  echo "## hook dispatch: Rust no-op charm vs Python ops no-op charm, same controller"
  cargo build --release --quiet -p ward-e2e --bins
  "${CARGO_TARGET_DIR:-target}/release/hook-bench" "$root" .venv/bin/python 30
  echo
  echo "## ward-demo: PostgreSQL (3 units) + self-signed-certificates from nothing to active/idle"
  cargo build --release --quiet -p ward-e2e --bins
  "${CARGO_TARGET_DIR:-target}/release/ward-demo" "$root" | grep -E "active/idle after|psql:"
} | tee "$out"

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
} | tee "$out"

#!/usr/bin/env bash
# Runs every Ward test: formatting, lints, unit, harness, integration and end-to-end.
# Installs what the tests need first (scripts/deps.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/deps.sh

# Tests find the venv's Python (with ops) through this variable.
export WARD_TEST_PYTHON="$root/.venv/bin/python"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --workspace --no-fail-fast

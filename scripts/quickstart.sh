#!/usr/bin/env bash
# The main job: set up this machine and run what Ward runs end to end today.
# Today that is the embedded controller running a Rust SDK charm and a Canonical ops
# charm side by side; the PostgreSQL + PgBouncer + TLS stack replaces it when the CLI
# and the database charms land. Safe to run again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/deps.sh
echo "== building Ward (release)"
cargo build --release --quiet -p ward-e2e --bins
target=${CARGO_TARGET_DIR:-$root/target}
"$target/release/ward-demo" "$root/tests/charms" "$root/.venv/bin/python"

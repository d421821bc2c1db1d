#!/usr/bin/env bash
# The main job: set up this machine and run what Ward runs end to end today: the
# embedded controller deploys PostgreSQL (3 units under Patroni) and the self-signed CA
# in bubblewrap sandboxes, integrates them for TLS, waits until they are active/idle,
# runs get-password and proves replication with psql over TLS (verify-full). PgBouncer
# and the `ward` CLI join it as they land. Safe to run again (the workloads are stopped
# at the end).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/deps.sh
echo "== building Ward (release)"
cargo build --release --quiet -p ward-e2e --bins
target=${CARGO_TARGET_DIR:-$root/target}
"$target/release/ward-demo" "$root"

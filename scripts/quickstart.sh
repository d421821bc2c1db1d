#!/usr/bin/env bash
# The main job: set up this machine and run what Ward can do today.
# Safe to run again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/deps.sh
echo "== building Ward (release)"
cargo build --workspace --release --quiet
echo "ward: build complete; see docs/ for what runs end to end."

#!/usr/bin/env bash
# The `ward` CLI against its controller daemon (release build): `ward status`
# latency over HTTPS (p50/p90 of 50 calls, next to `ward version`, a spawn of
# the same binary without a controller call) and deploy-to-active of a no-op
# shell charm (`ward deploy` + `ward wait`, 1 and 10 units). Prints a table.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --quiet -p ward -p controller --bins
ward="${CARGO_TARGET_DIR:-$root/target}/release/ward"

work=$(mktemp -d /tmp/ward-cli-bench.XXXXXX)
export WARD_HOME="$work/home"
# Plain processes unless asked (WARD_SUBSTRATE=sandbox needs ward-pebble built next to ward).
export WARD_SUBSTRATE="${WARD_SUBSTRATE:-process}"
export WARD_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 17171)
cleanup() { "$ward" destroy --yes >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

charm="$work/noop"
mkdir -p "$charm"
printf 'name: noop\nsummary: does nothing\n' > "$charm/metadata.yaml"
printf '#!/bin/sh\n[ "$JUJU_DISPATCH_PATH" = hooks/start ] && status-set active ready\nexit 0\n' > "$charm/dispatch"
chmod +x "$charm/dispatch"

ms() { # elapsed ms between two $EPOCHREALTIME values
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'
}
pct() { # percentile $1 of the numbers on stdin
  sort -n | awk -v p="$1" '{ v[NR] = $1 } END { i = int((NR - 1) * p / 100) + 1; printf "%.1f", v[i] }'
}

t0=$EPOCHREALTIME
"$ward" bootstrap >/dev/null
t1=$EPOCHREALTIME
bootstrap_ms=$(ms "$t0" "$t1")

status_times=() version_times=()
for _ in $(seq 50); do
  a=$EPOCHREALTIME; "$ward" version >/dev/null; b=$EPOCHREALTIME
  version_times+=("$(ms "$a" "$b")")
  a=$EPOCHREALTIME; "$ward" status >/dev/null; b=$EPOCHREALTIME
  status_times+=("$(ms "$a" "$b")")
done
status_p50=$(printf '%s\n' "${status_times[@]}" | pct 50)
status_p90=$(printf '%s\n' "${status_times[@]}" | pct 90)
version_p50=$(printf '%s\n' "${version_times[@]}" | pct 50)

deploy_to_active() { # app units -> ms from deploy to every unit active and the model settled
  local a b
  a=$EPOCHREALTIME
  "$ward" deploy "$charm" "$1" -n "$2" >/dev/null
  "$ward" wait --timeout 120s "$1" 2>/dev/null
  b=$EPOCHREALTIME
  "$ward" status --format json | python3 -c "
import json, sys
s = json.load(sys.stdin)
bad = [n for n, u in s['applications']['$1']['units'].items() if u['workload-status']['current'] != 'active']
sys.exit(1 if bad else 0)" || { echo "units of $1 not active" >&2; exit 1; }
  ms "$a" "$b"
}
one=$(deploy_to_active one 1)
ten=$(deploy_to_active ten 10)

echo "| metric | value |"
echo "|---|---|"
echo "| bootstrap (CA, credential, daemon up and answering) | ${bootstrap_ms} ms |"
echo "| baseline: \`ward version\` (spawn, no controller call), p50 of 50 | ${version_p50} ms |"
echo "| \`ward status\` over HTTPS, p50 of 50 | ${status_p50} ms |"
echo "| \`ward status\` over HTTPS, p90 of 50 | ${status_p90} ms |"
echo "| status p50 / spawn baseline | $(awk -v a="$status_p50" -v b="$version_p50" 'BEGIN { printf "%.1f", a / b }') |"
echo "| no-op shell charm, deploy → active and settled, 1 unit ($WARD_SUBSTRATE substrate) | ${one} ms |"
echo "| no-op shell charm, deploy → active and settled, 10 units ($WARD_SUBSTRATE substrate) | ${ten} ms |"

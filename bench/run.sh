#!/usr/bin/env bash
# Runs every Ward benchmark in release and collects their tables in bench/results/latest.md,
# and the same figures as JSON in bench/results/latest.json.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p bench/results
# The end-to-end benchmarks' binaries (static, for the host triple).
e2e=${CARGO_TARGET_DIR:-target}/$(rustc -vV | sed -n 's/^host: //p')/release
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
  echo "## tls-certificates: CSR validation and signing rate (criterion), against making a P-256 key"
  cargo bench --quiet -p interfaces --bench signing -- --warm-up-time 1 --measurement-time 5 >/dev/null
  python3 - "${CARGO_TARGET_DIR:-target}/criterion/tls" <<'PY'
import json, sys
ns = {b: json.load(open(f"{sys.argv[1]}/{b}/new/estimates.json"))["mean"]["point_estimate"]
      for b in ["keygen-baseline", "validate", "sign", "validate-and-sign"]}
rate = {b: 1e9 / t for b, t in ns.items()}
print("| metric | value |\n|---|---|")
print(f"| baseline: P-256 keys made per second | {rate['keygen-baseline']:.0f} |")
print(f"| CSRs validated (parse, signature, SANs) per second | {rate['validate']:.0f} |")
print(f"| validated CSRs signed per second | {rate['sign']:.0f} |")
print(f"| CSRs validated and signed per second | {rate['validate-and-sign']:.0f} (target ≥ 5,000) |")
print(f"| validate-and-sign rate / key-making rate | {rate['validate-and-sign'] / rate['keygen-baseline']:.2f} |")
PY
  echo
  echo "## hook dispatch: Rust no-op charm vs Python ops no-op charm, same controller"
  # Linked statically like scripts/build-charms.sh links Ward and its charms: the
  # no-op charm, the hook tools, Pebble and the hook runner as users run them.
  (source scripts/static-flags.sh && cargo build --release --quiet --target "$host" -p ward-e2e --bins)
  "$e2e/hook-bench" "$root" "${WARD_TEST_PYTHON:-.venv/bin/python}" 30
  echo
  echo "## ward-demo: PostgreSQL (3 units) + PgBouncer + self-signed-certificates from nothing to active/idle"
  demo=$("$e2e/ward-demo" "$root")
  echo "| measure | value | target |"
  echo "|---|---|---|"
  echo "$demo" | sed -n 's/^== active\/idle after \([0-9.]*\)s$/| deploy + integrate → all active\/idle | \1 s | < 15 s |/p'
  if echo "$demo" | grep -q "^== psql (TLS, verify-full)"; then
    echo "| then psql with verify-full: a row written on the primary is read on a replica | ok | ok |"
  fi
  echo
  echo "## PostgreSQL: deploy → active (1 and 3 units), write downtime and lost rows when the primary dies"
  "$e2e/pg-bench" "$root"
  echo
  echo "## pgbench -S, 200 clients: through PgBouncer vs straight to PostgreSQL (same run)"
  "$e2e/pgbouncer-bench" "$root" 200 15
} | tee "$out"

# The same tables as JSON: one entry per section, each table row keyed by its header.
python3 - "$out" bench/results/latest.json <<'PY'
import json, sys
sections, cur, header = [], None, None
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.rstrip("\n")
    if line.startswith("# "):
        title = line[2:]
    elif line.startswith("## "):
        cur = {"section": line[3:], "tables": []}
        sections.append(cur)
        header = None
    elif line.startswith("|") and cur is not None:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            cur["tables"].append([])
        elif not all(set(c) <= set("-: ") for c in cells):
            cur["tables"][-1].append(dict(zip(header, cells)))
    else:
        header = None
json.dump({"run": title, "sections": sections}, open(sys.argv[2], "w"), indent=2, ensure_ascii=False)
print(f"\nJSON: {sys.argv[2]}")
PY

#!/usr/bin/env bash
# Builds Ward's charms in release and lays each one out as a deployable charm directory
# under <project>/target/charms/<name>/: the charm's Juju declarations from
# metadata/<name>/ (charmcraft.yaml, or metadata/config/actions.yaml) and the charm binary
# as `dispatch` (0755). `ward deploy <name>` run anywhere in the project finds them there.
#
#   scripts/build-charms.sh                          # every charm
#   scripts/build-charms.sh postgresql self-signed-certificates
#   scripts/build-charms.sh --with-tools postgresql  # and ward, ward-pebble, ward-jujuc,
#                                                    # ward-hook-runner in the same build
#
# --with-tools builds Ward's binaries in the same cargo invocation (cargo resolves
# features once for the packages it is given, so building the two sets separately would
# compile the shared dependencies twice) and puts them in <project>/target/bin/.
#
# Everything is linked statically (scripts/static-flags.sh says why).
#
# Binaries are built under $CARGO_TARGET_DIR (default <project>/target)/<triple>/release;
# the layout is always written to <project>/target/charms and <project>/target/bin. Safe
# to run again: each directory is rebuilt from scratch, each tool replaced by a rename
# (a running controller keeps its binary), and cargo rebuilds only what changed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# charm name -> "cargo package:binary"
declare -A charms=(
  [postgresql]="postgresql-charm:postgresql"
  [self-signed-certificates]="self-signed-certificates:self-signed-certificates"
  [pgbouncer]="pgbouncer-charm:pgbouncer"
)
packages=()
if [ "${1:-}" = --with-tools ]; then
  shift
  packages+=(-p ward -p pebble -p controller)
fi
if (($#)); then
  wanted=("$@")
else
  wanted=(postgresql self-signed-certificates pgbouncer)
fi

for name in "${wanted[@]}"; do
  spec=${charms[$name]:-}
  if [ -z "$spec" ]; then
    echo "build-charms: unknown charm '$name' (known: ${!charms[*]})" >&2
    exit 2
  fi
  packages+=(-p "${spec%%:*}")
done

source scripts/static-flags.sh
echo "== building (release, static): ${packages[*]}"
cargo build --release --quiet --target "$host" "${packages[@]}"

bin_dir=${CARGO_TARGET_DIR:-$root/target}/$host/release
if [ "${packages[0]}" = -p ] && [ "${packages[1]}" = ward ]; then
  mkdir -p "$root/target/bin"
  for tool in ward ward-pebble ward-jujuc ward-hook-runner; do
    install -m 0755 "$bin_dir/$tool" "$root/target/bin/.$tool.new"
    mv -f "$root/target/bin/.$tool.new" "$root/target/bin/$tool"
  done
  echo "   ward ward-pebble ward-jujuc ward-hook-runner -> target/bin/"
fi
out_root=$root/target/charms
mkdir -p "$out_root"
for name in "${wanted[@]}"; do
  spec=${charms[$name]}
  bin=$bin_dir/${spec#*:}
  if [ ! -x "$bin" ]; then
    echo "build-charms: $bin is missing after the build" >&2
    exit 1
  fi
  # Build next to the final directory, then swap it in: a deploy reading the old one
  # never sees half a charm.
  tmp=$(mktemp -d "$out_root/.$name.XXXXXX")
  cp -R "metadata/$name/." "$tmp/"
  install -m 0755 "$bin" "$tmp/dispatch"
  chmod 0755 "$tmp"
  rm -rf "$out_root/$name.old"
  [ -e "$out_root/$name" ] && mv "$out_root/$name" "$out_root/$name.old"
  mv "$tmp" "$out_root/$name"
  rm -rf "$out_root/$name.old"
  echo "   $name -> target/charms/$name/"
done

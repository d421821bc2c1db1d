#!/usr/bin/env bash
# Installs what Ward's tests and main job need on a fresh Debian 12 machine:
# Debian packages (only those missing) and a Python venv with Canonical's `ops`.
# Safe to run again: it does nothing when everything is present.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

apt_packages=(bubblewrap pgbouncer patroni python3-pysyncobj openssl postgresql-15 postgresql-client-15)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "ward: installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian packages start cluster-wide services we do not use; Ward runs its own.
  for svc in pgbouncer patroni postgresql; do
    "${sudo_cmd[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
  done
fi

venv="$root/.venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import ops, charmlibs.interfaces.tls_certificates' 2>/dev/null; then
  echo "ward: creating $venv with ops"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'ops==3.9.*' 'cryptography' 'charmlibs-interfaces-tls-certificates==1.12.*'
fi

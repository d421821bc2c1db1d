#!/usr/bin/env bash
# The main job, driven by the `ward` CLI the way a user would: install what is missing,
# build Ward and its charms in release, bootstrap a local controller, deploy PostgreSQL
# (3 units under Patroni), PgBouncer and the self-signed certificate authority, integrate
# them (postgresql:certificates, pgbouncer:certificates, pgbouncer:backend-database),
# wait with visible progress until everything is active/idle, run get-password, relate a
# client application to PgBouncer, then print a psql command that connects through
# PgBouncer with sslmode=verify-full against the CA, and run it once.
#
#   ./scripts/quickstart.sh           # reuse the running controller and model if there is one
#   ./scripts/quickstart.sh --fresh   # destroy this WARD_HOME's controller first, start over
#
# Safe to run again: bootstrap reuses a running controller, applications and relations
# that exist are left as they are, and the psql check runs again. The controller keeps
# running afterwards so that you can carry on with `ward status`; `ward destroy --yes`
# removes it. WARD_HOME (default ~/.local/share/ward) and WARD_PORT are honoured.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

fresh=0
for arg in "$@"; do
  case "$arg" in
    --fresh) fresh=1 ;;
    *) echo "usage: $0 [--fresh]" >&2; exit 2 ;;
  esac
done

started=$SECONDS
step() { printf '\n== [%3ds] %s\n' "$((SECONDS - started))" "$*"; }

step "installing what is missing"
bash scripts/deps.sh

# ward, ward-pebble, ward-jujuc, ward-hook-runner in target/bin/, and the charms laid
# out under target/charms/ for `ward deploy <name>`.
step "building Ward and its charms (release)"
bash scripts/build-charms.sh --with-tools postgresql pgbouncer self-signed-certificates
bin=$root/target/bin
ward() { "$bin/ward" "$@"; }

# Small JSON helpers (python3 is part of Debian's base and of scripts/deps.sh's venv).
status_json() { ward status --format json; }
has_app() { status_json | python3 -c 'import json,sys; sys.exit(0 if sys.argv[1] in (json.load(sys.stdin).get("applications") or {}) else 1)' "$1"; }
has_relation() { # app:endpoint app:endpoint
  status_json | python3 -c '
import json, sys
(a, ep), b = sys.argv[1].split(":"), sys.argv[2].split(":")[0]
rels = json.load(sys.stdin)["applications"].get(a, {}).get("relations") or {}
sys.exit(0 if any(r.get("related-application") == b for r in rels.get(ep, [])) else 1)' "$1" "$2"
}
action_result() { # unit action key -> the value of `key` in the action's results
  ward run "$1" "$2" --format json | python3 -c 'import json,sys; t=next(iter(json.load(sys.stdin).values())); print(t["results"][sys.argv[1]])' "$3"
}
unit_address() { # unit -> its address
  status_json | python3 -c 'import json,sys; u=sys.argv[1]; print(json.load(sys.stdin)["applications"][u.split("/")[0]]["units"][u]["address"])' "$1"
}
deploy() { # deploy's arguments (<charm> [<app name>] [options]): deploy unless the app exists
  local app=${1##*/}
  if [ $# -ge 2 ] && [[ $2 != -* ]]; then app=$2; fi
  if has_app "$app"; then echo "$app is already deployed"; else ward deploy "$@"; fi
}
integrate() { # a:endpoint b:endpoint: integrate unless they already are
  if has_relation "$1" "$2"; then echo "$1 and $2 are already integrated"; else ward integrate "$1" "$2"; fi
}

if ((fresh)); then
  step "destroying the existing controller (--fresh)"
  ward destroy --yes || true
fi
step "ward bootstrap"
ward bootstrap --substrate sandbox

step "ward deploy postgresql -n 3 · pgbouncer · self-signed-certificates"
deploy postgresql -n 3 --config profile=testing
deploy pgbouncer
deploy self-signed-certificates
integrate postgresql:certificates self-signed-certificates:certificates
integrate pgbouncer:certificates self-signed-certificates:certificates
integrate pgbouncer:backend-database postgresql:database
# A stand-in for your application: a small shell charm that asks for database `myapp`
# on the postgresql_client interface. PgBouncer makes the database and a user for it.
deploy "$root/tests/charms/db-client" myapp --config database=myapp
integrate myapp:database pgbouncer:database

step "ward wait (until every unit is active/idle)"
ward wait --timeout 5m
ward status

step "ward run postgresql/leader get-password"
password=$(action_result postgresql/leader get-password password)
echo "the operator password has ${#password} characters (\`ward run postgresql/leader get-password\` shows it)"

ca=$root/target/ward-ca.pem
ward run self-signed-certificates/leader get-ca-certificate --format json |
  python3 -c 'import json,sys; print(next(iter(json.load(sys.stdin).values()))["results"]["ca-certificate"])' >"$ca"
# The application's credentials: the secret PgBouncer granted it on the relation.
secret=$(ward secrets --format json | python3 -c '
import json, re, sys
for sid, s in json.load(sys.stdin).items():
    if re.fullmatch(r"database\.\d+\.user\.secret", s.get("label", "")) and any(
        a.get("target", "").startswith("myapp") for a in s.get("access", [])
    ):
        print(sid)
        break')
creds() { ward show-secret "$secret" --reveal --format json | python3 -c 'import json,sys; print(next(iter(json.load(sys.stdin).values()))["content"][sys.argv[1]])' "$1"; }
app_user=$(creds username)
app_password=$(creds password)
echo "myapp's user is $app_user (\`ward show-secret $secret --reveal\` shows its password)"
host=$(unit_address pgbouncer/0)
conn="host=$host port=6432 user=$app_user dbname=myapp sslmode=verify-full sslrootcert=$ca"

step "connect with psql through PgBouncer (TLS, verify-full against the CA; it asks for the password)"
echo "  psql \"$conn\""
PGPASSWORD=$app_password PGCONNECT_TIMEOUT=10 psql "$conn" -v ON_ERROR_STOP=1 -c \
  "SELECT 'connected to ' || current_setting('server_version') || ' on ' || inet_server_addr() || ' as ' || current_user || ', TLS ' || (SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS ward"

step "done in $((SECONDS - started)) s. The controller keeps running: \`$bin/ward status\`; \`$bin/ward destroy --yes\` removes it"

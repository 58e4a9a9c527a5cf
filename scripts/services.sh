#!/usr/bin/env bash
# Start what the test suite needs and print `export VAR=...` lines for the caller to eval.
# PostgreSQL: Debian's cluster (installed here when missing and we are root), a role and
# a database for the tests. Diagnostics go to stderr; stdout is only the exports.
set -euo pipefail

log() { echo "services: $*" >&2; }

PG_USER=port_test
PG_PASSWORD=port_test
PG_DB=port_test

start_postgres() {
  if ! command -v pg_lsclusters >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
      log "PostgreSQL is not installed and we are not root: PostgreSQL tests will be skipped"
      return 1
    fi
    log "installing PostgreSQL"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
  fi
  local version cluster status
  read -r version cluster status < <(pg_lsclusters --no-header | awk '{print $1, $2, $4; exit}')
  if [ -z "${version:-}" ]; then
    log "no PostgreSQL cluster found"
    return 1
  fi
  if [ "$status" != online ]; then
    log "starting PostgreSQL $version/$cluster"
    pg_ctlcluster "$version" "$cluster" start >&2
  fi
  local port
  port=$(pg_lsclusters --no-header | awk -v v="$version" -v c="$cluster" '$1==v && $2==c {print $3}')
  for _ in $(seq 50); do
    pg_isready -q -h 127.0.0.1 -p "$port" && break
    sleep 0.2
  done
  as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
  as_postgres psql -q -p "$port" -v ON_ERROR_STOP=1 >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END \$\$;
SQL
  if ! as_postgres psql -p "$port" -tAc "SELECT 1 FROM pg_database WHERE datname='$PG_DB'" | grep -q 1; then
    as_postgres createdb -p "$port" -O "$PG_USER" "$PG_DB"
  fi
  echo "export PORT_TEST_DATABASE_URL=postgresql+asyncpg://$PG_USER:$PG_PASSWORD@127.0.0.1:$port/$PG_DB"
}

start_postgres || log "PostgreSQL unavailable"

#!/usr/bin/env bash
# Start what the test suite needs and print `export VAR=...` lines for the caller to eval.
# PostgreSQL: Debian's cluster (installed here when missing and we are root), a role and
# a database for the tests. Docker: the engine (Debian's docker.io, started as a plain
# background dockerd when none answers), busybox-static for the test images, and Debian's
# docker-registry on 127.0.0.1:5000 for pull tests; Chromium and chromedriver for the
# browser tests. Idempotent: what runs is left alone.
# Diagnostics go to stderr; stdout is only the exports.
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

# Where the services this script starts keep their logs and state.
STATE_DIR=${PORT_SERVICES_DIR:-/tmp/port-services}
REGISTRY_ADDR=127.0.0.1:5000

# Install the Debian packages of "$@" that are missing; fails when we cannot (not root).
ensure_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("$pkg")
  done
  [ ${#missing[@]} = 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    log "missing packages ${missing[*]} and we are not root to install them"
    return 1
  fi
  log "installing ${missing[*]}"
  if [ -z "${APT_UPDATED:-}" ]; then
    apt-get update -qq >&2 || return 1
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# Wait up to $1 tenths of a second for the command "${@:2}" to succeed.
wait_for() {
  local tenths=$1
  shift
  for _ in $(seq "$tenths"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  "$@" >/dev/null 2>&1
}

# Remove the pid file $1 unless its process runs the program $2.
drop_stale_pidfile() {
  local pid
  [ -f "$1" ] || return 0
  pid=$(cat "$1" 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]; then
    return 0
  fi
  log "removing the stale pid file $1"
  rm -f "$1"
}

docker_up() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

start_docker() {
  if docker_up; then
    # The engine is somebody else's (or ours from an earlier run); the test images still
    # need busybox-static.
    ensure_packages busybox-static || return 1
  else
    # docker.io brings dockerd, containerd, runc and a docker CLI (a CLI that is already
    # on PATH, say in /usr/local/bin, is fine too). ca-certificates: pulls over TLS.
    ensure_packages docker.io ca-certificates busybox-static || return 1
    local pidfile=/var/run/docker.pid
    # A session that was killed leaves its pid files behind, and their pids may belong to
    # other processes by now: dockerd then refuses to start ("pid file found"). A pid file
    # counts only while its process is the program that wrote it.
    drop_stale_pidfile "$pidfile" dockerd
    drop_stale_pidfile /var/run/docker/containerd/containerd.pid containerd
    if [ -f "$pidfile" ]; then
      log "dockerd (pid $(cat "$pidfile")) is starting already; waiting for it"
    elif [ "$(id -u)" != 0 ]; then
      log "no Docker engine answers and we are not root to start dockerd"
      return 1
    else
      mkdir -p "$STATE_DIR"
      log "starting dockerd (log: $STATE_DIR/dockerd.log)"
      # setsid + all three streams redirected: the engine outlives this script and does not
      # hold the stdout of `eval "$(scripts/services.sh)"` open.
      setsid nohup dockerd --host unix:///var/run/docker.sock --pidfile "$pidfile" \
        >"$STATE_DIR/dockerd.log" 2>&1 </dev/null &
    fi
    if ! wait_for 300 docker info; then
      log "dockerd did not answer within 30 s; the end of its log:"
      tail -n 20 "$STATE_DIR/dockerd.log" >&2 2>/dev/null || true
      return 1
    fi
  fi
  # Networks of test sessions that were killed before their clean-up: each holds one of
  # the engine's few address pools. Only unused `port-test-*` ones; `rm` refuses the rest.
  docker network ls --quiet --filter name=port-test- | xargs -r docker network rm >/dev/null 2>&1 || true
  echo "export PORT_TEST_DOCKER=1"
}

registry_up() { curl -fsS --max-time 2 "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1; }

start_registry() {
  ensure_packages docker-registry curl || return 1
  if ! registry_up; then
    if (: >"/dev/tcp/${REGISTRY_ADDR%:*}/${REGISTRY_ADDR#*:}") 2>/dev/null; then
      log "something that is not a registry listens on $REGISTRY_ADDR"
      return 1
    fi
    # Debian's /etc/docker/registry/config.yml listens on every address and wants an
    # htpasswd file; the tests need neither, so the registry gets its own config.
    local storage=/var/lib/docker-registry
    [ -d "$storage" ] && [ -w "$storage" ] || storage=$STATE_DIR/registry-data
    mkdir -p "$STATE_DIR" "$storage"
    cat >"$STATE_DIR/registry.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $storage
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
YAML
    log "starting docker-registry on $REGISTRY_ADDR (log: $STATE_DIR/registry.log)"
    setsid nohup docker-registry serve "$STATE_DIR/registry.yml" \
      >"$STATE_DIR/registry.log" 2>&1 </dev/null &
    if ! wait_for 150 registry_up; then
      log "docker-registry did not answer within 15 s; the end of its log:"
      tail -n 20 "$STATE_DIR/registry.log" >&2 2>/dev/null || true
      return 1
    fi
  fi
  # Docker pushes to and pulls from 127.0.0.0/8 over plain HTTP without configuration
  # (its default insecure registry range); say so if this engine was told otherwise.
  if ! docker info --format '{{range .RegistryConfig.IndexConfigs}}{{if not .Secure}}{{.Name}} {{end}}{{end}}{{range .RegistryConfig.InsecureRegistryCIDRs}}{{.}} {{end}}' 2>/dev/null |
    grep -qE "(^| )(127\.0\.0\.0/8|$REGISTRY_ADDR)( |$)"; then
    log "the engine does not treat $REGISTRY_ADDR as an insecure (plain HTTP) registry"
    return 1
  fi
  echo "export PORT_TEST_REGISTRY=$REGISTRY_ADDR"
}

# Debian's Chromium and its driver for the browser tests (nothing downloads a browser).
start_browser() {
  ensure_packages chromium chromium-driver || return 1
  command -v chromium >/dev/null && command -v chromedriver >/dev/null || return 1
  echo "export PORT_TEST_BROWSER=$(command -v chromium)"
  echo "export PORT_TEST_BROWSER_DRIVER=$(command -v chromedriver)"
}

start_postgres || log "PostgreSQL unavailable"
start_browser || log "Chromium unavailable: browser tests will be skipped (failed under CI)"
if start_docker; then
  start_registry || log "registry unavailable: pull tests will be skipped (failed under CI)"
else
  log "Docker unavailable: Docker tests will be skipped (failed under CI)"
fi

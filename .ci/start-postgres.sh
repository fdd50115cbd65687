#!/usr/bin/env bash
# Start a PostgreSQL server on 127.0.0.1 for the sweep tests and print its SQLAlchemy URL
# as the last line of stdout (everything else goes to stderr).
#
#   url=$(bash .ci/start-postgres.sh) && export LMFLOSS_TEST_POSTGRES_URL="$url"
#
# Debian/Ubuntu, as root: installs the `postgresql` package with apt-get when no server is
# installed, starts the packaged cluster (pg_ctlcluster) or, where there is none, a private
# cluster made with initdb under $LMFLOSS_PG_DATA, then creates the role and the database.
# LMFLOSS_PG_PRIVATE=1 forces the private cluster (port $LMFLOSS_PG_PORT, default 55432).
# Idempotent: running it again leaves a running server as it is and prints the same URL.
# Exit status is non-zero (and nothing is printed on stdout) when no server can be had,
# e.g. apt is unreachable; the PostgreSQL tests are then skipped with a reason.
set -uo pipefail

PG_USER=${LMFLOSS_PG_USER:-lmfloss}
PG_PASSWORD=${LMFLOSS_PG_PASSWORD:-lmfloss}
PG_DB=${LMFLOSS_PG_DB:-lmfloss_test}
PG_DATA=${LMFLOSS_PG_DATA:-/var/tmp/lmfloss-postgres}
PG_PRIVATE_PORT=${LMFLOSS_PG_PORT:-55432}

log() { echo "start-postgres: $*" >&2; }
fail() { log "$*"; exit 1; }

as_postgres() {
  if [[ $(id -un) == postgres ]]; then "$@"; else runuser -u postgres -- "$@"; fi
}

server_bin_dir() {
  # The newest installed server version (Debian keeps them in /usr/lib/postgresql/<ver>/bin).
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n $dir && -x $dir/postgres ]] && echo "$dir"
}

# 1. A server binary: install it when missing (root and apt-get only; quiet; never fatal for CI).
if [[ -z $(server_bin_dir) ]]; then
  [[ $(id -u) -eq 0 ]] || fail "PostgreSQL is not installed and installing it needs root"
  command -v apt-get >/dev/null || fail "PostgreSQL is not installed and apt-get is not available"
  log "installing postgresql with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq >&2 || fail "apt-get update failed (no network?)"
  timeout 600 apt-get install -y -qq --no-install-recommends postgresql >&2 \
    || fail "apt-get install postgresql failed"
fi
BIN=$(server_bin_dir) || fail "no PostgreSQL server binary found after installation"
[[ $(id -u) -eq 0 || $(id -un) == postgres ]] || fail "run as root (or postgres) to start the server"
id postgres >/dev/null 2>&1 || fail "the postgres system user does not exist"

# 2. A running server on loopback: the Debian cluster if there is one, else a private one.
PORT=""
if [[ -z ${LMFLOSS_PG_PRIVATE:-} ]] && command -v pg_lsclusters >/dev/null \
  && [[ -n $(pg_lsclusters -h 2>/dev/null) ]]; then
  read -r VER CLUSTER PORT STATUS _ < <(pg_lsclusters -h | head -n 1)
  if [[ $STATUS != online* ]]; then
    log "starting cluster $VER/$CLUSTER on port $PORT"
    pg_ctlcluster "$VER" "$CLUSTER" start >&2 || fail "pg_ctlcluster $VER $CLUSTER start failed"
  fi
  SOCKET_DIR=/var/run/postgresql
else
  PORT=$PG_PRIVATE_PORT
  SOCKET_DIR=$PG_DATA/socket
  if [[ ! -f $PG_DATA/PG_VERSION ]]; then
    log "initialising a private cluster in $PG_DATA"
    mkdir -p "$PG_DATA" && chown postgres: "$PG_DATA" && chmod 700 "$PG_DATA"
    as_postgres "$BIN/initdb" -D "$PG_DATA" -A trust -U postgres >&2 || fail "initdb failed"
  fi
  mkdir -p "$SOCKET_DIR" && chown postgres: "$SOCKET_DIR"
  if ! as_postgres "$BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    log "starting the private cluster on 127.0.0.1:$PORT"
    as_postgres "$BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $PORT -k $SOCKET_DIR" >&2 || fail "pg_ctl start failed"
  fi
fi

# Wait until it accepts connections (a freshly started server may need a moment).
for _ in $(seq 1 30); do
  as_postgres psql -h "$SOCKET_DIR" -p "$PORT" -d postgres -qtAc "select 1" >/dev/null 2>&1 && break
  sleep 1
done
psql_admin() { as_postgres psql -h "$SOCKET_DIR" -p "$PORT" -d postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
psql_admin -c "select 1" >/dev/null || fail "the server on port $PORT does not accept connections"

# 3. Role and database (idempotent).
if [[ -z $(psql_admin -c "select 1 from pg_roles where rolname = '$PG_USER'") ]]; then
  psql_admin -c "create role $PG_USER login password '$PG_PASSWORD'" >&2 || fail "create role failed"
else
  psql_admin -c "alter role $PG_USER login password '$PG_PASSWORD'" >&2 || fail "alter role failed"
fi
if [[ -z $(psql_admin -c "select 1 from pg_database where datname = '$PG_DB'") ]]; then
  psql_admin -c "create database $PG_DB owner $PG_USER" >&2 || fail "create database failed"
fi

# 4. Check the URL works over TCP with the password, as the tests will use it.
PGPASSWORD=$PG_PASSWORD psql -h 127.0.0.1 -p "$PORT" -U "$PG_USER" -d "$PG_DB" -qtAc "select 1" \
  >/dev/null 2>&1 || fail "cannot log in as $PG_USER on 127.0.0.1:$PORT (pg_hba.conf?)"

echo "postgresql+psycopg2://$PG_USER:$PG_PASSWORD@127.0.0.1:$PORT/$PG_DB"

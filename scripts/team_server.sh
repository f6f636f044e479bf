#!/usr/bin/env bash
# A team's tracking server in one command: PostgreSQL (Debian's binaries) + `mlflow server` with an artifact proxy.
#
#   scripts/team_server.sh [start] [--dir DIR] [--port 5000] [--pg-port 5433] [--host 127.0.0.1]
#   scripts/team_server.sh stop   [--dir DIR]
#   scripts/team_server.sh status [--dir DIR]
# DIR defaults to $SPECBENCH_TEAM_DIR, else ./team-server; workers of mlflow: $SPECBENCH_MLFLOW_WORKERS (2).
#
# start: initdb a cluster in DIR/pgdata if there is none, start it, create the role `specbench` (its password in
# DIR/pgpass, libpq's password file: no URL printed or stored anywhere carries it) and the databases `mlflow` and
# `optuna`, then `mlflow server --backend-store-uri postgresql://... --artifacts-destination DIR/artifacts
# --serve-artifacts`; prints the MLFLOW_TRACKING_URI and the Optuna storage URL to use (docs/team.md).
# Re-running start on a running server only prints them again.
#
# PostgreSQL refuses to run as root. As root the cluster runs as an unprivileged user ($SPECBENCH_PG_USER,
# default `postgres`, which Debian's package creates) through runuser; DIR/pgdata is owned by it, so DIR must
# be reachable by that user (not under /root). MLflow runs as the invoking user. As a normal user both run as you.
set -euo pipefail

cmd=start
case "${1:-}" in start|stop|status) cmd=$1; shift ;; esac
DIR=${SPECBENCH_TEAM_DIR:-$PWD/team-server}
PORT=5000
PG_PORT=5433
HOST=127.0.0.1          # where MLflow listens; 0.0.0.0 for other machines (PostgreSQL listens there too)
WORKERS=${SPECBENCH_MLFLOW_WORKERS:-2}
# Debian's newest installed PostgreSQL, else the one pg_ctl on PATH belongs to.
PG_BIN=${SPECBENCH_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
if [ -z "${SPECBENCH_PG_BIN:-}" ] && [ ! -x "${PG_BIN:-/nonexistent}/pg_ctl" ] && command -v pg_ctl >/dev/null 2>&1; then
  PG_BIN=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
fi
HERE=$(cd "$(dirname "$0")" && pwd)
MLFLOW=${SPECBENCH_MLFLOW:-$( [ -x "$HERE/../.venv/bin/mlflow" ] && echo "$HERE/../.venv/bin/mlflow" || echo mlflow)}
ROLE=specbench
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --pg-port) PG_PORT=$2; shift 2 ;;
    --host) HOST=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "team_server.sh: unknown argument '$1' (valid: start|stop|status, --dir, --port, --pg-port, --host)" >&2
       exit 2 ;;
  esac
done
for n in "$PORT" "$PG_PORT"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "team_server.sh: port '$n' is not a number" >&2; exit 2; }
done
if [ "$cmd" != start ] && [ ! -d "$DIR" ]; then echo "no team server in $DIR (start one: $0 start --dir $DIR)"; exit 3; fi
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
# stop/status: the ports and host the server was started with.
if [ "$cmd" != start ] && [ -f "$DIR/server.env" ]; then . "$DIR/server.env"; fi
PGDATA=$DIR/pgdata
SOCK=$DIR/run
export PGPASSFILE=$DIR/pgpass
PUBLIC_HOST=$HOST
[ "$HOST" = 0.0.0.0 ] && PUBLIC_HOST=$(hostname -f 2>/dev/null || hostname)

die() { echo "team_server.sh: $*" >&2; exit 1; }
[ -x "${PG_BIN:-/nonexistent}/pg_ctl" ] || die "no PostgreSQL server binaries (pg_ctl) in ${PG_BIN:-/usr/lib/postgresql/*/bin} or on PATH (scripts/setup.sh installs Debian's postgresql; or set SPECBENCH_PG_BIN)"

# Who runs PostgreSQL: you, or (as root) an unprivileged user.
if [ "$(id -u)" = 0 ]; then
  PG_USER=${SPECBENCH_PG_USER:-postgres}
  id "$PG_USER" >/dev/null 2>&1 || die "running as root: PostgreSQL needs an unprivileged user and '$PG_USER' does not exist (create it, or set SPECBENCH_PG_USER)"
  as_pg() { runuser -u "$PG_USER" -- "$@"; }
else
  PG_USER=$(id -un)
  as_pg() { "$@"; }
fi
pg() { as_pg env PGPASSFILE= "$PG_BIN/$1" "${@:2}"; }
psql_admin() { as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PG_PORT" -U postgres -d postgres "$@"; }

pg_running() { [ -f "$PGDATA/PG_VERSION" ] && pg pg_ctl status -D "$PGDATA" >/dev/null 2>&1; }
mlflow_pid() { local p; p=$(cat "$DIR/mlflow.pid" 2>/dev/null) || return 1; kill -0 "$p" 2>/dev/null && echo "$p"; }

print_urls() {
  cat <<EOF
MLflow server: http://$PUBLIC_HOST:$PORT (backend postgresql://$ROLE:***@$PUBLIC_HOST:$PG_PORT/mlflow, artifacts $DIR/artifacts)
export MLFLOW_TRACKING_URI=http://$PUBLIC_HOST:$PORT
export PGPASSFILE=$PGPASSFILE   # the password, for the Optuna storage (copy its line into ~/.pgpass on other machines)
optuna storage: --storage postgresql://$ROLE@$PUBLIC_HOST:$PG_PORT/optuna
EOF
}

start_pg() {
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA" "$SOCK"
    [ "$(id -u)" = 0 ] && chown "$PG_USER" "$PGDATA" "$SOCK"
    as_pg test -x "$DIR" || die "$PG_USER cannot reach $DIR: choose a --dir it can (e.g. /srv/specbench), not under /root"
    chmod 700 "$PGDATA" "$SOCK"
    # Local (socket) connections: only the cluster's own OS user can open $SOCK; TCP needs the password.
    pg initdb -D "$PGDATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
      >"$DIR/initdb.log" 2>&1 || die "initdb failed: see $DIR/initdb.log"
    if [ "$HOST" != 127.0.0.1 ] && [ "$HOST" != localhost ]; then
      echo "host all all 0.0.0.0/0 scram-sha-256" | as_pg tee -a "$PGDATA/pg_hba.conf" >/dev/null
    fi
  fi
  if ! pg_running; then
    local listen=127.0.0.1
    [ "$HOST" != 127.0.0.1 ] && [ "$HOST" != localhost ] && listen='*'
    touch "$DIR/postgresql.log"
    [ "$(id -u)" = 0 ] && chown "$PG_USER" "$DIR/postgresql.log"
    pg pg_ctl start -w -t 60 -D "$PGDATA" -l "$DIR/postgresql.log" \
      -o "-p $PG_PORT -c listen_addresses='$listen' -c unix_socket_directories='$SOCK'" >/dev/null \
      || die "PostgreSQL did not start: see $DIR/postgresql.log"
  fi
  # The role and its password (made once, kept in the libpq password file), and the two databases.
  if [ ! -s "$PGPASSFILE" ]; then
    local pw
    pw=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    (umask 077; echo "*:$PG_PORT:*:$ROLE:$pw" >"$PGPASSFILE")
    psql_admin -v pw="$pw" <<'SQL'
SELECT format('CREATE ROLE specbench LOGIN PASSWORD %L', :'pw') WHERE NOT EXISTS
  (SELECT 1 FROM pg_roles WHERE rolname = 'specbench') \gexec
SELECT format('ALTER ROLE specbench PASSWORD %L', :'pw') \gexec
SQL
  fi
  for db in mlflow optuna; do
    psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1 \
      || psql_admin -c "CREATE DATABASE $db OWNER $ROLE"
  done
}

start_mlflow() {
  if mlflow_pid >/dev/null; then return; fi
  mkdir -p "$DIR/artifacts"
  # setsid: its own process group, so `stop` ends the server and its workers together.
  setsid "$MLFLOW" server --backend-store-uri "postgresql://$ROLE@127.0.0.1:$PG_PORT/mlflow" \
    --artifacts-destination "$DIR/artifacts" --serve-artifacts --host "$HOST" --port "$PORT" \
    --workers "$WORKERS" >"$DIR/mlflow.log" 2>&1 </dev/null &
  echo $! >"$DIR/mlflow.pid"
  for _ in $(seq 1 240); do
    if curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then return; fi
    mlflow_pid >/dev/null || die "mlflow server exited: see $DIR/mlflow.log"
    sleep 0.5
  done
  die "mlflow server not answering on port $PORT after 120 s: see $DIR/mlflow.log"
}

case $cmd in
  start)
    printf 'PORT=%q\nPG_PORT=%q\nHOST=%q\n' "$PORT" "$PG_PORT" "$HOST" >"$DIR/server.env"
    start_pg
    start_mlflow
    print_urls ;;
  stop)
    if p=$(mlflow_pid); then kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p"; fi
    for _ in $(seq 1 40); do mlflow_pid >/dev/null || break; sleep 0.25; done
    if p=$(mlflow_pid); then kill -KILL -- "-$p" 2>/dev/null || true; fi
    rm -f "$DIR/mlflow.pid"
    if pg_running; then pg pg_ctl stop -D "$PGDATA" -m fast -w >/dev/null; fi
    echo "stopped (data kept in $DIR)" ;;
  status)
    rc=0
    if pg_running; then echo "postgresql: running ($PGDATA, port $PG_PORT, as $PG_USER)"; else echo "postgresql: stopped"; rc=3; fi
    if p=$(mlflow_pid); then echo "mlflow: running (pid $p, port $PORT)"; print_urls; else echo "mlflow: stopped"; rc=3; fi
    exit $rc ;;
esac

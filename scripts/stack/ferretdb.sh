# FerretDB (MongoDB wire protocol) for the local stack. Sourced by scripts/stack.sh after lib.sh.
#
# No registry reachable here ships a real mongod, so FerretDB is built from the Go module
# proxy. `go install` would give a binary that panics at start (build/version/version.txt
# is not part of the module, FerretDB issue #2982), so the module is copied and built with
# that file written, plus one upstream fix (scripts/stack/ferretdb/*.patch: without it a batch
# of more than ~50-100 replace-upserts of existing documents hangs the server for ever).
# Everything Go downloads or compiles stays in $STACK_CACHE_DIR.
# A real MongoDB is used instead by setting MONGO_URI (see docs/stack/ferretdb.md).

FERRETDB_HOME="$STACK_DIR/ferretdb"
FERRETDB_BIN="$FERRETDB_HOME/bin/ferretdb"
FERRETDB_LOG="$LOG_DIR/ferretdb.log"
FERRETDB_MODULE="github.com/FerretDB/FerretDB"
FERRETDB_PATCHES="$ROOT/scripts/stack/ferretdb"
# Metrics, probes and pprof: loopback only, whatever STACK_BIND_HOST says.
FERRETDB_DEBUG_ADDR="127.0.0.1:${FERRETDB_DEBUG_PORT:-8088}"
# The PostgreSQL backend (FERRETDB_BACKEND=postgresql): a private cluster on loopback.
FERRETDB_PG_PORT="${FERRETDB_PG_PORT:-5433}"
FERRETDB_PG_DIR="$FERRETDB_HOME/data/pg"
FERRETDB_PG_LOG="$LOG_DIR/ferretdb-postgresql.log"
# The TLS listener (STACK_TLS=true).
MONGO_TLS_PORT="${MONGO_TLS_PORT:-27018}"

_ferretdb_pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }; done
  command -v pg_ctl >/dev/null && { dirname "$(command -v pg_ctl)"; return 0; }
  return 1
}

_ferretdb_check_backend() {
  case "${FERRETDB_BACKEND:-sqlite}" in
    sqlite) ;;
    postgresql) _ferretdb_pg_bin >/dev/null \
        || fail ferretdb "FERRETDB_BACKEND=postgresql needs PostgreSQL (apt-get install postgresql)" ;;
    *) fail ferretdb "FERRETDB_BACKEND=${FERRETDB_BACKEND} is not sqlite or postgresql" ;;
  esac
}

# What the installed binary was built from: version + patches; a change rebuilds it.
_ferretdb_build_id() {
  echo "$FERRETDB_VERSION $(cat "$FERRETDB_PATCHES"/*.patch | sha256sum | cut -c1-16)"
}

ferretdb_install() {
  _ferretdb_check_backend
  if [ -x "$FERRETDB_BIN" ] && [ "$(cat "$FERRETDB_HOME/bin/.build" 2>/dev/null)" = "$(_ferretdb_build_id)" ]; then
    return 0
  fi
  local src="$FERRETDB_HOME/src" dir total patch t0=$SECONDS
  say ferretdb "building FerretDB $FERRETDB_VERSION from the Go module proxy (first run only; ~3 min on 2 cores)"
  dir=$(stack_go ferretdb mod download -json "$FERRETDB_MODULE@$FERRETDB_VERSION" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin).get("Dir", ""))') \
    || fail ferretdb "cannot download $FERRETDB_MODULE@$FERRETDB_VERSION from the Go module proxy"
  [ -d "$dir" ] || fail ferretdb "the Go module download gave no source directory"
  rm -rf "$src"; mkdir -p "$FERRETDB_HOME/bin"
  cp -r "$dir" "$src" && chmod -R u+w "$src"
  # The file `go install` lacks; without it the binary panics at start.
  echo "$FERRETDB_VERSION" > "$src/build/version/version.txt"
  echo "source" > "$src/build/version/package.txt"
  for patch in "$FERRETDB_PATCHES"/*.patch; do
    say ferretdb "applying $(basename "$patch")"
    patch -s -p1 -d "$src" < "$patch" || fail ferretdb "patch $patch does not apply to $FERRETDB_VERSION"
  done
  say ferretdb "downloading the Go dependencies into $GOMODCACHE"
  (cd "$src" && stack_go ferretdb mod download -x 2>&1) \
    | awk '/^# get .*200 OK/ { n++; if (n % 20 == 0) { print "  [ferretdb] " n " files downloaded"; fflush() } }
           /error|Error/ { print "  [ferretdb] " $0 }'
  total=$(cd "$src" && stack_go ferretdb list -deps ./cmd/ferretdb 2>/dev/null | wc -l)
  say ferretdb "compiling up to $total packages (cached ones are skipped)"
  # -buildvcs=false: the source sits inside this project's git tree, whose commit is not FerretDB's.
  (cd "$src" && stack_go ferretdb build -v -trimpath -buildvcs=false -o "$FERRETDB_BIN.tmp" ./cmd/ferretdb 2>&1) \
    | awk -v total="$total" '
        /^[a-zA-Z0-9_.\/-]+$/ { n++; if (n % 50 == 0) { printf "  [ferretdb] compiled %d/%d packages\n", n, total; fflush() } next }
        { print "  [ferretdb] " $0; fflush() }'
  [ -x "$FERRETDB_BIN.tmp" ] || fail ferretdb "go build failed (see above)"
  # Read the whole output first: `--version | grep -q` under pipefail fails when grep exits at
  # the first line and the binary, still writing, dies of SIGPIPE (seen on a fresh clone).
  local reported
  reported=$("$FERRETDB_BIN.tmp" --version 2>&1) || true
  grep -qx "version: $FERRETDB_VERSION" <<<"$reported" \
    || fail ferretdb "the built binary does not report version $FERRETDB_VERSION"
  mv "$FERRETDB_BIN.tmp" "$FERRETDB_BIN"
  _ferretdb_build_id > "$FERRETDB_HOME/bin/.build"
  rm -rf "$src"
  say ferretdb "built $FERRETDB_BIN in $((SECONDS - t0))s"
}

# The PostgreSQL backend: initdb once (SCRAM password, a random secret kept beside the data),
# then start on 127.0.0.1:$FERRETDB_PG_PORT. PostgreSQL refuses to run as root: as root, its
# files belong to the `postgres` account of Debian's package and its commands run as that user.
_ferretdb_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

_ferretdb_pg_start() {
  local bin pwfile="$FERRETDB_HOME/data/pg.password" tmp
  bin="$(_ferretdb_pg_bin)"
  mkdir -p "$FERRETDB_PG_DIR" "$RUN_DIR/pg"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || fail ferretdb "running as root needs the postgres account (Debian's postgresql package)"
    chown postgres "$FERRETDB_PG_DIR" "$RUN_DIR/pg"; chmod 700 "$FERRETDB_PG_DIR"
  fi
  if [ ! -f "$FERRETDB_PG_DIR/PG_VERSION" ]; then
    say ferretdb "initialising the PostgreSQL cluster in $FERRETDB_PG_DIR"
    (umask 077; python3 -c 'import secrets; print(secrets.token_hex(24))' > "$pwfile")
    tmp="$RUN_DIR/pg/.pw"; cp "$pwfile" "$tmp"; [ "$(id -u)" = 0 ] && chown postgres "$tmp"
    _ferretdb_pg "$bin/initdb" -D "$FERRETDB_PG_DIR" -U ferretdb "--pwfile=$tmp" --auth=scram-sha-256 \
      -E UTF8 --no-locale >>"$FERRETDB_PG_LOG" 2>&1 || { rm -f "$tmp"; fail ferretdb "initdb failed" "$FERRETDB_PG_LOG"; }
    rm -f "$tmp"
  fi
  if ! _ferretdb_pg "$bin/pg_ctl" -D "$FERRETDB_PG_DIR" status >/dev/null 2>&1; then
    port_free "$FERRETDB_PG_PORT" || fail ferretdb "port $FERRETDB_PG_PORT (PostgreSQL) is already in use"
    touch "$FERRETDB_PG_LOG"; [ "$(id -u)" = 0 ] && chown postgres "$FERRETDB_PG_LOG"
    _ferretdb_pg "$bin/pg_ctl" -D "$FERRETDB_PG_DIR" -l "$FERRETDB_PG_LOG" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $FERRETDB_PG_PORT -k $RUN_DIR/pg" start >/dev/null \
      || fail ferretdb "PostgreSQL did not start" "$FERRETDB_PG_LOG"
  fi
  if ! PGPASSWORD="$(cat "$pwfile")" "$bin/psql" -h 127.0.0.1 -p "$FERRETDB_PG_PORT" -U ferretdb -d postgres \
      -tAc "SELECT 1 FROM pg_database WHERE datname = 'ferretdb'" | grep -q 1; then
    PGPASSWORD="$(cat "$pwfile")" "$bin/createdb" -h 127.0.0.1 -p "$FERRETDB_PG_PORT" -U ferretdb ferretdb \
      || fail ferretdb "cannot create the PostgreSQL database ferretdb" "$FERRETDB_PG_LOG"
  fi
}

_ferretdb_pg_stop() {
  local bin
  bin="$(_ferretdb_pg_bin)" || return 0
  [ -f "$FERRETDB_PG_DIR/PG_VERSION" ] || return 0
  _ferretdb_pg "$bin/pg_ctl" -D "$FERRETDB_PG_DIR" status >/dev/null 2>&1 || return 0
  _ferretdb_pg "$bin/pg_ctl" -D "$FERRETDB_PG_DIR" -m fast -w stop >/dev/null && say ferretdb "PostgreSQL stopped"
}

ferretdb_start() {
  _ferretdb_check_backend
  local backend=() state="$FERRETDB_HOME/data/state" tls=() where="$STACK_BIND_HOST:$MONGO_PORT"
  mkdir -p "$state"
  if ! is_running ferretdb; then
    port_free "$MONGO_PORT" || fail ferretdb "port $MONGO_PORT is already in use by another process"
    if tls_enabled; then
      # A second listener, TLS only, beside the plaintext one (scripts/stack/tls.sh).
      port_free "$MONGO_TLS_PORT" || fail ferretdb "port $MONGO_TLS_PORT (TLS) is already in use by another process"
      tls=("--listen-tls=$STACK_BIND_HOST:$MONGO_TLS_PORT"
           "--listen-tls-cert-file=$TLS_DIR/server.pem" "--listen-tls-key-file=$TLS_DIR/server.key")
      where="$where, TLS on $STACK_BIND_HOST:$MONGO_TLS_PORT"
    fi
    if [ "${FERRETDB_BACKEND:-sqlite}" = postgresql ]; then
      _ferretdb_pg_start
      # The URL carries the password: pass it through the environment, never argv (ps shows argv).
      export FERRETDB_POSTGRESQL_URL="postgres://ferretdb:$(cat "$FERRETDB_HOME/data/pg.password")@127.0.0.1:$FERRETDB_PG_PORT/ferretdb"
      backend=(--handler=postgresql)
    else
      mkdir -p "$FERRETDB_HOME/data/sqlite"
      backend=(--handler=sqlite "--sqlite-url=file:$FERRETDB_HOME/data/sqlite/")
    fi
    say ferretdb "starting FerretDB $FERRETDB_VERSION (${FERRETDB_BACKEND:-sqlite}) on $where"
    # The admin account is created on the first start only (FerretDB's --setup-* runs while the
    # admin database does not exist yet); its password goes through the environment, not argv.
    FERRETDB_SETUP_PASSWORD="$MONGO_ADMIN_PASSWORD" start_daemon ferretdb "$FERRETDB_LOG" \
      "$FERRETDB_BIN" "${backend[@]}" \
      "--state-dir=$state" \
      "--listen-addr=$STACK_BIND_HOST:$MONGO_PORT" "${tls[@]}" \
      "--debug-addr=$FERRETDB_DEBUG_ADDR" \
      --telemetry=disable \
      --log-format=console --log-level=info \
      --test-enable-new-auth \
      --setup-database=admin "--setup-username=$MONGO_ADMIN_USER"
    unset FERRETDB_POSTGRESQL_URL
  fi
  wait_until ferretdb 60 "$FERRETDB_LOG" "$VENV_PY" -m ops.mongo_setup check
}

ferretdb_setup() {
  "$VENV_PY" -m ops.mongo_setup setup || fail ferretdb "users/collections/indexes setup failed"
}

ferretdb_stop() {
  if is_running ferretdb; then stop_daemon ferretdb 30; fi
  if [ "${FERRETDB_BACKEND:-sqlite}" = postgresql ]; then _ferretdb_pg_stop; fi
  return 0
}

ferretdb_status() {
  local version addr size
  if [ -n "${MONGO_URI:-}" ]; then addr="external MONGO_URI"; else addr="$STACK_BIND_HOST:$MONGO_PORT"; fi
  size="$(du_human "$FERRETDB_HOME/data")"
  if version=$("$VENV_PY" -m ops.mongo_setup version 2>/dev/null); then
    printf 'ferretdb   up    %-40s %-22s data %s\n' "$version" "$addr" "${size:-0}"
    return 0
  fi
  printf 'ferretdb   down  %-40s %-22s data %s\n' "FerretDB $FERRETDB_VERSION" "$addr" "${size:-0}"
  return 1
}

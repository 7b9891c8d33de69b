#!/usr/bin/env bash
# Shared helpers for the stack scripts: environment, Java 17, downloads into the
# project-local cache, daemons with pid files, waiting with progress, clear failures.
# Sourced, never executed.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
export APP_ROOT="$ROOT"

# Settings: .env (created with fresh secrets on first use) overlaid by the environment.
eval "$(python3 -m common.envfile --shell)" || { echo "stack: cannot read .env" >&2; exit 2; }
# shellcheck disable=SC1091
set -a; . "$ROOT/conf/versions.env"; set +a

abspath() { case "$1" in /*) echo "$1" ;; *) echo "$ROOT/$1" ;; esac; }
STACK_DIR="$(abspath "${STACK_DIR:-.stack}")"
STACK_CACHE_DIR="$(abspath "${STACK_CACHE_DIR:-.stack/cache}")"
STACK_BIND_HOST="${STACK_BIND_HOST:-127.0.0.1}"
RUN_DIR="$STACK_DIR/run"
LOG_DIR="$STACK_DIR/logs"
mkdir -p "$RUN_DIR" "$LOG_DIR" "$STACK_CACHE_DIR"
export STACK_DIR STACK_CACHE_DIR STACK_BIND_HOST

# Java 17, always explicit: a Java 25 on the machine breaks Cassandra 5 and Spark 3.5.
export JAVA_HOME="${JAVA_HOME_17:-$JAVA_HOME_DEFAULT}"
JAVA="$JAVA_HOME/bin/java"
if ! grep -q '"17\.' <<<"$("$JAVA" -version 2>&1)"; then
  echo "stack: Java 17 not found at $JAVA_HOME (set JAVA_HOME_17 to a JDK 17)" >&2
  exit 2
fi
export PATH="$JAVA_HOME/bin:$PATH"

# Every download lands in the project-local cache.
export MAVEN_REPO="$STACK_CACHE_DIR/m2"
export GOMODCACHE="$STACK_CACHE_DIR/go/mod"
export GOCACHE="$STACK_CACHE_DIR/go/build"
export GOPATH="$STACK_CACHE_DIR/go/path"
export PIP_CACHE_DIR="$STACK_CACHE_DIR/pip"
export GOFLAGS="-modcacherw"

# The one way the stack scripts run Go (FerretDB, Prometheus): this machine's toolchain, no
# go.work, niced (a first build takes minutes on a machine that others share).
stack_go() {
  local who="$1" go; shift
  go="$(command -v go || echo /usr/local/go/bin/go)"
  [ -x "$go" ] || fail "$who" "Go toolchain not found (install Go >= 1.26.7 or put it on PATH)"
  GOTOOLCHAIN=local GOWORK=off nice -n 19 "$go" "$@"
}

VENV_PY="$ROOT/.venv/bin/python"

say()  { printf '\033[1m[%s]\033[0m %s\n' "$1" "$2"; }
warn() { printf '\033[33m[%s]\033[0m %s\n' "$1" "$2" >&2; }

# fail SERVICE REASON [LOGFILE]: one clear line, then the tail of the service's log.
fail() {
  printf '\033[31m[%s] FAILED: %s\033[0m\n' "$1" "$2" >&2
  if [ -n "${3:-}" ] && [ -f "$3" ]; then
    echo "---- last 30 lines of $3 ----" >&2
    tail -n 30 "$3" >&2
    echo "----" >&2
  fi
  exit 1
}

# maven_fetch NAME POM: copy the artifacts of POM and their dependencies into
# $STACK_DIR/NAME/lib, through the project-local Maven repository.
maven_fetch() {
  local name="$1" pom="$2" lib="$STACK_DIR/$1/lib"
  if [ -f "$lib/.complete" ] && [ "$(cat "$lib/.complete")" = "$(sha256sum "$pom" | cut -c1-16)" ]; then
    return 0
  fi
  say "$name" "downloading jars from Maven Central into $MAVEN_REPO (first run only)"
  rm -rf "$lib"; mkdir -p "$lib"
  mvn -B -Dmaven.repo.local="$MAVEN_REPO" -f "$pom" \
      dependency:copy-dependencies -DoutputDirectory="$lib" -DincludeScope=runtime \
      2>&1 | grep -E "Downloaded|BUILD|ERROR" | sed -u "s/^/  [$name] /" | awk '{ if (/Downloaded/) { n++; if (n % 10 == 0) print "  ['"$name"'] " n " artifacts downloaded" } else print }'
  [ "$(find "$lib" -name '*.jar' | wc -l)" -gt 0 ] || fail "$name" "Maven download failed (see above)"
  sha256sum "$pom" | cut -c1-16 > "$lib/.complete"
}

pid_of() { cat "$RUN_DIR/$1.pid" 2>/dev/null; }
is_running() { local p; p=$(pid_of "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

# start_daemon NAME LOGFILE CMD...: detached, in its own session, pid recorded.
start_daemon() {
  local name="$1" log="$2"; shift 2
  if is_running "$name"; then return 0; fi
  nohup setsid "$@" >>"$log" 2>&1 < /dev/null &
  echo $! > "$RUN_DIR/$name.pid"
}

# stop_daemon NAME [SECONDS]: SIGTERM, wait for a graceful exit, SIGKILL after the timeout.
stop_daemon() {
  local name="$1" timeout="${2:-60}" pid i
  pid=$(pid_of "$name")
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then rm -f "$RUN_DIR/$name.pid"; return 0; fi
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < timeout * 2; i++)); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$RUN_DIR/$name.pid"; say "$name" "stopped"; return 0; }
    sleep 0.5
  done
  warn "$name" "did not stop within ${timeout}s, killing"
  kill -KILL "$pid" 2>/dev/null
  rm -f "$RUN_DIR/$name.pid"
}

# wait_until NAME SECONDS LOGFILE CMD...: retry CMD until it succeeds, with progress;
# fail with the log tail when the time is up or the process died.
wait_until() {
  local name="$1" timeout="$2" log="$3"; shift 3
  local start=$SECONDS last=""
  while true; do
    if last=$("$@" 2>&1); then
      printf '\r\033[K'; say "$name" "ready after $((SECONDS - start))s"; return 0
    fi
    if [ -f "$RUN_DIR/$name.pid" ] && ! is_running "$name"; then
      printf '\r\033[K'; fail "$name" "process exited during start-up (${last##*$'\n'})" "$log"
    fi
    if (( SECONDS - start >= timeout )); then
      printf '\r\033[K'; fail "$name" "not ready after ${timeout}s: ${last##*$'\n'}" "$log"
    fi
    printf '\r  [%s] waiting... %ds' "$name" $((SECONDS - start))
    sleep 1
  done
}

# port_free PORT: true when nothing listens on the bind host at PORT.
port_free() { ! (exec 3<>"/dev/tcp/$STACK_BIND_HOST/$1") 2>/dev/null; }

du_human() { du -sh "$1" 2>/dev/null | cut -f1; }

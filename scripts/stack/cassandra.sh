# Cassandra 5.0, single node, from Maven Central (org.apache.cassandra:cassandra-all),
# on Java 17, bound to 127.0.0.1. Sourced by scripts/stack.sh after scripts/lib.sh.
#
#   cassandra_install  jars (cassandra-all + deps + jamm agent) into $STACK_DIR/cassandra/lib
#   cassandra_start    render conf, start the daemon, wait for a real CQL login
#   cassandra_setup    admin role, default role disabled, schema, roles and grants
#   cassandra_stop     SIGTERM (Cassandra's shutdown hook drains memtables to disk)
#   cassandra_status   one line: up/down, version, address, JMX, data size
#
# Templates and the pom live in scripts/stack/cassandra/; nothing here is rendered
# into the source tree.

CASSANDRA_HOME="$STACK_DIR/cassandra"
CASSANDRA_SRC="$ROOT/scripts/stack/cassandra"
CASSANDRA_LOG="$LOG_DIR/cassandra.log"
CASSANDRA_STORAGE_PORT="${CASSANDRA_STORAGE_PORT:-7000}"
CASSANDRA_JMX_PORT="${CASSANDRA_JMX_PORT:-7199}"
# The Prometheus JMX exporter agent in Cassandra's JVM, /metrics on 127.0.0.1 (0: no agent;
# scripts/stack/prometheus.sh, conf/prometheus/jmx-cassandra.yml).
CASSANDRA_JMX_EXPORTER_PORT="${CASSANDRA_JMX_EXPORTER_PORT:-9405}"

# The pom names the versions of conf/versions.env (rendered, so versions.env stays the
# single place to change them; a change re-downloads through maven_fetch's checksum).
cassandra_install() {
  mkdir -p "$CASSANDRA_HOME"
  sed -e "s|<cassandra.version>[^<]*<|<cassandra.version>$CASSANDRA_VERSION<|" \
      -e "s|<jamm.version>[^<]*<|<jamm.version>$JAMM_VERSION<|" \
      "$CASSANDRA_SRC/pom.xml" > "$CASSANDRA_HOME/pom.xml"
  maven_fetch cassandra "$CASSANDRA_HOME/pom.xml"
  [ "$CASSANDRA_JMX_EXPORTER_PORT" = 0 ] || jmx_exporter_install
  [ -f "$CASSANDRA_HOME/lib/cassandra-all-$CASSANDRA_VERSION.jar" ] \
    || fail cassandra "cassandra-all-$CASSANDRA_VERSION.jar missing from $CASSANDRA_HOME/lib"
  [ -f "$CASSANDRA_HOME/lib/jamm-$JAMM_VERSION.jar" ] \
    || fail cassandra "jamm-$JAMM_VERSION.jar missing from $CASSANDRA_HOME/lib"
  say cassandra "installed $CASSANDRA_VERSION ($(find "$CASSANDRA_HOME/lib" -name '*.jar' | wc -l) jars)"
}

_cassandra_render() {
  local conf="$CASSANDRA_HOME/conf" data="$CASSANDRA_HOME/data"
  mkdir -p "$conf/triggers" "$data"/{data,commitlog,saved_caches,hints,cdc_raw}
  local tls=false pw="" text
  if tls_enabled; then tls=true; pw="$(head -n1 "$TLS_DIR/keystore.password")"; fi
  # Bash substitution, not sed: the key store password must never be on a command line (`ps`).
  text="$(cat "$CASSANDRA_SRC/cassandra.yaml.template")"
  text="${text//@DATA_DIR@/"$data"}"
  text="${text//@BIND_HOST@/"$STACK_BIND_HOST"}"
  text="${text//@NATIVE_PORT@/"$CASSANDRA_PORT"}"
  text="${text//@STORAGE_PORT@/"$CASSANDRA_STORAGE_PORT"}"
  text="${text//@CLIENT_TLS@/"$tls"}"
  text="${text//@TLS_DIR@/"$TLS_DIR"}"
  text="${text//@KEYSTORE_PASSWORD@/"$pw"}"
  (umask 077; printf '%s\n' "$text" > "$conf/cassandra.yaml.tmp")
  chmod 600 "$conf/cassandra.yaml.tmp"; mv -f "$conf/cassandra.yaml.tmp" "$conf/cassandra.yaml"
  sed -e "s|@LOG_FILE@|$CASSANDRA_LOG|g" "$CASSANDRA_SRC/logback.xml.template" > "$conf/logback.xml"
}

# The --add-exports/--add-opens list of upstream conf/jvm17-server.options (the server
# and nodetool both need it on Java 17).
_cassandra_jpms_flags() {
  local line
  CASSANDRA_JPMS_FLAGS=()
  while IFS= read -r line; do
    case "$line" in ''|'#'*) continue ;; esac
    # "--add-opens x=y" is one option with a space: pass it as the =-joined form.
    CASSANDRA_JPMS_FLAGS+=("${line/ /=}")
  done < "$CASSANDRA_SRC/jvm17-server.options"
}

# The JVM command line: what bin/cassandra + cassandra-env.sh + jvm*-server.options
# would assemble, reduced to what a single local node needs. The heap starts at 256 MiB and
# grows to CASSANDRA_HEAP under load: -Xms = -Xmx held 1 GiB of RSS at the spec rate
# (docs/PERFORMANCE.md).
_cassandra_java_args() {
  local lib="$CASSANDRA_HOME/lib" conf="$CASSANDRA_HOME/conf"
  local heap="${CASSANDRA_HEAP:-1G}"
  CASSANDRA_JAVA_ARGS=(
    "-Xms256M" "-Xmx$heap" -Xss256k -XX:MaxDirectMemorySize=512m
    -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -XX:MaxGCPauseMillis=300
    -XX:+PerfDisableSharedMem -XX:+ExitOnOutOfMemoryError -XX:ActiveProcessorCount=2
    -Djava.net.preferIPv4Stack=true
    "-javaagent:$lib/jamm-$JAMM_VERSION.jar"
  )
  local agent
  agent="$(jmx_exporter_agent cassandra "$CASSANDRA_JMX_EXPORTER_PORT")"
  [ -z "$agent" ] || CASSANDRA_JAVA_ARGS+=("$agent")
  _cassandra_jpms_flags
  CASSANDRA_JAVA_ARGS+=(
    "${CASSANDRA_JPMS_FLAGS[@]}"
    "-Dcassandra.config=file://$conf/cassandra.yaml"
    "-Dlogback.configurationFile=file://$conf/logback.xml"
    "-Dcassandra.logdir=$LOG_DIR"
    "-Dcassandra.storagedir=$CASSANDRA_HOME/data"
    "-Dcassandra.triggers_dir=$conf/triggers"
    -Dcassandra-foreground=yes
    "-Dcassandra.jmx.local.port=$CASSANDRA_JMX_PORT"
    -Dcassandra.skip_wait_for_gossip_to_settle=0
    -Dcassandra.ring_delay_ms=1000
    -Dcassandra.superuser_setup_delay_ms=0
    -cp "$conf:$lib/*"
    org.apache.cassandra.service.CassandraDaemon
  )
}

cassandra_start() {
  local agent_id
  # What the running node was started with: its JMX exporter agent and cassandra.yaml's template
  # (a change to either, e.g. a new setting in a checkout, restarts it on the next `make up`).
  agent_id="$(jmx_exporter_id cassandra "$CASSANDRA_JMX_EXPORTER_PORT") conf:$(sha256sum < "$CASSANDRA_SRC/cassandra.yaml.template" | cut -c1-12)"
  if is_running cassandra && [ "$(cat "$RUN_DIR/cassandra.jmx" 2>/dev/null)" != "$agent_id" ]; then
    say cassandra "running with another JMX exporter agent or cassandra.yaml than wanted ($agent_id): restarting it (data kept)"
    cassandra_stop
  fi
  if ! is_running cassandra; then
    [ -f "$CASSANDRA_HOME/lib/.complete" ] || fail cassandra "not installed (run scripts/stack.sh up cassandra)"
    local p ports=("$CASSANDRA_PORT" "$CASSANDRA_STORAGE_PORT" "$CASSANDRA_JMX_PORT")
    [ "$CASSANDRA_JMX_EXPORTER_PORT" = 0 ] || ports+=("$CASSANDRA_JMX_EXPORTER_PORT")
    for p in "${ports[@]}"; do
      port_free "$p" || fail cassandra "port $STACK_BIND_HOST:$p is taken by another process (not ours: no live pid in $RUN_DIR)"
    done
    _cassandra_render
    _cassandra_java_args
    say cassandra "starting on $STACK_BIND_HOST:$CASSANDRA_PORT$(tls_enabled && echo ' (TLS optional on the same port)') (heap ${CASSANDRA_HEAP:-1G}, log $CASSANDRA_LOG)"
    start_daemon cassandra "$CASSANDRA_LOG" "$JAVA" "${CASSANDRA_JAVA_ARGS[@]}"
    echo "$agent_id" > "$RUN_DIR/cassandra.jmx"
  fi
  # Ready = a real, authenticated CQL login (the admin, or on a fresh node the default
  # role that cassandra_setup replaces).
  wait_until cassandra 240 "$CASSANDRA_LOG" "$VENV_PY" -m ops.cassandra_setup ready
}

cassandra_setup() {
  local out
  out=$("$VENV_PY" -m ops.cassandra_setup setup 2>&1) || fail cassandra "setup failed: ${out##*$'\n'}" "$CASSANDRA_LOG"
  say cassandra "${out##*$'\n'}"
}

cassandra_stop() {
  # Graceful: the daemon's shutdown hook drains (flushes memtables, stops the commitlog).
  stop_daemon cassandra 90
}

# nodetool without the distribution: proves JMX answers on loopback.
_cassandra_nodetool() {
  _cassandra_jpms_flags
  # user.home: nodetool keeps its history in ~/.cassandra; keep it inside the stack dir.
  "$JAVA" -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 "${CASSANDRA_JPMS_FLAGS[@]}" \
    -cp "$CASSANDRA_HOME/lib/*" -Duser.home="$CASSANDRA_HOME" \
    -Dlogback.configurationFile=file://"$CASSANDRA_SRC/logback-tools.xml" \
    org.apache.cassandra.tools.NodeTool -h 127.0.0.1 -p "$CASSANDRA_JMX_PORT" "$@"
}

cassandra_status() {
  local -; set -o pipefail
  local size version jmx="" where
  size=$(du_human "$CASSANDRA_HOME/data"); size=${size:-0}
  if [ -z "${CASSANDRA_HOSTS:-}" ]; then
    where="$STACK_BIND_HOST:$CASSANDRA_PORT"
    if ! is_running cassandra; then
      echo "cassandra  down  $where  data ${size}"; return 1
    fi
    # "UN 127.0.0.1 ..." from nodetool status over JMX.
    if jmx=$(_cassandra_nodetool status 2>/dev/null | awk '$2 == "'"$STACK_BIND_HOST"'" { print $1 }'); then
      jmx="jmx:${jmx:-?}"
    else
      jmx="jmx:unreachable"
    fi
  else
    where="$CASSANDRA_HOSTS:$CASSANDRA_PORT (external)"; size="n/a"
  fi
  if version=$("$VENV_PY" -m ops.cassandra_setup check 2>&1); then
    echo "cassandra  up    ${version##*$'\n'}  $where  ${jmx:+$jmx  }data ${size}"
  else
    echo "cassandra  down  $where  ${jmx:+$jmx  }data ${size}  (${version##*$'\n'})"; return 1
  fi
}

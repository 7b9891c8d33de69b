# Kafka 4 (KRaft, one combined broker+controller) from Maven Central jars.
# Sourced by scripts/stack.sh after scripts/lib.sh; defines kafka_{install,start,setup,stop,status}.
# Listeners, auth and ACLs are explained in docs/stack/kafka.md.

KAFKA_HOME="$STACK_DIR/kafka"
KAFKA_LOG="$LOG_DIR/kafka.log"
KAFKA_CLIENT_PORT=9092
KAFKA_CONTROLLER_PORT=9093
# The SASL_SSL listener, only with STACK_TLS=true (scripts/stack/tls.sh).
KAFKA_TLS_PORT="${KAFKA_TLS_PORT:-9094}"
KAFKA_TEMPLATES="$ROOT/scripts/stack/kafka"
# The Prometheus JMX exporter agent in the broker's JVM, /metrics on 127.0.0.1 (0: no agent;
# scripts/stack/prometheus.sh, conf/prometheus/jmx-kafka.yml).
KAFKA_JMX_EXPORTER_PORT="${KAFKA_JMX_EXPORTER_PORT:-9404}"

# The broker's class path: every jar maven_fetch copied.
_kafka_cp() { echo "$KAFKA_HOME/lib/*"; }

# _kafka_render TEMPLATE TARGET: fill the @NAME@ placeholders. Plain bash substitution
# (quoted replacements), so a password is never interpreted by sed or a shell.
_kafka_render() {
  local text
  text="$(cat "$1")"
  text="${text//@BIND_HOST@/"$STACK_BIND_HOST"}"
  text="${text//@CLIENT_PORT@/"$KAFKA_CLIENT_PORT"}"
  text="${text//@CONTROLLER_PORT@/"$KAFKA_CONTROLLER_PORT"}"
  text="${text//@DATA_DIR@/"$KAFKA_HOME/data"}"
  text="${text//@ADMIN_USER@/"$KAFKA_ADMIN_USER"}"
  text="${text//@ADMIN_PASSWORD@/"$KAFKA_ADMIN_PASSWORD"}"
  text="${text//@KAFKA_VERSION@/"$KAFKA_VERSION"}"
  text="${text//@TLS_LISTENER@/"${KAFKA_TLS_LISTENER:-}"}"
  text="${text//@TLS_DIR@/"$TLS_DIR"}"
  if [[ "$text" == *@KEYSTORE_PASSWORD@* ]]; then
    text="${text//@KEYSTORE_PASSWORD@/"$(head -n1 "$TLS_DIR/keystore.password")"}"
  fi
  text="${text//@LOG4J_VERSION@/"$LOG4J_VERSION"}"
  (umask 077; printf '%s\n' "$text" > "$2")
}

kafka_install() {
  mkdir -p "$KAFKA_HOME"
  # The pom is a template: the versions come from conf/versions.env, and a change of
  # version changes the rendered pom, which makes maven_fetch download again.
  _kafka_render "$KAFKA_TEMPLATES/pom.xml" "$KAFKA_HOME/pom.xml"
  maven_fetch kafka "$KAFKA_HOME/pom.xml"
  [ "$KAFKA_JMX_EXPORTER_PORT" = 0 ] || jmx_exporter_install
  [ -f "$KAFKA_HOME/lib/kafka_2.13-$KAFKA_VERSION.jar" ] \
    || fail kafka "kafka_2.13-$KAFKA_VERSION.jar missing in $KAFKA_HOME/lib (delete the folder and retry)"
  say kafka "Kafka $KAFKA_VERSION installed ($(find "$KAFKA_HOME/lib" -name '*.jar' | wc -l) jars)"
}

# Credentials end up in JAAS strings and --add-scram arguments (quoted in a JVM argument file):
# refuse characters that would break them.
_kafka_check_secrets() {
  local var value
  for var in KAFKA_ADMIN_USER KAFKA_ADMIN_PASSWORD KAFKA_PRODUCER_USER KAFKA_PRODUCER_PASSWORD \
             KAFKA_JOB_USER KAFKA_JOB_PASSWORD; do
    value="${!var:-}"
    [ -n "$value" ] || fail kafka "$var is empty (see .env)"
    [[ "$value" =~ ^[A-Za-z0-9._~+%-]+$ ]] \
      || fail kafka "$var may only hold letters, digits and ._~+%- (it goes into JAAS and SCRAM syntax)"
  done
}

# The broker's JVM command line (an array, for start_daemon): explicit heap, G1 with short pauses.
# The heap starts small and grows to KAFKA_HEAP under load (-Xms = -Xmx held 512 MiB of RSS
# at the spec rate, where the broker uses under 100; docs/PERFORMANCE.md).
_kafka_cmd() {
  KAFKA_CMD=("$JAVA" -Xmx"${KAFKA_HEAP:-512m}" -Xms64m
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$KAFKA_HOME/conf/log4j2.properties")
  local agent
  agent="$(jmx_exporter_agent kafka "$KAFKA_JMX_EXPORTER_PORT")"
  [ -z "$agent" ] || KAFKA_CMD+=("$agent")
  KAFKA_CMD+=(-cp "$(_kafka_cp)" kafka.Kafka "$KAFKA_HOME/conf/server.properties")
}

# One argument of a JVM argument file: in double quotes, with `\` and `"` escaped.
_kafka_argfile_line() {
  local arg="${1//\\/\\\\}"
  printf '"%s"\n' "${arg//\"/\\\"}"
}

# The StorageTool command of the first format, as a JVM argument file (one argument a line).
# The SCRAM passwords are in it: they must never be on a command line, which `ps` and
# /proc/PID/cmdline show to every local user. StorageTool has no option to read them from a file,
# but the java launcher expands `@file` (main class and arguments included) before starting.
_kafka_format_args() {
  local arg user pass
  for arg in kafka.tools.StorageTool format --standalone --cluster-id "$1" \
             --config "$KAFKA_HOME/conf/server.properties"; do
    _kafka_argfile_line "$arg"
  done
  for user in ADMIN PRODUCER JOB; do
    pass="KAFKA_${user}_PASSWORD"; user="KAFKA_${user}_USER"
    _kafka_argfile_line --add-scram
    _kafka_argfile_line "SCRAM-SHA-256=[name=${!user},password=${!pass}]"
  done
}

# First start only: write meta.properties and the SCRAM users into the metadata log.
_kafka_format() {
  local data="$KAFKA_HOME/data" cluster_id args_file="$KAFKA_HOME/conf/format.args" rc=0
  [ -f "$data/meta.properties" ] && return 0
  say kafka "formatting storage in $data (first start) with SCRAM users $KAFKA_ADMIN_USER, $KAFKA_PRODUCER_USER, $KAFKA_JOB_USER"
  mkdir -p "$data" "$KAFKA_HOME/conf"
  cluster_id=$("$JAVA" -Xmx128m -cp "$(_kafka_cp)" kafka.tools.StorageTool random-uuid 2>>"$KAFKA_LOG") \
    || fail kafka "StorageTool random-uuid failed" "$KAFKA_LOG"
  (umask 077; rm -f "$args_file"; _kafka_format_args "$cluster_id" > "$args_file") \
    || fail kafka "cannot write $args_file"
  # -XX:-UsePerfData: the JVM would also copy its arguments into /tmp/hsperfdata_<user>/<pid>.
  "$JAVA" -Xmx256m -XX:-UsePerfData -Dlog4j2.configurationFile="$KAFKA_HOME/conf/log4j2.properties" \
    -cp "$(_kafka_cp)" "@$args_file" >>"$KAFKA_LOG" 2>&1 || rc=$?
  rm -f "$args_file"
  [ "$rc" -eq 0 ] || { rm -rf "$data"; fail kafka "storage format failed" "$KAFKA_LOG"; }
}

kafka_start() {
  _kafka_check_secrets
  if is_running kafka && [ "$(cat "$RUN_DIR/kafka.jmx" 2>/dev/null)" != "$(jmx_exporter_id kafka "$KAFKA_JMX_EXPORTER_PORT")" ]; then
    say kafka "running without the JMX exporter agent wanted ($(jmx_exporter_id kafka "$KAFKA_JMX_EXPORTER_PORT")): restarting it (data kept)"
    kafka_stop
  fi
  if is_running kafka; then
    say kafka "already running (pid $(pid_of kafka))"
    wait_until kafka 60 "$KAFKA_LOG" "$VENV_PY" -m ops.kafka_admin check
    return 0
  fi
  local port ports=("$KAFKA_CLIENT_PORT" "$KAFKA_CONTROLLER_PORT") where="$STACK_BIND_HOST:$KAFKA_CLIENT_PORT"
  [ "$KAFKA_JMX_EXPORTER_PORT" = 0 ] || ports+=("$KAFKA_JMX_EXPORTER_PORT")
  KAFKA_TLS_LISTENER=""
  if tls_enabled; then
    KAFKA_TLS_LISTENER=",CLIENT_TLS://$STACK_BIND_HOST:$KAFKA_TLS_PORT"
    ports+=("$KAFKA_TLS_PORT"); where="$where, SASL_SSL on $STACK_BIND_HOST:$KAFKA_TLS_PORT"
  fi
  for port in "${ports[@]}"; do
    port_free "$port" || fail kafka "port $port is already in use by another process (not ours: no pid file)"
  done
  mkdir -p "$KAFKA_HOME/conf"
  _kafka_render "$KAFKA_TEMPLATES/server.properties" "$KAFKA_HOME/conf/server.properties"
  if tls_enabled; then
    # Appended to the rendered file (mode 600: it holds the key store password).
    _kafka_render "$KAFKA_TEMPLATES/server-tls.properties" "$KAFKA_HOME/conf/server-tls.properties"
    cat "$KAFKA_HOME/conf/server-tls.properties" >> "$KAFKA_HOME/conf/server.properties"
    rm -f "$KAFKA_HOME/conf/server-tls.properties"
  fi
  cp "$KAFKA_TEMPLATES/log4j2.properties" "$KAFKA_HOME/conf/log4j2.properties"
  _kafka_format
  [ "$KAFKA_JMX_EXPORTER_PORT" = 0 ] || where="$where, metrics on 127.0.0.1:$KAFKA_JMX_EXPORTER_PORT"
  say kafka "starting Kafka $KAFKA_VERSION on $where (log: $KAFKA_LOG)"
  _kafka_cmd
  start_daemon kafka "$KAFKA_LOG" "${KAFKA_CMD[@]}"
  jmx_exporter_id kafka "$KAFKA_JMX_EXPORTER_PORT" > "$RUN_DIR/kafka.jmx"
  wait_until kafka 120 "$KAFKA_LOG" "$VENV_PY" -m ops.kafka_admin check
}

kafka_setup() {
  "$VENV_PY" -m ops.kafka_admin setup || fail kafka "topic/ACL setup failed (see above)" "$KAFKA_LOG"
}

kafka_stop() {
  stop_daemon kafka 60
}

kafka_status() {
  local addr="${KAFKA_BOOTSTRAP_SERVERS:-$STACK_BIND_HOST:$KAFKA_CLIENT_PORT}" reason
  if [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    if reason=$("$VENV_PY" -m ops.kafka_admin check 2>&1); then
      echo "kafka      up    external  $addr"; return 0
    fi
    echo "kafka      down  external  $addr  (${reason##*$'\n'})"; return 1
  fi
  local version data
  version=$(find "$KAFKA_HOME/lib" -maxdepth 1 -name 'kafka_2.13-*.jar' 2>/dev/null | sed 's/.*kafka_2.13-\(.*\)\.jar/\1/' | head -n1)
  data="$(du_human "$KAFKA_HOME/data")"
  if ! is_running kafka; then
    echo "kafka      down  ${version:-not installed}  $addr  data ${data:-none}"; return 1
  fi
  if ! reason=$("$VENV_PY" -m ops.kafka_admin check 2>&1); then
    echo "kafka      down  $version  $addr  data ${data:-none}  (process $(pid_of kafka) runs but: ${reason##*$'\n'})"; return 1
  fi
  echo "kafka      up    $version  $addr  data ${data:-none}  pid $(pid_of kafka)"
}

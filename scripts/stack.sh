#!/usr/bin/env bash
# The local stack: Kafka (KRaft), Cassandra 5 and FerretDB, installed from the
# registries into .stack/, started on 127.0.0.1, checked with real requests; and Prometheus
# (scripts/stack/prometheus.sh) when PROMETHEUS_ENABLED=true or when named (`make monitoring`).
#
#   scripts/stack.sh up|down|status|reset|logs [SERVICE...]
#
# Kafka and Cassandra always run with the Prometheus JMX exporter agent (KAFKA_/
# CASSANDRA_JMX_EXPORTER_PORT, 0: without); `up` restarts a server whose agent differs.
#
# A server whose address is set in the environment (KAFKA_BOOTSTRAP_SERVERS,
# CASSANDRA_HOSTS, MONGO_URI) is external: it is neither installed nor started,
# only checked and set up (topic, ACLs, schema, users) when credentials allow.
#
# STACK_TLS=true (the default; `make up TLS=0|1`): a local CA and server certificate are made
# once under $STACK_DIR/tls/ and every local server also offers TLS to clients (Kafka SASL_SSL
# on KAFKA_TLS_PORT, Cassandra on its native port, FerretDB on MONGO_TLS_PORT), beside the
# plaintext loopback listeners. A server running with the other STACK_TLS is restarted by `up`.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
for svc in kafka cassandra ferretdb prometheus; do
  [ -f "$ROOT/scripts/stack/$svc.sh" ] || { echo "stack: scripts/stack/$svc.sh is missing" >&2; exit 2; }
  . "$ROOT/scripts/stack/$svc.sh"
done
. "$ROOT/scripts/stack/tls.sh"

ALL=(kafka cassandra ferretdb)
case "${PROMETHEUS_ENABLED:-false}" in true | TRUE | True | 1 | yes | on) ALL+=(prometheus) ;; esac
is_local() {
  case "$1" in
    prometheus) true ;;
    kafka) [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ] ;;
    cassandra) [ -z "${CASSANDRA_HOSTS:-}" ] ;;
    ferretdb) [ -z "${MONGO_URI:-}" ] ;;
  esac
}

[ -x "$VENV_PY" ] || { echo "stack: run 'make venv' first (.venv is missing)" >&2; exit 2; }

cmd="${1:-status}"; shift || true
services=("$@"); [ ${#services[@]} -gt 0 ] || services=("${ALL[@]}")

case "$cmd" in
  up)
    t0=$SECONDS
    tls_mode=false; tls_enabled && tls_mode=true
    for s in "${services[@]}"; do
      if is_local "$s"; then "${s}_install"; else say "$s" "external server configured: not installing"; fi
    done
    if [ "$tls_mode" = true ]; then tls_ensure; fi
    for s in "${services[@]}"; do
      if [ "$s" = prometheus ]; then prometheus_start; prometheus_setup; continue; fi
      if is_local "$s"; then
        # $RUN_DIR/SERVICE.tls records the STACK_TLS a server was started with (none: false).
        running_tls="$(cat "$RUN_DIR/$s.tls" 2>/dev/null || echo false)"
        if is_running "$s" && [ "$running_tls" != "$tls_mode" ]; then
          say "$s" "running with STACK_TLS=$running_tls: restarting it with STACK_TLS=$tls_mode"
          "${s}_stop"
        fi
        "${s}_start"
        echo "$tls_mode" > "$RUN_DIR/$s.tls"
      fi
      "${s}_setup"
    done
    say stack "up in $((SECONDS - t0))s"
    ;;
  down)
    # Prometheus first (it would only record the others going down), and always with the
    # whole stack, whether PROMETHEUS_ENABLED says it was started or `make monitoring` did.
    [ $# -gt 0 ] || services=(prometheus kafka cassandra ferretdb)
    for s in "${services[@]}"; do is_local "$s" && "${s}_stop"; done
    ;;
  status)
    rc=0
    for s in "${services[@]}"; do "${s}_status" || rc=1; done
    # Not enabled, but started by `make monitoring`: shown, never failing.
    if [ $# -eq 0 ] && [[ " ${ALL[*]} " != *" prometheus "* ]] && is_running prometheus; then
      prometheus_status
    fi
    exit $rc
    ;;
  reset)
    if [ "${FORCE:-0}" != 1 ]; then
      read -r -p "This wipes all data of the local Kafka, Cassandra and FerretDB. Continue? [y/N] " ans
      [ "$ans" = y ] || [ "$ans" = Y ] || { echo "aborted"; exit 1; }
    fi
    for s in "${services[@]}"; do
      is_local "$s" || continue
      "${s}_stop"
      rm -rf "$STACK_DIR/$s/data"
      say "$s" "data wiped"
      if [ "$s" = kafka ]; then
        # The job's checkpoints hold Kafka offsets and the lake holds what they produced:
        # with a new, empty topic both would be wrong (the job stops on the data loss).
        ckpt="$(abspath "${CHECKPOINT_DIR:-checkpoints}")"; lake="$(abspath "${LAKE_DIR:-lake}")"
        find "$ckpt" -mindepth 1 -maxdepth 1 ! -name .gitkeep -exec rm -rf {} + 2>/dev/null
        rm -rf "$lake"
        say job "checkpoints ($ckpt) and lake ($lake) wiped with the topic"
      fi
    done
    ;;
  logs)
    files=(); for s in "${services[@]}"; do [ -f "$LOG_DIR/$s.log" ] && files+=("$LOG_DIR/$s.log"); done
    tail -n 50 -F "${files[@]}"
    ;;
  *)
    echo "usage: scripts/stack.sh up|down|status|reset|logs [kafka|cassandra|ferretdb|prometheus ...]" >&2; exit 2 ;;
esac

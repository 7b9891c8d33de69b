#!/usr/bin/env bash
# `make demo`: the whole pipeline on the local stack (already started by `make up`):
# the producer (live API, or the local source when it does not answer), the streaming
# job, the dashboard and the monitor. Ctrl-C stops them cleanly; the stack keeps running
# (`make down` stops it).
#
#   scripts/demo.sh [--dry-run] [producer] [job] [dashboard] [monitor]   (default: all four)
#
# The producer, the job and the dashboard run under ops.supervise, which restarts a crashed
# process with capped backoff for as long as the demo runs, and alerts once after repeated
# crashes: a job that keeps crashing never stops the others (the producer spools, the
# dashboard shows the alert, `make status` fails while it is down).
# --dry-run prints the settings the job would start with, and starts nothing.
set -uo pipefail
# The caller's own choice, before lib.sh overlays .env on the environment (.env always has
# KAFKA_STARTING_OFFSETS, `latest` for the job as specified, which must not apply here).
caller_starting_offsets="${KAFKA_STARTING_OFFSETS:-}"
. "$(dirname "$0")/lib.sh"

export PYTHONPATH="$ROOT"
# A fresh demo checkpoint reads the topic from the beginning: everything the producer sent
# before the job's first batch (it starts first, the job takes ~30 s) is delivered. An
# existing checkpoint resumes where it stopped, whatever this says.
# `KAFKA_STARTING_OFFSETS=latest make demo` overrides it.
export KAFKA_STARTING_OFFSETS="${caller_starting_offsets:-earliest}"

dry_run=0
wanted=()
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    producer | job | dashboard | monitor) wanted+=("$arg") ;;
    *) echo "usage: scripts/demo.sh [--dry-run] [producer] [job] [dashboard] [monitor]" >&2; exit 2 ;;
  esac
done
[ ${#wanted[@]} -gt 0 ] || wanted=(producer job dashboard monitor)
want() { [[ " ${wanted[*]} " == *" $1 "* ]]; }

if [ "$dry_run" = 1 ]; then
  # What the job itself resolves (common/job_settings.py), from this environment.
  "$VENV_PY" -c 'from common import job_settings; j = job_settings.load()
print(f"job: starting offsets {j.starting_offsets} (fresh checkpoint only), checkpoints {j.checkpoint_dir}")' \
    || exit 2
  echo "would start: ${wanted[*]}"
  exit 0
fi

mkdir -p "$LOG_DIR"
pids=()        # everything started here, stopped on Ctrl-C
supervised=()  # "name:pid" of the supervisors, watched below

stop_all() {
  trap - INT TERM
  say demo "stopping (the stack keeps running; 'make down' stops it)"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  exit 0
}
trap stop_all INT TERM

# supervise NAME [supervisor options] -- CMD...: NAME under ops.supervise, output in its log.
supervise() {
  local name="$1"; shift
  "$VENV_PY" -m ops.supervise "$name" --log "$LOG_DIR/$name.log" "$@" &
  pids+=($!)
  supervised+=("$name:$!")
}

if want producer; then
  say demo "starting the producer (source: auto) -> $LOG_DIR/producer.log"
  supervise producer -- "$VENV_PY" "$ROOT/producer.py" --source auto
fi

if want job; then
  say demo "starting the streaming job -> $LOG_DIR/job.log (Spark UI: http://127.0.0.1:${SPARK_UI_PORT:-4040}; starting offsets of a fresh checkpoint: $KAFKA_STARTING_OFFSETS)"
  supervise job --backoff 5 -- "$ROOT/scripts/spark-submit.sh" "$ROOT/jobs/stream_users.py"
fi

if want dashboard; then
  if [ -f "$ROOT/dashboard/app.py" ]; then
    say demo "starting the dashboard: http://127.0.0.1:${DASHBOARD_PORT:-8501}"
    supervise dashboard --backoff 5 -- "$ROOT/scripts/dashboard.sh"
  else
    warn demo "the dashboard is not built yet: watch the job's log instead"
  fi
fi

if want monitor; then
  "$VENV_PY" -m ops.monitor >>"$LOG_DIR/monitor.log" 2>&1 &
  pids+=($!)
fi

# Prometheus runs when `make up` started it (PROMETHEUS_ENABLED=true) or `make monitoring` did.
if is_running prometheus; then
  say demo "Prometheus scrapes the producer, the job, Kafka, Cassandra and FerretDB: http://127.0.0.1:${PROMETHEUS_PORT:-9090}/api/v1/targets"
fi
say demo "running; Ctrl-C stops it. Logs: tail -f $LOG_DIR/{producer,job}.log; state: make status"
# Follow the job's per-batch lines while everything runs.
touch "$LOG_DIR/job.log" "$LOG_DIR/producer.log"
tail -n 0 -F "$LOG_DIR/job.log" "$LOG_DIR/producer.log" 2>/dev/null | grep --line-buffered -E "batch|ERROR|source|ALERT" &
pids+=($!)
# A supervisor ends only when its process finished on purpose (exit 0): say so once, and
# keep everything else running.
ended=" "
while true; do
  for entry in "${supervised[@]}"; do
    name="${entry%%:*}" pid="${entry##*:}"
    if [[ "$ended" != *" $pid "* ]] && ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid"; code=$?
      ended+="$pid "
      warn demo "$name is no longer supervised (its supervisor exited $code): see $LOG_DIR/$name.log; the rest keeps running"
    fi
  done
  sleep 2
done

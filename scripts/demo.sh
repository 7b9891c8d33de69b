#!/usr/bin/env bash
# `make demo`: the whole pipeline on the local stack (already started by `make up`):
# the producer (live API, or the local source when it does not answer), the streaming
# job, and the dashboard. Ctrl-C stops all three cleanly; the stack keeps running
# (`make down` stops it). The producer and the job run under ops.supervise, which
# restarts a crashed process with backoff and gives up (with an alert) after repeated crashes.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

export PYTHONPATH="$ROOT"
# A fresh demo checkpoint reads the topic from the beginning, so nothing produced
# before the job started is lost (the job's own default is `latest`, as specified).
export KAFKA_STARTING_OFFSETS="${KAFKA_STARTING_OFFSETS:-earliest}"
mkdir -p "$LOG_DIR"
pids=()

stop_all() {
  trap - INT TERM
  say demo "stopping (the stack keeps running; 'make down' stops it)"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  exit 0
}
trap stop_all INT TERM

say demo "starting the producer (source: auto) -> $LOG_DIR/producer.log"
"$VENV_PY" -m ops.supervise producer --log "$LOG_DIR/producer.log" -- "$VENV_PY" "$ROOT/producer.py" --source auto &
pids+=($!)

say demo "starting the streaming job -> $LOG_DIR/job.log (Spark UI: http://127.0.0.1:${SPARK_UI_PORT:-4040})"
"$VENV_PY" -m ops.supervise job --backoff 5 --log "$LOG_DIR/job.log" -- "$ROOT/scripts/spark-submit.sh" "$ROOT/jobs/stream_users.py" &
pids+=($!)

if [ -f "$ROOT/dashboard/app.py" ]; then
  say demo "starting the dashboard: http://127.0.0.1:${DASHBOARD_PORT:-8501}"
  "$ROOT/scripts/dashboard.sh" >>"$LOG_DIR/dashboard.log" 2>&1 &
  pids+=($!)
else
  warn demo "the dashboard is not built yet: watch the job's log instead"
fi

"$VENV_PY" -m ops.monitor >>"$LOG_DIR/monitor.log" 2>&1 &
pids+=($!)

say demo "running; Ctrl-C stops it. Logs: tail -f $LOG_DIR/{producer,job}.log"
# Follow the job's per-batch lines while everything runs.
tail -n 0 -F "$LOG_DIR/job.log" "$LOG_DIR/producer.log" 2>/dev/null | grep --line-buffered -E "batch|ERROR|source" &
pids+=($!)
while true; do
  for pid in "${pids[@]:0:2}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      warn demo "a supervisor gave up (pid $pid): see $LOG_DIR/producer.log and $LOG_DIR/job.log"
      stop_all
    fi
  done
  sleep 2
done

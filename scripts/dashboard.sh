#!/usr/bin/env bash
# `make dashboard`: the Streamlit dashboard alone, on DASHBOARD_HOST:DASHBOARD_PORT
# (127.0.0.1:8501 by default). Reads Cassandra as the read-only dashboard account; the
# stack must be up (`make up`). Headless, no usage statistics sent anywhere.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

export PYTHONPATH="$ROOT"
HOST="${DASHBOARD_HOST:-127.0.0.1}"
PORT="${DASHBOARD_PORT:-8501}"
[ -x "$VENV_PY" ] || fail dashboard "no virtualenv at $ROOT/.venv: run 'make venv'"
port_free "$PORT" || [ "$HOST" != "$STACK_BIND_HOST" ] || fail dashboard "port $PORT is taken (set DASHBOARD_PORT)"

say dashboard "http://$HOST:$PORT (log in with DASHBOARD_OPERATOR_USER or DASHBOARD_VIEWER_USER from .env)"
exec "$VENV_PY" -m streamlit run "$ROOT/dashboard/app.py" \
  --server.address "$HOST" \
  --server.port "$PORT" \
  --server.headless true \
  --server.fileWatcherType none \
  --server.runOnSave false \
  --browser.gatherUsageStats false \
  --global.developmentMode false \
  --client.toolbarMode minimal \
  --theme.base light

# Random User Analytics: `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export JAVA_HOME := $(or $(JAVA_HOME_17),/usr/lib/jvm/java-17-openjdk-amd64)
export PYTHONPATH := $(CURDIR)

.PHONY: help env venv browser insights bench faults bench-insights up down status servers monitor monitoring reset logs test test-unit test-integration test-e2e lint format demo producer job dashboard clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

env: ## create .env with random secrets (first run only)
	@python3 -m common.envfile

$(STAMP): pyproject.toml
	@echo "[venv] installing Python dependencies into $(VENV) (first run: about a minute)"
	@python3 -m venv $(VENV)
	@PIP_CACHE_DIR=$$(python3 -m common.envfile --shell | sed -n "s/^export STACK_CACHE_DIR=//p" | tr -d "'" | sed "s|^\([^/]\)|$(CURDIR)/\1|")/pip \
	  $(VENV)/bin/pip install --progress-bar on -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## install the Python dependencies into .venv

up: venv ## install what is missing and start Kafka, Cassandra and FerretDB (TLS=0|1: client TLS off/on, default on)
	@$(if $(TLS),STACK_TLS=$(TLS) )scripts/stack.sh up

down: ## stop the servers (and Prometheus) gracefully (data kept)
	@scripts/stack.sh down

status: venv ## the whole pipeline: servers, job, producer, freshness, lag (exit 1 when down or stale; --json: python -m ops.status --json)
	@$(PY) -m ops.status

servers: ## the servers only: up/down, version, address, data size
	@scripts/stack.sh status

monitor: venv ## evaluate the alert rules continuously (log, webhook, e-mail)
	@$(PY) -m ops.monitor

monitoring: venv ## the stack plus Prometheus on 127.0.0.1:9090 (built once from the Go module proxy), scraping every part; prints its URL
	@PROMETHEUS_ENABLED=true scripts/stack.sh up && scripts/stack.sh status prometheus

reset: ## wipe all data of the local stack (asks first unless FORCE=1)
	@scripts/stack.sh reset

logs: ## tail the servers' logs
	@scripts/stack.sh logs

dashboard: venv ## the Streamlit dashboard alone (http://127.0.0.1:8501; needs `make up`)
	@scripts/dashboard.sh

browser: ## Debian's headless Chromium for the dashboard's browser test (apt, first run only)
	@scripts/install-browser.sh

test: venv browser ## run every test tier (starts the stack itself)
	@$(PY) -m pytest tests -m "unit or integration or e2e" --durations=30

test-unit: venv ## unit tests only (no servers)
	@$(PY) -m pytest tests -m unit

lint: venv ## ruff and mypy
	@$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy common ingest jobs dashboard ops producer.py

format: venv ## apply ruff's formatting
	@$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

insights: venv ## the insight analyses (Cassandra, Delta) -> reports/insights.{md,html,json}
	@$(PY) -m analytics

bench: up ## measure throughput, freshness, recovery, footprint, stage ceilings (~40 min) -> bench/results/, docs/PERFORMANCE.md
	@echo "[bench] 1/4 producer alone (bench/producer_rate.py)"
	@$(PY) bench/producer_rate.py --seconds 10 --results 500
	@echo "[bench] 2/4 each stage alone (bench/stages.py, through scripts/spark-submit.sh)"
	@set -o pipefail; scripts/spark-submit.sh bench/stages.py $(STAGES_ARGS) 2>&1 | grep --line-buffered -E '^\[bench|Error|Exception'
	@echo "[bench] 3/4 the whole pipeline under load (bench/end_to_end.py)"
	@$(PY) -m bench.end_to_end $(BENCH_ARGS)
	@echo "[bench] 4/4 docs/PERFORMANCE.md"
	@$(PY) -m bench.report

faults: up ## the pipeline through server faults, then every store compared with the topic (~25 min) -> bench/results/faults.json
	@$(PY) -m bench.faults $(FAULTS_ARGS)

bench-insights: up ## every insight analysis at 100k and 1M users (~25 min) -> bench/results/insights.json
	@set -o pipefail; scripts/spark-submit.sh bench/insights.py $(INSIGHTS_ARGS) 2>&1 | grep --line-buffered -E '^\[bench|Error|Exception'

demo: up ## the whole pipeline with the dashboard on the local stack (and Prometheus with PROMETHEUS_ENABLED=true)
	@scripts/demo.sh

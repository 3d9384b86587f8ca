# Territory Planner: every target installs what is missing first (scripts/install-env.sh is idempotent).
# Main targets: make demo | make test | make package. See README.md.
VENV ?= .venv
PY := $(VENV)/bin/python
QGIS_PROCESS := scripts/qgis_process.sh
PYTEST_ARGS ?=
export QT_QPA_PLATFORM := offscreen
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: env demo test test-engine test-qgis test-e2e lint format package bench screenshot sample-data clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

env:  ## install QGIS (apt) and the pinned Python stack into $(VENV) when missing
	@bash scripts/install-env.sh $(VENV)

demo: env  ## run the whole chain on the bundled sample data; outputs go to demo_output/
	@bash scripts/demo.sh

test: env  ## run every test: engine, in-process QGIS and qgis_process end-to-end
	$(PY) -m pytest $(PYTEST_ARGS)

test-engine: env  ## engine tests only (no QGIS)
	$(PY) -m pytest tests/engine $(PYTEST_ARGS)

test-qgis: env  ## in-process QGIS tests only (pytest-qgis)
	$(PY) -m pytest tests/qgis $(PYTEST_ARGS)

test-e2e: env  ## qgis_process end-to-end tests only
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

lint: env  ## ruff check + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: env  ## ruff format + autofix
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

package:  ## build dist/territory_planner.zip for Plugin Manager > Install from ZIP
	@python3 scripts/package.py

bench: env  ## run the benchmarks; JSON results go to benchmarks/results/
	$(PY) benchmarks/bench_network.py
	$(PY) benchmarks/bench_territories.py
	$(PY) benchmarks/bench_editor.py
	$(PY) benchmarks/bench_sizing.py
	@BENCH_DEPS=1 bash scripts/install-env.sh $(VENV) >/dev/null
	$(PY) benchmarks/bench_units.py

screenshot: env package  ## real QGIS under Xvfb with the packaged plugin; PNGs go to docs/
	@bash scripts/screenshot.sh
	@bash scripts/screenshot_report.sh

sample-data: env  ## regenerate sample_data/ accounts and reps (deterministic)
	$(PY) scripts/make_sample_data.py

clean:  ## remove build outputs (keeps the venv)
	rm -rf build dist demo_output .pytest_cache .ruff_cache

# emoforge — the two commands a newcomer needs:
#   make demo   build the demo dataset end to end (creates .venv and installs everything first)
#   make test   run the test suite (what .ci/run calls)
# and: make ui (Dagster UI on the same definitions and data directory), make bench.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
DATA   ?= $(CURDIR)/data/demo
CONFIG ?=
STAMP   = $(VENV)/.emoforge-installed

.PHONY: demo test ui bench install clean-demo lint-imports

install: $(STAMP)

# torch/torchvision are pinned (this machine serves exactly these from disk; see README).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/emoforge build --demo --data-dir $(DATA) $(if $(CONFIG),--config $(CONFIG))

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint-imports: $(STAMP)
	$(BIN)/lint-imports

# Dagster UI on the same definitions and data directory as `make demo`; the instance lives in
# $(DATA)/dagster and persists between runs.
ui: $(STAMP)
	mkdir -p $(DATA)/dagster
	test -f $(DATA)/dagster/dagster.yaml || cp dagster.yaml $(DATA)/dagster/dagster.yaml
	DAGSTER_HOME=$(DATA)/dagster EMOFORGE_HOME=$(DATA) \
	  $(if $(CONFIG),EMOFORGE_CONFIG=$(abspath $(CONFIG)),EMOFORGE_DEMO=1) \
	  $(BIN)/dagster dev -h 127.0.0.1 -p 3000

bench: $(STAMP)
	$(BIN)/python bench/bench_phash.py
	$(BIN)/python bench/bench_neardup.py
	$(BIN)/python bench/bench_download.py
	$(BIN)/python bench/bench_annotations.py

clean-demo:
	rm -rf $(DATA)

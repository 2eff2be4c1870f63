# pose-service: two commands on a fresh machine.
#   make demo   - install everything, fetch the model weights, run the service on a video
#   make test   - install everything, fetch the model weights, run the whole test suite
#   make chaos  - the fault suite (kill -9, PostgreSQL restarts/outage, network faults, child faults)
# Override the torch build with TORCH=... (e.g. `make demo TORCH=torch` for a CUDA build),
# the video with VIDEO=/abs/path.mp4 (default: runner_1080p.mp4 from ../shared/media or POSE_SHARED_DIR).

PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
VIDEO  ?=
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install models demo test lint screenshots chaos bench bench-queue bench-warm bench-web bench-pipeline bench-parity \
        bench-retention clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test,bench]"
	# the browser tests' Chromium (Debian's package; tests/browser/ skip, saying why, where it cannot be had)
	command -v chromium >/dev/null || (command -v apt-get >/dev/null && (apt-get install -y -q chromium \
		|| (apt-get update -q && apt-get install -y -q chromium))) || echo "no chromium: the browser tests will be skipped"
	touch $@

models: install
	$(VENV)/bin/pose-service models fetch

demo: install models
	$(VENV)/bin/pose-service demo $(VIDEO)

test: install models
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# the fault suite (minutes; not part of `make test`): CHAOS_ARGS="--quick" or "--only kill9_loop"
chaos: install
	$(PY) -m chaos.run $(CHAOS_ARGS)

bench: bench-queue bench-warm bench-web bench-pipeline bench-parity bench-retention

bench-queue: install
	$(PY) bench/queue_core.py

bench-warm: install models
	$(PY) bench/warm_vs_fresh.py

bench-web: install
	$(PY) bench/web_load.py

bench-pipeline: install models
	$(PY) bench/pipeline_fps.py

bench-parity: install models
	$(PY) bench/tensor_parity.py

# about 7 minutes and 17 GB of scratch database (dropped at the end)
bench-retention: install
	$(PY) bench/retention_claims.py

# docs/screenshots/*.png (README): a real serve on a scratch database, the runner twice, the pages in
# headless Chromium (a few minutes; SCREENSHOT_ARGS="--database-url postgresql://..." to use a server)
screenshots: install models
	$(PY) docs/screenshots.py $(SCREENSHOT_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info

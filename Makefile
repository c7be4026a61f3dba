# Each target bootstraps .venv on first use (torch 2.14.1 + torchvision 0.29.1 and the rest, pinned).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
READY := $(VENV)/.ready

.PHONY: run test ray bench bench-against bench-viewers bench-sandbox bench-classroom bench-cluster reproduce lint clean

$(READY): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(READY)

run: $(READY)  ## open the dashboard
	$(PY) serve.py

test: $(READY)  ## lint, then the whole test suite
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

ray: $(READY)  ## install Ray (requirements-ray.txt), to train on a cluster: README, "More than one machine"
	$(PY) -m pip install --quiet -r requirements-ray.txt

bench: $(READY)  ## throughput (images/s, GFLOP/s vs sgemm), the quick demo headless and watched by 2 Chromium tabs
	$(PY) -m lenet bench --pool
	$(PY) -m benchmarks.watching --rounds 3  # medians: one round alone varies by 10% on a shared machine

bench-against: $(READY)  ## this checkout side by side with an older one, alternating: make bench-against REF=086dac6 [ARGS=--reproduce]
	$(PY) -m benchmarks.against $(REF) $(ARGS)

bench-viewers: $(READY)  ## what 1 and 20 viewers of the Live page cost the server and training (~6 min)
	$(PY) -m benchmarks.viewers

bench-sandbox: $(READY)  ## the sandbox's mouse-up-to-answers time in headless Chromium (median of 10 strokes)
	$(PY) -m benchmarks.sandbox

bench-classroom: $(READY)  ## a class of 30 in a round: the time until all trained, waits, Live's lag, CPU (~8 min; root)
	$(PY) -m benchmarks.classroom

bench-cluster: $(READY)  ## the quick demo on the local pool and on Ray with 1 and 2 nodes, one killed (~15 min; root)
	$(PY) -m pip install --quiet -r requirements-ray.txt
	$(PY) -m benchmarks.cluster

reproduce: $(READY)  ## every variant on full data x 3 seeds; rewrites RESULTS.md and artifacts/pretrained (~1 h on a CPU)
	$(PY) -m lenet reproduce --seeds 3 --publish

lint: $(READY)  ## fix what ruff can fix, format
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

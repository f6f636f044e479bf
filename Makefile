# Two commands do all the set-up on a fresh machine (see README.md):
#   make demo   creates .venv (CPU path), then runs the main job on the embedded default
#   make test   creates .venv (CPU path), then runs the test suite
# GPU machines: make demo TARGET=gpu / make test TARGET=gpu (the CUDA build of vllm).
VENV ?= .venv
TARGET ?= cpu
PY := $(VENV)/bin/python
SETUP := $(VENV)/.setup-done-$(TARGET)

.PHONY: demo test lint setup setup-gpu clean

$(SETUP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(TARGET)
	touch $(SETUP)

setup: $(SETUP)

setup-gpu:
	$(MAKE) setup TARGET=gpu

demo: $(SETUP)
	$(VENV)/bin/specbench mapping

test: $(SETUP)
	$(PY) -m pytest -q

lint: $(SETUP)
	$(VENV)/bin/ruff check src tests benchmarks scripts

clean:
	rm -rf $(VENV) mlflow.db mlruns .pytest_cache

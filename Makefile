# Two commands do all the set-up on a fresh machine (see README.md):
#   make demo   creates .venv (CPU path), then runs the efficiency_optimized category on the embedded default
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

# The main job on the embedded default: every runnable cell of the category that holds
# SmolLM2 (the others are skipped with their reasons), tracked in ./mlflow.db.  First SmolLM2
# is AWQ-quantized into smollm2_135m_awq (minutes, once; later demos find it up to date), so
# the category compares a real quantized variant with its parent.
DEMO_CATEGORY ?= efficiency_optimized
DEMO_SAMPLES ?= 20
demo: $(SETUP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" mlflow run . -e quantize --experiment-name specbench \
		-P model=smollm2_135m --env-manager local
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" mlflow run . -e category --experiment-name specbench -P name=$(DEMO_CATEGORY) \
		-P samples=$(DEMO_SAMPLES) --env-manager local
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" mlflow run . -e compare --experiment-name specbench \
		-P category=$(DEMO_CATEGORY) --env-manager local

test: $(SETUP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -q

lint: $(SETUP)
	$(VENV)/bin/ruff check src tests benchmarks scripts

clean:
	rm -rf $(VENV) mlflow.db mlruns .pytest_cache

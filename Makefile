# Two commands do all the set-up on a fresh machine (see README.md):
#   make demo   creates .venv (CPU path), then runs the efficiency_optimized category on the embedded default
#               and the embedded_math one (a LoRA specialist derived here vs SmolLM2)
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
# is AWQ-quantized into smollm2_135m_awq and LoRA-fine-tuned on GSM8K's train split into
# smollm2_135m_gsm8k_lora (minutes each, once; later demos find both up to date), so the
# category compares a real quantized variant with its parent, and DEMO_SPECIALIST's category
# (embedded_math) the derived specialist with the generalist it came from, on the same items.
DEMO_CATEGORY ?= efficiency_optimized
DEMO_SPECIALIST ?= embedded_math
DEMO_SAMPLES ?= 20
MLRUN := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" mlflow run . --experiment-name specbench --env-manager local
demo: $(SETUP)
	$(MLRUN) -e quantize -P model=smollm2_135m
	$(MLRUN) -e finetune -P model=smollm2_135m -P recipe=gsm8k_lora
	$(MLRUN) -e category -P name=$(DEMO_CATEGORY) -P samples=$(DEMO_SAMPLES)
	$(MLRUN) -e category -P name=$(DEMO_SPECIALIST) -P samples=$(DEMO_SAMPLES)
	$(MLRUN) -e compare -P category=$(DEMO_CATEGORY)
	$(MLRUN) -e compare -P category=$(DEMO_SPECIALIST)

test: $(SETUP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -q

lint: $(SETUP)
	$(VENV)/bin/ruff check src tests benchmarks scripts

clean:
	rm -rf $(VENV) mlflow.db mlruns .pytest_cache

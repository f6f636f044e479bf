"""Weights made here from the embedded GGUF: converted into a plain HF folder, or assembled by a builder.

Split from :mod:`specbench.weights` (which decides where weights come from and calls these when it
materializes them) to keep each module small; torch and transformers are imported only inside.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from specbench.registry.schema import ModelConfig
from specbench.weights import ModelUnavailable, _find_gguf


def _build(model: ModelConfig, out: Path) -> None:
    """A model assembled from the GGUF's text model (converted into a scratch folder first) by the
    builder its ``offline.build`` names (see :mod:`specbench.builders`); atomic like the conversion."""
    import shutil
    import tempfile

    from specbench.builders import BUILDERS

    assert model.offline is not None and model.offline.build is not None
    builder = BUILDERS.get(model.offline.build)
    if builder is None:
        raise ModelUnavailable(f"{model.key}: unknown builder '{model.offline.build}'; valid: {', '.join(BUILDERS)}")
    t0 = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as scratch:
        text_dir = Path(scratch) / "text"
        if getattr(builder, "text_model", True):  # a builder that uses no text model skips the conversion
            _convert_gguf(_find_gguf(model), text_dir, model)
        tmp = Path(scratch) / "built"
        builder(text_dir, tmp, 0)
        (tmp / "specbench.json").write_text(json.dumps({
            "model": model.key, "builder": model.offline.build, "random_weights": model.random_weights,
            "built_s": round(time.perf_counter() - t0, 1)}))
        try:
            tmp.rename(out)
        except OSError:  # a concurrent builder won the race
            shutil.rmtree(tmp, ignore_errors=True)


def _convert_gguf(gguf: Path, out: Path, model: ModelConfig) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    lm = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # The dequantized weights are plain tensors now; drop the GGUF quantizer so that
    # save_pretrained writes an ordinary checkpoint that vLLM can read.
    lm.hf_quantizer = None
    if hasattr(lm.config, "quantization_config"):
        del lm.config.quantization_config
    lm.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "specbench.json").write_text(json.dumps({
        "model": model.key, "gguf": str(gguf), "converted_s": round(time.perf_counter() - t0, 1),
    }))
    try:
        tmp.rename(out)  # atomic: a concurrent converter loses the race harmlessly
    except OSError:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)

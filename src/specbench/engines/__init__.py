"""Engines behind one interface; ``make_engine`` picks one from the model and preset.

The engine modules import their heavy libraries lazily, so listing or validating the
registry never imports torch or vLLM.
"""

from __future__ import annotations

from specbench.registry.schema import ModelConfig, PresetConfig
from specbench.engines.base import Engine, Generation, GenParams, LoglikResult, PeakRSS, Timer
from specbench.weights import SIMULATED_SOURCE, ResolvedModel, gpu_count

ENGINES = ("vllm", "transformers", "openai")

__all__ = ["ENGINES", "Engine", "Generation", "GenParams", "LoglikResult", "PeakRSS", "Timer",
           "make_engine", "planned_params"]


def planned_params(kind: str, model: ModelConfig, preset: PresetConfig, resolved: ResolvedModel,
                   seed: int = 0) -> dict:
    """The engine arguments a run will use, computed without starting the engine.

    Unpacked AWQ weights (``SIMULATED_SOURCE``) are a plain float checkpoint: read in float32
    (which holds their float16 values exactly) and with no quantization method."""
    params = _planned_params(kind, model, preset, resolved, seed)
    if resolved.source == SIMULATED_SOURCE and kind != "openai":
        params.pop("quantization", None)
        params["dtype"] = "float32"
    return params


def _planned_params(kind: str, model: ModelConfig, preset: PresetConfig, resolved: ResolvedModel,
                    seed: int) -> dict:
    if kind == "vllm":
        from specbench.engines.vllm_engine import engine_args

        return engine_args(model, preset, resolved.path, on_gpu=gpu_count() > 0, seed=seed)
    if kind == "transformers":
        from specbench.engines.vllm_engine import engine_args

        dtype = engine_args(model, preset, resolved.path, on_gpu=gpu_count() > 0)["dtype"]
        return {"model": resolved.path, "dtype": dtype,
                "batch_size": preset.max_num_seqs or model.evaluation_batch_size,
                "trust_remote_code": model.trust_remote_code, "seed": seed,
                **({"hf_overrides": dict(model.hf_overrides)} if model.hf_overrides else {})}
    if kind == "openai":
        return {"model": model.hf_id or model.key}
    raise ValueError(f"unknown engine '{kind}'; valid: {', '.join(ENGINES)}")


def make_engine(kind: str, params: dict, base_url: str | None = None) -> Engine:
    """Start an engine with the arguments from ``planned_params``."""
    if kind == "vllm":
        from specbench.engines.vllm_engine import VLLMEngine

        return VLLMEngine(params)
    if kind == "transformers":
        from specbench.engines.hf_engine import HFEngine

        return HFEngine(params["model"], dtype=params["dtype"], batch_size=params["batch_size"],
                        trust_remote_code=params["trust_remote_code"], seed=params["seed"],
                        hf_overrides=params.get("hf_overrides"))
    if kind == "openai":
        from specbench.engines.openai_engine import OpenAIEngine

        return OpenAIEngine(params["model"], base_url=base_url)
    raise ValueError(f"unknown engine '{kind}'; valid: {', '.join(ENGINES)}")

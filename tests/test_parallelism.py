"""Models that span GPUs and nodes: tensor x pipeline parallelism and vLLM's distributed executor
backend, from the registry and presets, into vLLM's engine arguments, the dry-run plan and the
checks (fast: nothing starts)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import yaml
from tests.conftest import ROOT

from specbench import pipeline
from specbench.engines.vllm_engine import engine_args
from specbench.registry import RegistryError, load_registry
from specbench.registry.schema import ConfigError, ModelConfig, PresetConfig, parallelism


def _model(registry, **changes) -> ModelConfig:
    return dataclasses.replace(registry.model("llama31_70b"), **changes)


def test_engine_args_carry_tp_pp_and_the_backend(registry):
    model = _model(registry, tensor_parallel_size=4, pipeline_parallel_size=2, min_gpus=8,
                   distributed_executor_backend="ray")
    args = engine_args(model, registry.preset("balanced"), "/w", on_gpu=True)
    assert (args["tensor_parallel_size"], args["pipeline_parallel_size"]) == (4, 2)
    assert args["distributed_executor_backend"] == "ray"
    plain = engine_args(registry.model("smollm2_135m"), registry.preset("balanced"), "/w", on_gpu=False)
    assert plain["pipeline_parallel_size"] == 1 and "distributed_executor_backend" not in plain  # vLLM chooses


def test_a_preset_overrides_the_models_parallelism(registry):
    model = _model(registry, tensor_parallel_size=4, min_gpus=8)
    preset = PresetConfig(gpu_memory_utilization=0.9, tensor_parallel_size=2, pipeline_parallel_size=4,
                          distributed_executor_backend="mp")
    par = parallelism(model, preset)
    assert (par.tensor, par.pipeline, par.backend, par.gpus) == (2, 4, "mp", 8) and par.fits(model) is None
    args = engine_args(model, preset, "/w", on_gpu=True)
    assert (args["tensor_parallel_size"], args["pipeline_parallel_size"], args["distributed_executor_backend"]) \
        == (2, 4, "mp")
    assert "needs 16 GPUs" in parallelism(model, dataclasses.replace(preset, pipeline_parallel_size=8)).fits(model)


@pytest.mark.parametrize(("changes", "key", "words"), [
    ({"pipeline_parallel_size": 0}, "pipeline_parallel_size", "must be >= 1"),
    ({"distributed_executor_backend": "mpi"}, "distributed_executor_backend", "valid: mp, ray"),
    ({"pipeline_parallel_size": 2}, "pipeline_parallel_size", "needs 8 GPUs but min_gpus is 4"),
])
def test_bad_parallelism_is_one_line_naming_the_key(registry, changes, key, words):
    with pytest.raises(ConfigError) as info:
        _model(registry, **changes).__post_init__()
    assert info.value.key == key and words in info.value.message
    with pytest.raises(ConfigError, match="valid: mp, ray"):
        PresetConfig(gpu_memory_utilization=0.9, distributed_executor_backend="nccl")


def test_validate_names_the_file_and_key(conf_copy):
    path = conf_copy / "models" / "llama31_70b.yaml"
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**data, "pipeline_parallel_size": 2}))
    r = subprocess.run([sys.executable, "-m", "specbench.cli", "validate"], capture_output=True, text=True, cwd=ROOT,
                       env={"SPECBENCH_CONF": str(conf_copy), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
                       timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "llama31_70b" in r.stderr and "pipeline_parallel_size" in r.stderr and "needs 8 GPUs" in r.stderr


def test_the_plan_shows_and_requests_the_gpus(conf_copy):
    path = conf_copy / "models" / "llama31_70b.yaml"
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**data, "pipeline_parallel_size": 2, "tensor_parallel_size": 2,
                                    "distributed_executor_backend": "ray"}))
    reg = load_registry(conf_copy)
    cplan = pipeline.plan_category(reg, "reasoning_specialized", models=["llama31_70b"], datasets=["gsm8k"])
    (cell,) = cplan.cells
    assert cell.needs | {"weights_gb": None, "memory_per_gpu_gb": None} == {
        "gpus": 4, "tensor_parallel": 2, "pipeline_parallel": 2, "backend": "ray", "gpus_requested": 4,
        "weights_gb": None, "memory_per_gpu_gb": None}
    util = reg.preset(reg.model("llama31_70b").preset).gpu_memory_utilization
    assert cell.needs["memory_per_gpu_gb"] == round(data["size_gb"] / 4 / util, 1)  # weights over TP x PP GPUs
    r = subprocess.run([sys.executable, "-m", "specbench.cli", "run", "category", "reasoning_specialized",
                        "--models", "llama31_70b", "--datasets", "gsm8k", "--dry-run"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120, env={
                           "SPECBENCH_CONF": str(conf_copy), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
                           "COLUMNS": "250"})
    assert r.returncode == 0, r.stderr
    table = [[c.strip() for c in line.split("│")[1:-1]] for line in r.stdout.splitlines() if "│" in line]
    head = next(line for line in r.stdout.splitlines() if "┃" in line)
    columns = [c.strip() for c in head.split("┃")[1:-1]]
    row = dict(zip(columns, table[0], strict=True))
    assert (row["tp"], row["pp"], row["backend"], row["gpus_req"]) == ("2", "2", "ray", "4")


def test_a_preset_asking_more_gpus_than_the_model_declares_is_refused(registry):
    reg = dataclasses.replace(registry, presets={**registry.presets, "wide": PresetConfig(
        gpu_memory_utilization=0.9, tensor_parallel_size=2)})
    with pytest.raises(RegistryError, match="preset wide on smollm2_135m: tensor_parallel_size 2 x "
                                            "pipeline_parallel_size 1 needs 2 GPUs but smollm2_135m's min_gpus is 1"):
        pipeline.plan_cell(reg, "smollm2_135m", "gsm8k", preset="wide")

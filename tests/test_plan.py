"""Which engine serves which model: the registry's ``engines`` field in cell and category plans."""

from __future__ import annotations

import pytest
import yaml

from specbench.cli import main
from specbench.engines import planned_params
from specbench.pipeline import CellUnavailable, engine_for, plan_category, plan_cell, start_engine
from specbench.registry import load_registry
from specbench.weights import SIMULATED_SOURCE, ResolvedModel, runnable_reason


def _allow_only(conf, key: str, engines: list[str]) -> None:
    path = conf / "models" / f"{key}.yaml"
    data = yaml.safe_load(path.read_text())
    data["engines"] = engines
    path.write_text(yaml.safe_dump(data))


def test_biogpt_is_declared_transformers_only(registry):
    biogpt = registry.model("biogpt")
    assert engine_for(biogpt, "vllm") is None
    assert engine_for(biogpt, "transformers") == "transformers"
    assert engine_for(biogpt, "openai") == "openai"  # an endpoint serves whatever it was started with
    assert engine_for(registry.model("qwen25_7b"), "vllm") == "vllm"  # no list: any engine


def test_a_single_cell_on_an_engine_the_model_refuses_says_which_to_use(registry, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # refused before any download is tried
    with pytest.raises(CellUnavailable, match="the vllm engine cannot serve it .* use --engine transformers"):
        plan_cell(registry, "biogpt", "pubmedqa", engine="vllm")


def test_category_runs_such_a_model_on_its_own_engine(conf_copy):
    _allow_only(conf_copy, "smollm2_135m", ["transformers"])
    reg = load_registry(conf_copy)
    cplan = plan_category(reg, "efficiency_optimized", engine="vllm", samples=2, models=["smollm2_135m"],
                          datasets=["arc_challenge"], baselines=False)
    (cell,) = cplan.cells
    assert cell.reason is None and cell.engine == "transformers"
    assert cell.plan is not None and cell.plan.engine == "transformers"
    assert "batch_size" in cell.plan.engine_params and "max_num_seqs" not in cell.plan.engine_params
    # the derived AWQ model inherits the list from its parent
    assert reg.model("smollm2_135m_awq").engines == ["transformers"]


def test_unknown_engine_name_is_one_clear_error(conf_copy, capsys):
    _allow_only(conf_copy, "biogpt", ["vllmm"])
    load_registry(conf_copy)  # the schema takes any name; the engine registry judges it
    assert main(["--conf", str(conf_copy), "validate"]) == 2
    err = capsys.readouterr().err
    assert "models/biogpt.yaml" in err and "engines[0]" in err and "unknown engine 'vllmm'" in err
    assert "did you mean 'vllm'" in err
    assert main(["--conf", str(conf_copy), "list", "models"]) == 2  # every command checks before it runs


def test_encoder_decoder_text_models_are_skipped_with_the_reason(registry):
    reason = runnable_reason(registry.model("clinical_t5_large"), gpus=1)
    assert reason and "encoder-decoder" in reason and "vLLM" in reason


def test_hf_overrides_reach_both_engines_and_the_loaded_config(conf_copy):
    path = conf_copy / "models" / "smollm2_135m.yaml"
    data = yaml.safe_load(path.read_text())
    data["hf_overrides"] = {"max_position_embeddings": 4096}  # SmolLM2's own: 8192
    path.write_text(yaml.safe_dump(data))
    reg = load_registry(conf_copy)
    vllm_plan = plan_cell(reg, "smollm2_135m", "arc_challenge", engine="vllm")
    assert vllm_plan.engine_params["hf_overrides"] == {"max_position_embeddings": 4096}
    hf_plan = plan_cell(reg, "smollm2_135m", "arc_challenge", engine="transformers")
    engine = start_engine(hf_plan)
    try:
        assert engine.model.config.max_position_embeddings == 4096
        assert engine.params["hf_overrides"] == {"max_position_embeddings": 4096}
    finally:
        engine.close()
    # the config hash sees it: a run with overrides never reuses one without
    base = plan_cell(load_registry(), "smollm2_135m", "arc_challenge", engine="vllm")
    assert base.config_hash() != vllm_plan.config_hash()


@pytest.mark.parametrize("engine", ["vllm", "transformers"])
def test_unpacked_awq_weights_run_as_float32_without_a_quantization_method(registry, engine):
    # planned_params is what cells and sweep trials alike start engines with
    unpacked = ResolvedModel(path="/cache/smollm2_135m_awq/float", revision="awq:x", source=SIMULATED_SOURCE)
    preset = registry.preset("balanced")
    params = planned_params(engine, registry.model("smollm2_135m_awq"), preset, unpacked)
    assert params["dtype"] == "float32" and "quantization" not in params
    packed = ResolvedModel(path="/cache/smollm2_135m_awq/awq", revision="awq:x", source="awq")
    if engine == "vllm":
        assert planned_params(engine, registry.model("smollm2_135m_awq"), preset, packed)["quantization"] == "awq"

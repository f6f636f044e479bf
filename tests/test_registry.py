"""The registry loads, cross-checks, and refuses bad files with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from specbench.registry import RegistryError, check_scorers, load_registry
from specbench.scoring import METRICS


def test_whole_registry_validates(registry):
    assert len(registry.models) >= 61
    assert "smollm2_135m" in registry.categories["efficiency_optimized"].models
    assert {"qwen25_0_5b", "qwen25_3b", "phi35_mini"} <= set(registry.categories["efficiency_optimized"].models)
    assert set(registry.presets) >= {"performance", "balanced", "memory_optimized"}
    assert registry.presets["performance"].gpu_memory_utilization == 0.90
    check_scorers(registry, METRICS)


def test_every_seed_category_exists(registry):
    expected = {
        "coding_specialists", "mathematical_reasoning", "biomedical_specialists", "multimodal_processing",
        "general_purpose", "efficiency_optimized", "scientific_research", "safety_alignment",
        "mixture_of_experts", "reasoning_specialized", "text_generation", "data_science",
        "research_transparency",
    }
    assert expected <= set(registry.categories)
    # Names the seeds use for the same groups resolve to the merged category.
    assert registry.category("code_generation").key == "coding_specialists"
    assert registry.category("bioinformatics_genomics").key == "biomedical_specialists"


def test_ready_datasets_cover_the_offline_slices(registry):
    ready = {k for k, d in registry.datasets.items() if d.status.value == "ready"}
    assert {"gsm8k", "math", "humaneval", "mbpp", "mmlu", "arc_challenge", "pubmedqa", "truthfulqa",
            "winogrande"} <= ready
    for key, d in registry.datasets.items():
        if d.status.value == "planned":
            assert d.planned_reason, key


def _edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _error(conf: Path) -> str:
    with pytest.raises(RegistryError) as exc:
        load_registry(conf)
    return str(exc.value)


def test_dangling_model_reference_names_file_key_and_nearest(conf_copy):
    _edit(conf_copy / "categories" / "coding_specialists.yaml",
          lambda d: d["baselines"].__setitem__(0, "qwen25_7"))
    msg = _error(conf_copy)
    assert "categories/coding_specialists.yaml" in msg
    assert "baselines[0]" in msg
    assert "'qwen25_7b'" in msg


def test_dangling_dataset_reference(conf_copy):
    _edit(conf_copy / "categories" / "mathematical_reasoning.yaml",
          lambda d: d["datasets"]["primary"].__setitem__(0, "gsm8"))
    msg = _error(conf_copy)
    assert "datasets.primary[0]" in msg and "'gsm8k'" in msg


def test_preset_out_of_range_names_file_and_key(conf_copy):
    _edit(conf_copy / "presets.yaml", lambda d: d["presets"]["balanced"].__setitem__("gpu_memory_utilization", 1.5))
    msg = _error(conf_copy)
    assert "presets.yaml" in msg
    assert "presets.balanced.gpu_memory_utilization" in msg
    assert "(0, 1]" in msg


def test_unknown_key_suggests_the_real_one(conf_copy):
    _edit(conf_copy / "models" / "qwen25_7b.yaml", lambda d: d.__setitem__("contex_window", 4096))
    msg = _error(conf_copy)
    assert "models/qwen25_7b.yaml" in msg and "contex_window" in msg and "'context_window'" in msg


def test_unknown_nested_key_suggests_from_its_own_block(conf_copy):
    _edit(conf_copy / "datasets" / "gsm8k.yaml", lambda d: d["prompt"].__setitem__("max_new_tokenz", 64))
    msg = _error(conf_copy)
    assert "datasets/gsm8k.yaml" in msg and "prompt.max_new_tokenz" in msg and "'max_new_tokens'" in msg


def test_sizes_are_required_except_for_api_only_models(conf_copy, registry):
    claude = registry.model("claude_sonnet")
    assert claude.api_only and claude.parameters_b is None and claude.size_gb is None  # unpublished
    _edit(conf_copy / "models" / "qwen25_7b.yaml", lambda d: d.pop("size_gb"))
    msg = _error(conf_copy)
    assert "models/qwen25_7b.yaml" in msg and "size_gb" in msg and "API-only" in msg


def test_hf_overrides_must_be_a_mapping(conf_copy):
    _edit(conf_copy / "models" / "qwen25_7b.yaml", lambda d: d.__setitem__("hf_overrides", ["rope_scaling"]))
    msg = _error(conf_copy)
    assert "models/qwen25_7b.yaml" in msg and "hf_overrides" in msg and len(msg.splitlines()) == 1


def test_wrong_type_is_refused(conf_copy):
    _edit(conf_copy / "models" / "qwen25_7b.yaml", lambda d: d.__setitem__("context_window", "big"))
    msg = _error(conf_copy)
    assert "models/qwen25_7b.yaml" in msg and "context_window" in msg


def test_bad_enum_lists_valid_values(conf_copy):
    _edit(conf_copy / "models" / "qwen25_7b.yaml", lambda d: d.__setitem__("quantization", "int3"))
    msg = _error(conf_copy)
    assert "quantization" in msg and "awq" in msg


def test_batch_size_below_one(conf_copy):
    _edit(conf_copy / "models" / "qwen25_7b.yaml", lambda d: d.__setitem__("evaluation_batch_size", 0))
    msg = _error(conf_copy)
    assert "evaluation_batch_size" in msg and ">= 1" in msg


def test_tensor_parallelism_that_does_not_fit(conf_copy):
    def change(d):
        d["num_attention_heads"] = 28
        d["tensor_parallel_size"] = 8
        d["min_gpus"] = 8
    _edit(conf_copy / "models" / "qwen25_7b.yaml", change)
    msg = _error(conf_copy)
    assert "tensor_parallel_size 8 does not divide" in msg and "28 attention heads" in msg


def test_tp_larger_than_min_gpus(conf_copy):
    _edit(conf_copy / "models" / "qwen25_7b.yaml", lambda d: d.update(tensor_parallel_size=2, min_gpus=1))
    assert "min_gpus" in _error(conf_copy)


def test_key_must_match_file_name(conf_copy):
    _edit(conf_copy / "models" / "qwen25_7b.yaml", lambda d: d.__setitem__("key", "qwen_other"))
    assert "must match the file name" in _error(conf_copy)


def test_lookup_suggests(registry):
    with pytest.raises(RegistryError, match="qwen25_7b"):
        registry.model("qwen25_7")
    with pytest.raises(RegistryError, match="gsm8k"):
        registry.dataset("gsm8")



def _set_build(conf: Path, name: str) -> None:
    _edit(conf / "models" / "smolvlm_test.yaml", lambda d: d["offline"].__setitem__("build", name))


def test_offline_build_must_name_a_builder(conf_copy):
    _set_build(conf_copy, "idefics3_random")  # a typo: the nearest builder
    msg = _error(conf_copy)
    assert msg.endswith("models/smolvlm_test.yaml: offline.build: unknown builder 'idefics3_random'; "
                        "did you mean 'idefics3_random_vision'?")
    _set_build(conf_copy, "llava")  # nothing near: every valid name
    msg = _error(conf_copy)
    assert msg.endswith("models/smolvlm_test.yaml: offline.build: unknown builder 'llava'; "
                        "valid: bert_random_wordpiece, idefics3_random_vision")
    assert len(msg.splitlines()) == 1


def test_validate_refuses_an_unknown_builder_in_one_line(conf_copy, capsys):
    from specbench.cli import main

    _set_build(conf_copy, "idefics3_random")
    assert main(["--conf", str(conf_copy), "validate"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "models/smolvlm_test.yaml: offline.build: unknown builder 'idefics3_random'" in err
    assert "'idefics3_random_vision'" in err


def test_vision_section_only_on_vision_models(conf_copy):
    _edit(conf_copy / "models" / "qwen25_7b.yaml", lambda d: d.__setitem__("vision", {"images_per_prompt": 1}))
    msg = _error(conf_copy)
    assert msg.endswith("models/qwen25_7b.yaml: vision: a vision section needs modality: vision, not text")
    assert len(msg.splitlines()) == 1


def test_vision_images_per_prompt_must_be_positive(conf_copy):
    _edit(conf_copy / "models" / "smolvlm_test.yaml", lambda d: d["vision"].__setitem__("images_per_prompt", 0))
    msg = _error(conf_copy)
    assert "smolvlm_test.yaml" in msg and "vision.images_per_prompt" in msg and "must be >= 1, got 0" in msg
    assert len(msg.splitlines()) == 1

"""Ad-hoc models: a checkpoint with no registry entry, its defaults inferred from its own files,
evaluated on several datasets with one engine start, and bad input as one line (exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import CONF, ROOT

from specbench import pipeline
from specbench.cli import main
from specbench.registry.adhoc import MAX_MODEL_LEN_CAP, adhoc_model, model_for

CHAT_TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"


def _checkpoint(folder: Path, *, chat: bool = True, vision: bool = False) -> Path:
    """A small real HF-style checkpoint folder: config.json, a tokenizer config and a
    safetensors file of known shapes (4*8 + 8 = 40 parameters), written with safetensors itself."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "bfloat16",
              "max_position_embeddings": 32768, "num_attention_heads": 16, "hidden_size": 8,
              "num_hidden_layers": 1, "vocab_size": 4}
    if vision:
        config = {"architectures": ["Idefics3ForConditionalGeneration"], "model_type": "idefics3",
                  "torch_dtype": "bfloat16", "text_config": config, "vision_config": {"hidden_size": 4}}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE} if chat else {}))
    save_file({"embed": torch.zeros(4, 8, dtype=torch.bfloat16), "norm": torch.zeros(8, dtype=torch.bfloat16)},
              str(folder / "model.safetensors"))
    return folder


def test_defaults_are_inferred_from_the_checkpoint(tmp_path, registry):
    from specbench.engines.vllm_engine import cpu_has_bf16
    from specbench.weights import gpu_count

    ad = adhoc_model(str(_checkpoint(tmp_path / "My-Model", vision=True)))
    m, facts = ad.config, ad.facts
    assert m.key == "adhoc_my_model" and m.hf_id == str(tmp_path / "My-Model") and m.category == "adhoc"
    assert m.context_window == 32768 and m.max_model_len == MAX_MODEL_LEN_CAP  # capped, from text_config
    assert m.num_attention_heads == 16 and m.dtype.value == "bfloat16" and m.instruct
    assert m.vision is not None and m.modality.value == "vision"
    assert facts["parameters_b"] == pytest.approx(40e-9, abs=1e-4) and facts["size_from"] == "safetensors headers"
    assert ad.tags == {"adhoc": "true", "adhoc_source": str(tmp_path / "My-Model")}
    assert ad.params["adhoc.max_model_len"] == MAX_MODEL_LEN_CAP and ad.params["adhoc.source"] == "local"
    # planned like any model: the folder is the weights (source local), the registry's dtype rule applies
    plan = pipeline.plan_cell(registry, m, "gsm8k", samples=2)
    assert plan.weights.source == "local" and plan.weights.path == m.hf_id
    assert plan.weights.revision.startswith("local:")
    assert plan.category == "adhoc" and plan.role == "adhoc" and plan.chat
    expected = "bfloat16" if gpu_count() or cpu_has_bf16() else "float32"
    assert plan.engine_params["dtype"] == expected and plan.engine_params["max_model_len"] == MAX_MODEL_LEN_CAP


def test_a_base_model_and_a_registry_key(tmp_path, registry):
    base = adhoc_model(str(_checkpoint(tmp_path / "base", chat=False))).config
    assert not base.instruct and base.vision is None and base.context_window == 32768
    assert pipeline.plan_cell(registry, base, "gsm8k", samples=2).chat is False
    model, ad = model_for(registry, "smollm2_135m")  # a registry key is never ad hoc
    assert ad is None and model is registry.model("smollm2_135m")


def test_hub_files_size_a_model_from_its_index(tmp_path):
    """What ``hf:`` reads (the small JSON files, no weights): the size from the safetensors index."""
    from specbench.registry.adhoc import _build

    folder = tmp_path / "snapshot"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["MixtralForCausalLM"], "num_local_experts": 8,
                                                    "torch_dtype": "float16", "n_positions": 1024}))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 2_000_000_000}}))
    ad = _build(folder, "org/Some-Model", "main", local=False)
    assert ad.config.key == "adhoc_some_model" and ad.config.hf_id == "org/Some-Model" and ad.facts["source"] == "hub"
    assert ad.config.parameters_b == pytest.approx(1.0) and ad.config.architecture.value == "moe"
    assert ad.config.max_model_len == ad.config.context_window == 1024 and not ad.config.instruct


@pytest.mark.parametrize("spec, expected", [
    ("hf:specbench-tests/no-such-model", "hub is offline"),
    ("hf:not a repo", "expected hf:ORG/NAME"),
    ("ORG/NAME", "a hub model is written hf:ORG/NAME"),
    ("{empty}", "no config.json"),
])
def test_bad_input_is_one_line(spec, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "empty").mkdir()
    code = main(["--conf", str(CONF), "evaluate", "--model", spec.format(empty=tmp_path / "empty"),
                 "--dataset", "gsm8k", "--samples", "2"])
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("error")]
    assert code == 2 and len(errors) == 1 and expected in errors[0], stderr
    assert "Traceback" not in stderr


def test_hf_id_without_a_hub_from_the_command_line(tmp_path):
    """No HF_HUB_OFFLINE: the hub is asked (unreachable here; elsewhere the repo does not exist)."""
    env = {"PATH": "", "HOME": str(tmp_path), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"}
    r = subprocess.run([sys.executable, "-m", "specbench.cli", "evaluate", "--model",
                        "hf:specbench-tests/no-such-model", "--datasets", "gsm8k,arc_challenge"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error")]
    assert r.returncode == 2 and len(errors) == 1, r.stderr
    assert errors[0].startswith("error: hf:specbench-tests/no-such-model: ") and "Traceback" not in r.stderr


@pytest.mark.slow
def test_local_folder_on_two_datasets_with_one_engine_start(tmp_path, registry):
    """The converted SmolLM2 folder under another name, with no registry entry: two cells, one run
    each, FINISHED, answered by one vLLM engine (only the first cell paid for loading it)."""
    pytest.importorskip("vllm")
    from mlflow import MlflowClient

    from specbench.weights import resolve

    link = tmp_path / "SmolLM2-local"
    link.symlink_to(resolve(registry.model("smollm2_135m")).path, target_is_directory=True)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_EXPERIMENT_ID"}
    env.update(MLFLOW_TRACKING_URI=uri, HF_HUB_OFFLINE="1")
    r = subprocess.run([sys.executable, "-m", "specbench.cli", "evaluate", "--model", str(link),
                        "--datasets", "gsm8k,arc_challenge", "--samples", "2", "--experiment", "test-adhoc"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2/2 cells finished, all on one engine" in r.stdout
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("test-adhoc").experiment_id])
    assert sorted(run.data.tags["specbench.dataset"] for run in runs) == ["arc_challenge", "gsm8k"]
    for run in runs:
        t, p = run.data.tags, run.data.params
        assert run.info.status == "FINISHED"
        assert t["specbench.adhoc"] == "true" and t["specbench.adhoc_source"] == str(link)
        assert t["specbench.model"] == "adhoc_smollm2_local" and t["specbench.model_source"] == "local"
        assert t["specbench.category"] == "adhoc" and t["specbench.role"] == "adhoc"
        assert p["adhoc.max_model_len"] == "4096" and p["adhoc.num_attention_heads"] == "9"
        assert p["adhoc.instruct"] == "True" and p["adhoc.dtype"] == "float32" and p["prompt.chat_template"] == "True"
        assert float(p["adhoc.parameters_b"]) == pytest.approx(0.135, abs=0.002)
        assert p["model.hf_id"] == str(link) and p["model.revision"].startswith("local:")
    loads = [run for run in runs if "model_load_s" in run.data.metrics]
    assert len(loads) == 1 and loads[0].data.tags["specbench.dataset"] == "gsm8k"  # the first cell started it

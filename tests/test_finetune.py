"""Derived fine-tuned models: recipe checks, refusals, and a tiny real LoRA on SmolLM2.

The slow part trains a tiny recipe (3 steps of 2 items, 160 tokens) into a scratch cache and a
scratch conf/ (never the repository's), so the derived model's registry entry is written there;
the model is then evaluated through the normal cell path on 2 items, its recipe changed (stale,
refused by the planner) and trained again.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from tests.conftest import CONF

from specbench import cli, finetune, pipeline
from specbench.pipeline import CellUnavailable, plan_cell, stale_checkpoint
from specbench.registry import RegistryError, load_registry
from specbench.weights import FINETUNED_SOURCE, MERGED_DIR, derived_manifest, resolve, runnable_reason

RECIPE = "gsm8k_lora"
DERIVED = "smollm2_135m_gsm8k_lora"


def _edit(path: Path, **changes: object) -> None:
    data = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for p in parents:
            node = node[p]
        node[last] = value
    path.write_text(yaml.safe_dump(data))


# -- registry and refusals (no training) ------------------------------------------------------------

def test_shipped_specialist_is_a_derived_model_of_the_embedded_default(registry):
    m = registry.model(DERIVED)
    assert (m.parent, m.recipe, m.quantization.value) == ("smollm2_135m", RECIPE, "none")
    assert m.hf_id == registry.model("smollm2_135m").hf_id and m.instruct  # inherited: same chat template
    spec = registry.recipe(RECIPE)
    assert spec.base == "smollm2_135m" and spec.data.split != registry.dataset(spec.data.dataset).split
    cat = registry.category("embedded_math")  # the demo category; m.category is what it specializes in
    assert DERIVED in cat.models and "smollm2_135m" in cat.baselines
    assert registry.role("smollm2_135m", cat.key) == "generalist"


def test_recipe_that_trains_on_the_evaluation_split_is_refused(conf_copy):
    _edit(conf_copy / "finetune" / f"{RECIPE}.yaml", data__split="test")
    with pytest.raises(RegistryError, match=r"data.split: 'test' is gsm8k's evaluation split.*contamination"):
        load_registry(conf_copy)


def test_fine_tuned_model_must_run_unquantized_and_match_its_recipes_base(conf_copy):
    path = conf_copy / "models" / f"{DERIVED}.yaml"
    _edit(path, quantization="awq")
    with pytest.raises(RegistryError, match="fine-tuned model runs unquantized"):
        load_registry(conf_copy)
    _edit(path, quantization="none", parent="qwen25_0_5b")
    with pytest.raises(RegistryError, match="recipe gsm8k_lora trains smollm2_135m, not the parent qwen25_0_5b"):
        load_registry(conf_copy)


def test_training_items_that_are_evaluated_items_are_refused(conf_copy):
    """A split named `train` whose items are the test items (here: the test slice) is contamination."""
    _edit(conf_copy / "finetune" / f"{RECIPE}.yaml", data__offline_slice="gsm8k.test.jsonl", data__items=30)
    reg = load_registry(conf_copy)
    with pytest.raises(finetune.FinetuneError, match=r"30 of its 30 training items are also evaluated items "
                                                     r"of gsm8k .*train/test contamination"):
        finetune.finetune(reg, "smollm2_135m", recipe=RECIPE, offline=True)


@pytest.mark.parametrize(("base", "expect"), [
    ("claude_sonnet", "API-only"),
    ("qwen25_7b", "would take hours"),
])
def test_api_only_or_too_large_base_is_refused_before_any_download(base, expect, conf_copy, capsys, monkeypatch,
                                                                     tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'm.db'}")
    monkeypatch.setenv("SPECBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("specbench.finetune.target.gpu_count", lambda: 0)
    recipe = conf_copy / "finetune" / "other_lora.yaml"
    shutil.copy(conf_copy / "finetune" / f"{RECIPE}.yaml", recipe)
    _edit(recipe, key="other_lora", base=base)
    assert cli.main(["--conf", str(conf_copy), "finetune", "--model", base, "--recipe", "other_lora"]) == 2
    err = capsys.readouterr().err
    assert f"cannot fine-tune {base}" in err and expect in err and len(err.strip().splitlines()) <= 2
    assert not (tmp_path / "cache" / "models").exists()  # nothing downloaded or written


def test_recipe_for_another_base_is_refused(registry):
    with pytest.raises(finetune.FinetuneError, match="recipe gsm8k_lora trains smollm2_135m, not qwen25_0_5b"):
        finetune.pick_target(registry, "qwen25_0_5b", RECIPE)
    t = finetune.pick_target(registry, DERIVED)  # the derived model names its own recipe
    assert (t.key, t.parent.key, t.spec.key) == (DERIVED, "smollm2_135m", RECIPE)


def test_derived_model_without_checkpoint_says_how_to_make_it(registry, monkeypatch, tmp_path):
    monkeypatch.setenv("SPECBENCH_CACHE", str(tmp_path))
    reason = runnable_reason(registry.model(DERIVED), gpus=0)
    assert reason and f"run `specbench finetune --model smollm2_135m --recipe {RECIPE}`" in reason


# -- a tiny real LoRA ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(store, tmp_path_factory):
    """(conf dir, first result): the tiny recipe trained into a scratch cache and conf/ (the shipped
    derived entry removed, so finetune writes it)."""
    pytest.importorskip("peft")
    parent = resolve(load_registry(CONF).model("smollm2_135m"))  # converted once into the real cache
    tmp = tmp_path_factory.mktemp("finetune")
    conf = tmp / "conf"
    shutil.copytree(CONF, conf)
    (conf / "models" / f"{DERIVED}.yaml").unlink()
    (conf / "categories" / "embedded_math.yaml").unlink()  # it lists the derived model
    _edit(conf / "finetune" / f"{RECIPE}.yaml", steps=3, batch_size=2, warmup_steps=0, max_seq_len=160,
          data__items=8)
    cache = tmp / "cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / Path(parent.path).name).symlink_to(parent.path)
    mp = pytest.MonkeyPatch()
    mp.setenv("SPECBENCH_CACHE", str(cache))
    res = finetune.finetune(load_registry(conf), "smollm2_135m", recipe=RECIPE, experiment="test-finetune",
                            offline=True)
    yield conf, res
    mp.undo()


@pytest.mark.slow
def test_tiny_recipe_trains_registers_and_records_one_run(store, tiny):
    conf, res = tiny
    assert not res.reused and res.wrote_entry == conf / "models" / f"{DERIVED}.yaml"
    reg = load_registry(conf)  # the written entry loads and inherits the parent's facts
    m = reg.model(DERIVED)
    assert (m.parent, m.recipe, m.hf_id) == ("smollm2_135m", RECIPE, reg.model("smollm2_135m").hf_id)
    man = derived_manifest(m)
    assert man["kind"] == "finetune" and man["recipe_digest"] == reg.finetune(RECIPE).digest()
    assert man["run_id"] == res.run_id and len(man["digest"]) == 16 and man["chat"] is True
    assert man["data"]["items"] == 8 and man["examples_seen"] == 6 and len(man["losses"]) == 3
    assert (res.path / MERGED_DIR / "model.safetensors").is_file()
    assert (res.path / MERGED_DIR / "tokenizer_config.json").is_file()
    client = MlflowClient(store)
    run = client.get_run(res.run_id)
    t, p = run.data.tags, run.data.params
    assert t["specbench.kind"] == "finetune" and t["mlflow.runName"] == f"finetune:{DERIVED}"
    assert t["specbench.parent"] == "smollm2_135m" and t["specbench.derived_model"] == DERIVED
    assert t["specbench.reused"] == "false" and t["specbench.data_digest"] == man["data"]["digest"]
    assert p["finetune.lora.rank"] == "16" and p["finetune.steps"] == "3" and p["finetune.recipe"] == RECIPE
    assert [x.step for x in client.get_metric_history(res.run_id, "loss")] == [0, 1, 2]
    assert run.data.metrics["tokens_per_s"] > 0 and run.data.metrics["train_s"] > 0


@pytest.mark.slow
def test_derived_model_evaluates_and_a_changed_recipe_rebuilds(store, tiny):
    from specbench import tracking
    from specbench.analysis import render, select, tables

    conf, first = tiny
    shutil.copy(CONF / "categories" / "embedded_math.yaml", conf / "categories")  # the written entry is its model
    reg = load_registry(conf)
    again = finetune.finetune(reg, DERIVED, experiment="test-finetune", offline=True)
    assert again.reused and again.manifest["digest"] == first.manifest["digest"]  # no retraining
    assert again.run_id != first.run_id and again.manifest["run_id"] == first.run_id  # links the training run
    plans = {k: plan_cell(reg, k, "gsm8k", engine="transformers", samples=2, category="embedded_math")
             for k in (DERIVED, "smollm2_135m")}
    plans = {k: dataclasses.replace(p, task=dataclasses.replace(p.task, gen=dataclasses.replace(
        p.gen, max_new_tokens=16))) for k, p in plans.items()}
    plan = plans[DERIVED]
    assert plan.weights.source == FINETUNED_SOURCE and plan.weights.revision == f"lora:{first.manifest['digest']}"
    assert plan.weights.path.endswith(MERGED_DIR) and plan.quantization_tags["parent"] == "smollm2_135m"
    assert (plan.role, plans["smollm2_135m"].role) == ("specialist", "generalist")
    results = {k: pipeline.run_cell(p) for k, p in plans.items()}
    for r in results.values():
        assert r.status == "FINISHED", r.error
        assert len(r.outputs) == 2
    # the specialist-vs-generalist delta on the same items, with its paired test and p-value
    cells = select.pick_cells([tracking.get_run(r.run_id) for r in results.values()])
    deltas = tables.delta_matrix(reg, tracking.ArtifactReader(), cells, "embedded_math")
    shown = render.paired_tests_display(deltas)
    row = shown[shown.dataset == "gsm8k"].iloc[0]
    assert (row.model, row.baseline, row.paired) == (DERIVED, "smollm2_135m", "2")
    assert 0 <= float(row.p) <= 1 and row.test
    # a changed recipe: the planner calls the checkpoint stale, the next finetune trains again
    _edit(conf / "finetune" / f"{RECIPE}.yaml", learning_rate=5.0e-4)
    reg = load_registry(conf)
    assert "another version of its recipe" in (stale_checkpoint(reg, reg.model(DERIVED)) or "")
    with pytest.raises(CellUnavailable, match=f"specbench finetune --model smollm2_135m --recipe {RECIPE}"):
        plan_cell(reg, DERIVED, "gsm8k", engine="transformers", samples=2)
    rebuilt = finetune.finetune(reg, "smollm2_135m", experiment="test-finetune", offline=True)
    assert not rebuilt.reused and rebuilt.wrote_entry is None  # the entry exists now
    assert rebuilt.manifest["recipe_digest"] == reg.finetune(RECIPE).digest() != first.manifest["recipe_digest"]
    assert stale_checkpoint(reg, reg.model(DERIVED)) is None

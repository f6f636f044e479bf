"""One identity rule: prose never changes an experiment's identity; anything that can change an
output does, for resume (the cell config hash) and for the generation cache alike."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from tests.conftest import ROOT

from specbench import pipeline
from specbench.engines.cache import CachingEngine, GenerationCache
from specbench.identity import digest
from specbench.registry import load_registry


def _edit(path: Path, **changes: object) -> None:
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data))


def test_digest_ignores_prose_at_any_depth_and_nothing_else():
    a = {"k": 1, "notes": "x", "inner": {"display_name": "A", "v": [1, {"description": "d", "w": 2}]}}
    b = {"k": 1, "notes": "y", "inner": {"display_name": "B", "v": [1, {"description": "e", "w": 2}]}}
    assert digest(a) == digest(b)
    assert digest(a) != digest({**a, "k": 2})
    assert digest({"provenance": {"date": "2026-01-01"}, "max_num_seqs": 8}) == digest({"max_num_seqs": 8})


def test_cell_identity_ignores_notes_but_not_what_runs(conf_copy: Path):
    base = pipeline.plan_cell(load_registry(conf_copy), "smollm2_135m", "gsm8k", samples=4)
    _edit(conf_copy / "datasets" / "gsm8k.yaml", notes="edited notes", display_name="GSM8K, renamed")
    _edit(conf_copy / "models" / "smollm2_135m.yaml", notes="edited", use_cases=["something else"])
    same = pipeline.plan_cell(load_registry(conf_copy), "smollm2_135m", "gsm8k", samples=4)
    assert same.config_hash() == base.config_hash()
    _edit(conf_copy / "models" / "smollm2_135m.yaml", hf_overrides={"max_position_embeddings": 4096})
    assert pipeline.plan_cell(load_registry(conf_copy), "smollm2_135m", "gsm8k", samples=4).config_hash() \
        != base.config_hash()
    assert pipeline.plan_cell(load_registry(conf_copy), "smollm2_135m", "gsm8k", samples=4,
                              preset="performance").config_hash() != base.config_hash()


def test_planning_is_pure_data_with_no_side_effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry):
    """A plan in an empty cache converts nothing; its weights are only located."""
    monkeypatch.setenv("SPECBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # where the hub answers, SmolLM2 comes from it instead
    plan = pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", samples=2)
    assert plan.weights.source == "gguf" and not Path(plan.weights.path).exists()
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.samples = 3  # type: ignore[misc]
    cplan = pipeline.plan_category(registry, "efficiency_optimized", samples=2)
    assert cplan.runnable and all(c.plan is not None for c in cplan.runnable)
    assert not (tmp_path / "cache" / "models").exists() or not any((tmp_path / "cache" / "models").iterdir())


@pytest.mark.slow
def test_editing_notes_keeps_every_finished_cell_on_resume(conf_copy: Path, tmp_path: Path):
    (conf_copy / "categories" / "tiny.yaml").write_text(yaml.safe_dump({
        "key": "tiny", "display_name": "Tiny", "description": "test category", "models": ["smollm2_135m"],
        "baselines": [], "datasets": {"primary": ["arc_challenge"], "secondary": []}}))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "SPECBENCH_CONF": str(conf_copy), "MLFLOW_TRACKING_URI": uri, "HF_HUB_OFFLINE": "1"}
    args = [sys.executable, "-m", "specbench.cli", "run", "category", "tiny", "--engine", "transformers",
            "--samples", "2", "--no-cache"]
    first = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    _edit(conf_copy / "datasets" / "arc_challenge.yaml", notes="a new explanation of this dataset")
    _edit(conf_copy / "models" / "smollm2_135m.yaml", display_name="SmolLM2, renamed", notes="new notes")
    second = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert "resumed" in second.stdout
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("specbench")
    cells = client.search_runs([exp.experiment_id], "tags.`specbench.kind` = 'cell'")
    parents = client.search_runs([exp.experiment_id], "tags.`specbench.kind` = 'category'")
    assert len(cells) == 1 and len(parents) == 1  # the cell was kept, not redone; the invocation resumed
    assert parents[0].data.metrics["cells_resumed"] == 1


@pytest.fixture(scope="module")
def shared_engine(registry):
    plan = pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", engine="transformers", samples=2)
    engine = pipeline.start_engine(plan)
    yield engine
    engine.close()


@pytest.mark.slow
def test_cache_hits_only_under_the_same_preset_and_hf_overrides(registry, conf_copy, shared_engine, tmp_path):
    """The same prompts through the cache under three configurations: only a repeat of the first
    is answered from it; another preset or other hf_overrides start from nothing."""
    cache = GenerationCache(tmp_path / "generations.sqlite")

    def answer(plan: pipeline.CellPlan) -> tuple[int, int]:
        plan = dataclasses.replace(plan, task=dataclasses.replace(
            plan.task, gen=dataclasses.replace(plan.gen, max_new_tokens=8)))
        prepared = pipeline.prepare(plan.task, 2)
        weights = pipeline.materialize_weights(plan)
        engine = CachingEngine(lambda: shared_engine, cache, pipeline.cache_scope(plan, weights), plan.engine)
        pipeline.answer(plan.task, engine, prepared.items, prepared.prompts)
        stats = engine.stats()
        return stats.cache_hits, stats.cache_misses

    base = pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", engine="transformers", samples=2)
    assert answer(base) == (0, 2)
    assert answer(base) == (2, 0)
    assert answer(pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", engine="transformers", samples=2,
                                     preset="performance")) == (0, 2)
    _edit(conf_copy / "models" / "smollm2_135m.yaml", hf_overrides={"max_position_embeddings": 4096})
    assert answer(pipeline.plan_cell(load_registry(conf_copy), "smollm2_135m", "gsm8k", engine="transformers",
                                     samples=2)) == (0, 2)
    _edit(conf_copy / "models" / "smollm2_135m.yaml", hf_overrides={}, notes="prose only")
    assert answer(pipeline.plan_cell(load_registry(conf_copy), "smollm2_135m", "gsm8k", engine="transformers",
                                     samples=2)) == (2, 0)  # notes are not part of it
    cache.close()

"""Structure tasks end to end: the scientific_research and safety_alignment categories on this CPU,
SmolLM2 prompted (generative) beside the test encoder probed (bert_test, random weights), logging
the same F1 metrics into one comparable matrix; the plans of every category that holds encoders.

The test encoder's scores mean nothing (random weights, a tokenizer trained here): these tests
check plumbing, identity and reproducibility, never scores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from specbench import pipeline
from specbench.pipeline.plan import plan_cell

ROOT = Path(__file__).resolve().parents[1]
ENCODER = "bert_test"


def _mlflow(args: list[str], uri: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    return subprocess.run([str(mlflow_bin), "run", ".", *args, "--env-manager", "local"], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "MLFLOW_TRACKING_URI": uri,
                               "PATH": f"{mlflow_bin.parent}{os.pathsep}{os.environ.get('PATH', '')}"})


def _cells(uri: str) -> dict[tuple[str, str], object]:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    runs = [run for exp in client.search_experiments() for run in client.search_runs([exp.experiment_id])]
    return {(run.data.tags.get("specbench.model"), run.data.tags.get("specbench.dataset")): run for run in runs
            if run.data.tags.get("specbench.kind") == "cell"}


def test_encoders_are_planned_on_structure_datasets_only(registry):
    plan = plan_cell(registry, ENCODER, "scierc", samples=8, engine="encoder")
    assert plan.task.probe and not plan.task.head and plan.engine == "encoder"
    assert plan.quantization_tags["random_weights"]  # every run of the test encoder says so
    with pytest.raises(pipeline.CellUnavailable, match="classification and NER"):
        plan_cell(registry, ENCODER, "gsm8k", engine="encoder")
    with pytest.raises(pipeline.CellUnavailable, match="use --engine encoder"):  # only the encoder engine embeds
        plan_cell(registry, ENCODER, "scierc", engine="transformers")
    # a generative model answers the same dataset by prompt, with the same scorers
    gen = plan_cell(registry, "smollm2_135m", "scierc", samples=8, engine="vllm")
    assert not gen.task.probe and gen.dataset.scorers == plan.dataset.scorers


@pytest.mark.parametrize("category", ["scientific_research", "safety_alignment", "biomedical_specialists"])
def test_dry_run_plans_every_cell(registry, tmp_path, category):
    """Every model x primary dataset of the category is planned: runnable, or skipped with its reason."""
    r = _mlflow(["-e", "category", "-P", f"name={category}", "-P", "dry_run=true"], f"sqlite:///{tmp_path}/m.db",
                timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = "".join(r.stdout.split()).replace("│", "")
    cat = registry.category(category)
    for model in cat.models + cat.baselines:
        for dataset in cat.datasets.primary:
            assert f"{model}@{dataset}" in out


def test_scientific_research_on_this_cpu_in_one_matrix(tmp_path):
    """The issue's acceptance command, as printed, then compare: SmolLM2 (prompted) and the test
    encoder (probed) finish scierc and scierc_ner with the same F1 metrics, in one matrix."""
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    r = _mlflow(["-e", "category", "-P", "name=scientific_research", "-P", "samples=8"], uri)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    cells = _cells(uri)
    for model in (ENCODER, "smollm2_135m"):
        for dataset, metric in (("scierc", "f1_macro"), ("scierc_ner", "entity_f1")):
            run = cells[(model, dataset)]
            assert run.info.status == "FINISHED", run.data.tags.get("specbench.error")
            assert 0 <= run.data.metrics[metric] <= 1 and f"{metric}_stderr" in run.data.metrics
            assert run.data.metrics["n_samples"] == 8
    probe = cells[(ENCODER, "scierc")].data
    assert probe.tags["specbench.encoder.method"] == "probe" and probe.metrics["train_items"] >= 2
    r = _mlflow(["-e", "compare", "-P", "category=scientific_research"], uri, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    out = r.stdout + r.stderr
    assert ENCODER in out and "smollm2_135m" in out


def test_probe_cells_reproduce_run_to_run(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'm.db'}")
    plan = plan_cell(registry, ENCODER, "scierc_ner", samples=8, engine="encoder")
    first, second = pipeline.run_cell(plan), pipeline.run_cell(plan)
    assert first.status == second.status == "FINISHED", first.error or second.error
    assert first.outputs == second.outputs
    assert first.metrics["entity_f1"] == second.metrics["entity_f1"]
    assert json.dumps(first.report.metrics, sort_keys=True) == json.dumps(second.report.metrics, sort_keys=True)

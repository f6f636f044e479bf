"""Where a cell's items come from is decided when it is planned, is part of its identity and
its tags, and never changes silently: a hub failure fails the cell rather than turning a
full-split run into a slice run, and a run that reads only a slice says so (or is refused)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient
from tests.conftest import ROOT

from specbench import pipeline
from specbench.data import loading


def test_the_planned_source_is_part_of_the_identity(registry, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    on_slice = pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", samples=4)
    assert on_slice.data.kind == "slice" and on_slice.config()["data_source"] == "slice"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(loading, "_hub_unreachable", lambda: None)  # as if the hub answered
    on_hub = pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", samples=4)
    assert on_hub.data.kind == "hub" and on_hub.config_hash() != on_slice.config_hash()


def test_all_samples_on_a_slice_is_said_or_refused(registry, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    plan = pipeline.plan_cell(registry, "smollm2_135m", "gsm8k")  # samples: all
    assert plan.partial_split and "not the test split's 1319" in plan.partial_split
    assert pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", samples=4).partial_split is None
    with pytest.raises(pipeline.CellUnavailable, match="refused"):
        pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", slice_policy="fail")
    cplan = pipeline.plan_category(registry, "efficiency_optimized", models=["smollm2_135m"],
                                   datasets=["gsm8k"], baselines=False, slice_policy="fail")
    (cell,) = cplan.cells
    assert cell.reason and "refused" in cell.reason


def test_the_cli_says_it_loudly_and_refuses_when_asked(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"}
    base = [sys.executable, "-m", "specbench.cli", "run", "category", "efficiency_optimized", "--models",
            "smollm2_135m", "--datasets", "gsm8k", "--baselines", "false", "--dry-run"]
    r = subprocess.run(base, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "warning" in r.stderr and "offline slice" in r.stderr
    r = subprocess.run([*base, "--slice-policy", "fail"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "refused" in r.stdout  # the cell is skipped with the reason


def test_a_hub_failure_fails_the_cell_instead_of_reading_the_slice(registry, monkeypatch, mlflow_store):
    """The plan says hub; the hub then fails: the cell ends FAILED with the reason, no slice run."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(loading, "_hub_unreachable", lambda: None)  # planned: the hub answers

    def broken(*args, **kwargs):
        raise ConnectionError("hub went away")

    monkeypatch.setattr(loading, "_load_hub", broken)
    plan = pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", engine="transformers", samples=2)
    assert plan.data.kind == "hub"
    result = pipeline.run_cell(plan)
    assert result.status == "FAILED" and "hub went away" in (result.error or "")
    run = MlflowClient(mlflow_store).get_run(result.run_id)
    assert run.data.tags["specbench.data_source"] == "hub" and "hub went away" in run.data.tags["specbench.error"]
    assert "n_samples" not in run.data.metrics  # nothing was scored from a slice instead


def test_a_wrong_slice_policy_is_one_clear_error(registry, tmp_path):
    from specbench.registry import RegistryError

    with pytest.raises(RegistryError, match="valid: warn, fail"):
        pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", samples=2, slice_policy="maybe")
    r = subprocess.run([sys.executable, "-m", "specbench.cli", "evaluate", "--model", "smollm2_135m", "--dataset",
                        "gsm8k", "--slice-policy", "maybe"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"})
    assert r.returncode == 2 and "--slice-policy" in r.stderr and "'warn'" in r.stderr and "Traceback" not in r.stderr

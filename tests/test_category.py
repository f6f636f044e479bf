"""Whole categories: plans, failure isolation, resume after SIGKILL, the generation cache.

Runs use the transformers engine on the embedded SmolLM2 (it starts in seconds); the
vLLM engine path is covered by test_evaluate.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from tests.conftest import ROOT

from specbench.weights import resolve

pytestmark = pytest.mark.slow


def cli(*args: str, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "specbench.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **(env or {})}, timeout=timeout)


def test_dry_run_plans_the_70b_reasoning_model_and_its_baselines():
    r = cli("run", "category", "reasoning_specialized", "--dry-run", env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "deepseek_r1_distill_llama_70b@gsm8k" in out and "llama31_70b@gsm8k" in out
    assert "qwen25_7b@mmlu" in out  # second baseline
    assert "needs 4 GPUs" in out and "0 present" in out


def test_dry_run_through_mlflow_project(tmp_path):
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    r = subprocess.run([str(mlflow_bin), "run", ".", "-e", "category", "-P", "name=reasoning_specialized",
                        "-P", "dry_run=true", "--env-manager", "local"], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "HF_HUB_OFFLINE": "1",
                            # the entry point's command runs `specbench` from PATH
                            "PATH": f"{mlflow_bin.parent}{os.pathsep}{os.environ.get('PATH', '')}",
                            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"}, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "deepseek_r1_distill_llama_70b" in r.stdout and "needs 4 GPUs" in r.stdout


def test_unknown_model_filter_is_one_line():
    r = cli("run", "category", "efficiency_optimized", "--models", "smollm2", "--dry-run")
    assert r.returncode == 2 and "smollm2_135m" in r.stderr


@pytest.fixture
def tiny(conf_copy: Path, tmp_path: Path):
    """A category with the embedded model and a copy of it whose checkpoint is corrupt;
    MATH answers are cut to 16 new tokens so generation stays quick on a CPU."""
    math = conf_copy / "datasets" / "math.yaml"
    math.write_text(math.read_text().replace("max_new_tokens: 256", "max_new_tokens: 16"))
    src = conf_copy / "models" / "smollm2_135m.yaml"
    broken = yaml.safe_load(src.read_text())
    broken.update(key="smollm2_broken", display_name="SmolLM2 with a corrupt checkpoint")
    (conf_copy / "models" / "smollm2_broken.yaml").write_text(yaml.safe_dump(broken))
    (conf_copy / "categories" / "tiny.yaml").write_text(yaml.safe_dump({
        "key": "tiny", "display_name": "Tiny", "description": "test category",
        "models": ["smollm2_135m", "smollm2_broken"], "baselines": [],
        "datasets": {"primary": ["math", "arc_challenge"], "secondary": []},
    }))
    from specbench.registry import load_registry

    good = Path(resolve(load_registry(conf_copy).model("smollm2_135m")).path)
    cache = tmp_path / "cache" / "models"
    cache.mkdir(parents=True)
    (cache / good.name).symlink_to(good)
    bad = cache / good.name.replace("smollm2_135m", "smollm2_broken")
    bad.mkdir()
    (bad / "specbench.json").write_text("{}")
    (bad / "config.json").write_text('{"model_type": "not-a-model"}')
    return {"SPECBENCH_CONF": str(conf_copy), "SPECBENCH_CACHE": str(tmp_path / "cache"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}


def _children(uri: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("specbench")
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], "tags.`mlflow.parentRunId` != ''")
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def test_one_model_that_cannot_load_does_not_stop_the_others(tiny):
    r = cli("run", "category", "tiny", "--engine", "transformers", "--samples", "3", "--no-cache", env=tiny)
    assert r.returncode == 1, r.stdout + r.stderr  # not every runnable cell finished
    runs = {x.info.run_name: x for x in _children(tiny["MLFLOW_TRACKING_URI"])}
    assert set(runs) == {"smollm2_135m@math", "smollm2_135m@arc_challenge", "smollm2_broken@math",
                         "smollm2_broken@arc_challenge"}
    for name, run in runs.items():
        if name.startswith("smollm2_135m"):
            assert run.info.status == "FINISHED"
            assert run.data.metrics["n_samples"] == 3
        else:
            assert run.info.status == "FAILED"
            assert run.data.tags["specbench.error"]
    client = MlflowClient(tiny["MLFLOW_TRACKING_URI"])
    parent = client.get_run(next(iter(runs.values())).data.tags["mlflow.parentRunId"])
    assert parent.data.metrics["cells_failed"] == 2 and parent.data.metrics["cells_finished"] == 2
    assert parent.data.tags["specbench.category"] == "tiny" and parent.data.tags["specbench.plan_digest"]
    assert parent.data.tags["specbench.kind"] == "category" and parent.info.status == "FAILED"


def test_sigkill_mid_run_then_rerun_completes_without_duplicates(tiny):
    (Path(tiny["SPECBENCH_CONF"]) / "categories" / "tiny.yaml").write_text(yaml.safe_dump({
        "key": "tiny", "display_name": "Tiny", "description": "test category", "models": ["smollm2_135m"],
        "baselines": [], "datasets": {"primary": ["math", "arc_challenge", "mmlu"], "secondary": []},
    }))
    args = [sys.executable, "-m", "specbench.cli", "run", "category", "tiny", "--engine", "transformers",
            "--samples", "4", "--no-cache"]
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **tiny}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    uri = tiny["MLFLOW_TRACKING_URI"]
    deadline = time.time() + 300
    finished: dict[str, str] = {}
    while time.time() < deadline and proc.poll() is None:
        finished = {r.info.run_name: r.info.run_id for r in _children(uri) if r.info.status == "FINISHED"}
        if finished:
            break
        time.sleep(0.5)
    assert finished, "no cell finished before the deadline"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {r.info.run_name: r for r in _children(uri)}
    assert len(before) < 3 or any(r.info.status != "FINISHED" for r in before.values()), "killed too late"

    r = cli(*args[3:], env=tiny)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    after = _children(uri)
    names = [x.info.run_name for x in after]
    assert sorted(names) == sorted(set(names)) == ["smollm2_135m@arc_challenge", "smollm2_135m@math",
                                                   "smollm2_135m@mmlu"]
    assert all(x.info.status == "FINISHED" for x in after)
    by_name = {x.info.run_name: x for x in after}
    for name, run_id in finished.items():  # what had finished was kept, not redone
        assert by_name[name].info.run_id == run_id
        assert by_name[name].info.end_time == before[name].info.end_time


def test_generation_cache_answers_a_rerun_without_loading_the_model(tiny):
    (Path(tiny["SPECBENCH_CONF"]) / "categories" / "tiny.yaml").write_text(yaml.safe_dump({
        "key": "tiny", "display_name": "Tiny", "description": "test category", "models": ["smollm2_135m"],
        "baselines": [], "datasets": {"primary": ["math"], "secondary": []},
    }))
    base = ["run", "category", "tiny", "--engine", "transformers", "--samples", "3"]
    first = cli(*base, "--experiment", "one", env=tiny)
    assert first.returncode == 0, first.stderr[-2000:]
    second = cli(*base, "--experiment", "two", env=tiny)
    assert second.returncode == 0, second.stderr[-2000:]
    client = MlflowClient(tiny["MLFLOW_TRACKING_URI"])
    runs = {}
    for exp_name in ("one", "two"):
        exp = client.get_experiment_by_name(exp_name)
        (run,) = [r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
        runs[exp_name] = run
    one, two = runs["one"].data, runs["two"].data
    assert one.metrics["cached_prompts"] == 0
    assert two.metrics["cached_prompts"] == 3
    assert "model_load_s" not in two.metrics  # the engine never started
    assert one.metrics["exact_match"] == two.metrics["exact_match"]
    # The cached cell carries the generating run's figures, marked and linked, so both cells
    # have the same metric keys; --no-cache measures them again.
    ours = [{k for k in r.metrics if not k.startswith("system/")} for r in (one, two)]  # not MLflow's sampler
    assert ours[0] - {"model_load_s"} == ours[1]
    assert two.metrics["output_tokens_per_s"] == one.metrics["output_tokens_per_s"]
    assert two.tags["specbench.figures_from"] == runs["one"].info.run_id and "figures" in "".join(two.tags)
    third = cli(*base, "--experiment", "three", "--no-cache", env=tiny)
    assert third.returncode == 0, third.stderr[-2000:]
    (run3,) = [r for r in client.search_runs([client.get_experiment_by_name("three").experiment_id])
               if "mlflow.parentRunId" in r.data.tags]
    assert "specbench.figures_from" not in run3.data.tags and run3.data.metrics["output_tokens_per_s"] > 0

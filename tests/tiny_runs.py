"""Real runs for the comparison and report tests, made once per test session.

Two precisions of the embedded SmolLM2 play the roles: ``smollm2_135m`` (float32) is the
specialist of a scratch category ``tiny_cmp`` and ``smollm2_135m_fp16`` (a registry entry
derived from it, float16) its declared generalist baseline.  Three datasets: two scored by
log-likelihood and one generated (math, with short answers so generation stays cheap on a
CPU) so that output tokens/s is measured.  The session fixture ``tiny_runs`` lives in
tests/tiny_runs_plugin.py; test modules load it with ``pytest_plugins`` (a fixture
imported into two modules would be two fixtures, and the runs would be made twice).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from tests.conftest import CONF, ROOT

from specbench.weights import resolve

CATEGORY = "tiny_cmp"
SPECIALIST, GENERALIST = "smollm2_135m", "smollm2_135m_fp16"
DATASETS = ["arc_challenge", "winogrande", "math"]
SAMPLES = 4


def cli(*args: str, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "specbench.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **env}, timeout=timeout)


def make_runs(tmp: Path) -> dict[str, str]:
    """env for subprocesses (SPECBENCH_CONF, SPECBENCH_CACHE, MLFLOW_TRACKING_URI) after one
    `specbench run category tiny_cmp` on the transformers engine; plus the parent run id."""
    conf = tmp / "conf"
    shutil.copytree(CONF, conf)
    base = yaml.safe_load((conf / "models" / f"{SPECIALIST}.yaml").read_text())
    fp16 = {**base, "key": GENERALIST, "display_name": "SmolLM2 135M Instruct (float16)", "dtype": "float16",
            "parent": SPECIALIST}
    fp16.pop("recipe", None)
    (conf / "models" / f"{GENERALIST}.yaml").write_text(yaml.safe_dump(fp16))
    (conf / "categories" / f"{CATEGORY}.yaml").write_text(yaml.safe_dump({
        "key": CATEGORY, "display_name": "Tiny comparison", "description": "float32 vs float16 SmolLM2",
        "models": [SPECIALIST], "baselines": [GENERALIST],
        "datasets": {"primary": DATASETS, "secondary": []}}))
    math_cfg = yaml.safe_load((conf / "datasets" / "math.yaml").read_text())
    math_cfg["prompt"]["max_new_tokens"] = 16  # answers are wrong either way; keep generation short
    (conf / "datasets" / "math.yaml").write_text(yaml.safe_dump(math_cfg))
    # The framework matrix over the same runs: one task whose roles are the two precisions.
    (conf / "framework.yaml").write_text(yaml.safe_dump({
        "roles": ["specialist", "generalist", "efficiency"],
        "tasks": {"tiny": {"display_name": "Tiny task", "category": CATEGORY,
                           "models": {"specialist": SPECIALIST, "generalist": GENERALIST}}}}))

    from specbench.registry import load_registry

    weights = Path(resolve(load_registry(conf).model(SPECIALIST)).path)  # converted once, shared cache
    cache = tmp / "cache" / "models"
    cache.mkdir(parents=True)
    (cache / weights.name).symlink_to(weights)
    (cache / weights.name.replace(SPECIALIST, GENERALIST)).symlink_to(weights)  # same weights, other dtype
    env = {"SPECBENCH_CONF": str(conf), "SPECBENCH_CACHE": str(tmp / "cache"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}", "HF_HUB_OFFLINE": "1"}
    r = cli("run", "category", CATEGORY, "--engine", "transformers", "--samples", str(SAMPLES), env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("specbench")
    parents = client.search_runs([exp.experiment_id], "tags.`specbench.kind` = 'category'")
    assert len(parents) == 1
    return {**env, "PARENT_RUN": parents[0].info.run_id, "TMP": str(tmp)}

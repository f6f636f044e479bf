"""docs/extending.md runs as written: a scorer, an adapter and an engine from outside the package.

Each ``python`` block is saved under the file name in its first line (a plugins folder
outside the package), the ``yaml`` block into a copy of conf/, and the ``bash`` block runs
as printed.  Then the same plugins serve a cell on the real SmolLM2.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from tests.conftest import ROOT

DOC = ROOT / "docs" / "extending.md"
BLOCK = re.compile(r"```(python|yaml|bash)\n(.*?)```", re.S)


def blocks(kind: str) -> list[str]:
    return [body for k, body in BLOCK.findall(DOC.read_text()) if k == kind]


@pytest.fixture(scope="module")
def plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The doc's python blocks as modules in <tmp>/plugins, importable from this process."""
    root = tmp_path_factory.mktemp("extending")
    folder = root / "plugins"
    folder.mkdir()
    for body in blocks("python"):
        name = body.splitlines()[0].removeprefix("# ").strip()
        assert name.endswith(".py"), f"a python block must start with '# <module>.py': {body[:60]!r}"
        (folder / name).write_text(body)
    sys.path.insert(0, str(folder))
    yield root
    sys.path.remove(str(folder))
    # What the plugins registered leaves with them: later tests see the built-in registries.
    from specbench.data import ADAPTERS
    from specbench.engines import ENGINES
    from specbench.scoring import METRICS, SCORERS

    for table, name in ((SCORERS, "contains_reference"), (METRICS, "contains_reference"),
                        (ADAPTERS, "gsm8k_numeric"), (ENGINES, "constant")):
        table.pop(name, None)
    for module in ("my_scorers", "my_adapters", "my_engines"):
        sys.modules.pop(module, None)


def conf_with_doc_dataset(conf: Path) -> Path:
    (body,) = blocks("yaml")
    target = body.splitlines()[0].removeprefix("# ").strip()
    assert target.startswith("conf/datasets/")
    (conf.parent / target).write_text(body)
    return conf


def test_the_doc_runs_as_written(plugins: Path, conf_copy: Path) -> None:
    conf_with_doc_dataset(conf_copy)
    (script,) = blocks("bash")
    uri = f"sqlite:///{plugins / 'mlflow.db'}"
    env = {**os.environ, "SPECBENCH_CONF": str(conf_copy), "MLFLOW_TRACKING_URI": uri, "HF_HUB_OFFLINE": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    r = subprocess.run(["bash", "-euc", script], cwd=plugins, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "ok" in r.stdout and "FINISHED" in r.stdout
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("specbench").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["specbench.engine"] == "constant" and run.data.tags["specbench.dataset"] == "gsm8k_numeric"
    assert run.data.params["constant.text"] == "" and run.data.params["samples"] == "3"
    assert run.data.metrics["contains"] == 0.0 and run.data.metrics["n_samples"] == 3

    # A misspelt scorer is one line naming the file and key, exit 2, as the doc says.
    path = conf_copy / "datasets" / "gsm8k_numeric.yaml"
    path.write_text(path.read_text().replace("[contains_reference]", "[contains_referense]"))
    bad = subprocess.run([sys.executable, "-m", "specbench.cli", "validate"], cwd=plugins, env={
        **env, "PYTHONPATH": str(plugins / "plugins"), "SPECBENCH_PLUGINS": "my_scorers,my_adapters,my_engines"},
        capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "gsm8k_numeric.yaml" in bad.stderr and "did you mean 'contains_reference'" in bad.stderr


@pytest.mark.slow
def test_the_plugins_serve_a_cell_on_the_real_model(plugins: Path, conf_copy: Path, mlflow_store: str) -> None:
    """The out-of-package scorer and adapter on SmolLM2 (transformers engine), in process."""
    for name in ("my_scorers", "my_adapters", "my_engines"):
        importlib.import_module(name)
    from specbench import extensions, pipeline
    from specbench.registry import load_registry

    reg = load_registry(conf_with_doc_dataset(conf_copy))
    extensions.check(reg)
    plan = pipeline.plan_cell(reg, "smollm2_135m", "gsm8k_numeric", engine="transformers", samples=2)
    assert not plan.loglik and plan.gen.max_new_tokens == 32
    result = pipeline.run_cell(plan)
    assert result.status == "FINISHED", result.error
    assert {"contains", "contains_stderr", "output_tokens_per_s"} <= set(result.metrics)
    assert [s.scores["contains"] in (0.0, 1.0) for s in result.report.samples] == [True, True]
    # The constant engine generates only: a multiple-choice dataset on it is refused with the reason.
    with pytest.raises(pipeline.CellUnavailable, match="answered by loglikelihood"):
        pipeline.plan_cell(reg, "smollm2_135m", "arc_challenge", engine="constant")


def test_a_plugin_that_cannot_be_imported_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "SPECBENCH_PLUGINS": "my_scorers,no_such_plugin_module"}
    r = subprocess.run([sys.executable, "-m", "specbench.cli", "validate"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "SPECBENCH_PLUGINS" in r.stderr and "'my_scorers'" in r.stderr and "PYTHONPATH" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1

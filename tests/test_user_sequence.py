"""The user's own sequence, as the README and docs print it: category, then compare, then report.

The `mlflow run` commands are read out of README.md and docs/*.md (fenced code blocks) and
run exactly as printed, in a scratch project folder (links to MLproject, conf/, experiments/)
so the store is MLflow's own default (./mlflow.db, artifacts in ./mlruns) and nothing lands in
the checkout.  Without `--experiment-name` MLflow puts the cells in its Default experiment;
compare (with or without `--experiment-name`) and report must find them by their tags, and
`specbench compare` from a subfolder must read the same store.  The only substitution a test
may make is a small `samples` (the printed example already uses 4).

Timing (2 CPU cores, efficiency_optimized at samples=4: SmolLM2 and its AWQ variant on gsm8k,
arc_challenge, humaneval): see the module's test docstring.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from tests.conftest import ROOT

CATEGORY = "efficiency_optimized"
SAMPLES = "4"
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)


def printed_commands() -> list[tuple[str, list[str]]]:
    """Every `mlflow run` line of a fenced block in the README and docs: (file, argv), the
    trailing shell comment dropped."""
    found = []
    for path in DOC_FILES:
        for block in _FENCE.findall(path.read_text()):
            for line in block.replace("\\\n", " ").splitlines():  # a command continued with \ is one line
                if line.strip().startswith("mlflow run "):
                    found.append((path.name, shlex.split(line, comments=True)))
    return found


def _param(argv: list[str], key: str) -> str | None:
    for i, a in enumerate(argv[:-1]):
        if a == "-P" and argv[i + 1].startswith(key + "="):
            return argv[i + 1].split("=", 1)[1]
    return None


def _entry(argv: list[str]) -> str:
    return argv[argv.index("-e") + 1] if "-e" in argv else "main"


def _small(argv: list[str]) -> list[str]:
    """The one substitution: a small sample count (a command that names none gets it added)."""
    out = [f"samples={SAMPLES}" if a.startswith("samples=") else a for a in argv]
    return out if f"samples={SAMPLES}" in out else [*out, "-P", f"samples={SAMPLES}"]


def sequence() -> dict[str, list[tuple[str, list[str]]]]:
    """The category's printed sequence: its category runs, its compares, the reports, the main job."""
    seq: dict[str, list[tuple[str, list[str]]]] = {"category": [], "compare": [], "report": [], "main": []}
    for where, argv in printed_commands():
        entry = _entry(argv)
        if entry == "category" and _param(argv, "name") == CATEGORY and _param(argv, "dry_run") != "true":
            seq["category"].append((where, _small(argv)))
        elif entry == "compare" and _param(argv, "category") == CATEGORY:
            seq["compare"].append((where, argv))
        elif entry == "report":
            seq["report"].append((where, argv))
        elif entry == "main":
            seq["main"].append((where, _small(argv)))
    return seq


def test_the_docs_print_the_whole_sequence():
    """Fast: the README and docs print a category run, compares with and without
    --experiment-name, a report, and the main job; MLproject's main is a job, not the mapping."""
    seq = sequence()
    assert seq["category"] and seq["report"] and seq["main"], seq
    assert {"--experiment-name" in argv for _, argv in seq["compare"]} == {True, False}
    assert all(argv[:3] == ["mlflow", "run", "."] and "--env-manager" in argv for v in seq.values() for _, argv in v)
    main = (ROOT / "MLproject").read_text().split("  main:", 1)[1].split("\n  mapping:", 1)[0]
    assert "specbench run category {name}" in main and "specbench mapping" not in main


def test_runs_are_found_by_their_tags_in_whichever_experiment_they_went(tmp_path, monkeypatch, conf_copy):
    """Fast, the same rules on runs made here: cells in MLflow's Default experiment and in another
    are compared together; a report whose `experiment` holds none of them reads them anyway; an
    experiment named on purpose still narrows; a subfolder of a project reads the root's store."""
    from specbench import tracking
    from specbench.analysis import report, select
    from specbench.registry import load_registry

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "MLproject").write_text("name: p\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    (tmp_path / "mlflow.db").touch()  # the root's store: a subfolder reads it, and makes none
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlflow.db").unlink()
    (conf_copy / "categories" / "tiny_seq.yaml").write_text(yaml.safe_dump({
        "key": "tiny_seq", "display_name": "t", "description": "t", "models": ["smollm2_135m"],
        "baselines": ["qwen25_0_5b"], "datasets": {"primary": ["winogrande"]}}))
    reg = load_registry(conf_copy)
    client = MlflowClient(tracking.tracking_uri())
    homes = {"smollm2_135m": "0", "qwen25_0_5b": client.create_experiment("elsewhere")}  # 0: Default
    client.create_experiment("specbench")  # a report's experiment, holding none of these runs
    for model, exp in homes.items():
        tags = {"kind": "cell", "model": model, "dataset": "winogrande", "preset": "balanced", "category": "tiny_seq"}
        rid = client.create_run(exp, tags={tracking.tag(k): v for k, v in tags.items()}).info.run_id
        client.log_metric(rid, "acc", 0.5)
        client.set_terminated(rid, "FINISHED")
    cells = select.select_cells(select.Selection(category="tiny_seq"))
    assert {c.run.experiment_id for c in cells.values()} == set(homes.values())
    assert {m for (m, _, _) in select.select_cells(select.Selection(experiment="elsewhere"))} == {"qwen25_0_5b"}
    spec = tmp_path / "seq.yaml"
    spec.write_text(yaml.safe_dump({"name": "seq", "title": "t", "experiment": "specbench",
                                    "tables": [{"id": "acc", "kind": "matrix", "category": "tiny_seq"}]}))
    outs, _ = report.build(reg, report.load(spec, reg))
    assert set(outs[0].long.status) == {"finished"}


def _project(tmp_path: Path) -> Path:
    """A scratch project folder: the checkout's MLproject, python_env.yaml, conf/ and experiments/
    linked in, so `mlflow run .` and its default store (./mlflow.db) live here."""
    proj = tmp_path / "project"
    proj.mkdir()
    for name in ("MLproject", "python_env.yaml", "conf", "experiments"):
        (proj / name).symlink_to(ROOT / name)
    (proj / "notes").mkdir()  # a subfolder to run from
    return proj


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (
        "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID", "SPECBENCH_CONF")}
    bindir = str(Path(sys.executable).parent)  # `mlflow` and the entry points' `specbench`
    return {**env, "HF_HUB_OFFLINE": "1", "PATH": f"{bindir}{os.pathsep}{env.get('PATH', '')}"}


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: int = 1800) -> subprocess.CompletedProcess:
    exe = str(Path(sys.executable).with_name(argv[0])) if argv[0] in ("mlflow", "specbench") else argv[0]
    r = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
    assert r.returncode == 0, f"{shlex.join(argv)}\n{(r.stdout + r.stderr)[-4000:]}"
    return r


def _runs(client: MlflowClient, kind: str) -> list:
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps, f"tags.`specbench.kind` = '{kind}'")


@pytest.mark.slow
def test_the_printed_sequence_runs_as_written(tmp_path):
    """README/docs: category (no --experiment-name: the Default experiment), compare with and
    without --experiment-name, report, the main job, and compare from a subfolder.

    Measured once under the lock on this CPU (2 shared cores): 4 min 14 s for the whole file,
    nearly all of it this test (6 cells, two engine starts, 2 compares, 2 reports, the main job);
    whether ~/.cache/specbench already held these generations was not controlled."""
    proj, env = _project(tmp_path), _env()
    seq = sequence()
    client = MlflowClient(f"sqlite:///{proj / 'mlflow.db'}")

    for _, argv in seq["category"]:
        _run(argv, proj, env)
    cells = _runs(client, "cell")
    assert cells and {c.data.tags["specbench.category"] for c in cells} == {CATEGORY}
    default = client.get_experiment_by_name("Default").experiment_id
    assert {c.info.experiment_id for c in cells} == {default}  # where `mlflow run` put them
    finished = {(c.data.tags["specbench.model"], c.data.tags["specbench.dataset"]) for c in cells
                if c.info.status == "FINISHED"}
    assert ("smollm2_135m", "gsm8k") in finished

    for where, argv in seq["compare"]:
        _run(argv, proj, env)
        run = max(_runs(client, "compare"), key=lambda r: r.info.start_time)
        assert run.info.status == "FINISHED" and run.data.tags["specbench.category"] == CATEGORY, where
        if "--experiment-name" in argv:
            name = argv[argv.index("--experiment-name") + 1]
            assert run.info.experiment_id == client.get_experiment_by_name(name).experiment_id
        out = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / run.info.run_id)))
        for f in (f"{CATEGORY}.matrix.csv", f"{CATEGORY}.matrix.png", f"{CATEGORY}.efficiency.csv", "summary.html",
                  "provenance.json"):
            assert (out / f).is_file(), f"{where}: {f}"
        matrix = pd.read_csv(out / f"{CATEGORY}.matrix.csv")
        got = {(r.model, r.dataset) for r in matrix.itertuples() if r.status == "finished"}
        assert got == finished, where
        prov = json.loads((out / "provenance.json").read_text())
        assert {p["run_id"] for p in prov["runs"]} >= {c.info.run_id for c in cells if c.info.status == "FINISHED"}
    parent = next(r for r in _runs(client, "category") if r.data.tags.get("specbench.category") == CATEGORY)
    assert parent.data.tags.get("specbench.compare_run")  # the category run links its comparison

    for where, argv in seq["report"]:
        _run(argv, proj, env)
        name = _param(argv, "name")
        acc = pd.read_csv(proj / "reports" / name / "accuracy.csv")
        assert "finished" in set(acc.status), f"{where}: the report found no cell"

    # From a subfolder: the nearest mlflow.db up to the project root is the store.
    r = _run(["specbench", "compare", "--category", CATEGORY, "--log", "false", "--format", "json"],
             proj / "notes", env)
    view = json.loads(r.stdout)["categories"][CATEGORY]["matrix"]
    assert {(m["model"], m["dataset"]) for m in view if m["status"] == "finished"} == finished
    assert not (proj / "notes" / "mlflow.db").exists()

    for _, argv in seq["main"]:  # the same cells at the same size: answered from the generation cache
        r = _run(argv, proj, env)
        assert f"{CATEGORY}: main metric" in r.stdout

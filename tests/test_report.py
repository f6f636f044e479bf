"""Paper reports: experiments/*.yaml is validated like conf/, and the tables regenerate byte
for byte from the same runs, with a deleted cell printed as missing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from tests.conftest import ROOT
from tests.tiny_runs import CATEGORY, DATASETS, GENERALIST, SPECIALIST, cli

from specbench import tracking
from specbench.analysis import report, stats
from specbench.registry import RegistryError, load_registry

pytest_plugins = ["tests.tiny_runs_plugin"]  # one session fixture for test_compare and test_report


def test_the_example_report_declaration_is_valid(registry):
    cfg = report.load(ROOT / "experiments" / "smollm2_demo.yaml", registry)
    assert {t.kind.value for t in cfg.tables} == {"matrix", "delta", "efficiency", "quantization", "framework"}
    assert report.find("smollm2_demo", ROOT / "experiments") == ROOT / "experiments" / "smollm2_demo.yaml"


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["tables"][0].update(models=["smollm2_136m"]), "tables[0].models[0]: unknown model 'smollm2_136m'"),
    (lambda d: d["tables"][0].pop("category"), "category: a matrix table needs a category"),
    (lambda d: d["tables"][0].update(kind="heatmap"), "kind"),
    (lambda d: d["tables"][1].update(id="accuracy"), "duplicate table ids: accuracy"),
    (lambda d: d["tables"][0].update(datsets=["gsm8k"]), "unknown key 'datsets'"),
    (lambda d: d.update(name="other"), "name 'other' must match the file name"),
])
def test_bad_report_files_fail_with_one_line(tmp_path, registry, edit, message):
    data = yaml.safe_load((ROOT / "experiments" / "smollm2_demo.yaml").read_text())
    edit(data)
    path = tmp_path / "smollm2_demo.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RegistryError, match=message.replace("[", r"\[").replace("]", r"\]")):
        report.load(path, registry)


def test_a_matrix_and_an_efficiency_table_share_one_bootstrap(tmp_path, mlflow_store, conf_copy, monkeypatch):
    """Cells written with this version's tags and with the older unprefixed ones are read
    alike; the matrix behind both tables is computed once."""
    (conf_copy / "categories" / "tiny_rep.yaml").write_text(yaml.safe_dump({
        "key": "tiny_rep", "display_name": "t", "description": "t", "models": ["smollm2_135m"],
        "baselines": ["qwen25_0_5b"], "datasets": {"primary": ["winogrande"]}}))
    reg = load_registry(conf_copy)
    client = MlflowClient(mlflow_store)
    exp = client.create_experiment("specbench")
    for i, (model, legacy) in enumerate((("smollm2_135m", False), ("qwen25_0_5b", True))):
        tags = {"model": model, "dataset": "winogrande", "preset": "balanced", "category": "tiny_rep"}
        tags = tags if legacy else {tracking.tag(k): v for k, v in tags.items()} | {tracking.KIND_TAG: "cell"}
        rid = client.create_run(exp, start_time=1_700_000_000_000 + i, tags=tags).info.run_id
        (tmp_path / rid).mkdir()
        (tmp_path / rid / "samples.json").write_text(json.dumps(
            {"columns": ["id", "score.acc"], "data": [[f"q{j}", float((i + j) % 2)] for j in range(8)]}))
        client.log_artifacts(rid, str(tmp_path / rid))
        client.log_metric(rid, "acc", 0.5)
        client.log_param(rid, "model.parameters_b", 0.1)
        client.set_terminated(rid, "FINISHED")
    spec = tmp_path / "two.yaml"
    spec.write_text(yaml.safe_dump({"name": "two", "title": "two", "tables": [
        {"id": "acc", "kind": "matrix", "category": "tiny_rep"}, {"id": "cost", "kind": "efficiency",
                                                                  "category": "tiny_rep"}]}))
    calls = []
    real = stats.bootstrap_mean
    monkeypatch.setattr(stats, "bootstrap_mean", lambda *a, **k: calls.append(1) or real(*a, **k))
    outs, prov = report.build(reg, report.load(spec, reg))
    assert len(calls) == 2  # two cells, one bootstrap each, although two tables show them
    acc = outs[0].long.set_index("model")
    assert set(acc.status) == {"finished"} and set(acc.ci_method) == {"bootstrap"} and set(acc.n) == {8}
    assert list(outs[1].long.accuracy) == [0.5, 0.5] and len(prov["runs"]) == 2


def _write_tiny_report(env: dict[str, str]) -> Path:
    path = Path(env["TMP"]) / "tiny_paper.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tiny_paper", "title": "float32 vs float16", "tables": [
            {"id": "acc", "kind": "matrix", "category": CATEGORY, "decimals": 2,
             "caption": "Accuracy (%) & 95% CI"},
            {"id": "gap", "kind": "delta", "category": CATEGORY, "baseline": GENERALIST, "caption": "fp32 - fp16"},
            {"id": "cost", "kind": "efficiency", "category": CATEGORY},
            {"id": "fw", "kind": "framework"},
        ]}))
    return path


@pytest.mark.slow
def test_report_twice_is_byte_identical_and_a_deleted_cell_shows_as_missing(tiny_runs):
    env = tiny_runs
    spec = _write_tiny_report(env)
    outs = [Path(env["TMP"]) / f"report{i}" for i in (1, 2)]
    for i, out in enumerate(outs):
        r = cli("report", str(spec), "--output", str(out), "--log", "true" if i == 0 else "false", env=env)
        assert r.returncode == 0, r.stderr[-2000:]
    files = sorted(p.name for p in outs[0].iterdir())
    assert files == sorted(p.name for p in outs[1].iterdir())
    assert {"acc.csv", "acc.md", "acc.tex", "gap.tex", "cost.md", "fw.md", "report.md", "provenance.json"} <= set(files)
    for name in files:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name

    acc = pd.read_csv(outs[0] / "acc.csv")
    assert set(acc.status) == {"finished"} and len(acc) == 2 * len(DATASETS)
    tex = (outs[0] / "acc.tex").read_text()
    assert "\\caption{Accuracy (\\%) \\& 95\\% CI}" in tex and "\\toprule" in tex
    prov = json.loads((outs[0] / "provenance.json").read_text())
    assert {p["run_id"] for p in prov["runs"]} == set(acc.run_id)
    assert prov["report"] == "tiny_paper" and prov["generated_by"]["packages"]["mlflow"]

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("specbench").experiment_id
    (logged,) = client.search_runs([exp], "tags.`specbench.kind` = 'report'")
    assert {a.path for a in client.list_artifacts(logged.info.run_id, "report/tiny_paper")} >= {
        "report/tiny_paper/acc.tex", "report/tiny_paper/provenance.json"}

    victim = acc.set_index(["model", "dataset"]).loc[(GENERALIST, "winogrande"), "run_id"]
    client.delete_run(victim)
    try:
        out3 = Path(env["TMP"]) / "report3"
        r = cli("report", str(spec), "--output", str(out3), "--log", "false", env=env)
        assert r.returncode == 0, r.stderr[-2000:]
    finally:
        client.restore_run(victim)
    acc3 = pd.read_csv(out3 / "acc.csv").set_index(["model", "dataset"])
    assert len(acc3) == len(acc)  # the cell is still there ...
    assert acc3.loc[(GENERALIST, "winogrande"), "status"] == "missing"  # ... as missing
    assert acc3.loc[(SPECIALIST, "winogrande"), "status"] == "finished"
    md = (out3 / "acc.md").read_text().splitlines()
    fp16_row = next(line for line in md if line.startswith(f"| {GENERALIST} "))
    assert fp16_row.split(" | ")[DATASETS.index("winogrande") + 2] == "—"
    assert "---" in (out3 / "acc.tex").read_text()
    gap = pd.read_csv(out3 / "gap.csv").set_index("dataset")
    assert gap.loc["winogrande", "status"] == "missing" and gap.loc["arc_challenge", "status"] == "finished"
    assert victim not in {p["run_id"] for p in json.loads((out3 / "provenance.json").read_text())["runs"]}
    assert (out3 / "cost.md").read_bytes() != (outs[0] / "cost.md").read_bytes()  # the common datasets shrank

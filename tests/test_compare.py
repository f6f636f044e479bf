"""Comparisons: statistics with known answers, run selection on a real MLflow store (runs
written with this version's prefixed tags and with the older unprefixed ones), and the whole
`compare` path (MLflow project entry point, artifacts) on real SmolLM2 runs."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from tests.conftest import ROOT
from tests.tiny_runs import CATEGORY, DATASETS, GENERALIST, SAMPLES, SPECIALIST, cli

from specbench import tracking
from specbench.analysis import compare, render, select, stats, tables
from specbench.registry import load_registry

pytest_plugins = ["tests.tiny_runs_plugin"]  # one session fixture for test_compare and test_report

# -- statistics -----------------------------------------------------------------------


def test_mcnemar_matches_a_table_computed_by_hand():
    # 2x2 table of paired outcomes (A right/wrong x B right/wrong): 5 both right, 3 both wrong,
    # b = 10 only A right, c = 2 only B right.
    a = [1] * 5 + [0] * 3 + [1] * 10 + [0] * 2
    b = [1] * 5 + [0] * 3 + [0] * 10 + [1] * 2
    m = stats.mcnemar(a, b)
    assert (m.b, m.c, m.n) == (10, 2, 20)
    # Exact: two-sided binomial on 12 discordant pairs, P(X <= 2) doubled = 2 * (1 + 12 + 66) / 2**12.
    assert m.p_exact == pytest.approx(158 / 4096, abs=1e-12)
    # Continuity-corrected chi-square: (|10 - 2| - 1)^2 / 12 = 49/12, 1 dof: p = erfc(sqrt(x / 2)).
    assert m.statistic == pytest.approx(49 / 12)
    assert m.p_chi2 == pytest.approx(math.erfc(math.sqrt(49 / 24)), rel=1e-9)
    # Swapping A and B swaps b and c and keeps p.
    assert stats.mcnemar(b, a).p_exact == pytest.approx(m.p_exact)
    # No discordant pair: no evidence.
    assert stats.mcnemar([1, 0, 1], [1, 0, 1]).p_exact == 1.0
    with pytest.raises(ValueError):
        stats.mcnemar([0.5, 1], [1, 0])


def test_paired_test_uses_mcnemar_for_right_wrong_and_the_bootstrap_otherwise():
    a = [1] * 5 + [0] * 3 + [1] * 10 + [0] * 2
    b = [1] * 5 + [0] * 3 + [0] * 10 + [1] * 2
    r = stats.paired_test(a, b)
    assert r.test == "mcnemar_exact" and r.p_value == pytest.approx(158 / 4096)
    assert r.delta == pytest.approx(8 / 20) and r.low <= 0.4 <= r.high and (r.b, r.c) == (10, 2)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, 60)
    r2 = stats.paired_test(x + 0.3, x + rng.normal(0, 0.1, 60))
    assert r2.test == "paired_bootstrap" and r2.p_value < 0.01 and r2.low > 0.2
    r3 = stats.paired_test(x, x + rng.normal(0, 0.1, 60))
    assert r3.p_value > 0.05 and r3.low < 0 < r3.high


def test_bootstrap_interval_covers_the_true_difference_in_a_seeded_simulation():
    """Paired right/wrong outcomes with a known accuracy gap of 0.15: the 95% interval of the
    difference covers it in about 95% of simulated evaluations, and so does the interval of
    each model's accuracy."""
    rng = np.random.default_rng(20240501)
    p_a, p_b, n, sims = 0.70, 0.55, 300, 200
    covered_delta = covered_mean = 0
    for s in range(sims):
        u = rng.uniform(size=n)  # a shared item difficulty makes the outcomes correlated, as real pairs are
        a = (u < p_a).astype(float)
        b = (np.where(rng.uniform(size=n) < 0.6, u, rng.uniform(size=n)) < p_b).astype(float)
        r = stats.paired_test(a, b, n_resamples=1000, seed=s)
        covered_delta += r.low <= p_a - p_b <= r.high
        iv = stats.bootstrap_mean(a, n_resamples=1000, seed=s)
        covered_mean += iv.low <= p_a <= iv.high
    # Nominal 95%; with 200 simulations the binomial SD of the rate is 1.5 points.
    assert 0.90 <= covered_delta / sims <= 0.99, covered_delta
    assert 0.90 <= covered_mean / sims <= 0.99, covered_mean


def test_bootstrap_is_reproducible_with_its_seed():
    x = np.random.default_rng(3).integers(0, 2, 40)
    assert stats.bootstrap_mean(x, seed=7) == stats.bootstrap_mean(x, seed=7)
    iv = stats.bootstrap_mean(x)
    assert iv.low < x.mean() < iv.high and iv.n == 40
    assert stats.bootstrap_mean([1, 1, 1]) == stats.Interval(1.0, 1.0, 1.0, 3)  # nothing to resample
    assert math.isnan(stats.bootstrap_mean([]).estimate)


def test_pareto_front_on_known_points():
    #            A    B    C    D    E (NaN: never on the front)
    speed = [10.0, 20.0, 15.0, 5.0, np.nan]
    acc = [0.5, 0.4, 0.6, 0.6, 0.9]
    assert stats.pareto_front(speed, acc).tolist() == [False, True, True, False, False]
    memory = [100.0, 50.0, 300.0, 400.0, np.nan]  # lower is better; D is C with more memory
    assert stats.pareto_front(memory, acc, maximize_x=False).tolist() == [True, True, True, False, False]


def test_significance_marks_reach_the_tables():
    long = pd.DataFrame([
        {"model": "spec", "preset": "p", "dataset": "d1", "status": "finished", "delta": 0.2, "ci_low": 0.1,
         "ci_high": 0.3, "p_value": 0.004},
        {"model": "spec", "preset": "p", "dataset": "d2", "status": "failed", "delta": np.nan, "ci_low": np.nan,
         "ci_high": np.nan, "p_value": np.nan},
        {"model": "spec", "preset": "p", "dataset": "d3", "status": "missing", "delta": np.nan, "ci_low": np.nan,
         "ci_high": np.nan, "p_value": np.nan},
    ])
    d = render.delta_display(long)
    assert d.iloc[0].tolist() == ["spec", "+20.0** [+10.0, +30.0]", "failed", render.DASH]
    tex = render.to_latex(d, caption="50% of a_b", label="tab:x")
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "50\\% of a\\_b" in tex and "---" in tex and render.DASH not in tex
    assert "| spec | +20.0** [+10.0, +30.0] | failed | — |" in render.to_markdown(d)


# -- selection on a real store, no model -------------------------------------------------

_START = itertools.count(1_700_000_000_000, 1000)  # start times one second apart: "latest" is unambiguous


def _cell_run(client: MlflowClient, exp: str, model: str, dataset: str, status: str, acc: float | None = None,
              preset: str = "balanced", legacy: bool = False) -> str:
    """A cell run as this version writes it (prefixed tags, kind, MLflow's commit tag), or
    ``legacy``: as runs were written before (unprefixed tags, no kind, ``git_commit``)."""
    tags = {"model": model, "dataset": dataset, "preset": preset, "category": CATEGORY, "main_metric": "acc"}
    if legacy:
        tags["git_commit"] = "c0ffee-legacy"
    else:
        tags = {tracking.tag(k): v for k, v in tags.items()} | {tracking.KIND_TAG: "cell",
                                                                tracking.GIT_COMMIT_TAG: "c0ffee-new"}
    run = client.create_run(exp, start_time=next(_START), tags=tags)
    if acc is not None:
        client.log_metric(run.info.run_id, "acc", acc)
        client.log_metric(run.info.run_id, "acc_stderr", 0.1)
    client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def test_latest_finished_run_wins_and_failed_or_deleted_cells_stay_visible(tmp_path, monkeypatch, conf_copy):
    (conf_copy / "categories" / f"{CATEGORY}.yaml").write_text(yaml.safe_dump({
        "key": CATEGORY, "display_name": "t", "description": "t", "models": ["smollm2_135m"],
        "baselines": ["qwen25_0_5b"], "datasets": {"primary": ["winogrande", "mmlu", "truthfulqa"]}}))
    reg = load_registry(conf_copy)
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(uri)
    exp = client.create_experiment("specbench")
    old = _cell_run(client, exp, "smollm2_135m", "winogrande", "FINISHED", 0.1)
    new = _cell_run(client, exp, "smollm2_135m", "winogrande", "FINISHED", 0.3, legacy=True)  # older tag names
    _cell_run(client, exp, "smollm2_135m", "winogrande", "FAILED")  # a later failure does not hide `new`
    failed = _cell_run(client, exp, "smollm2_135m", "mmlu", "FAILED", legacy=True)
    gone = _cell_run(client, exp, "qwen25_0_5b", "winogrande", "FINISHED", 0.5)
    client.delete_run(gone)
    # Not a cell although it names a model and a dataset: a run of another kind stays out.
    other = client.create_run(exp, tags={tracking.KIND_TAG: "rescore", tracking.tag("model"): "smollm2_135m",
                                         tracking.tag("dataset"): "truthfulqa", tracking.tag("category"): CATEGORY})
    client.set_terminated(other.info.run_id, "FINISHED")

    cells = select.select_cells(select.Selection(category=CATEGORY))
    reader = tracking.ArtifactReader()
    assert cells[("smollm2_135m", "winogrande", "balanced")].run_id == new != old
    m = tables.metric_matrix(reg, reader, cells, CATEGORY).set_index(["model", "dataset"])
    assert len(m) == 6  # 2 models x 3 datasets: nothing dropped
    assert m.loc[("smollm2_135m", "winogrande")].value == pytest.approx(0.3)
    row = m.loc[("smollm2_135m", "winogrande")]
    assert row.ci_method == "stderr" and row.ci_low == pytest.approx(0.3 - 1.96 * 0.1)  # no samples.json here
    assert m.loc[("smollm2_135m", "mmlu")].status == "failed"
    assert m.loc[("smollm2_135m", "mmlu")].run_id == failed
    assert m.loc[("smollm2_135m", "truthfulqa")].status == "missing"
    assert m.loc[("qwen25_0_5b", "winogrande")].status == "missing"  # deleted
    d = tables.delta_matrix(reg, reader, cells, CATEGORY)
    assert list(d.status) == ["missing", "failed", "missing"]
    prov = {p["run_id"]: p for p in compare.provenance(reader, list(cells.values()))["runs"]}
    assert prov[new]["git_commit"] == "c0ffee-legacy" and prov[new]["category"] == CATEGORY
    assert prov[failed]["main_metric"] == "acc"
    assert cells[("smollm2_135m", "winogrande", "balanced")].tag("preset") == "balanced"
    with pytest.raises(tracking.TrackingError, match="no experiment 'nope'"):
        select.select_cells(select.Selection(experiment="nope"))
    with pytest.raises(tracking.TrackingError, match="no run with id 'feed'"):
        select.select_cells(select.Selection(parent_run="feed"))


def test_artifact_reader_downloads_each_file_once_and_reads_absent_files_as_none(mlflow_store):
    with tracking.open_run("cell", name="reader", experiment="test-reader") as run:
        run.log_table([{"id": "a", "score.acc": 1.0}, {"id": "b", "score.acc": 0.0}])
        run.log_dict({"mlflow": "3"}, "environment.json")
    reader = tracking.ArtifactReader()
    rows = reader.table(run.run_id)
    assert rows == [{"id": "a", "score.acc": 1.0}, {"id": "b", "score.acc": 0.0}]
    assert reader.table(run.run_id) is rows  # cached: one download per file
    assert reader.json_artifact(run.run_id, "environment.json") == {"mlflow": "3"}
    assert reader.table(run.run_id, "nope.json") is None and reader.json_artifact("0" * 32, "x.json") is None


def test_framework_matrix_comes_from_conf_and_is_validated(conf_copy):
    reg = load_registry(conf_copy)
    assert reg.framework is not None
    math_row = reg.framework.tasks["mathematics"]
    assert math_row.models["specialist"] == "qwen25_math_7b" and math_row.models["generalist"] == "qwen25_7b"
    fw = tables.framework_matrix(reg, {})
    assert len(fw) == len(reg.framework.tasks) * len(reg.framework.roles)
    assert set(fw.status) == {"missing"}
    text = (conf_copy / "framework.yaml").read_text().replace("generalist: granite_3_1_8b", "generalist: granit")
    (conf_copy / "framework.yaml").write_text(text)
    r = subprocess.run([sys.executable, "-m", "specbench.cli", "--conf", str(conf_copy), "validate"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2
    assert "framework.yaml: tasks.data_analysis.models.generalist: unknown model 'granit'" in r.stderr


# -- the real thing ---------------------------------------------------------------------

@pytest.mark.slow
def test_compare_project_entry_point_logs_tables_heatmaps_and_html(tiny_runs):
    env = tiny_runs
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    r = subprocess.run([str(mlflow_bin), "run", ".", "-e", "compare", "-P", f"category={CATEGORY}",
                        "-P", "framework=true", "--experiment-name", "specbench", "--env-manager", "local"],
                       capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env}, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("specbench").experiment_id
    (run,) = client.search_runs([exp], "tags.`specbench.kind` = 'compare'")
    assert run.data.tags["specbench.category"] == CATEGORY and run.info.status == "FINISHED"
    assert client.get_run(env["PARENT_RUN"]).data.tags[compare.COMPARE_LINK_TAG] == run.info.run_id
    out = Path(client.download_artifacts(run.info.run_id, "", env["TMP"] + "/compare_artifacts"))
    stem = f"{CATEGORY}.delta_vs_{GENERALIST}"
    for name in (f"{CATEGORY}.matrix.csv", f"{CATEGORY}.matrix.md", f"{CATEGORY}.matrix.tex",
                 f"{CATEGORY}.matrix.png", f"{stem}.csv", f"{stem}.tex", f"{stem}.png", f"{CATEGORY}.efficiency.csv",
                 f"{CATEGORY}.efficiency_throughput.png", f"{CATEGORY}.efficiency_memory.png", "framework.png",
                 "framework.csv", "summary.html", "provenance.json"):
        assert (out / name).is_file(), name

    matrix = pd.read_csv(out / f"{CATEGORY}.matrix.csv")
    assert len(matrix) == 2 * len(DATASETS) and set(matrix.status) == {"finished"}
    assert set(matrix.n) == {SAMPLES} and set(matrix.ci_method) == {"bootstrap"}
    assert (matrix.ci_low <= matrix.value).all() and (matrix.value <= matrix.ci_high).all()
    delta = pd.read_csv(out / f"{stem}.csv")
    assert list(delta.dataset) == DATASETS and set(delta.n_paired) == {SAMPLES}
    assert set(delta.test) == {"mcnemar_exact"}  # accuracy and exact match are right/wrong per item
    assert delta.p_value.between(0, 1).all()
    assert (delta.delta.round(9) == (delta.model_value - delta.baseline_value).round(9)).all()
    eff = pd.read_csv(out / f"{CATEGORY}.efficiency.csv")
    assert (eff.output_tokens_per_s > 0).all() and (eff.memory_mb > 0).all()  # math is generated
    assert set(eff.memory_metric) == {"peak_rss_mb"} and set(eff.parameters_b) == {0.135}
    assert eff.pareto_throughput.any() and eff.pareto_memory.any()
    fw = pd.read_csv(out / "framework.csv")
    assert fw.set_index("role").loc["specialist", "status"] == "finished"
    assert fw.set_index("role").loc["efficiency", "status"] == "missing"  # no model declared for it

    tex = (out / f"{CATEGORY}.matrix.tex").read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex and "smollm2\\_135m\\_fp16" in tex
    html = (out / "summary.html").read_text()
    assert html.count("data:image/png;base64,") == 5  # self-contained: figures inline, nothing fetched
    assert 'src="http' not in html and "<link" not in html and "<script" not in html
    prov = json.loads((out / "provenance.json").read_text())
    assert {p["run_id"] for p in prov["runs"]} == set(matrix.run_id)
    assert all(p["config_hash"] and p["dataset_digest"] and p["git_commit"] for p in prov["runs"])
    assert prov["run_environments"][0]["mlflow"]

    import matplotlib.image as mpimg

    img = mpimg.imread(out / f"{CATEGORY}.matrix.png")
    assert img.shape[0] > 150 and img.shape[1] > 500 and img.std() > 0.05  # a real picture, not blank


@pytest.mark.slow
def test_compare_cli_by_parent_run_as_json(tiny_runs):
    r = cli("compare", "--parent-run", tiny_runs["PARENT_RUN"], "--log", "false", "--format", "json", env=tiny_runs)
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads(r.stdout)
    rows = data["categories"][CATEGORY]["matrix"]
    assert {(x["model"], x["dataset"]) for x in rows} == {(m, d) for m in (SPECIALIST, GENERALIST) for d in DATASETS}
    assert data["run_id"] is None
    bad = cli("compare", "--parent-run", "0123456789abcdef", "--log", "false", env=tiny_runs)
    assert bad.returncode == 2 and "no run with id" in bad.stderr


# -- which run fills a cell: sample counts, not recency -------------------------------------

def _tracked_cell(model: str, n: int | None, correct: list[int], config: str, samples: str | None = None) -> str:
    """A finished cell run through tracking.open_run: n_samples, samples param, per-item table."""
    tags = {"model": model, "dataset": "winogrande", "preset": "balanced", "category": CATEGORY,
            "main_metric": "acc", "config_hash": config}
    params = {"samples": samples if samples is not None else str(n)}
    with tracking.open_run("cell", name=f"{model}-{n}", tags=tags, params=params, experiment="specbench") as run:
        run.log_metrics({"acc": sum(correct) / len(correct), "n_samples": n})
        run.log_table([{"id": f"q{i}", "score.acc": float(c)} for i, c in enumerate(correct)])
    return run.run_id


def test_a_later_smoke_run_does_not_replace_a_full_run_and_mixed_counts_are_flagged(mlflow_store, conf_copy):
    (conf_copy / "categories" / f"{CATEGORY}.yaml").write_text(yaml.safe_dump({
        "key": CATEGORY, "display_name": "t", "description": "t", "models": ["smollm2_135m"],
        "baselines": ["qwen25_0_5b"], "datasets": {"primary": ["winogrande"]}}))
    reg = load_registry(conf_copy)
    spec = "smollm2_135m"
    old_full = _tracked_cell(spec, 8, [1, 0] * 4, "h-old")
    full = _tracked_cell(spec, 8, [1, 1, 1, 0] * 2, "h-new")  # same count, newer: the current config
    smoke = _tracked_cell(spec, 4, [0, 0, 0, 0], "h-smoke")  # the latest run, on 4 items only
    base = _tracked_cell("qwen25_0_5b", 4, [1, 0, 0, 0], "h-base")  # the baseline ran on 4 items only
    cells = select.select_cells(select.Selection(category=CATEGORY))
    assert cells[(spec, "winogrande", "balanced")].run_id == full not in (old_full, smoke)
    assert cells[(spec, "winogrande", "balanced")].n_samples == 8
    assert cells[("qwen25_0_5b", "winogrande", "balanced")].run_id == base

    reader = tracking.ArtifactReader()
    m = tables.metric_matrix(reg, reader, cells, CATEGORY).set_index("model")
    assert m.loc[spec, "n"] == 8 and m.loc["qwen25_0_5b", "n"] == 4 and m.mixed_samples.all()
    disp = render.matrix_display(m.reset_index())
    assert list(disp.columns) == ["model", "role", "winogrande", "samples"]
    assert disp.set_index("model").loc[spec, "winogrande"].startswith("75.0" + render.MIXED)
    assert set(disp.samples) == {"8", "4"}
    d = tables.delta_matrix(reg, reader, cells, CATEGORY)
    row = d.iloc[0]
    assert (row.model_n, row.baseline_n, bool(row.mixed_samples), row.n_paired) == (8, 4, True, 4)
    dd = render.delta_display(d)
    assert dd.samples.tolist() == ["8 vs 4"] and render.MIXED in dd.iloc[0]["winogrande"]
    assert render.samples_note(d) == render.MIXED_NOTE
    md = render.to_markdown(dd, note=render.join_notes(render.SIG_NOTE, render.samples_note(d)))
    assert "Benjamini-Hochberg" in md and "sample counts differ" in md
    assert "$^\\dagger$" in render.to_latex(dd) and render.MIXED not in render.to_latex(dd)

    comp = compare.build(reg, select.Selection(category=CATEGORY), reader=reader)
    warnings = compare.sample_warnings(comp)
    assert any("winogrande compares cells on different numbers of items" in w for w in warnings)
    assert any("smollm2_135m (8 items) vs qwen25_0_5b (4 items)" in w for w in warnings)
    prov = {p["run_id"]: p for p in comp.provenance["runs"]}
    assert prov[full]["n_samples"] == 8 and prov[base]["n_samples"] == 4

    # Equal counts everywhere: no flag, no extra column, no note.
    same = tables.metric_matrix(reg, reader, {k: c for k, c in cells.items() if k[0] == spec}, CATEGORY)
    assert not same.mixed_samples.any() and "samples" not in render.matrix_display(same).columns
    assert render.samples_note(same) == ""


def test_sample_count_reads_older_runs_and_failures_do_not_rank_by_size():
    def rec(status, start, metrics=None, params=None):
        return tracking.RunRecord(f"r{start}", "0", status, start, {"model": "m", "dataset": "d", "preset": "p"},
                                  metrics or {}, params or {})

    assert select.sample_count(rec("FINISHED", 1, {"n_samples": 50.0})) == 50
    assert select.sample_count(rec("FINISHED", 1, params={"samples": "12"})) == 12
    assert select.sample_count(rec("FINISHED", 1, params={"samples": "all"})) == math.inf
    assert select.sample_count(rec("FINISHED", 1)) is None  # an older run that says neither
    legacy_full = rec("FINISHED", 1, params={"samples": "all"})
    later_smoke = rec("FINISHED", 2, {"n_samples": 4.0})
    cells = select.pick_cells([legacy_full, later_smoke, rec("FAILED", 3, {"n_samples": 999.0})])
    assert cells[("m", "d", "p")].run is legacy_full
    only_failed = select.pick_cells([rec("FAILED", 5, {"n_samples": 100.0}), rec("FAILED", 6, {"n_samples": 4.0})])
    assert only_failed[("m", "d", "p")].run.start_time == 6 and only_failed[("m", "d", "p")].status == "failed"
    assert select.latest_cells is select.pick_cells


# -- false discovery rate -----------------------------------------------------------------

def test_benjamini_hochberg_matches_scipy_and_drives_the_marks():
    from scipy.stats import false_discovery_control

    p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]
    q = stats.adjust_pvalues(p)
    assert q == pytest.approx(false_discovery_control(p, method="bh"))
    # Hand-checked: the largest p stays, and 0.041 * 10 / 4 = 0.1025 is lifted to the min over ranks >= 4.
    assert q[-1] == pytest.approx(0.216) and q[0] == pytest.approx(0.01) and q[3] == pytest.approx(0.084)
    # NaN (no test) stays NaN and is not counted: the finite ones are adjusted as a family of three.
    with_nan = stats.adjust_pvalues([0.01, np.nan, 0.04, 0.03])
    assert np.isnan(with_nan[1])
    assert with_nan[[0, 2, 3]] == pytest.approx(false_discovery_control([0.01, 0.04, 0.03], method="bh"))
    assert stats.adjust_pvalues([]).size == 0 and np.isnan(stats.adjust_pvalues([np.nan])).all()

    # A table of five tests: raw p = 0.02 alone would earn a star; adjusted it does not.
    long = pd.DataFrame([{"model": "spec", "preset": "p", "dataset": f"d{i}", "status": "finished", "delta": 0.1,
                          "ci_low": 0.0, "ci_high": 0.2, "p_value": pv} for i, pv in
                         enumerate([0.0001, 0.02, 0.3, 0.5, 0.9])])
    long = tables.with_fdr(long)
    assert long.p_adjusted.tolist() == pytest.approx(list(false_discovery_control(long.p_value, method="bh")))
    texts = render.delta_display(long).iloc[0].tolist()
    assert texts[1] == "+10.0*** [+0.0, +20.0]"  # q = 0.0005
    assert texts[2] == "+10.0 [+0.0, +20.0]"  # p = 0.02, q = 0.05: no longer marked
    assert "Benjamini-Hochberg" in render.SIG_NOTE and "q<0.05" in render.SIG_NOTE

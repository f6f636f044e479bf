"""lm-evaluation-harness interoperability (pipeline.lmeval_io), with lm-eval 0.4.13 as the reference:
the files a cell writes have the fields of lm-eval's own schema (lm_eval.result_schema) and values
lm-eval's gsm8k task computes from the same responses; a samples file lm-eval itself wrote (its
evaluator over a scripted model, its EvaluationTracker) is scored by `specbench score` to the
exact_match lm-eval reports.  No model: outputs are crafted, scoring is real."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from tests.canned import CannedEngine
from tests.conftest import ROOT

from specbench import pipeline
from specbench.pipeline import lmeval_io
from specbench.types import ChoiceScores

lm_eval = pytest.importorskip("lm_eval", reason="lm_eval not installed (pip install lm_eval==0.4.13)")
from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.api.model import LM  # noqa: E402
from lm_eval.api.task import ConfigurableTask  # noqa: E402
from lm_eval.result_schema import EvalResults, SampleResult  # noqa: E402

SLICES = ROOT / "src" / "specbench" / "slices"
N = 24


def gsm8k_task(tmp_path: Path) -> ConfigurableTask:
    """lm-eval's own gsm8k task (its gsm8k.yaml) over the shipped slices."""
    cfg = yaml.safe_load((Path(lm_eval.__file__).parent / "tasks" / "gsm8k" / "gsm8k.yaml").read_text())
    files = {"test": str(SLICES / "gsm8k.test.jsonl"), "train": str(SLICES / "gsm8k.train.jsonl")}
    cfg.update(dataset_path="json", dataset_name=None, dataset_kwargs={"data_files": files, "cache_dir": str(tmp_path)})
    return ConfigurableTask(config=cfg)


def answer_variants(doc: dict, i: int) -> str:
    """Strict and flexible right, flexible only, both wrong, by position."""
    number = doc["answer"].rsplit("#### ", 1)[1]
    return [doc["answer"], f"So she has {number} left.", "I don't know.", f"#### {number}1"][i % 4]


def cell(registry, key: str, n: int = N):
    plan = pipeline.plan_cell(registry, "smollm2_135m", key, engine="transformers", samples=n)
    return plan, pipeline.prepare(plan.task, n, offline=True)


def parse(files: dict[str, str], task: str) -> tuple[dict, list[dict]]:
    assert set(files) == {"lm_eval/results.json", f"lm_eval/samples_{task}.jsonl"}
    lines = files[f"lm_eval/samples_{task}.jsonl"].splitlines()
    return json.loads(files["lm_eval/results.json"]), [json.loads(x) for x in lines]


def test_every_lm_eval_dataset_names_its_metrics(registry):
    """Each dataset that mirrors an lm-eval task is one lm-eval knows, and its main metric has an lm-eval name."""
    from lm_eval.tasks import TaskManager

    known = set(TaskManager().all_tasks)
    mirrored = {d.key: d for d in registry.datasets.values() if d.lm_eval_task}
    assert {"gsm8k", "mmlu", "arc_challenge", "hellaswag", "winogrande", "truthfulqa", "pubmedqa", "humaneval",
            "mbpp", "math"} <= set(mirrored)
    for d in mirrored.values():
        assert d.lm_eval_task in known, d.key
        assert d.main_metric in lmeval_io.metric_names(d), d.key
    names = lmeval_io.metric_names(registry.dataset("gsm8k"))
    assert names == {"exact_match_strict": ("exact_match", "strict-match"),
                     "exact_match_flexible": ("exact_match", "flexible-extract")}
    assert lmeval_io.metric_names(registry.dataset("mbpp")) == {"pass_at_1": ("pass_at_1", "none")}
    assert lmeval_io.metric_names(registry.dataset("humaneval"))["pass_at_1"] == ("pass@1", "create_test")


def test_gsm8k_cell_files_are_lm_evals(registry, tmp_path):
    """Field names of lm-eval's schema; per filter, the response filtered and scored as lm-eval's gsm8k does."""
    plan, prep = cell(registry, "gsm8k")
    task = gsm8k_task(tmp_path)
    docs = list(task.test_docs())[:N]
    outputs = [[answer_variants(doc, i)] for i, doc in enumerate(docs)]
    report = pipeline.score(plan.task, prep.items, outputs)
    results, records = parse(lmeval_io.cell_files(plan, prep.items, prep.prompts, outputs, report, "abc"), "gsm8k")

    # results: lm-eval's top-level keys, its "<metric>,<filter>" row, the cell's metrics
    assert set(results) <= set(EvalResults.__annotations__) | {"specbench"}
    assert {"results", "configs", "versions", "n-shot", "higher_is_better", "n-samples", "config", "git_hash",
            "date", "task_hashes"} <= set(results)
    row = results["results"]["gsm8k"]
    assert row["exact_match,strict-match"] == report.metrics["exact_match_strict"]
    assert row["exact_match,flexible-extract"] == report.metrics["exact_match_flexible"]
    assert row["exact_match_stderr,strict-match"] == pytest.approx(report.metrics["exact_match_strict_stderr"])
    assert results["n-samples"]["gsm8k"] == {"original": 1319, "effective": N} and results["n-shot"]["gsm8k"] == 5
    assert results["higher_is_better"]["gsm8k"] == {"exact_match": True} and results["git_hash"] == "abc"

    # samples: one record per document and filter, lm-eval's fields, metric values lm-eval computes
    assert len(records) == 2 * N
    assert all(set(SampleResult.__annotations__) <= set(r) for r in records)
    insts = [Instance(request_type="generate_until", doc=d, arguments=("", {}), idx=0, resps=o)
             for d, o in zip(docs, outputs, strict=True)]
    for f in task._filters:
        f.apply(insts)
    for r in records:
        inst = insts[r["doc_id"]]
        assert r["resps"] == [outputs[r["doc_id"]]] and r["metrics"] == ["exact_match"]
        assert r["filtered_resps"] == [inst.filtered_resps[r["filter"]]]
        assert r["exact_match"] == task.process_results(inst.doc, [inst.filtered_resps[r["filter"]]])["exact_match"]
        assert set(r["arguments"]) == {"gen_args_0"} and r["arguments"]["gen_args_0"]["arg_1"]["until"]
    by_filter = {f: [r["exact_match"] for r in records if r["filter"] == f] for f in ("strict-match",
                                                                                      "flexible-extract")}
    assert sum(by_filter["strict-match"]) / N == row["exact_match,strict-match"] < row["exact_match,flexible-extract"]
    assert results["task_hashes"]["gsm8k"] == lm_eval.utils.hash_string(
        "".join(r["doc_hash"] + r["prompt_hash"] + r["target_hash"] for r in records))


def test_multiple_choice_files_round_trip(registry, tmp_path):
    """arc_challenge: loglikelihood responses as lm-eval writes them ([logprob, is_greedy] strings per
    choice), read back by `specbench score` to the same acc / acc_norm."""
    plan, prep = cell(registry, "arc_challenge")
    rng = random.Random(0)
    outputs = [ChoiceScores([rng.uniform(-30, -1) for _ in it.choices], [False] * len(it.choices))
               for it in prep.items]
    report = pipeline.score(plan.task, prep.items, outputs)
    results, records = parse(lmeval_io.cell_files(plan, prep.items, prep.prompts, outputs, report),
                             "arc_challenge")
    row = results["results"]["arc_challenge"]
    assert (row["acc,none"], row["acc_norm,none"]) == (report.metrics["acc"], report.metrics["acc_norm"])
    assert len(records) == N and {r["filter"] for r in records} == {"none"}
    first, item = records[0], prep.items[0]
    assert len(first["arguments"]) == len(first["resps"]) == len(item.choices) and first["target"] == str(item.gold)
    assert first["resps"][0] == [[str(outputs[0].logprobs[0]), "False"]]
    assert first["metrics"] == ["acc", "acc_norm"] and first["acc"] == report.samples[0].scores["acc"]
    path = tmp_path / "samples_arc_challenge_2026.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    preds = pipeline.read_predictions(path)
    assert [p["logprobs"] for p in preds] == [o.logprobs for o in outputs]
    again, n = pipeline.rescore(registry, "arc_challenge", path)
    assert n == N and again.metrics == report.metrics


class ScriptedLM(LM):
    """An lm-eval model answering gsm8k from the document itself (no weights)."""

    def loglikelihood(self, requests):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError

    def generate_until(self, requests):
        return [answer_variants(r.doc, r.doc_id) for r in requests]


def test_specbench_score_reads_lm_evals_samples_file(tmp_path):
    """lm-eval's evaluator and EvaluationTracker write the samples; `specbench score` reproduces its exact_match."""
    from lm_eval.evaluator import evaluate
    from lm_eval.loggers import EvaluationTracker

    res = evaluate(ScriptedLM(), {"tasks": {"gsm8k": gsm8k_task(tmp_path)}, "groups": {}}, limit=N,
                   log_samples=True, bootstrap_iters=0)
    theirs = res["results"]["gsm8k"]
    tracker = EvaluationTracker(output_path=str(tmp_path / "out"))
    tracker.date_id = "2026-12-03T00-00-00"
    tracker.save_results_samples("gsm8k", res["samples"]["gsm8k"])
    (path,) = (tmp_path / "out").rglob("samples_gsm8k_*.jsonl")
    r = subprocess.run([sys.executable, "-m", "specbench.cli", "score", "--dataset", "gsm8k", "--predictions",
                        str(path), "--format", "json"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    ours = json.loads(r.stdout)
    assert ours["exact_match_strict"] == pytest.approx(theirs["exact_match,strict-match"])
    assert ours["exact_match_flexible"] == pytest.approx(theirs["exact_match,flexible-extract"])
    assert 0 < ours["exact_match_strict"] < ours["exact_match_flexible"] < 1


def test_run_cell_logs_lm_eval_artifacts(registry, mlflow_store, tmp_path):
    import mlflow

    plan, prep = cell(registry, "gsm8k", 4)
    answers = [f"#### {it.reference}" if i % 2 else "no idea" for i, it in enumerate(prep.items)]
    result = pipeline.run_cell(plan, engine=CannedEngine(answers))
    assert result.status == "FINISHED", result.error
    got = Path(mlflow.artifacts.download_artifacts(run_id=result.run_id, artifact_path="lm_eval",
                                                   dst_path=str(tmp_path)))
    results = json.loads((got / "results.json").read_text())
    records = [json.loads(x) for x in (got / "samples_gsm8k.jsonl").read_text().splitlines()]
    assert results["results"]["gsm8k"]["exact_match,strict-match"] == result.metrics["exact_match_strict"] == 0.5
    assert len(records) == 8 and [r["resps"][0][0] for r in records[:4]] == answers


def test_writing_is_cheap(registry):
    """1,000 samples in well under a second (the files are built on every cell run)."""
    plan, prep = cell(registry, "gsm8k", 200)
    items, prompts = prep.items * 5, prep.prompts * 5
    outputs = [[f"It is {it.reference}.\n#### {it.reference}"] for it in items]
    report = pipeline.score(plan.task, items, outputs)
    t0 = time.perf_counter()
    files = lmeval_io.cell_files(plan, items, prompts, outputs, report)
    assert time.perf_counter() - t0 < 1.0  # about 0.2 s here
    assert len(files["lm_eval/samples_gsm8k.jsonl"].splitlines()) == 2000

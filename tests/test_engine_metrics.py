"""Engine metrics (vLLM's own, per cell; GPU memory through NVML) and per-sample evaluation
records (MLflow 3 traces with assessments), without starting an engine: the cell-level checks
on a real vLLM cell are in test_evaluate.py, which shares its engine."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from specbench import tracking
from specbench.engines.base import nvml_memory
from specbench.tracking.traces import REFERENCE, wait_for_traces

ROWS = [
    {"id": "gsm8k/0", "prompt": "Question: 2+2?", "output": "The answer is 4", "extracted": "4", "reference": "4",
     "score.exact_match_strict": 1.0, "score.exact_match_flexible": 1.0},
    {"id": "gsm8k/1", "prompt": "Question: 3+3?", "output": "7", "extracted": "7", "reference": "6",
     "score.exact_match_strict": 0.0, "score.exact_match_flexible": 0.0},
    {"id": "gsm8k/2", "prompt": "Question: 1+1?", "output": "", "extracted": "[invalid]", "reference": "2",
     "score.exact_match_strict": 0.0, "score.exact_match_flexible": float("nan"), "error": "prompt too long"},
]
DETAILS = [{"rationale": "matches the reference"}, {"status": ["fail"], "stderr": "AssertionError"}, {}]


def _traces(store: str, run_id: str) -> dict[str, object]:
    run = MlflowClient(store).get_run(run_id)
    found = MlflowClient(store).search_traces(locations=[run.info.experiment_id], run_id=run_id, max_results=100)
    return {t.info.tags["mlflow.traceName"]: t for t in found}


def test_cell_samples_are_traces_with_assessments(mlflow_store):
    with tracking.open_run("cell", name="smollm2/gsm8k") as run:
        assert run.log_sample_traces(ROWS, DETAILS, tags={"dataset": "gsm8k"}) == 3
    assert wait_for_traces(timeout=60) == []
    traces = _traces(mlflow_store, run.run_id)
    assert sorted(traces) == ["gsm8k/0", "gsm8k/1", "gsm8k/2"]
    first = traces["gsm8k/0"]
    assert first.info.tags["specbench.dataset"] == "gsm8k"
    span = first.data.spans[0]
    assert span.inputs == {"prompt": "Question: 2+2?"}
    assert span.outputs == {"output": "The answer is 4", "extracted": "4"}
    by_name = {a.name: a for a in first.info.assessments}
    assert by_name[REFERENCE].expectation.value == "4"
    assert by_name["exact_match_strict"].feedback.value == 1.0
    assert by_name["exact_match_strict"].rationale == "matches the reference"  # a judge's own words
    assert by_name["exact_match_strict"].source.source_id == "specbench"
    second = {a.name: a for a in traces["gsm8k/1"].info.assessments}
    assert second["exact_match_flexible"].feedback.value == 0.0
    assert "AssertionError" in second["exact_match_flexible"].rationale  # other details, as text
    third = traces["gsm8k/2"]  # could not be asked: an error trace; a score that is not a number is left out
    assert third.info.state.value == "ERROR"
    names = {a.name for a in third.info.assessments}
    assert "exact_match_flexible" not in names and "exact_match_strict" in names
    assert "prompt too long" in next(a for a in third.info.assessments if a.name == "exact_match_strict").rationale


def test_a_resumed_cell_replaces_its_sample_traces(mlflow_store):
    with tracking.open_run("cell", name="c") as run:
        run.log_sample_traces(ROWS)
    assert wait_for_traces(timeout=60) == []
    with tracking.open_run("cell", name="c", resume=run.run_id) as again:
        again.log_sample_traces(ROWS[:2])
    assert wait_for_traces(timeout=60) == []
    assert sorted(_traces(mlflow_store, run.run_id)) == ["gsm8k/0", "gsm8k/1"]


def test_vllm_metrics_are_differences_over_a_window():
    pytest.importorskip("vllm")
    from vllm.v1.metrics.reader import Counter, Gauge, Histogram

    from specbench.engines.vllm_metrics import figures, totals

    def snap(ttft_sum: float, ttft_n: int, queries: int, hits: int, preempt: int) -> dict[str, float]:
        return totals([
            Histogram("vllm:time_to_first_token_seconds", {"engine": "0"}, count=ttft_n, sum=ttft_sum, buckets={}),
            Counter("vllm:prefix_cache_queries", {"engine": "0"}, value=queries),
            Counter("vllm:prefix_cache_hits", {"engine": "0"}, value=hits),
            Counter("vllm:num_preemptions", {"engine": "0"}, value=preempt),
            Counter("vllm:request_success", {"finished_reason": "stop"}, value=ttft_n),
            Counter("vllm:request_success", {"finished_reason": "length"}, value=1),
            Gauge("vllm:kv_cache_usage_perc", {"engine": "0"}, value=0.0),
        ])

    before, after = snap(10.0, 8, 1000, 100, 1), snap(13.0, 14, 1600, 400, 3)
    delta = {k: after[k] - before.get(k, 0.0) for k in after}
    out = figures(delta, kv_peak=0.25)
    assert out["vllm_ttft_mean_s"] == pytest.approx(0.5)  # (13 - 10) / (14 - 8): this window's requests only
    assert out["vllm_prefix_cache_hit_rate"] == pytest.approx(0.5)
    assert out["vllm_preemptions"] == 2 and out["vllm_requests"] == 6  # finish reasons summed
    assert out["vllm_kv_cache_usage_peak"] == 0.25
    assert "vllm_tpot_mean_s" not in out  # nothing observed: no figure, rather than a zero


def test_gpu_memory_through_nvml_only_where_there_is_one():
    out = nvml_memory()
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
    except Exception:  # no package or no NVIDIA driver: nothing reported, nothing raised
        assert out == {}
        return
    assert out["gpu_total_mb"] > 0 and 0 <= out["gpu_used_mb"] <= out["gpu_total_mb"]

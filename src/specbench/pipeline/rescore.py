"""Re-scoring saved outputs with the same scorers and sandbox, no model needed: the cell
pipeline's prepare (items) and score steps, without the answer step.

Accepted files (docs/metrics.md): JSONL with one ``{"id", "output"}`` (or ``"outputs"``
for n > 1, or ``"logprobs"`` for multiple choice) per line, or the ``samples.json``
table a run logged, or lm-evaluation-harness's samples JSONL (``pipeline.lmeval_io``: its
``doc_id`` is the item's position in the split, as lm-eval numbers documents).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from specbench import tracking
from specbench.pipeline import lmeval_io
from specbench.pipeline import task as pipeline
from specbench.registry import Registry
from specbench.types import ChoiceScores, ScoreReport


class PredictionsError(ValueError):
    """A predictions file that cannot be scored; the message says where and why."""


def read_predictions(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise PredictionsError(f"{path}: no such file")
    text = path.read_text()
    if path.suffix == ".json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PredictionsError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(obj, dict) and "columns" in obj and "data" in obj:
            return tracking.read_table(path)
        if isinstance(obj, list):
            return obj
        raise PredictionsError(f"{path}: expected a samples table (columns/data) or a list of records")
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise PredictionsError(f"{path}:{n}: not a JSON line ({exc.msg})") from None
    if lmeval_io.is_samples(rows):  # lm-eval's samples_<task>_<date>.jsonl
        try:
            return lmeval_io.to_predictions(rows, f"{path}: ")
        except ValueError as exc:
            raise PredictionsError(str(exc)) from None
    return rows


def rescore(reg: Registry, dataset_key: str, predictions: str | Path, *, log: bool = False,
            experiment: str | None = None) -> tuple[ScoreReport, int]:
    dataset = reg.dataset(dataset_key)
    rows = read_predictions(predictions)
    task = pipeline.task_for(dataset, instruct=False)
    in_split = pipeline.prepare(task).items
    by_id = {item.id: item for item in in_split}
    items, outputs = [], []
    for n, row in enumerate(rows, 1):
        if "doc_id" in row and "id" not in row:  # lm-eval's numbering: the position in the split
            pos = row["doc_id"]
            if not 0 <= pos < len(in_split):
                raise PredictionsError(f"{predictions}: record {n} has doc_id {pos}, but {dataset_key} has "
                                       f"{len(in_split)} items here")
            items.append(in_split[pos])
        elif (rid := str(row.get("id", ""))) in by_id:
            items.append(by_id[rid])
        else:
            raise PredictionsError(f"{predictions}: record {n} has id '{rid}', not an item of {dataset_key} "
                                   f"(ids look like '{next(iter(by_id))}')")
        if "logprobs" in row and row["logprobs"] is not None:
            lp = row["logprobs"]
            outputs.append(ChoiceScores(logprobs=json.loads(lp) if isinstance(lp, str) else list(lp)))
        elif "outputs" in row:
            outputs.append([str(o) for o in row["outputs"]])
        elif "output" in row:
            out = row["output"]
            outputs.append([str(o) for o in out] if isinstance(out, list) else [str(out)])
        else:
            raise PredictionsError(f"{predictions}: record {n} has none of output, outputs, logprobs")
    if not items:
        raise PredictionsError(f"{predictions}: no predictions")
    report = pipeline.score(task, items, outputs)
    if log:
        with tracking.open_run("rescore", name=f"rescore@{dataset_key}", experiment=experiment,
                               tags={"dataset": dataset_key, "rescored": "true"},
                               params={"dataset.key": dataset_key, "predictions": str(predictions),
                                       "samples": len(items)}) as run:
            run.log_metrics(report.metrics)
            run.log_artifact(str(predictions))
    return report, len(items)

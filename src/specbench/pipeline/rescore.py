"""Re-scoring saved outputs with the same scorers and sandbox, no model needed: the cell
pipeline's prepare (items) and score steps, without the answer step.

Accepted files (docs/metrics.md): JSONL with one ``{"id", "output"}`` (or ``"outputs"``
for n > 1, or ``"logprobs"`` for multiple choice) per line, or the ``samples.json``
table a run logged, or lm-evaluation-harness's samples JSONL (``pipeline.lmeval_io``: its
``doc_id`` is the item's position in the split, as lm-eval numbers documents).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from specbench import tracking
from specbench.pipeline import lmeval_io
from specbench.pipeline import task as pipeline
from specbench.registry import Registry
from specbench.registry.schema import DatasetConfig
from specbench.types import ChoiceScores, Judged, ScoreReport

_log = logging.getLogger("specbench.rescore")  # specbench's own warnings stay on screen


class PredictionsError(ValueError):
    """A predictions file that cannot be scored; the message says where and why."""


def read_predictions(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise PredictionsError(f"{path}: no such file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise PredictionsError(f"{path}:{line}: not UTF-8 text (byte {exc.object[exc.start]:#04x}); "
                               "predictions are UTF-8 JSON lines") from None
    if path.suffix == ".json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PredictionsError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(obj, dict) and "columns" in obj and "data" in obj:
            return tracking.read_table(path)
        if isinstance(obj, list):
            for n, rec in enumerate(obj, 1):
                if not isinstance(rec, dict):
                    raise PredictionsError(f"{path}: record {n} is a JSON {type(rec).__name__}, not an object "
                                           '(e.g. {"id": "...", "output": "..."})')
            return obj
        raise PredictionsError(f"{path}: expected a samples table (columns/data) or a list of records")
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PredictionsError(f"{path}:{n}: not a JSON line ({exc.msg})") from None
        if not isinstance(rec, dict):
            raise PredictionsError(f"{path}:{n}: a JSON {type(rec).__name__}, not an object "
                                   '(e.g. {"id": "...", "output": "..."})')
        rows.append(rec)
    if lmeval_io.is_samples(rows):  # lm-eval's samples_<task>_<date>.jsonl
        try:
            return lmeval_io.to_predictions(rows, f"{path}: ")
        except ValueError as exc:
            raise PredictionsError(str(exc)) from None
    return rows


def _listed(value: Any) -> list[str]:
    """A list column of a samples table (MLflow may hand it back as its JSON text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return [value]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _judged(reg: Registry, dataset: DatasetConfig, row: dict[str, Any], where: str) -> Judged:
    """A judged dataset's record: its turns and its judge's judgments (a run's samples.json has both)."""
    if "judgments" not in row or "output" not in row:
        raise PredictionsError(f"{where} has no {'judgments' if 'output' in row else 'output'}: {dataset.key} is "
                               "judged, so it is re-scored from a run's samples.json (turns and judgments)")
    prompts = reg.judges[dataset.judge.prompts]
    judgments = _listed(row["judgments"])
    return Judged(turns=_listed(row["output"]), judgments=judgments,
                  prompts=_listed(row.get("judge_prompts") or []) or [""] * len(judgments),
                  patterns=list(prompts.rating_patterns), scale=(prompts.scale[0], prompts.scale[1]))


def _texts(value: Any, where: str, name: str) -> list[str]:
    """Generated texts: a string, or a list of strings (n samples); anything else is refused."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    shown = "null" if value is None else f"a JSON {type(value).__name__}"
    raise PredictionsError(f"{where}: '{name}' is {shown}; give the generated text (a string) or, for n samples, "
                           "a non-empty list of strings")


def _output(row: dict[str, Any], item: Any, where: str) -> Any:
    """One record's output, checked: texts, or one log-likelihood per choice."""
    if row.get("logprobs") is not None:
        lp = row["logprobs"]
        if isinstance(lp, str):
            try:
                lp = json.loads(lp)
            except json.JSONDecodeError:
                lp = None
        if not isinstance(lp, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in lp):
            raise PredictionsError(f"{where}: 'logprobs' must be a list of numbers, one per choice")
        if item.choices is not None and len(lp) != len(item.choices):
            raise PredictionsError(f"{where}: {len(lp)} log-likelihoods for {len(item.choices)} choices")
        return ChoiceScores(logprobs=[float(x) for x in lp])
    if "outputs" in row:
        if isinstance(row["outputs"], str):  # "abc" is one text, never three one-character samples
            raise PredictionsError(f"{where}: 'outputs' is a string; 'outputs' lists n samples, 'output' is one")
        return _texts(row["outputs"], where, "outputs")
    if "output" in row:
        return _texts(row["output"], where, "output")
    raise PredictionsError(f"{where} has none of output, outputs, logprobs")


def rescore(reg: Registry, dataset_key: str, predictions: str | Path, *, log: bool = False,
            experiment: str | None = None) -> tuple[ScoreReport, int]:
    dataset = reg.dataset(dataset_key)
    rows = read_predictions(predictions)
    task = pipeline.task_for(dataset, instruct=False)
    in_split = pipeline.prepare(task).items
    by_id = {item.id: item for item in in_split}
    items, outputs = [], []
    seen: dict[str, int] = {}
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
        where = f"{predictions}: record {n} (id {items[-1].id})"
        if items[-1].id in seen:
            raise PredictionsError(f"{where} repeats record {seen[items[-1].id]}; one prediction per item")
        seen[items[-1].id] = n
        if dataset.judge is not None:  # judged: the run's own judgments are re-read, the judge not asked
            outputs.append(_judged(reg, dataset, row, f"{predictions}: record {n}"))
        else:
            outputs.append(_output(row, items[-1], where))
    if not items:
        raise PredictionsError(f"{predictions}: no predictions")
    if len(items) < len(in_split):  # scored, and said: these are not the dataset's scores
        _log.warning("%s covers %d of %s's %d items here: the scores are of those items only", predictions,
                    len(items), dataset_key, len(in_split))
    report = pipeline.score(task, items, outputs)
    if log:
        with tracking.open_run("rescore", name=f"rescore@{dataset_key}", experiment=experiment,
                               tags={"dataset": dataset_key, "rescored": "true", **pipeline.isolation_tags(dataset)},
                               params={"dataset.key": dataset_key, "predictions": str(predictions),
                                       "samples": len(items)}) as run:
            run.log_metrics(report.metrics)
            run.log_artifact(str(predictions))
    return report, len(items)

"""A cell's samples as MLflow 3 evaluation records: one trace per sample, with assessments.

MLflow 3's UI reviews evaluations sample by sample from traces linked to a run (metadata
``mlflow.sourceRun``) that carry assessments.  Each sample becomes one trace whose root span holds
the prompt (inputs) and the output and extracted answer (outputs); the reference is an expectation
(``expected_response``, the name MLflow's own scorers read) and each score a feedback from source
``CODE:specbench``, with the scorer's explanation (a judge's rationale, a program's failure) as its
rationale.  ``samples.json`` stays the table that compare and rescore read; the traces are for people.

Writing is asynchronous.  MLflow stores a trace with its assessments in one transaction, but one
per trace (it has no batch call for either): a thousand samples take 7 s to a minute on sqlite
(each commit is a disk sync), against the per-cell bar of one second (docs/benchmarks.md).  So
one background thread builds and writes the records, in order, while the next cell runs;
:func:`wait_for_traces` blocks until every record handed over so far is stored (tests, and
interpreter exit through ``atexit``), and a write that fails is a warning, never a failed cell.
"""

from __future__ import annotations

import atexit
import base64
import json
import logging
import math
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from mlflow.entities import AssessmentSource, Expectation, Feedback, TraceInfo, TraceLocation, TraceState
from mlflow.entities.span import Span

from specbench.redact import redact

_logger = logging.getLogger(__name__)

SOURCE_RUN = "mlflow.sourceRun"  # the run whose evaluation view lists the trace
REFERENCE = "expected_response"
SPAN_CHUNK = 250  # spans stored per log_spans call
PREVIEW_CHARS = 1000  # what the trace list shows of a request or response
SCORE_PREFIX = "score."
INPUT_KEYS = ("prompt", "image")
OUTPUT_KEYS = ("output", "extracted", "logprobs")


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _plain(value: Any) -> Any:
    """A value MLflow stores as JSON as it is; anything else as its text."""
    return value if isinstance(value, str | int | float | bool | list | dict) or value is None else str(value)


def rationale(detail: dict[str, Any] | None, error: str | None = None) -> str | None:
    """A scorer's explanation of one sample: a judge's ``rationale`` when it gave one, else its
    other details (a program's status and stderr, how a lenient match was made); and why the
    sample could not be asked, if it could not."""
    detail = detail or {}
    parts = [str(detail["rationale"])] if "rationale" in detail else \
        [f"{k}: {_json(v) if not isinstance(v, str) else v}" for k, v in detail.items()]
    if error:
        parts.append(f"error: {error}")
    text = "; ".join(parts)
    return text[:4000] or None


def _span(trace_id: str, name: str, start_ns: int, inputs: dict[str, Any], outputs: dict[str, Any],
          failed: bool) -> Span:
    """A finished root span in MLflow's stored form (ids base64, attribute values JSON)."""
    return Span.from_dict({
        "trace_id": base64.b64encode(bytes.fromhex(trace_id[3:])).decode(),
        "span_id": base64.b64encode(os.urandom(8)).decode(),
        "parent_span_id": None, "name": name, "start_time_unix_nano": start_ns, "end_time_unix_nano": start_ns,
        "events": [], "status": {"code": "STATUS_CODE_ERROR" if failed else "STATUS_CODE_OK", "message": ""},
        "attributes": {"mlflow.traceRequestId": _json(trace_id), "mlflow.spanType": _json("LLM"),
                       "mlflow.spanInputs": _json(inputs), "mlflow.spanOutputs": _json(outputs)},
    })


def sample_records(rows: list[dict[str, Any]], details: list[dict[str, Any]] | None, run_id: str,
                   experiment_id: str, tags: dict[str, str] | None = None) -> tuple[list[TraceInfo], list[Span]]:
    """Trace infos (with their assessments) and root spans for the per-sample rows of a cell
    (``pipeline.sample_rows``: id, prompt, output, extracted, reference, ``score.<metric>``, ...);
    ``details[i]`` is sample i's scorer detail."""
    now_ms = int(time.time() * 1000)
    infos, spans = [], []
    for i, row in enumerate(rows):
        trace_id = "tr-" + uuid.uuid4().hex
        name = str(row.get("id", i))
        inputs = {k: row[k] for k in INPUT_KEYS if k in row}
        outputs = {k: row[k] for k in OUTPUT_KEYS if k in row}
        error = row.get("error")
        why = rationale(details[i] if details and i < len(details) else None, error)
        assessments: list[Any] = []
        if row.get("reference") is not None:
            assessments.append(Expectation(name=REFERENCE, value=_plain(row["reference"]),
                                           source=AssessmentSource("CODE", "specbench"), trace_id=trace_id))
        for key, value in row.items():
            if key.startswith(SCORE_PREFIX) and isinstance(value, int | float) and math.isfinite(value):
                assessments.append(Feedback(name=key[len(SCORE_PREFIX):], value=float(value), rationale=why,
                                            source=AssessmentSource("CODE", "specbench"), trace_id=trace_id))
        spans.append(_span(trace_id, name, now_ms * 1_000_000, inputs, outputs, bool(error)))
        infos.append(TraceInfo(
            trace_id=trace_id, trace_location=TraceLocation.from_experiment_id(experiment_id),
            request_time=now_ms, execution_duration=0, state=TraceState.ERROR if error else TraceState.OK,
            request_preview=_json(inputs)[:PREVIEW_CHARS], response_preview=_json(outputs)[:PREVIEW_CHARS],
            trace_metadata={SOURCE_RUN: run_id, "mlflow.trace_schema.version": "3"},
            tags={"mlflow.traceName": name, **(tags or {})}, assessments=assessments))
    return infos, spans


def write_records(uri: str, experiment_id: str, run_id: str, infos: list[TraceInfo], spans: list[Span],
                  replace: bool) -> None:
    """Store the records (each trace with its assessments, then the spans in chunks); ``replace``
    first deletes the run's earlier sample traces (a resumed cell logs its samples again)."""
    from mlflow import MlflowClient
    from mlflow.tracing.client import TracingClient

    if replace:
        old = run_trace_ids(uri, experiment_id, run_id)
        for start in range(0, len(old), 100):
            MlflowClient(uri).delete_traces(experiment_id, trace_ids=old[start:start + 100])
    client = TracingClient(uri)
    for start in range(0, len(infos), SPAN_CHUNK):
        for info in infos[start:start + SPAN_CHUNK]:
            client.start_trace(info)
        client.log_spans(experiment_id, spans[start:start + SPAN_CHUNK])


def run_trace_ids(uri: str, experiment_id: str, run_id: str) -> list[str]:
    """The ids of the traces a run's evaluation view lists."""
    from mlflow import MlflowClient

    client, ids, token = MlflowClient(uri), [], None
    while True:
        page = client.search_traces(locations=[experiment_id], run_id=run_id, include_spans=False,
                                    max_results=500, page_token=token)
        ids += [t.info.trace_id for t in page]
        token = page.token
        if not token:
            return ids


class _Writer:
    """One daemon thread that runs write jobs in order; :meth:`wait` blocks until the queue is empty."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[str, Callable[[], None]]] = queue.Queue()
        self._errors: list[str] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, what: str, job: Callable[[], None]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="specbench-traces", daemon=True)
                self._thread.start()
        self._jobs.put((what, job))

    def _run(self) -> None:
        while True:
            what, job = self._jobs.get()
            try:
                job()
            except Exception as exc:  # the cell is recorded already; its review records are extra
                msg = redact(f"{what}: {type(exc).__name__}: {exc}")  # a store URL's password stays out
                _logger.warning("per-sample traces not stored for %s", msg)
                with self._lock:
                    self._errors.append(msg)
            finally:
                self._jobs.task_done()

    def pending(self) -> int:
        return self._jobs.unfinished_tasks

    def wait(self, timeout: float | None = None) -> list[str]:
        """Block until every job handed over is done (or ``timeout`` seconds pass: then raise
        TimeoutError); returns the errors since the last wait."""
        deadline = None if timeout is None else time.monotonic() + timeout
        # no live writer (never started, or a forked child's copy of this object): nothing to wait for
        while self._jobs.unfinished_tasks and self._thread is not None and self._thread.is_alive():
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{self._jobs.unfinished_tasks} trace write(s) still running after {timeout} s")
            time.sleep(0.02)
        with self._lock:
            errors, self._errors = self._errors, []
        return errors


_WRITER = _Writer()


def _at_exit() -> None:
    """A command's last cells: their records are stored before the process ends."""
    if _WRITER.pending():
        _logger.info("storing the per-sample traces of %d cell(s) before exiting", _WRITER.pending())
    _WRITER.wait()


atexit.register(_at_exit)


def submit_samples(uri: str, experiment_id: str, run_id: str, rows: list[dict[str, Any]],
                   details: list[dict[str, Any]] | None, replace: bool = False,
                   tags: dict[str, str] | None = None) -> int:
    """Hand a cell's samples over to the background writer, which builds their records and stores
    them (the cell no longer touches ``rows``); returns how many."""
    def job() -> None:
        infos, spans = sample_records(rows, details, run_id, experiment_id, tags)
        write_records(uri, experiment_id, run_id, infos, spans, replace)

    if rows:
        _WRITER.submit(f"run {run_id}", job)
    return len(rows)


def wait_for_traces(timeout: float | None = None) -> list[str]:
    """Block until every sample record handed over so far is stored; the write errors since the
    last call (empty: all stored).  Tests call it before reading traces back."""
    return _WRITER.wait(timeout)

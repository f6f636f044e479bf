"""vLLM's own serving metrics (``LLM.get_metrics()``), per cell.

vLLM keeps Prometheus counters and histograms that grow for the engine's whole life, and a
category's cells share one engine; so each engine call is bracketed by two snapshots and only
the difference is kept (:class:`StatsWindow`), and a cell reads the window its own calls filled.
Means come from a histogram's sum and count differences.  The KV-cache usage gauge is a value
of the moment (zero again once a batch is done), so its peak is recorded step by step instead,
by a small stat logger vLLM calls on every engine step.

No vLLM import at module level: the engine module imports this only once vLLM runs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# Histograms (seconds): cell metric of their mean over the window.
HISTOGRAMS = {
    "vllm:time_to_first_token_seconds": "vllm_ttft_mean_s",
    "vllm:request_time_per_output_token_seconds": "vllm_tpot_mean_s",
    "vllm:inter_token_latency_seconds": "vllm_itl_mean_s",
    "vllm:e2e_request_latency_seconds": "vllm_e2e_latency_mean_s",
    "vllm:request_queue_time_seconds": "vllm_queue_time_mean_s",
    "vllm:request_prefill_time_seconds": "vllm_prefill_time_mean_s",
    "vllm:request_decode_time_seconds": "vllm_decode_time_mean_s",
}
# Counters: cell metric of their increase over the window.
COUNTERS = {
    "vllm:num_preemptions": "vllm_preemptions",
    "vllm:request_success": "vllm_requests",
    "vllm:prefix_cache_queries": "vllm_prefix_cache_queries_tokens",
    "vllm:prefix_cache_hits": "vllm_prefix_cache_hits_tokens",
}
KV_PEAK = "vllm_kv_cache_usage_peak"  # fraction of the KV cache in use, highest over the window's steps


def totals(metrics: list[Any]) -> dict[str, float]:
    """One snapshot as flat totals: each counter (summed over its labels: finish reasons, engines)
    and each histogram's ``_sum`` and ``_count``."""
    from vllm.v1.metrics.reader import Counter, Histogram

    out: dict[str, float] = {}
    for m in metrics:
        if isinstance(m, Counter) and m.name in COUNTERS:
            out[m.name] = out.get(m.name, 0.0) + m.value
        elif isinstance(m, Histogram) and m.name in HISTOGRAMS:
            out[m.name + "_sum"] = out.get(m.name + "_sum", 0.0) + m.sum
            out[m.name + "_count"] = out.get(m.name + "_count", 0.0) + m.count
    return out


def figures(delta: dict[str, float], kv_peak: float | None) -> dict[str, float]:
    """Cell metrics from the summed differences of a window (and its KV-cache peak, if seen)."""
    out: dict[str, float] = {}
    for name, key in HISTOGRAMS.items():
        count = delta.get(name + "_count", 0.0)
        if count > 0:
            out[key] = delta.get(name + "_sum", 0.0) / count
    for name, key in COUNTERS.items():
        if name in delta:
            out[key] = delta[name]
    queries = delta.get("vllm:prefix_cache_queries", 0.0)
    if queries > 0:  # prefix caching on and tokens asked for: share of prompt tokens found cached
        out["vllm_prefix_cache_hit_rate"] = delta.get("vllm:prefix_cache_hits", 0.0) / queries
    if kv_peak is not None:
        out[KV_PEAK] = kv_peak
    return out


class KVPeak:
    """The highest KV-cache usage vLLM's scheduler reported since the last :meth:`take`; fed by
    :func:`kv_peak_logger`'s ``record`` on every engine step (vLLM's main loop, this process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._peak: float | None = None

    def see(self, usage: float) -> None:
        with self._lock:
            self._peak = usage if self._peak is None else max(self._peak, usage)

    def take(self) -> float | None:
        with self._lock:
            peak, self._peak = self._peak, None
        return peak


def attach_kv_peak(llm: Any) -> KVPeak | None:
    """A :class:`KVPeak` fed by an extra stat logger on the engine's logger manager (vLLM's own
    extension point for stat loggers, which ``LLM`` does not expose as an argument); None when
    this vLLM has no such manager (then no KV-cache figure is reported)."""
    from vllm.v1.metrics.loggers import AggregateStatLoggerBase

    manager = getattr(getattr(llm, "llm_engine", None), "logger_manager", None)
    if manager is None or not isinstance(getattr(manager, "stat_loggers", None), list):
        return None
    peak = KVPeak()

    class _KVPeakLogger(AggregateStatLoggerBase):
        def __init__(self) -> None:  # the factory arguments vLLM passes are not needed
            pass

        def record(self, scheduler_stats: Any, iteration_stats: Any, mm_cache_stats: Any = None,
                   engine_idx: int = 0) -> None:
            if scheduler_stats is not None:
                peak.see(float(scheduler_stats.kv_cache_usage))

        def log_engine_initialized(self) -> None:
            pass

    manager.stat_loggers.append(_KVPeakLogger())
    return peak


def drop_periodic_log(llm: Any) -> None:
    """Remove vLLM's periodic "Avg prompt throughput ..." log lines, which stats on would print every
    few seconds: the same figures are logged per cell, and the screen stays as it was with stats off."""
    from vllm.v1.metrics.loggers import LoggingStatLogger, PerEngineStatLoggerAdapter

    manager = getattr(getattr(llm, "llm_engine", None), "logger_manager", None)
    loggers = getattr(manager, "stat_loggers", None)
    if not isinstance(loggers, list):
        return

    def periodic(logger: Any) -> bool:
        if isinstance(logger, LoggingStatLogger):
            return True
        inner = getattr(logger, "per_engine_stat_loggers", None) if isinstance(
            logger, PerEngineStatLoggerAdapter) else None
        return bool(inner) and all(isinstance(x, LoggingStatLogger) for x in inner.values())

    loggers[:] = [x for x in loggers if not periodic(x)]


class StatsWindow:
    """The differences of vLLM's metrics over the engine calls made since the last :meth:`read`."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        drop_periodic_log(llm)
        self.kv = attach_kv_peak(llm)
        self._delta: dict[str, float] = {}
        self._kv_peak: float | None = None

    def snapshot(self) -> dict[str, float]:
        return totals(self.llm.get_metrics())

    @contextmanager
    def measure(self) -> Iterator[None]:
        """Add the difference over the ``with`` block (one engine call) to the window."""
        if self.kv is not None:
            self.kv.take()  # steps outside the window (a caller driving ``llm`` itself) do not count
        before = self.snapshot()
        yield
        self.add(before, self.snapshot())

    def add(self, before: dict[str, float], after: dict[str, float]) -> None:
        """One call's difference, added to the window."""
        for key in after.keys() | before.keys():
            self._delta[key] = self._delta.get(key, 0.0) + after.get(key, 0.0) - before.get(key, 0.0)
        peak = self.kv.take() if self.kv is not None else None
        if peak is not None:
            self._kv_peak = peak if self._kv_peak is None else max(self._kv_peak, peak)

    def read(self) -> dict[str, float]:
        """The window's figures; the window starts afresh."""
        out = figures(self._delta, self._kv_peak)
        self._delta, self._kv_peak = {}, None
        return out

"""Generation cache: a re-run, or a cell two categories share, does not generate again.

Keyed by the scope (:func:`cache_scope`: the weights' revision, the engine, its library's
version and every engine argument but the weights' location, so numerics, scheduling,
``hf_overrides``, ``max_model_len`` and the preset all count), the sampling parameters, the
prompt -- plain text, or the chat messages themselves (roles and contents, so the chat layout is in
the key) -- through the one identity
rule (:func:`specbench.identity.digest`); stored in one sqlite file in the specbench cache.
``CachingEngine`` wraps an engine that it starts only on the first cache miss, so a fully
cached model never loads at all.

Each entry remembers the run that generated it, and the cache keeps that run's performance
figures (throughput, latency, memory): a cell answered entirely from the cache carries the
figures of the run that made its outputs, marked as such, so every cell of a category has
the same metric keys whichever store it is tracked in (the cache is shared by all of them).

Answers are written as they arrive, not when a call returns: the wrapped engine hands each
finished answer to the cache (``Engine.delivering``) -- vLLM each request as it finishes (so a
SIGKILL loses only the requests in flight, at most ``max_num_seqs``), transformers each batch,
an endpoint each response -- and every hand-over is one committed sqlite transaction (WAL,
``synchronous=NORMAL``: durable against a killed process; a rollback journal where
SPECBENCH_GENERATION_CACHE puts the file on a shared filesystem).  A call that then fails (an endpoint
that refused some requests after its retries) leaves its successful answers in the cache, so a
re-run asks only for the missing ones.  There is no chunking of the prompts: vLLM still sees the
whole list at once and schedules it exactly as without a cache.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from specbench.engines.base import (
    Embedded,
    Engine,
    EngineStats,
    Generation,
    GenParams,
    Images,
    LoglikResult,
    Prompt,
    RequestsFailed,
)
from specbench.identity import digest
from specbench.weights import generation_cache_path


def shared_location() -> bool:
    """True where SPECBENCH_GENERATION_CACHE puts the cache elsewhere, as a team does on a shared filesystem."""
    return bool(os.environ.get("SPECBENCH_GENERATION_CACHE"))


class GenerationCache:
    """One sqlite file: entries (key -> value, and the run that generated it) and each
    generating run's performance figures."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or generation_cache_path()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        if shared_location():
            # a shared filesystem (NFS and the like): WAL needs shared memory that only one machine
            # sees, so sqlite's rollback journal, with sqlite's file locks between machines
            self._db.execute("PRAGMA journal_mode=DELETE")
            self._db.execute("PRAGMA synchronous=FULL")
        else:
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: each commit is in the log before put_many returns, so a killed process keeps
            # it (only a power loss can drop the last commits); no fsync per write, so writing every
            # answer as it arrives costs microseconds.
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        if "run" not in {row[1] for row in self._db.execute("PRAGMA table_info(entries)")}:
            self._db.execute("ALTER TABLE entries ADD COLUMN run TEXT")  # caches made before origins were kept
        self._db.execute("CREATE TABLE IF NOT EXISTS figures (run TEXT PRIMARY KEY, figures TEXT NOT NULL)")
        self._db.commit()

    def lookup(self, keys: list[str]) -> dict[str, tuple[Any, str | None]]:
        """Found keys -> (value, the run that generated it, if known)."""
        out: dict[str, tuple[Any, str | None]] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                q = f"SELECT key, value, run FROM entries WHERE key IN ({','.join('?' * len(chunk))})"
                out.update((k, (json.loads(v), r)) for k, v, r in self._db.execute(q, chunk))
        return out

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        return {k: v for k, (v, _) in self.lookup(keys).items()}

    def put_many(self, items: dict[str, Any], run: str | None = None) -> None:
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO entries (key, value, run) VALUES (?, ?, ?)",
                                 [(k, json.dumps(v), run) for k, v in items.items()])
            self._db.commit()

    def put_figures(self, run: str, figures: dict[str, float]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO figures VALUES (?, ?)", (run, json.dumps(figures)))
            self._db.commit()

    def get_figures(self, run: str) -> dict[str, float]:
        with self._lock:
            row = self._db.execute("SELECT figures FROM figures WHERE run = ?", (run,)).fetchone()
        return json.loads(row[0]) if row else {}

    def close(self) -> None:
        self._db.close()


def _key(*parts: Any) -> str:
    return digest(list(parts), length=64)


def _pixels(image: Any) -> str:
    """An image's identity: its decoded pixels (a re-encoded file of the same picture is the same)."""
    import hashlib

    h = hashlib.sha256(f"{image.mode}:{image.size}".encode())
    h.update(image.tobytes())
    return h.hexdigest()[:32]


def _gen_key(scope: dict[str, Any], params: GenParams, prompt: Prompt, images: list[Any] | None = None) -> str:
    # plain text keeps the key it had when engines took (prompt, chat=False, system=None), so
    # earlier entries still answer; chat messages are keyed as messages, with their images' pixels
    if isinstance(prompt, str):
        return _key("gen", scope, params.as_dict(), False, None, prompt)
    if images:
        return _key("gen", scope, params.as_dict(), "messages", prompt, [_pixels(im) for im in images])
    return _key("gen", scope, params.as_dict(), "messages", prompt)


def _ll_key(scope: dict[str, Any], context: Prompt, continuation: str) -> str:
    if isinstance(context, str):
        return _key("ll", scope, context, continuation)
    return _key("ll", scope, "messages", context, continuation)


class CachingEngine(Engine):
    """An engine, started on first use, in front of which the cache answers what it can.

    With ``cache=None`` it is only lazy: nothing is looked up or stored.  A failed start is
    remembered and re-raised, so a model that cannot load fails each of its cells at once.
    """

    def __init__(self, factory: Callable[[], Engine], cache: GenerationCache | None, scope: dict[str, Any],
                 name: str) -> None:
        super().__init__()
        self._factory = factory
        self._engine: Engine | None = None
        self.cache = cache
        self.scope = scope
        self.name = name
        self.hits = 0
        self.misses = 0
        self._start_error: Exception | None = None
        self._run: str | None = None  # the run new entries are generated for
        self._served_by: str | None = None  # the one run whose entries answered the whole last call

    @property
    def started(self) -> bool:
        return self._engine is not None

    def engine(self) -> Engine:
        if self._start_error is not None:
            raise self._start_error
        if self._engine is None:
            try:
                self._engine = self._factory()
            except Exception as exc:
                self._start_error = exc
                raise
            self.params = self._engine.params
            self.load_s = self._engine.load_s
        return self._engine

    def _find(self, keys: list[str]) -> tuple[dict[str, Any], list[int]]:
        """Cached values of the keys and the positions of those missing; notes the single run that
        generated every entry of a fully cached call (else None)."""
        found = self.cache.lookup(keys) if self.cache else {}
        miss = [i for i, k in enumerate(keys) if k not in found]
        self.hits += len(keys) - len(miss)
        self.misses += len(miss)
        origins = {run for _, run in found.values()}
        self._served_by = origins.pop() if not miss and len(origins) == 1 else None
        return {k: v for k, (v, _) in found.items()}, miss

    def generate(self, prompts: list[Prompt], params: GenParams, images: Images | None = None) -> Generation:
        keys = [_gen_key(self.scope, params, p, images[i] if images else None) for i, p in enumerate(prompts)]
        found, miss = self._find(keys)
        texts: list[list[str]] = [found[k] if k in found else [] for k in keys]
        gen = Generation(texts=[], prompt_tokens=0, output_tokens=0, wall_s=0.0)
        if miss:
            todo = [prompts[i] for i in miss]
            engine = self.engine()
            kept: set[int] = set()  # positions in todo already written by the sink
            with engine.delivering(self._writer(keys, miss, kept, lambda t: t)), self._kept_on_failure(miss, kept):
                gen = (engine.generate(todo, params, images=[images[i] for i in miss]) if images
                       else engine.generate(todo, params))
            for i, t in zip(miss, gen.texts, strict=True):
                texts[i] = t
            if self.cache:  # the rest (an engine that delivers nothing); a prompt not sent has no answer to keep
                self.cache.put_many({keys[i]: t for j, (i, t) in enumerate(zip(miss, gen.texts, strict=True))
                                     if j not in gen.skipped and j not in kept}, self._run)
        return Generation(texts=texts, prompt_tokens=gen.prompt_tokens, output_tokens=gen.output_tokens,
                          wall_s=gen.wall_s, latencies_s=gen.latencies_s, cached=len(prompts) - len(miss),
                          skipped={miss[j]: why for j, why in gen.skipped.items()})

    def _writer(self, keys: list[str], miss: list[int], kept: set[int],
              value: Callable[[Any], Any]) -> Callable[[dict[int, Any]], None] | None:
        """What the engine hands answers to as they arrive: each batch of them is one committed
        write (positions are in the engine's call, i.e. into ``miss``)."""
        if self.cache is None:
            return None
        cache = self.cache

        def write(answers: dict[int, Any]) -> None:
            cache.put_many({keys[miss[j]]: value(v) for j, v in answers.items()}, self._run)
            kept.update(answers)
        return write

    @contextmanager
    def _kept_on_failure(self, miss: list[int], kept: set[int]) -> Iterator[None]:
        """A call that failed on some requests says what the cache kept of the others (positions
        mapped back to the caller's)."""
        try:
            yield
        except RequestsFailed as exc:
            if self.cache is None or not kept:
                raise
            raise RequestsFailed(f"{exc}; the {len(kept)} answers are in the generation cache, so a re-run "
                                 f"asks only for the {len(exc.failed)} that failed",
                                 {miss[j]: why for j, why in exc.failed.items()}) from None

    def loglikelihood(self, requests: list[tuple[Prompt, str]]) -> list[LoglikResult]:
        keys = [_ll_key(self.scope, c, x) for c, x in requests]
        found, miss = self._find(keys)
        out: list[LoglikResult | None] = [LoglikResult(*found[k]) if k in found else None for k in keys]
        if miss:
            engine = self.engine()
            kept: set[int] = set()
            with engine.delivering(self._writer(keys, miss, kept, lambda r: [r.logprob, r.is_greedy])), \
                    self._kept_on_failure(miss, kept):
                res = engine.loglikelihood([requests[i] for i in miss])
            for i, r in zip(miss, res, strict=True):
                out[i] = r
            if self.cache:
                self.cache.put_many({keys[i]: [r.logprob, r.is_greedy]
                                     for j, (i, r) in enumerate(zip(miss, res, strict=True)) if j not in kept},
                                    self._run)
        return [r for r in out if r is not None]

    # An encoder's vectors are not cached: a probe's forward passes cost little beside a generation.
    def embed(self, texts: list[str], pairs: list[str] | None = None) -> Embedded:
        return self.engine().embed(texts, pairs)

    def embed_words(self, words: list[list[str]]) -> Embedded:
        return self.engine().embed_words(words)

    def classify(self, texts: list[str], pairs: list[str] | None = None) -> list[dict[str, float]]:
        return self.engine().classify(texts, pairs)

    def memory(self) -> dict[str, float]:
        return self._engine.memory() if self._engine else {}

    def engine_metrics(self) -> dict[str, float]:
        return self._engine.engine_metrics() if self._engine else {}  # answers from the cache: none

    def stats(self) -> EngineStats:
        inner = self._engine.stats() if self._engine is not None else EngineStats(started=False)
        return EngineStats(started=inner.started, load_s=inner.load_s, cache_hits=self.hits,
                           cache_misses=self.misses, version=inner.version, served_by=self._served_by)

    def attribute(self, run_id: str | None) -> None:
        self._run = run_id

    def remember_figures(self, run_id: str, figures: dict[str, float]) -> None:
        if self.cache is not None:
            self.cache.put_figures(run_id, figures)

    def figures_of(self, run_id: str) -> dict[str, float]:
        return self.cache.get_figures(run_id) if self.cache is not None else {}

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


def cache_scope(model: str, revision: str, engine: str, params: dict[str, Any],
                preset: dict[str, Any] | None = None) -> dict[str, Any]:
    """What makes two generations interchangeable: the same weights (model and revision), the
    same engine at the same library version, the same engine arguments (all of them but where
    the weights lie: dtype, quantization, max_model_len, hf_overrides, trust_remote_code, batch
    and KV-cache settings, seed) and the same preset, since any of those can change an output
    (batch composition alone moves float sums, and so near-tied greedy tokens)."""
    from specbench.engines import engine_info, identity_params

    return {"model": model, "revision": revision, "engine": engine, "version": engine_info(engine).version(),
            "params": identity_params(params), "preset": preset or {}}

"""The one small interface every engine implements, and what it reports back.

An engine generates text for a whole batch of prompts in one call and scores
(context, continuation) pairs by log-likelihood.  It also says which settings it really
ran with (``params``, logged to MLflow verbatim) and how much memory it took.
"""

from __future__ import annotations

import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psutil

# {"role": ..., "content": text}, or for an item with images content parts, HF's chat layout:
# [{"type": "image", "name": ...}, ..., {"type": "text", "text": ...}] -- the image parts are
# placeholders (the model's chat template turns each into its image token); the images
# themselves travel beside the prompts, as decoded PIL images, in generate's ``images``.
Message = dict[str, Any]
# Plain text, sent as it is, or chat messages, to which the engine applies the model's chat
# template (the same alias as specbench.data.Prompt, which builds them; engines do not import data).
Prompt = str | list[Message]
Images = list[list[Any]]  # per prompt, its decoded images (PIL.Image.Image), in placeholder order
# Answers of one call as they arrive: {index in the call's prompts/requests: texts (generate) or
# LoglikResult (loglikelihood)}; see Engine.delivering.
Sink = Callable[[dict[int, Any]], None]


@dataclass(frozen=True)
class GenParams:
    """Sampling parameters; greedy by default, as evaluation wants."""

    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"max_new_tokens": self.max_new_tokens, "stop": list(self.stop),
                "temperature": self.temperature, "top_p": self.top_p, "n": self.n, "seed": self.seed}


@dataclass
class Generation:
    """Texts per prompt (n each) and the token counts throughput is computed from."""

    texts: list[list[str]]
    prompt_tokens: int
    output_tokens: int
    wall_s: float
    latencies_s: list[float] = field(default_factory=list)  # per request, where known
    cached: int = 0  # prompts answered from the generation cache (no tokens counted for them)
    # prompts not sent (longer than the model's context: the engine would refuse the whole batch),
    # by index, with why; their texts are empty
    skipped: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EngineStats:
    """What an engine says of itself, so callers never probe it: whether the model is loaded,
    what loading cost, and how many requests a cache in front of it answered."""

    started: bool = True
    load_s: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    version: str | None = None
    served_by: str | None = None  # the run whose cached answers served the whole last call, if one did


class RequestsFailed(RuntimeError):
    """Some requests of one call failed for good (an endpoint's errors after its retries) while the
    others were answered -- and handed to the sink as they came, so the generation cache has them.
    The message is one line; ``failed`` maps each failed position of the call to why."""

    def __init__(self, message: str, failed: dict[int, str]) -> None:
        super().__init__(message)
        self.failed = failed


@dataclass
class LoglikResult:
    """Per (context, continuation) pair: summed log-probability and greedy flag."""

    logprob: float
    is_greedy: bool


@dataclass
class Embedded:
    """What an encoder made of a batch of texts (``embed``) or of word sequences (``embed_words``).

    ``vectors``: one pooled vector per text (an (n, d) array), or per item an (n_words, d) array
    with one row per word (its first sub-token's vector, the BERT NER convention).  Items longer
    than the encoder's window were truncated or slid over as its ``encoder.overflow`` declares:
    ``over_window`` lists their indices, so a cell counts them and says which they were."""

    vectors: Any
    over_window: list[int] = field(default_factory=list)
    tokens: int = 0  # sub-word tokens the encoder read (special tokens included)
    wall_s: float = 0.0


class Engine(ABC):
    """Generate a batch; score continuations; report settings, memory and stats.

    Subclasses register with :func:`specbench.engines.register_engine`, which records what
    they can do; they are constructed from the arguments their ``planned_params`` returned.
    """

    name: str = "engine"

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}  # engine arguments actually used
        self.load_s: float = 0.0
        self._sink: Sink | None = None

    @contextmanager
    def delivering(self, sink: Sink | None) -> Iterator[None]:
        """Within this block the engine hands each answer to ``sink`` as soon as it has it (a
        finished vLLM request, a transformers batch, an endpoint's response), before the call
        returns -- or raises.  The generation cache writes them there, so a process killed mid-call,
        or a call that fails on some requests, loses only the answers still in flight.  An engine
        that never calls :meth:`deliver` (a plugin's) is still correct: its answers are kept when
        the call returns."""
        previous, self._sink = getattr(self, "_sink", None), sink
        try:
            yield
        finally:
            self._sink = previous

    def deliver(self, answers: dict[int, Any]) -> None:
        """Hand finished answers to the sink, if any (called by engines, in the calling thread)."""
        sink = getattr(self, "_sink", None)  # getattr: subclasses that never call Engine.__init__
        if sink is not None and answers:
            sink(answers)

    @abstractmethod
    def generate(self, prompts: list[Prompt], params: GenParams, images: Images | None = None) -> Generation:
        """All prompts in one call (the engine batches); a prompt that is a list of chat messages
        goes through the model's chat template (:func:`chat_text`), plain text as it is.

        ``images[i]`` are prompt i's images (engines registered with the ``images`` capability
        take them; the others are never given any: the planner checks)."""

    @abstractmethod
    def loglikelihood(self, requests: list[tuple[Prompt, str]]) -> list[LoglikResult]:
        """lm-eval's loglikelihood: log P(continuation | context) for each pair (a context of chat
        messages is chat-templated first, as lm-eval's contexts under ``--apply_chat_template``)."""

    # Encoders (capability ``embeddings``) answer classification and NER by a probe over these
    # vectors (``pipeline.probe``), or by the checkpoint's own head (``classify``).
    def embed(self, texts: list[str], pairs: list[str] | None = None) -> Embedded:
        """One pooled vector per text (with ``pairs``: per text pair, encoded together)."""
        raise NotImplementedError(f"the {self.name} engine cannot embed text")

    def embed_words(self, words: list[list[str]]) -> Embedded:
        """One vector per word of each item (items are pre-tokenized into words, as CoNLL files)."""
        raise NotImplementedError(f"the {self.name} engine cannot embed words")

    def classify(self, texts: list[str], pairs: list[str] | None = None) -> list[dict[str, float]]:
        """The checkpoint's own head: per text, a probability per head label (config.id2label)."""
        raise NotImplementedError(f"the {self.name} engine has no classification head")

    def memory(self) -> dict[str, float]:
        """Engine-specific memory figures (GPU, KV cache); CPU RSS is sampled by the runner."""
        return {}

    def engine_metrics(self) -> dict[str, float]:
        """The engine library's own serving figures (time to first token, cache use, preemptions)
        over the calls made since the last read, which starts them afresh: counters that grow for
        an engine's life become per-cell figures although a category's cells share one engine (a
        cell reads once before answering, to drop what others left, and once after).  None here:
        engines that keep no such figures report nothing."""
        return {}

    def stats(self) -> EngineStats:
        """A started engine's own figures; wrappers (the generation cache) add theirs."""
        return EngineStats(started=True, load_s=self.load_s, version=self.params.get("version"))

    # A cache in front of an engine keeps, with its answers, the run they were generated for
    # and that run's figures; a plain engine keeps nothing (these are no-ops).
    def attribute(self, run_id: str | None) -> None:  # noqa: B027 - optional hook
        """The run the next answers are generated for."""

    def remember_figures(self, run_id: str, figures: dict[str, float]) -> None:  # noqa: B027 - optional hook
        """A generating run's performance figures, for cells later answered from its outputs."""

    def figures_of(self, run_id: str) -> dict[str, float]:
        """The figures remembered for a run (empty when none are)."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model (between models in a category run)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PeakRSS:
    """Peak resident memory of this process and all its children, sampled in a thread.

    vLLM's engine core and workers are child processes, so the process tree is what a
    CPU run really costs.
    """

    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> int:
        root = psutil.Process(os.getpid())
        total = 0
        for p in [root, *root.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                continue
        self.peak_bytes = max(self.peak_bytes, total)
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> PeakRSS:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20


def nvml_memory() -> dict[str, float]:
    """GPU memory through NVML (nvidia-ml-py, the ``gpu`` extra): ``gpu_used_mb`` and ``gpu_total_mb``
    of the visible devices and, where NVML lists them, ``gpu_process_mb`` held by this process tree
    (vLLM's workers are child processes).  NVML reads the driver's figures without creating a CUDA
    context here.  Empty without the package or an NVIDIA driver (CPU machines)."""
    try:
        import pynvml
    except ImportError:
        return {}
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return {}
    try:
        visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        handles = ([pynvml.nvmlDeviceGetHandleByUUID(d) if d.startswith(("GPU-", "MIG-"))
                    else pynvml.nvmlDeviceGetHandleByIndex(int(d)) for d in visible]
                   if "CUDA_VISIBLE_DEVICES" in os.environ
                   else [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())])
        root = psutil.Process(os.getpid())
        pids = {root.pid, *(p.pid for p in root.children(recursive=True))}
        used = total = mine = 0
        listed = False
        for h in handles:
            info = pynvml.nvmlDeviceGetMemoryInfo(h)
            used, total = used + info.used, total + info.total
            for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(h):
                if proc.pid in pids and proc.usedGpuMemory:  # None where the driver hides it
                    mine, listed = mine + proc.usedGpuMemory, True
    except (pynvml.NVMLError, ValueError, psutil.Error):
        return {}
    finally:
        pynvml.nvmlShutdown()
    if not handles:
        return {}
    out = {"gpu_used_mb": used / 2**20, "gpu_total_mb": total / 2**20}
    if listed:  # in a container NVML may report host pids: then only the device figures
        out["gpu_process_mb"] = mine / 2**20
    return out


def torch_gpu_peak() -> dict[str, float]:
    """Peak GPU memory torch allocated in this process (the in-process engines); empty on a CPU."""
    try:
        import torch

        if torch.cuda.is_available():
            return {"gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20}
    except Exception:  # noqa: BLE001 - a figure, never a reason to fail a cell
        pass
    return {}


class Timer:
    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.s = time.perf_counter() - self.t0


def truncate_at_stop(text: str, stop: tuple[str, ...] | list[str]) -> str:
    """Cut at the first stop sequence (vLLM does this itself; transformers does not)."""
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


def chat_text(tokenizer: Any, messages: list[Message]) -> str:
    """The messages through the tokenizer's chat template, as lm-eval's ``apply_chat_template``
    (HFLM and VLLM alike): with the generation prompt, or -- when the last message is the
    assistant's (a ``gen_prefix``) -- continuing that message; a template that refuses the
    system role gets the messages without it, as lm-eval retries."""
    import jinja2

    cont = bool(messages) and messages[-1]["role"] == "assistant"
    kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": not cont}
    if cont:
        kwargs["continue_final_message"] = True
    try:
        return tokenizer.apply_chat_template(messages, **kwargs)
    except jinja2.exceptions.TemplateError:
        return tokenizer.apply_chat_template([m for m in messages if m["role"] != "system"], **kwargs)


def prompt_texts(tokenizer: Any, prompts: list[Prompt]) -> list[str]:
    """What the model reads: plain prompts as they are, chat messages chat-templated."""
    return [p if isinstance(p, str) else chat_text(tokenizer, p) for p in prompts]


def split_context(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of context and continuation as lm-eval forms them: encode the whole
    string and the context, the continuation is the tail (so merges at the seam count)."""
    # lm-eval moves trailing spaces of the context onto the continuation first.
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    bos = [tokenizer.bos_token_id] if getattr(tokenizer, "bos_token_id", None) is not None and \
        getattr(tokenizer, "add_bos_token", False) else []
    if not ctx:  # empty context: condition on BOS/EOS like lm-eval's prefix token
        prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        return [prefix], whole
    return bos + ctx, whole[len(ctx):]

"""An OpenAI-compatible endpoint (e.g. `vllm serve` on another machine).

Requests go out concurrently with a bound (a thread pool), so a remote server can
batch them the way an in-process engine would.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from specbench.engines import register_engine
from specbench.engines.base import Engine, Generation, GenParams, LoglikResult
from specbench.registry.schema import ModelConfig, PresetConfig
from specbench.weights import ResolvedModel


@register_engine("openai", capabilities={"generate", "loglikelihood"}, remote=True, package="openai")
class OpenAIEngine(Engine):
    """A remote endpoint: it serves whatever model it was started with."""

    @classmethod
    def planned_params(cls, model: ModelConfig, preset: PresetConfig, resolved: ResolvedModel,
                       seed: int) -> dict[str, Any]:
        return {"model": model.hf_id or model.key}

    @classmethod
    def start(cls, params: dict[str, Any], **options: Any) -> OpenAIEngine:
        return cls(params["model"], base_url=options.get("base_url"))

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None,
                 concurrency: int = 8) -> None:
        super().__init__()
        from openai import OpenAI

        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise ValueError("the openai engine needs --base-url or OPENAI_BASE_URL (e.g. http://host:8000/v1)")
        self.client = OpenAI(base_url=base_url, api_key=api_key or os.environ.get("OPENAI_API_KEY", "EMPTY"))
        self.model = model
        self.concurrency = concurrency
        self.params = {"base_url": base_url, "model": model, "concurrency": concurrency}

    def _one(self, prompt: str, params: GenParams, chat: bool, system: str | None) -> tuple[list[str], int, int, float]:
        t0 = time.perf_counter()
        common = dict(model=self.model, max_tokens=params.max_new_tokens, temperature=params.temperature,
                      top_p=params.top_p, n=params.n, stop=list(params.stop) or None, seed=params.seed)
        if chat:
            msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
            r = self.client.chat.completions.create(messages=msgs, **common)
            texts = [c.message.content or "" for c in r.choices]
        else:
            r = self.client.completions.create(prompt=prompt, **common)
            texts = [c.text for c in r.choices]
        u = r.usage
        return texts, (u.prompt_tokens if u else 0), (u.completion_tokens if u else 0), time.perf_counter() - t0

    def generate(self, prompts: list[str], params: GenParams, chat: bool = False,
                 system: str | None = None) -> Generation:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(self.concurrency) as pool:
            res = list(pool.map(lambda p: self._one(p, params, chat, system), prompts))
        return Generation(texts=[r[0] for r in res], prompt_tokens=sum(r[1] for r in res),
                          output_tokens=sum(r[2] for r in res), wall_s=time.perf_counter() - t0,
                          latencies_s=[r[3] for r in res])

    def loglikelihood(self, requests: list[tuple[str, str]]) -> list[LoglikResult]:
        """Completions with echo + logprobs (vLLM serve supports it): score the continuation's tokens."""

        def one(req: tuple[str, str]) -> LoglikResult:
            ctx, cont = req
            r = self.client.completions.create(model=self.model, prompt=ctx + cont, max_tokens=0, echo=True,
                                               logprobs=1, temperature=0.0)
            lp = r.choices[0].logprobs
            total, greedy = 0.0, True
            for off, tok_lp, top in zip(lp.text_offset, lp.token_logprobs, lp.top_logprobs or [], strict=False):
                if off < len(ctx) or tok_lp is None:
                    continue
                total += tok_lp
                if top:
                    greedy = greedy and max(top.values()) <= tok_lp + 1e-6
            return LoglikResult(total, greedy)

        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(one, requests))

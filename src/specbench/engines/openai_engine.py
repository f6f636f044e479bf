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
from specbench.engines.base import Engine, Generation, GenParams, LoglikResult, Prompt
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

    def _one(self, prompt: Prompt, params: GenParams) -> tuple[list[str], int, int, float]:
        t0 = time.perf_counter()
        common = dict(model=self.model, max_tokens=params.max_new_tokens, temperature=params.temperature,
                      top_p=params.top_p, n=params.n, stop=list(params.stop) or None, seed=params.seed)
        if isinstance(prompt, str):
            r = self.client.completions.create(prompt=prompt, **common)
            texts = [c.text for c in r.choices]
        else:  # chat messages: the server applies the model's chat template to them as given
            extra = None
            if prompt and prompt[-1]["role"] == "assistant":  # a gen_prefix: continue it (vLLM's options)
                extra = {"add_generation_prompt": False, "continue_final_message": True}
            r = self.client.chat.completions.create(messages=prompt, extra_body=extra, **common)
            texts = [c.message.content or "" for c in r.choices]
        u = r.usage
        return texts, (u.prompt_tokens if u else 0), (u.completion_tokens if u else 0), time.perf_counter() - t0

    def generate(self, prompts: list[Prompt], params: GenParams) -> Generation:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(self.concurrency) as pool:
            res = list(pool.map(lambda p: self._one(p, params), prompts))
        return Generation(texts=[r[0] for r in res], prompt_tokens=sum(r[1] for r in res),
                          output_tokens=sum(r[2] for r in res), wall_s=time.perf_counter() - t0,
                          latencies_s=[r[3] for r in res])

    def loglikelihood(self, requests: list[tuple[Prompt, str]]) -> list[LoglikResult]:
        """Completions with echo + logprobs (vLLM serve supports it): score the continuation's tokens.

        Contexts must be plain text: the completions endpoint takes no messages, and the chat
        template lives on the server (a dataset's ``prompt.chat_layout: none`` gives plain contexts)."""
        if any(not isinstance(c, str) for c, _ in requests):
            raise ValueError("the openai engine scores plain-text contexts only, not chat messages; "
                             "set the dataset's prompt.chat_layout: none or use an in-process engine")

        def one(req: tuple[Prompt, str]) -> LoglikResult:
            ctx, cont = req
            assert isinstance(ctx, str)
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

"""An OpenAI-compatible endpoint (e.g. `vllm serve` on another machine, or a vendor's API).

Everything about the endpoint is an engine argument, planned before the run and logged with
the cell (``openai.*`` params): the base URL, the name of the environment variable holding
the API key (never the key), the model name sent (the registry entry's ``served_name``), and
the request concurrency, timeout and retries.  Unset, the base URL and key come from
OPENAI_BASE_URL and OPENAI_API_KEY as the ``openai`` client reads them.  The CLI's
``--base-url`` etc. set them (``specbench.pipeline.endpoint``).

Requests go out concurrently with a bound (a thread pool), so a remote server can batch them
the way an in-process engine would.  The endpoint is asked for its models when the engine
starts, so an unreachable URL or a model it does not serve fails the cell in one line.

Faults (docs/endpoints.md): each request has ``timeout_s`` per attempt and ``max_retries``
retries (the openai client's: connection errors, timeouts, 408/409/429, 5xx, with backoff).
Each answer goes to the generation cache as it arrives; requests that still fail do not stop
the others, and the call then fails the cell with their reasons (``RequestsFailed``): a score
over a subset of the items would not be the model's, and a re-run asks only for the failed ones.
A prompt the endpoint refuses as malformed (400) fails only its own item, never retried.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from specbench.engines import register_engine
from specbench.engines.base import Engine, Generation, GenParams, LoglikResult, Prompt, RequestsFailed
from specbench.registry.schema import ModelConfig, PresetConfig
from specbench.weights import ResolvedModel

# Endpoint arguments and their defaults (the openai client's retries; a long generation's timeout).
DEFAULTS: dict[str, Any] = {"base_url": None, "api_key_env": "OPENAI_API_KEY", "concurrency": 8,
                            "timeout_s": 600.0, "max_retries": 2}


class EndpointError(RuntimeError):
    """The endpoint cannot serve this cell (unreachable, no key, another model); one line."""


@register_engine("openai", capabilities={"generate", "loglikelihood"}, remote=True, package="openai")
class OpenAIEngine(Engine):
    """A remote endpoint: it serves whatever model it was started with."""

    @classmethod
    def planned_params(cls, model: ModelConfig, preset: PresetConfig, resolved: ResolvedModel,
                       seed: int) -> dict[str, Any]:
        return {"model": model.api_name, **DEFAULTS, "base_url": os.environ.get("OPENAI_BASE_URL") or None}

    @classmethod
    def start(cls, params: dict[str, Any], **options: Any) -> OpenAIEngine:
        args = {**DEFAULTS, **{k: v for k, v in params.items() if k in DEFAULTS}, **options}
        return cls(params["model"], **args)

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 8, timeout_s: float = 600.0, max_retries: int = 2) -> None:
        super().__init__()
        import openai
        from openai import OpenAI

        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise EndpointError("the openai engine needs --base-url or OPENAI_BASE_URL (e.g. http://host:8000/v1)")
        key = os.environ.get(api_key_env)
        if key is None and api_key_env != DEFAULTS["api_key_env"]:
            raise EndpointError(f"--api-key-env {api_key_env}: that environment variable is not set")
        t0 = time.perf_counter()
        self.client = OpenAI(base_url=base_url, api_key=key or "EMPTY", timeout=timeout_s, max_retries=max_retries)
        self.model = model
        self.concurrency = concurrency
        self.params = {"base_url": base_url, "model": model, "api_key_env": api_key_env, "concurrency": concurrency,
                       "timeout_s": timeout_s, "max_retries": max_retries, "version": openai.__version__}
        self._check_served(base_url)
        self.load_s = time.perf_counter() - t0

    def _check_served(self, base_url: str) -> None:
        """Ask the endpoint for its models: unreachable, refused or not serving ours is one line now,
        not one error per request later.  An endpoint without a model list is taken at its word."""
        import openai

        try:
            served = [m.id for m in self.client.models.list()]
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise EndpointError(f"cannot reach the endpoint {base_url} ({type(cause).__name__}: "
                                f"{str(cause).splitlines()[0] if str(cause) else 'no answer'}); "
                                "is the server up, and is --base-url right?") from None
        except openai.AuthenticationError:
            raise EndpointError(f"the endpoint {base_url} refused the API key (--api-key-env)") from None
        except (openai.NotFoundError, openai.PermissionDeniedError):
            return
        if served and self.model not in served:
            raise EndpointError(f"the endpoint {base_url} serves {', '.join(served[:5])}, not '{self.model}' "
                                "(the registry entry's served_name, or --served-name)")

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
        res, refused = self._gather(lambda p: self._one(p, params), prompts, answer=lambda r: r[0],
                                    refusable=True)
        done = [r for _, r in sorted(res.items())]
        return Generation(texts=[res[i][0] if i in res else [""] * params.n for i in range(len(prompts))],
                          prompt_tokens=sum(r[1] for r in done), output_tokens=sum(r[2] for r in done),
                          wall_s=time.perf_counter() - t0, latencies_s=[r[3] for r in done], skipped=refused)

    def _gather(self, call: Callable[[Any], Any], items: list[Any], answer: Callable[[Any], Any],
                refusable: bool = False) -> tuple[dict[int, Any], dict[int, str]]:
        """Every item through ``call``, at most ``concurrency`` requests in flight, each answer
        handed to the sink (the generation cache) as it arrives.  The openai client retries what
        may pass on a second try (connection errors, timeouts, 408/409/429 and 5xx) ``max_retries``
        times with backoff; what still fails is collected, the other requests go on, and the call
        then raises :class:`RequestsFailed` naming them.  With ``refusable``, a request the endpoint
        refuses as malformed (400: e.g. longer than its context) fails only its own item, as an
        over-context prompt does in vLLM: it is returned with why, never retried."""
        import openai

        answers: dict[int, Any] = {}
        refused: dict[int, str] = {}
        failed: dict[int, str] = {}
        pool = ThreadPoolExecutor(self.concurrency)
        try:
            futures = {pool.submit(call, x): i for i, x in enumerate(items)}
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    answers[i] = fut.result()
                except openai.BadRequestError as exc:
                    if not refusable:
                        failed[i] = self._why(exc)
                    else:
                        refused[i] = f"refused by the endpoint: {self._why(exc)}"
                    continue
                except Exception as exc:  # noqa: BLE001 - one request's failure, reported with the others
                    failed[i] = self._why(exc)
                    continue
                self.deliver({i: answer(answers[i])})
        finally:  # interrupted: requests not started are dropped, not sent after all
            pool.shutdown(wait=True, cancel_futures=True)
        if failed:
            reasons = Counter(failed.values()).most_common()
            said = "; ".join(f"{why} (x{n})" if n > 1 else why for why, n in reasons[:2])
            more = f"; {len(reasons) - 2} other reasons" if len(reasons) > 2 else ""
            raise RequestsFailed(f"{len(failed)} of {len(items)} requests to {self.params['base_url']} failed "
                                 f"(each retried up to {self.params['max_retries']} times, --retries): "
                                 f"{said}{more}; {len(answers)} were answered", failed)
        return answers, refused

    def _why(self, exc: Exception) -> str:
        """One request's failure in a few words (the first line of what the endpoint said)."""
        import openai

        def first(text: object) -> str:
            line = str(text).strip().splitlines()[0] if str(text).strip() else ""
            return line if len(line) <= 160 else line[:157] + "..."

        if isinstance(exc, openai.APITimeoutError):
            return f"no answer within {self.params['timeout_s']:g} s (--timeout)"
        if isinstance(exc, openai.APIStatusError):
            return f"HTTP {exc.status_code}: {first(exc.message)}"
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            return f"connection failed ({type(cause).__name__}: {first(cause) or 'no answer'})"
        return f"{type(exc).__name__}: {first(exc)}"

    def loglikelihood(self, requests: list[tuple[Prompt, str]]) -> list[LoglikResult]:
        """Completions with echo + logprobs (vLLM serve supports it): score the continuation's tokens.

        Contexts must be plain text: the completions endpoint takes no messages, and the chat
        template lives on the server (a dataset's ``prompt.chat_layout: none`` gives plain contexts)."""
        if any(not isinstance(c, str) for c, _ in requests):
            raise ValueError("the openai engine scores plain-text contexts only, not chat messages; use "
                             "--multiple-choice generate (docs/endpoints.md), a dataset with prompt.chat_layout: "
                             "none, or an in-process engine")

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

        res, _ = self._gather(one, requests, answer=lambda r: r)
        return [res[i] for i in range(len(requests))]

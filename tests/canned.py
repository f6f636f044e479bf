"""A stand-in model for tests whose subject is not the engine (tracking, lm-eval's files): a real
``Engine`` that answers from a list, with a hook to inject a fault when it is asked."""

from __future__ import annotations

from collections.abc import Callable

from specbench.engines import Engine, EngineStats, Generation, LoglikResult


class CannedEngine(Engine):
    """Answers prompt i with ``answers[i]`` (a single string: every prompt); ``on_generate`` runs first
    on each call (the server goes down, the engine dies); ``version`` is what ``stats()`` names, as
    vLLM's version is tagged on a cell."""

    def __init__(self, answers: list[str] | str, on_generate: Callable[[], None] | None = None,
                 version: str = "") -> None:
        super().__init__()
        self.answers, self.on_generate, self.version = answers, on_generate, version

    def generate(self, prompts, params, **_: object) -> Generation:
        if self.on_generate is not None:
            self.on_generate()
        texts = [self.answers] * len(prompts) if isinstance(self.answers, str) else self.answers[:len(prompts)]
        return Generation([[t] for t in texts], 10 * len(prompts), 3 * len(prompts), 0.01)

    def loglikelihood(self, requests) -> list[LoglikResult]:
        return [LoglikResult(-1.0, False) for _ in requests]

    def stats(self) -> EngineStats:
        return EngineStats(version=self.version)

    def memory(self) -> dict[str, float]:
        return {}

    def close(self) -> None:
        pass

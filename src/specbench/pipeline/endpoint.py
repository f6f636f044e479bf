"""Endpoint options on plans: where an OpenAI-compatible endpoint is and how it is asked.

``specbench evaluate`` and ``specbench run category`` take ``--base-url``, ``--api-key-env``,
``--served-name``, ``--concurrency``, ``--timeout``, ``--retries`` and ``--multiple-choice``;
they become the plans' engine arguments here (so they are logged with each cell as
``openai.*`` params and reach the engine however the cell is run), and multiple-choice cells of
a model that declares ``multiple_choice: generate`` (or under ``--multiple-choice generate``)
are re-planned through the generative fallback (``pipeline.fallback``).

``--timeout`` bounds each attempt of a request, ``--retries`` is how many more attempts a request
that failed in a way that may pass gets, ``--concurrency`` how many requests are in flight at once;
none of them is part of a cell's identity or cache scope (``engines.TRANSPORT_KEYS``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from specbench.engines import engine_info
from specbench.pipeline.category_plan import CategoryPlan
from specbench.pipeline.fallback import generative_fallback
from specbench.pipeline.plan import CellPlan, CellUnavailable

MC_MODES = ("loglikelihood", "generate")


@dataclass(frozen=True)
class EndpointOptions:
    """What the command line says about the endpoint; None: the planned default (environment)."""

    base_url: str | None = None
    api_key_env: str | None = None
    served_name: str | None = None
    concurrency: int | None = None
    timeout_s: float | None = None
    max_retries: int | None = None
    multiple_choice: str | None = None  # None: each model's registry entry
    judge_base_url: str | None = None  # an endpoint judge's (``--judge-engine openai``); None: the environment's
    judge_api_key_env: str | None = None

    def judge_args(self) -> dict[str, Any]:
        args = {"base_url": self.judge_base_url, "api_key_env": self.judge_api_key_env}
        return {k: v for k, v in args.items() if v is not None}

    def engine_args(self) -> dict[str, Any]:
        args = {"base_url": self.base_url, "api_key_env": self.api_key_env, "model": self.served_name,
                "concurrency": self.concurrency, "timeout_s": self.timeout_s, "max_retries": self.max_retries}
        return {k: v for k, v in args.items() if v is not None}

    def given(self) -> dict[str, Any]:
        """The options set (for a category's invocation digest)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def check(opts: EndpointOptions, engine: str) -> None:
    """ValueError (one line) for endpoint options given to an engine that serves local weights."""
    if opts.multiple_choice is not None and opts.multiple_choice not in MC_MODES:
        raise ValueError(f"--multiple-choice {opts.multiple_choice}: valid: {', '.join(MC_MODES)}")
    if opts.engine_args() and not engine_info(engine).remote:
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in opts.engine_args())
        raise ValueError(f"{flags}: options of an endpoint, and the {engine} engine serves local weights "
                         "(use --engine openai)")
    for flag, name, least in (("--concurrency", "concurrency", 1), ("--retries", "max_retries", 0)):
        value = getattr(opts, name)
        if value is not None and value < least:
            raise ValueError(f"{flag} {value}: valid: a whole number >= {least}")
    if opts.timeout_s is not None and not (math.isfinite(opts.timeout_s) and opts.timeout_s > 0):
        raise ValueError(f"--timeout {opts.timeout_s}: valid: seconds per attempt, a number > 0")


def configure(plan: CellPlan, opts: EndpointOptions) -> CellPlan:
    """The plan with the endpoint options as engine arguments and, where the model or the
    options ask for it, multiple choice through the generative fallback (CellUnavailable where
    the dataset cannot be asked that way)."""
    if plan.remote and opts.engine_args():
        plan = dataclasses.replace(plan, engine_params={**plan.engine_params, **opts.engine_args()})
    if plan.judge is not None and plan.judge.remote and opts.judge_args():  # transport only: not the identity
        judge = dataclasses.replace(plan.judge, engine_params={**plan.judge.engine_params, **opts.judge_args()})
        plan = dataclasses.replace(plan, judge=judge)
    mode = opts.multiple_choice or plan.model.multiple_choice
    if mode == "generate" and plan.task.loglik:
        try:
            task = generative_fallback(plan.task)
        except ValueError as exc:
            raise CellUnavailable(str(exc)) from None
        plan = dataclasses.replace(plan, task=task, dataset=task.dataset)
    return plan


def configure_category(cplan: CategoryPlan, opts: EndpointOptions) -> CategoryPlan:
    """Every runnable cell configured; a cell the fallback cannot ask is skipped with the reason."""
    cells = []
    for cell in cplan.cells:
        if cell.plan is not None and cell.reason is None:
            try:
                cell = dataclasses.replace(cell, plan=configure(cell.plan, opts))
            except CellUnavailable as exc:
                cell = dataclasses.replace(cell, plan=None, reason=str(exc))
        cells.append(cell)
    options = {**cplan.options, **({"endpoint": opts.given()} if opts.given() else {})}
    return dataclasses.replace(cplan, cells=tuple(cells), options=options)

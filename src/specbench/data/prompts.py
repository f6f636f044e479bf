"""Prompts: Jinja2 templates over an item's doc, few-shot selection, multiple-choice requests.

The layout is lm-evaluation-harness's plain-text one (see :mod:`specbench.data`); templates
see the hub's field names, which every adapter gives its ``doc``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from specbench.data.adapters import get_adapter
from specbench.registry.schema import DatasetConfig
from specbench.types import Item

__all__ = ["build_prompt", "choice_requests", "render", "select_fewshot"]


def _regex_replace(s: str, pattern: str, repl: str, count: int = 0) -> str:
    return re.sub(pattern, repl, s, count=count)


# sandboxed: templates come from YAML files; StrictUndefined: a misspelt field fails instead of rendering ""
_ENV = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
_ENV.filters["regex_replace"] = _regex_replace  # as lm-eval's template environment


@lru_cache(maxsize=512)
def _compile(source: str) -> Template:
    return _ENV.from_string(source)


def render(template: str, doc: Mapping[str, Any], what: str = "template") -> str:
    """Render one Jinja2 template over an item's doc; a missing field fails in one line."""
    try:
        return _compile(template).render(**doc)
    except TemplateError as exc:
        raise ValueError(f"prompt {what} failed: {exc} (fields available: {', '.join(sorted(doc))})") from None


def select_fewshot(dataset: DatasetConfig, item: Item, fewshot_items: list[Item]) -> list[Item]:
    """The item's few-shot examples: deterministic, never the item itself.

    Sampler "random" is lm-eval's default: ``random.Random(fewshot_seed).sample(pool, k)``
    (k+1 and drop the item when the pool holds it).  A fresh generator per call gives every
    item the same examples -- lm-eval's first document's draw; lm-eval advances one generator
    across documents instead, so its later documents differ.  "first_n" takes the first k.
    """
    prompt = dataset.prompt
    k = prompt.fewshot if prompt else 0
    if k == 0:
        return []
    pool = list(fewshot_items)
    group = prompt.fewshot_group
    if group:
        pool = [ex for ex in pool if ex.doc.get(group) == item.doc.get(group)]
    has_self = any(ex.id == item.id for ex in pool)
    sampler = prompt.fewshot_sampler
    if sampler == "first_n":
        chosen = [ex for ex in pool if ex.id != item.id][:k]
    elif sampler == "random":
        want = k + 1 if has_self else k
        drawn = random.Random(prompt.fewshot_seed).sample(pool, min(want, len(pool)))
        chosen = [ex for ex in drawn if ex.id != item.id][:k]
    else:
        raise ValueError(f"dataset '{dataset.key}': unknown few-shot sampler '{sampler}' "
                         f"(valid: random, first_n)")
    if len(chosen) < k:
        where = f" with {group}={item.doc.get(group)!r}" if group else ""
        raise ValueError(f"dataset '{dataset.key}': {k}-shot prompt but only {len(chosen)} few-shot "
                         f"examples{where} besides the item itself")
    return chosen


def build_prompt(dataset: DatasetConfig, item: Item, fewshot_items: list[Item]) -> str:
    """The plain-text prompt for one item (lm-eval's layout; see :mod:`specbench.data`).

    For partial-evaluation datasets (winogrande) this is only the description and few-shot
    prefix: the item's own text is one context per option, added by :func:`choice_requests`.
    The chat ``system`` prompt is not included; the engine applies it.
    """
    prompt = dataset.prompt
    if prompt is None:
        raise ValueError(f"dataset '{dataset.key}' has no prompt section")
    adapter = get_adapter(dataset)
    description = prompt.description
    parts = [render(description, item.doc, "description")] if description else []
    for ex in select_fewshot(dataset, item, fewshot_items):
        parts.append(render(prompt.template, ex.doc) + prompt.target_delimiter
                     + render(prompt.target, ex.doc, "target") + prompt.fewshot_delimiter)
    if not adapter.partial:
        parts.append(render(prompt.template, item.doc))
    return "".join(parts)


def choice_requests(dataset: DatasetConfig, item: Item, prompt: str) -> list[tuple[str, str]]:
    """(context, continuation) pairs whose log-likelihoods decide a multiple-choice item.

    Usually ``(prompt, target_delimiter + choice)`` per choice (choice rendered through
    ``choice_template`` when set, with ``choice`` and ``choice_index`` in scope).  Partial
    evaluation (winogrande): ``(prompt + option_context, target_delimiter + target)``.
    """
    if not item.choices:
        raise ValueError(f"dataset '{dataset.key}': item {item.id} has no choices")
    p = dataset.prompt
    if p is None:
        raise ValueError(f"dataset '{dataset.key}' has no prompt section")

    def text(i: int, choice: str) -> str:
        if p.choice_template is None:
            return choice
        return render(p.choice_template, {**item.doc, "choice": choice, "choice_index": i}, "choice_template")

    if get_adapter(dataset).partial:
        cont = p.target_delimiter + render(p.target, item.doc, "target")
        return [(prompt + text(i, c), cont) for i, c in enumerate(item.choices)]
    return [(prompt, p.target_delimiter + text(i, c)) for i, c in enumerate(item.choices)]

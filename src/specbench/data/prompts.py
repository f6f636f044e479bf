"""Prompts: Jinja2 templates over an item's doc, few-shot draws, chat layout, multiple-choice requests.

The prompts are lm-evaluation-harness 0.4.13's, byte for byte (tests/test_lmeval_prompts.py
builds lm-eval's own task objects and compares): its few-shot sampler (one generator per task,
advanced across the documents in order), its turn structure (``ConfigurableTask.fewshot_context``
and ``build_qa_turn``: a system message of system instruction + description, one user/assistant
pair per few-shot example, the document's user turn, an optional ``gen_prefix``) rendered as
plain text or, with a chat template, as chat messages (``fewshot_as_multiturn``, its default
under ``--apply_chat_template``, or everything collapsed into one user message).  Templates
see the hub's field names, which every adapter gives its ``doc``.

A :data:`Prompt` is either plain text (sent as it is) or a list of chat messages (role/content
dicts) to which the engine applies the model's chat template as lm-eval does: with the
generation prompt, or continuing a final assistant message (a ``gen_prefix``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from specbench.data.adapters import get_adapter
from specbench.registry.schema import DatasetConfig, PromptConfig
from specbench.types import Item

__all__ = ["Message", "Prompt", "build_prompt", "build_prompts", "choice_requests", "fewshot_draws",
           "prompt_text", "render", "select_fewshot"]

# {"role": "system" | "user" | "assistant", "content": text, or for an item with images content
# parts: [{"type": "image", "name": ...}, ..., {"type": "text", "text": ...}]}
Message = dict[str, Any]
Prompt = str | list[Message]  # plain text, or chat messages for the engine's chat template


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


# ---- few-shot draws ------------------------------------------------------------------------------

def _excludes_eval_doc(dataset: DatasetConfig) -> bool:
    """Whether the sampler draws k+1 and drops the item.  lm-eval passes the evaluated document to
    its sampler (which then does so) when the few-shot split is its task's test split -- also when
    both are unset, as in tasks evaluated on a validation split (``prompt.fewshot_exclude_item``)."""
    p = dataset.prompt
    if p is None:
        return False
    return p.fewshot_split == dataset.split if p.fewshot_exclude_item is None else p.fewshot_exclude_item


def select_fewshot(dataset: DatasetConfig, item: Item, fewshot_items: list[Item],
                   rng: random.Random | None = None) -> list[Item]:
    """One document's few-shot examples, never the item itself.

    Sampler "random" is lm-eval's ``ContextSampler``: ``rng.sample(pool, k)`` (k+1, then the
    item dropped, when the pool is the evaluated split).  ``rng`` is the task's one generator,
    which each document's draw advances (:func:`fewshot_draws`); without it a fresh
    ``Random(fewshot_seed)`` gives lm-eval's first document's draw.  "first_n" takes the first k.
    """
    prompt = dataset.prompt
    k = prompt.fewshot if prompt else 0
    if k == 0 or prompt is None:
        return []
    pool = list(fewshot_items)
    group = prompt.fewshot_group
    if group:
        pool = [ex for ex in pool if ex.doc.get(group) == item.doc.get(group)]
    sampler = prompt.fewshot_sampler
    if sampler == "first_n":
        chosen = [ex for ex in pool if ex.id != item.id][:k]
    elif sampler == "random":
        rng = rng if rng is not None else random.Random(prompt.fewshot_seed)
        exclude = _excludes_eval_doc(dataset)
        drawn = rng.sample(pool, min(k + 1 if exclude else k, len(pool)))
        chosen = [ex for ex in drawn if ex.id != item.id][:k]
        others = [ex for ex in pool if ex.id != item.id]
        if len(chosen) < k <= len(others):  # lm-eval's resample when removing the item left too few
            chosen = rng.sample(others, k)
    else:
        raise ValueError(f"dataset '{dataset.key}': unknown few-shot sampler '{sampler}' "
                         f"(valid: random, first_n)")
    if len(chosen) < k:
        where = f" with {group}={item.doc.get(group)!r}" if group else ""
        raise ValueError(f"dataset '{dataset.key}': {k}-shot prompt but only {len(chosen)} few-shot "
                         f"examples{where} besides the item itself")
    return chosen


def fewshot_draws(dataset: DatasetConfig, items: list[Item], fewshot_items: list[Item]) -> list[list[Item]]:
    """Each item's few-shot examples, drawn in document order.

    ``fewshot_draw: per_document`` (the default) is lm-eval's: one ``Random(fewshot_seed)`` per
    task -- per ``fewshot_group`` value, since lm-eval's grouped datasets (mmlu) are one task per
    subject -- advanced by every document's draw, so item i gets lm-eval's i-th draw and the
    first N items (``samples=N``) get what lm-eval's ``--limit N`` gives.  ``fixed`` gives every
    item the first document's draw.
    """
    prompt = dataset.prompt
    if prompt is None or prompt.fewshot == 0:
        return [[] for _ in items]
    generators: dict[Any, random.Random] = {}
    out = []
    for item in items:
        if prompt.fewshot_draw == "fixed":
            rng = random.Random(prompt.fewshot_seed)
        else:
            key = item.doc.get(prompt.fewshot_group) if prompt.fewshot_group else None
            rng = generators.setdefault(key, random.Random(prompt.fewshot_seed))
        out.append(select_fewshot(dataset, item, fewshot_items, rng))
    return out


# ---- turns and layouts (lm_eval.api.task.ConfigurableTask.fewshot_context / build_qa_turn) --------

@dataclass
class _Turn:
    """One message; ``delimiter`` follows its content only in plain text (lm-eval's Message)."""

    role: str
    content: str
    delimiter: str = ""

    def text(self) -> str:
        return self.content + self.delimiter


def _maybe_delimit(prefix: str | None, suffix: str | None, delimiter: str = " ") -> str:
    """Join with ``delimiter`` unless there is whitespace at the seam already."""
    if not prefix:
        return suffix or ""
    if not suffix:
        return prefix
    return prefix + suffix if prefix[-1].isspace() or suffix[0].isspace() else prefix + delimiter + suffix


def _requires_delimiter(prefix: str, suffix: str) -> bool:
    return prefix != "" and not (prefix[-1].isspace() or suffix[0].isspace())


def _qa_turn(q: str, a: str | None, gen_prefix: str | None, tgt_delim: str, few_delim: str) -> list[_Turn]:
    """A question and, for a few-shot example, its answer; or the answer's ``gen_prefix``."""
    has_answer = a is not None and a != ""
    if has_answer and not gen_prefix:
        user_delim = tgt_delim
    else:
        user_delim = tgt_delim if gen_prefix and _requires_delimiter(q, gen_prefix) else ""
    turns = [_Turn("user", q, user_delim)]
    if has_answer:
        turns.append(_Turn("assistant", _maybe_delimit(gen_prefix, a, " "), few_delim))
    elif gen_prefix:
        turns.append(_Turn("assistant", gen_prefix))
    return turns


def _gen_prefix(p: PromptConfig, doc: Mapping[str, Any]) -> str | None:
    return render(p.gen_prefix, doc, "gen_prefix") if p.gen_prefix else None


def _prefix_turns(dataset: DatasetConfig, item: Item, examples: list[Item]) -> list[_Turn]:
    """System instruction + description as a system turn, then one turn pair per example."""
    p = dataset.prompt
    assert p is not None
    description = render(p.description, item.doc, "description") if p.description else ""
    system = _maybe_delimit(p.system, description, p.fewshot_delimiter)
    turns = [_Turn("system", system)] if system else []
    for ex in examples:
        turns += _qa_turn(render(p.template, ex.doc), render(p.target, ex.doc, "target"),
                          _gen_prefix(p, ex.doc), p.target_delimiter, p.fewshot_delimiter)
    return turns


def _layout(turns: list[_Turn], chat_layout: str | None) -> Prompt:
    """Plain text (None), one message per turn ("multiturn"), or lm-eval's
    ``multiturn_to_singleturn``: all but the system turn (and a final assistant turn) in one user message."""
    if chat_layout is None:
        return "".join(t.text() for t in turns)
    if chat_layout == "multiturn":
        return [{"role": t.role, "content": t.content} for t in turns]
    system, rest = (turns[0], turns[1:]) if turns and turns[0].role == "system" else (None, turns)
    head = [{"role": "system", "content": system.content}] if system else []
    if not rest:
        return head
    tail = rest[-1] if rest[-1].role == "assistant" else None
    body = rest[:-1] if tail else rest
    text = "".join(t.text() for t in body[:-1]) + (body[-1].content if body else "")
    return head + [{"role": "user", "content": text}] + ([{"role": "assistant", "content": tail.content}]
                                                         if tail else [])


def _chat_layout(dataset: DatasetConfig, chat: bool) -> str | None:
    p = dataset.prompt
    return p.chat_layout if chat and p is not None and p.chat_layout != "none" else None


def build_prompts(dataset: DatasetConfig, items: list[Item], fewshot_items: list[Item], *,
                  chat: bool = False) -> list[Prompt]:
    """The prompts of ``items`` (in document order: the few-shot draws depend on it).

    Plain text without ``chat``; with it, chat messages in the dataset's ``chat_layout``.  For
    partial-evaluation datasets (winogrande) a prompt is only the system/few-shot prefix: the
    item's own text is one context per option, added by :func:`choice_requests`.
    """
    p = dataset.prompt
    if p is None:
        raise ValueError(f"dataset '{dataset.key}' has no prompt section")
    partial = get_adapter(dataset).partial
    layout = _chat_layout(dataset, chat)
    out: list[Prompt] = []
    for item, examples in zip(items, fewshot_draws(dataset, items, fewshot_items), strict=True):
        turns = _prefix_turns(dataset, item, examples)
        if partial:
            if layout == "singleturn" and any(t.role != "system" for t in turns):
                # the few-shot text as one user message, to which each option's context is appended
                system = [t for t in turns if t.role == "system"]
                turns = system + [_Turn("user", "".join(t.text() for t in turns if t.role != "system"))]
                out.append(_layout(turns, "multiturn"))
            else:
                out.append(_layout(turns, layout))
            continue
        turns += _qa_turn(render(p.template, item.doc), None, _gen_prefix(p, item.doc), p.target_delimiter, "")
        out.append(_with_images(dataset, item, _layout(turns, layout)))
    return out


def _with_images(dataset: DatasetConfig, item: Item, prompt: Prompt) -> Prompt:
    """An item's images go first in its (last) user message, as content parts -- lmms-eval's
    layout, the image before the question -- for the model's chat template to place its image
    tokens; a placeholder names the image for people, the engine gets the pixels beside it."""
    if not item.images:
        return prompt
    if isinstance(prompt, str):
        raise ValueError(f"dataset '{dataset.key}': item {item.id} has images, which only chat messages carry; "
                         "image datasets need a model with a chat template (instruct: true) and chat_layout "
                         "multiturn or singleturn")
    last = max(i for i, m in enumerate(prompt) if m["role"] == "user")
    parts = [{"type": "image", "name": ref.name} for ref in item.images]
    message = {"role": "user", "content": [*parts, {"type": "text", "text": prompt[last]["content"]}]}
    return [*prompt[:last], message, *prompt[last + 1:]]


def build_prompt(dataset: DatasetConfig, item: Item, fewshot_items: list[Item], *, chat: bool = False) -> Prompt:
    """One item's prompt as the first document of a task (its few-shot examples are lm-eval's
    first draw); a whole split's prompts come from :func:`build_prompts`."""
    return build_prompts(dataset, [item], fewshot_items, chat=chat)[0]


def prompt_text(prompt: Prompt) -> str:
    """A prompt for people (the per-sample table): the text itself, or the messages as JSON."""
    import json

    return prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False)


def choice_requests(dataset: DatasetConfig, item: Item, prompt: Prompt) -> list[tuple[Prompt, str]]:
    """(context, continuation) pairs whose log-likelihoods decide a multiple-choice item.

    Usually ``(prompt, target_delimiter + choice)`` per choice (choice rendered through
    ``choice_template`` when set, with ``choice`` and ``choice_index`` in scope).  Partial
    evaluation (winogrande): ``(prompt + option_context, target_delimiter + target)``.  With a
    chat prompt (messages) the contexts are messages too, and the delimiter is "" unless a
    ``gen_prefix`` without trailing whitespace ends the context (lm-eval's construct_requests).
    """
    if not item.choices:
        raise ValueError(f"dataset '{dataset.key}': item {item.id} has no choices")
    p = dataset.prompt
    if p is None:
        raise ValueError(f"dataset '{dataset.key}' has no prompt section")
    chat = not isinstance(prompt, str)
    delim = p.target_delimiter
    if chat:
        delim = p.target_delimiter if p.gen_prefix and not p.gen_prefix[-1:].isspace() else ""

    def text(i: int, choice: str) -> str:
        if p.choice_template is None:
            return choice
        return render(p.choice_template, {**item.doc, "choice": choice, "choice_index": i}, "choice_template")

    if not get_adapter(dataset).partial:
        return [(prompt, delim + text(i, c)) for i, c in enumerate(item.choices)]
    cont = delim + render(p.target, item.doc, "target")
    gen_prefix = _gen_prefix(p, item.doc)
    requests: list[tuple[Prompt, str]] = []
    for i, c in enumerate(item.choices):
        option = _qa_turn(text(i, c), None, gen_prefix, "", "")
        if isinstance(prompt, str):
            requests.append((prompt + "".join(t.text() for t in option), cont))
            continue
        msgs = [dict(m) for m in prompt]
        if p.chat_layout == "singleturn" and msgs and msgs[-1]["role"] == "user":
            msgs[-1]["content"] += option[0].content  # lm-eval collapses the few-shot text and the context
            option = option[1:]
        msgs += [{"role": t.role, "content": t.content} for t in option]
        requests.append((msgs, cont))
    return requests

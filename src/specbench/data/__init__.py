"""The data layer: load a dataset's items (hub or offline slice), build prompts, MC requests.

One adapter per dataset (registered by name; a dataset's ``adapter`` or else its ``key``)
turns a record into an :class:`~specbench.types.Item`; each is a module of
:mod:`specbench.data.adapters` that registers itself.  The hub path and the offline path go
through the same adapter; an adapter accepts both the hub's record shape and the shape of
the source files the offline slices are cut from (``scripts/make_slices.py``), and gives the
prompt templates the hub's field names, so the templates are lm-evaluation-harness's own.

Prompts are lm-evaluation-harness 0.4.13's, byte for byte.  In plain text::

    [system +] description + (template(ex) + target_delimiter + target(ex) + fewshot_delimiter) * k
                           + template(item)

with the k examples drawn per document by lm-eval's sampler (one generator advanced across
the documents in order).  With a chat template a prompt is a list of chat messages instead:
system instruction and description as the system message, each few-shot example its own
user/assistant pair, then the item (lm-eval's ``--apply_chat_template``, multi-turn few-shot).

Multiple-choice items are scored by log-likelihood: :func:`choice_requests` gives the
(context, continuation) pairs, continuation = target_delimiter + choice (no delimiter under
a chat template, as lm-eval), or for "partial evaluation" datasets (winogrande) one context
per option and one fixed continuation.

Modules: :mod:`.loading` (hub / slice loading), :mod:`.prompts` (templates, few-shot,
requests), :mod:`.adapters` (the registry and one module per dataset).  The data layer
depends only on the registry schemas, :mod:`specbench.types`, :mod:`specbench.hub` and
:mod:`specbench.mathequiv`; ``datasets`` is imported only when something is loaded.
"""

from __future__ import annotations

from specbench.data.adapters import (
    ADAPTERS,
    Adapter,
    Normalizer,
    adapter,
    adapter_names,
    get_adapter,
    register_adapter,
)
from specbench.data.adapters.math import MATH_TYPES
from specbench.data.adapters.pubmedqa import PUBMEDQA_CHOICES
from specbench.data.errors import DataUnavailable
from specbench.data.loading import SLICES_DIR, LoadedDataset, load_items, load_split_items, split_slice_name
from specbench.data.prompts import (
    Message,
    Prompt,
    build_prompt,
    build_prompts,
    choice_requests,
    fewshot_draws,
    prompt_text,
    render,
    select_fewshot,
)

__all__ = [
    "ADAPTERS", "MATH_TYPES", "PUBMEDQA_CHOICES", "SLICES_DIR", "Adapter", "DataUnavailable", "LoadedDataset",
    "Message", "Normalizer", "Prompt", "adapter", "adapter_names", "build_prompt", "build_prompts",
    "choice_requests", "fewshot_draws", "get_adapter", "load_items", "load_split_items", "prompt_text",
    "register_adapter", "render", "select_fewshot", "split_slice_name"
]

"""What to fine-tune, whether it can be done here, and whether its training items are clean.

Registry logic and cheap: :func:`pick_target` and :func:`cannot_finetune` run before any weights
are touched, so an API-only or too-large base is refused in one line before a download or a
torch import; :func:`contamination` compares the training items with the evaluated split's once
both are loaded (the registry already refuses a recipe that names the evaluation split itself).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from specbench.registry import Registry, suggest
from specbench.registry.schema import DatasetConfig, FinetuneSpec, ModelConfig, Quantization
from specbench.types import Item
from specbench.weights import gpu_count, runnable_reason

# LoRA training on a CPU, float32: about 10 s per step of 8 GSM8K problems for SmolLM2-135M
# (2 cores, measured); a 1B model would take over an hour for the same recipe.
CPU_MAX_PARAMETERS_B = 1.0


class FinetuneError(RuntimeError):
    """A finetune request that cannot be done here; the message is the one-line reason."""


@dataclass(frozen=True)
class Target:
    key: str  # the derived model's key
    parent: ModelConfig
    spec: FinetuneSpec
    derived: ModelConfig | None  # None: no conf/models/<key>.yaml yet (finetune writes one)


def derived_key(parent: str, recipe: str) -> str:
    """The key a new fine-tuned model gets: ``<parent>_<recipe>`` (smollm2_135m_gsm8k_lora)."""
    return f"{parent}_{recipe}"


def pick_target(reg: Registry, model_key: str, recipe: str | None = None) -> Target:
    """``--model`` may name the base (its derived entry is found by ``parent:`` and ``recipe:``) or
    the derived model itself; ``--recipe`` may be left out when that settles it."""
    model = reg.model(model_key)
    if model.recipe is not None:
        if model.recipe not in reg.finetunes:
            raise FinetuneError(f"{model.key} is made by the quantization recipe {model.recipe}; "
                                f"`specbench quantize --model {model.parent}` makes it")
        if recipe is not None and recipe != model.recipe:
            raise FinetuneError(f"{model.key} is made with recipe {model.recipe}, not {recipe}; "
                                f"edit conf/models/{model.key}.yaml to change it")
        derived, parent, name = model, reg.model(model.parent or ""), model.recipe
    else:
        parent = model
        kids = [m for m in reg.models.values() if m.parent == model.key and m.recipe in reg.finetunes]
        if recipe is None:
            if len(kids) != 1:
                mine = [f.key for f in reg.finetunes.values() if f.base == model.key]
                raise FinetuneError(f"name a recipe with --recipe (conf/finetune/); for {model.key}: "
                                    f"{', '.join(mine) or 'none yet'}")
            recipe = kids[0].recipe
        assert recipe is not None
        if recipe not in reg.finetunes:
            raise FinetuneError(f"unknown fine-tune recipe '{recipe}'; {suggest(recipe, reg.finetunes)}")
        derived = next((k for k in kids if k.recipe == recipe), None)
        name = recipe
    spec = reg.finetune(name)
    if spec.base != parent.key:
        raise FinetuneError(f"recipe {spec.key} trains {spec.base}, not {parent.key} (its `base:`)")
    key = derived.key if derived is not None else derived_key(parent.key, spec.key)
    if derived is None and key in reg.models:
        raise FinetuneError(f"{key} exists but names no recipe; add `recipe: {spec.key}` and `parent: "
                            f"{parent.key}` to conf/models/{key}.yaml, or pick another recipe")
    return Target(key=key, parent=parent, spec=spec, derived=derived)


def cannot_finetune(parent: ModelConfig, gpus: int | None = None) -> str | None:
    """Why the base cannot be fine-tuned here (one line), or None: the registry's runnability
    reasons (API-only, gated without a token, too many GPUs...), a quantized base, or a model too
    large to train on a CPU in reasonable time."""
    gpus = gpu_count() if gpus is None else gpus
    reason = runnable_reason(parent, gpus)
    if reason:
        return reason
    if not parent.can_generate:
        return f"{parent.key} cannot generate text: a LoRA here trains a causal language model"
    if parent.quantization != Quantization.none:
        return (f"{parent.key} is {parent.quantization.value}-quantized; fine-tune its full-precision "
                f"parent ({parent.parent or 'the unquantized model'}) instead")
    if gpus == 0 and (parent.parameters_b or 0) > CPU_MAX_PARAMETERS_B:
        return (f"{parent.key}: training a LoRA on {parent.parameters_b:g}B parameters on a CPU would take hours "
                f"(limit here {CPU_MAX_PARAMETERS_B:g}B); run it on a GPU machine")
    return None


def _question(dataset: DatasetConfig, item: Item) -> str:
    """What makes an item the same item whatever its id: its rendered prompt, spacing and case folded."""
    from specbench import data

    assert dataset.prompt is not None
    return re.sub(r"\s+", " ", data.render(dataset.prompt.template, item.doc)).strip().lower()


def contamination(spec: FinetuneSpec, dataset: DatasetConfig, train: list[Item], evaluated: list[Item],
                  evaluated_source: str) -> str | None:
    """One line when training items are also evaluated items (same id or same question), else None.

    Ids are compared as well as questions: a hub split's ids and a slice's are the same scheme,
    while a copied question under another id is caught by its text."""
    seen = {_question(dataset, it): it for it in evaluated}
    ids = {it.id for it in evaluated}
    shared = [it for it in train if it.id in ids or _question(dataset, it) in seen]
    if not shared:
        return None
    example = _question(dataset, shared[0])
    return (f"recipe {spec.key}: {len(shared)} of its {len(train)} training items are also evaluated items of "
            f"{dataset.key} ({evaluated_source}), e.g. '{example[:70]}'; train/test contamination: train on items "
            "the evaluation never sees")

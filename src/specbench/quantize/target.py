"""What to quantize, whether it can be done here, and how variants pair with their parents.

Everything here is registry logic and cheap: it runs before any weights are touched, so every
refusal of `specbench quantize` is one line and comes before a download or an AutoAWQ import
(except :func:`check_shapes`, which needs the parent's config and so comes once it is local).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from specbench.registry import Registry, RegistryError, suggest
from specbench.registry.schema import ModelConfig, Quantization, QuantizationSpec
from specbench.weights import derived_manifest, gpu_count, runnable_reason

DEFAULT_RECIPE = "awq_w4_g128"  # for a model that has no derived entry yet
# AutoAWQ on a CPU: ~250 s for SmolLM2-135M (2 cores); a 7B model would take most of a day.
CPU_MAX_PARAMETERS_B = 1.0


class QuantizeError(RuntimeError):
    """A quantize request that cannot be done here; the message is the one-line reason."""


@dataclass(frozen=True)
class Target:
    key: str  # the derived model's key
    parent: ModelConfig
    spec: QuantizationSpec
    derived: ModelConfig | None  # None: no conf/models/<key>.yaml yet (quantize writes one)


def pick_target(reg: Registry, model_key: str, recipe: str | None = None) -> Target:
    """`--model` may name the parent (its derived entry is found by ``parent:``) or the derived
    model itself; a parent without one gets ``<parent>_awq`` with ``recipe`` or the default."""
    model = reg.model(model_key)
    if model.recipe is not None:
        derived, parent = model, reg.model(model.parent or "")
    else:
        parent = model
        kids = [m for m in reg.models.values() if m.parent == model.key and m.recipe in reg.quantizations]
        if recipe is not None and len(kids) > 1:
            kids = [k for k in kids if k.recipe == recipe] or kids
        if len(kids) > 1:
            raise QuantizeError(f"{model.key} has several derived models ({', '.join(k.key for k in kids)}); "
                                "name one with --model or pick a recipe with --recipe")
        derived = kids[0] if kids else None
    if derived is not None and recipe is not None and derived.recipe != recipe:
        raise QuantizeError(f"{derived.key} is made with recipe {derived.recipe}, not {recipe}; "
                            f"edit conf/models/{derived.key}.yaml to change it")
    name = derived.recipe if derived is not None else (recipe or DEFAULT_RECIPE)
    if name not in reg.quantizations:
        raise QuantizeError(f"unknown quantization recipe '{name}'; {suggest(name, reg.quantizations)}")
    key = derived.key if derived is not None else f"{parent.key}_awq"
    if derived is None and key in reg.models:
        raise QuantizeError(f"{key} exists but names no recipe; add `recipe:` and `parent:` to "
                            f"conf/models/{key}.yaml, or quantize another model")
    return Target(key=key, parent=parent, spec=reg.quantization(name), derived=derived)


def cannot_quantize(parent: ModelConfig, gpus: int | None = None) -> str | None:
    """Why AutoAWQ cannot quantize this model here (one line), or None."""
    gpus = gpu_count() if gpus is None else gpus
    if parent.quantization != Quantization.none:
        return (f"{parent.key} is already {parent.quantization.value}-quantized; it runs as it is "
                "(quantize its full-precision parent instead)")
    reason = runnable_reason(parent, gpus)
    if reason:
        return reason
    if not parent.can_generate:
        return f"{parent.key} is encoder-only: AWQ quantizes causal language models"
    if gpus == 0 and parent.parameters_b > CPU_MAX_PARAMETERS_B:
        return (f"{parent.key}: quantizing {parent.parameters_b:g}B parameters with AutoAWQ on a CPU would take "
                f"hours (limit here {CPU_MAX_PARAMETERS_B:g}B); run it on a GPU machine")
    return None


def check_shapes(config: Any, spec: QuantizationSpec, key: str) -> None:
    """Refuse a group size that does not divide the model's widths (AutoAWQ would fail mid-run)."""
    widths = {"hidden_size": getattr(config, "hidden_size", None),
              "intermediate_size": getattr(config, "intermediate_size", None)}
    bad = {k: v for k, v in widths.items() if v and v % spec.group_size}
    if bad:
        raise QuantizeError(f"{key}: recipe {spec.key}'s group size {spec.group_size} does not divide "
                            + ", ".join(f"{k} {v}" for k, v in bad.items())
                            + "; use a recipe with a group size that does (e.g. awq_w4_g64)")


# -- pairing variants with their parents (for the comparison module) ------------------------------

def quantized_pairs(reg: Registry) -> list[tuple[str, str]]:
    """(quantized variant, full-precision parent) for every registry model that names a parent and
    is quantized: the derived AWQ models and the hub AWQ checkpoints alike."""
    return [(m.key, m.parent) for m in reg.models.values()
            if m.parent is not None and m.quantization != Quantization.none and m.parent in reg.models]


def size_ratio(reg: Registry, variant: str) -> float:
    """Weights on disk of a quantized variant over its parent's: measured by `specbench quantize`
    for derived models (packed checkpoint over the parent's checkpoint as evaluated), else the
    registry's declared sizes (hub AWQ checkpoints)."""
    v = reg.model(variant)
    if v.parent is None:
        raise RegistryError(f"{variant} names no parent")
    manifest = derived_manifest(v) if v.recipe is not None else None
    if manifest is not None:
        return float(manifest["size_ratio"])
    return v.size_gb / reg.model(v.parent).size_gb

"""Registry checks of derived models and fine-tune recipes (called by the loader's cross-reference pass).

A derived model names a recipe from conf/quantization/ (AWQ) or conf/finetune/ (LoRA): the names
never collide, an AWQ model runs as AWQ, a fine-tuned one unquantized, and a fine-tune recipe
trains a plain registry model on a registry dataset's non-evaluation split.
"""

from __future__ import annotations

from pathlib import Path

from specbench.registry.loader import Registry, RegistryError, suggest
from specbench.registry.schema import FinetuneSpec, ModelConfig, Quantization


def check_recipe_of(reg: Registry, m: ModelConfig, f: Path) -> None:
    """A derived model's recipe exists; an AWQ recipe's model runs as AWQ, a fine-tune's is its base's."""
    assert m.recipe is not None
    if m.recipe in reg.finetunes:
        ft = reg.finetunes[m.recipe]
        if m.parent != ft.base:
            raise RegistryError(f"recipe {ft.key} trains {ft.base}, not the parent {m.parent}", f, "parent")
        if m.quantization != Quantization.none:
            raise RegistryError(f"a fine-tuned model runs unquantized, not {m.quantization.value}", f, "quantization")
    elif m.recipe in reg.quantizations:
        if m.quantization not in (Quantization.awq, Quantization.awq_marlin):
            raise RegistryError(f"a model made by an AWQ recipe runs as awq or awq_marlin, not "
                                f"{m.quantization.value}", f, "quantization")
    else:
        raise RegistryError(f"unknown recipe '{m.recipe}' (conf/quantization/ or conf/finetune/); "
                            f"{suggest(m.recipe, [*reg.quantizations, *reg.finetunes])}", f, "recipe")


def check_finetune(reg: Registry, ft: FinetuneSpec, f: Path) -> None:
    """A fine-tune recipe trains a registry model on a registry dataset's non-evaluation split
    (whether the split shares items with the evaluated one is checked when it is loaded)."""
    if ft.key in reg.quantizations:
        raise RegistryError(f"'{ft.key}' is also a quantization recipe; a derived model's recipe must be one "
                            "or the other", f, "key")
    if ft.base not in reg.models:
        raise RegistryError(f"unknown model '{ft.base}'; {suggest(ft.base, reg.models)}", f, "base")
    if reg.models[ft.base].recipe is not None:
        raise RegistryError(f"'{ft.base}' is itself a derived model; train its parent "
                            f"{reg.models[ft.base].parent} instead", f, "base")
    if ft.data.dataset not in reg.datasets:
        raise RegistryError(f"unknown dataset '{ft.data.dataset}'; {suggest(ft.data.dataset, reg.datasets)}",
                            f, "data.dataset")
    ds = reg.datasets[ft.data.dataset]
    if ft.data.split == ds.split:
        raise RegistryError(f"'{ft.data.split}' is {ds.key}'s evaluation split; train on another (e.g. train): "
                            "a model trained on the items it is scored on (train/test contamination)",
                            f, "data.split")
    if ds.prompt is None:
        raise RegistryError(f"{ds.key} has no prompt section to write training texts with", f, "data.dataset")

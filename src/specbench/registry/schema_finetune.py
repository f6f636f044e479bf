"""Schema of fine-tune recipes (conf/finetune/<key>.yaml): what `specbench finetune` trains.

A recipe names its base model, the registry dataset and split it trains on, and the LoRA and
optimiser settings.  The training text is the dataset's own prompt and target templates (through
the base model's chat template when it is an instruct model), so a derived specialist is trained
on exactly the prompt shape it is evaluated with.  The recipe's digest (prose left out) is the
derived checkpoint's identity: edit any setting and the checkpoint is stale until trained again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from specbench.registry.schema_base import _check

FINETUNE_METHODS = ("lora",)


@dataclass
class TrainingData:
    """Where the training items come from: a registry dataset's non-evaluation split."""

    dataset: str  # registry dataset key
    split: str = "train"  # must differ from the dataset's evaluation split (registry check)
    items: int | None = None  # the first N items of the split (None: all of them)
    # the shipped slice read when the hub cannot be used (src/specbench/slices/); None: the split's
    # own slice, <stem>.<split>.jsonl beside the evaluation slice
    offline_slice: str | None = None

    def __post_init__(self) -> None:
        _check(self.items is None or self.items >= 1, "data.items", f"must be >= 1, got {self.items}")


@dataclass
class LoraSpec:
    """peft's LoraConfig: rank, scaling, dropout and the linear layers that get adapters."""

    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])

    def __post_init__(self) -> None:
        _check(self.rank >= 1, "lora.rank", f"must be >= 1, got {self.rank}")
        _check(self.alpha > 0, "lora.alpha", f"must be > 0, got {self.alpha}")
        _check(0 <= self.dropout < 1, "lora.dropout", f"must be in [0, 1), got {self.dropout}")
        _check(len(self.target_modules) >= 1, "lora.target_modules", "name at least one module (e.g. q_proj)")


@dataclass
class FinetuneSpec:
    """One fine-tune recipe: `specbench finetune --model <base> --recipe <key>` trains it."""

    key: str
    base: str  # the registry model it trains (the derived model's parent)
    data: TrainingData
    lora: LoraSpec = field(default_factory=LoraSpec)
    method: str = "lora"
    # the base model's chat template around the dataset's prompt (None: when the base is `instruct`)
    chat: bool | None = None
    steps: int = 30  # optimiser steps (each over batch_size items; the items cycle when they run out)
    batch_size: int = 8
    learning_rate: float = 1e-3
    warmup_steps: int = 0  # linear warm-up, then linear decay to 0 at the last step
    weight_decay: float = 0.0
    max_seq_len: int = 320  # prompt + answer tokens; longer examples are cut at the end
    seed: int = 0  # item order, LoRA initialisation and dropout
    notes: str = ""

    def __post_init__(self) -> None:
        _check(self.method in FINETUNE_METHODS, "method",
               f"unknown method '{self.method}'; valid: {', '.join(FINETUNE_METHODS)}")
        _check(self.steps >= 1, "steps", f"must be >= 1, got {self.steps}")
        _check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        _check(0 < self.learning_rate < 1, "learning_rate", f"must be in (0, 1), got {self.learning_rate}")
        _check(0 <= self.warmup_steps < self.steps, "warmup_steps", f"must be in [0, steps), got {self.warmup_steps}")
        _check(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        _check(self.max_seq_len >= 16, "max_seq_len", f"must be >= 16, got {self.max_seq_len}")

    def digest(self) -> str:
        """Identity of the recipe (notes excluded, as prose): a checkpoint made with another is stale."""
        from specbench.identity import digest

        return digest(self)

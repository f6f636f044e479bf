"""The training side of fine-tuning: training texts from a registry dataset, the LoRA loop, the merge.

The loop is a plain PyTorch one over peft's LoRA model rather than transformers' Trainer:
Trainer needs accelerate's launcher machinery and reports to MLflow through its own callback
(this project records MLflow only through :mod:`specbench.tracking`), while what is trained
here -- a fixed number of optimiser steps over short, dynamically padded batches, loss on the
answer tokens only -- is thirty lines that report each step's loss and tokens/s to our run.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specbench.finetune.target import FinetuneError
from specbench.identity import digest
from specbench.registry import Registry
from specbench.registry.schema import DatasetConfig, FinetuneSpec
from specbench.types import Item

if TYPE_CHECKING:  # pragma: no cover
    from specbench.data import LoadedDataset

IGNORE = -100  # label of a token the loss skips (the prompt, the padding): PyTorch's cross-entropy default


@dataclass
class Example:
    ids: list[int]  # prompt + answer tokens
    labels: list[int]  # IGNORE over the prompt, the token ids over the answer


@dataclass
class TrainingSet:
    examples: list[Example]
    items: list[Item]
    loaded: LoadedDataset  # where they came from (source, digest, the records as an HF dataset)
    digest: str  # identity digest of the token ids and labels: what the weights were trained on
    truncated: int  # examples cut at max_seq_len


def split_config(reg: Registry, spec: FinetuneSpec) -> DatasetConfig:
    """The dataset read at the recipe's split: zero-shot prompts, the recipe's slice offline."""
    from specbench import data

    base = reg.dataset(spec.data.dataset)
    assert base.prompt is not None  # the registry checks it
    return dataclasses.replace(
        base, split=spec.data.split,
        offline_slice=spec.data.offline_slice or data.split_slice_name(base, spec.data.split),
        prompt=dataclasses.replace(base.prompt, fewshot=0, fewshot_split=None))


def load_training_items(reg: Registry, spec: FinetuneSpec, offline: bool | None = None) -> LoadedDataset:
    from specbench import data

    try:
        return data.load_items(split_config(reg, spec), samples=spec.data.items, offline=offline)
    except data.DataUnavailable as exc:
        raise FinetuneError(f"recipe {spec.key}: training data: {exc}") from None


def training_set(reg: Registry, spec: FinetuneSpec, loaded: LoadedDataset, tokenizer: Any,
                 chat: bool) -> TrainingSet:
    """Each item as the evaluation prompts it (the dataset's template, zero-shot, through the chat
    template when ``chat``) followed by its target and the end-of-turn token: the model learns to
    answer the very prompt it is scored on, and to stop."""
    from specbench import data
    from specbench.engines.base import chat_text

    cfg = split_config(reg, spec)
    p = cfg.prompt
    assert p is not None
    eos = tokenizer.eos_token or ""
    examples, truncated = [], 0
    for item in loaded.items:
        prompt = data.build_prompt(cfg, item, [], chat=chat)
        context = prompt if isinstance(prompt, str) else chat_text(tokenizer, prompt)
        answer = ("" if chat else p.target_delimiter) + data.render(p.target, item.doc, "target") + eos
        ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
        ans = tokenizer(answer, add_special_tokens=False)["input_ids"]
        ids = (ctx + ans)[: spec.max_seq_len]
        truncated += len(ctx) + len(ans) > spec.max_seq_len
        labels = ([IGNORE] * len(ctx) + ans)[: spec.max_seq_len]
        if any(lab != IGNORE for lab in labels):  # a prompt longer than max_seq_len teaches nothing
            examples.append(Example(ids, labels))
    if not examples:
        raise FinetuneError(f"recipe {spec.key}: no training item fits in max_seq_len {spec.max_seq_len} tokens")
    return TrainingSet(examples, loaded.items, loaded, digest([(e.ids, e.labels) for e in examples]), truncated)


def batches(n: int, spec: FinetuneSpec) -> list[list[int]]:
    """``steps`` batches of example indices: a seeded shuffle, reshuffled each time it runs out."""
    rng = random.Random(spec.seed)
    order: list[int] = []
    out = []
    for _ in range(spec.steps):
        batch = []
        while len(batch) < spec.batch_size:
            if not order:
                order = list(range(n))
                rng.shuffle(order)
            batch.append(order.pop())
        out.append(batch)
    return out


@dataclass
class Trained:
    model: Any  # the peft model, adapters not merged yet
    losses: list[float]
    tokens: int  # tokens forwarded (padding excluded)
    train_s: float
    trainable: int  # LoRA parameters
    examples_seen: int


def train(parent_path: str, spec: FinetuneSpec, tset: TrainingSet, pad_id: int, *,
          trust_remote_code: bool = False,
          on_step: Callable[[int, dict[str, float]], None] | None = None) -> Trained:
    """LoRA on the parent: AdamW with linear warm-up and decay, loss on the answer tokens only.
    ``on_step(step, metrics)`` receives each step's loss, learning rate and tokens/s."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from transformers.optimization import get_linear_schedule_with_warmup

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(spec.seed)  # LoRA's A matrices and dropout
    base = AutoModelForCausalLM.from_pretrained(parent_path, dtype=torch.float32,
                                                trust_remote_code=trust_remote_code).to(device)
    lora = spec.lora
    try:
        model = get_peft_model(base, LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                target_modules=list(lora.target_modules), task_type="CAUSAL_LM"))
    except ValueError as exc:  # peft: "Target modules {...} not found in the base model"
        raise FinetuneError(f"recipe {spec.key}: lora.target_modules: {' '.join(str(exc).split())[:200]}") from None
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=spec.learning_rate, weight_decay=spec.weight_decay)
    sched = get_linear_schedule_with_warmup(opt, spec.warmup_steps, spec.steps)
    model.train()
    losses: list[float] = []
    tokens = 0
    t_start = time.perf_counter()
    for step, batch in enumerate(batches(len(tset.examples), spec)):
        t0 = time.perf_counter()
        exs = [tset.examples[i] for i in batch]
        width = max(len(e.ids) for e in exs)
        ids = torch.tensor([e.ids + [pad_id] * (width - len(e.ids)) for e in exs], device=device)
        labels = torch.tensor([e.labels + [IGNORE] * (width - len(e.labels)) for e in exs], device=device)
        mask = torch.tensor([[1] * len(e.ids) + [0] * (width - len(e.ids)) for e in exs], device=device)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        n = int(mask.sum())
        tokens += n
        losses.append(float(loss.detach()))
        if on_step:
            on_step(step, {"loss": losses[-1], "learning_rate": sched.get_last_lr()[0],
                           "tokens_per_s": n / (time.perf_counter() - t0)})
    return Trained(model, losses, tokens, time.perf_counter() - t_start, sum(p.numel() for p in params),
                   spec.steps * spec.batch_size)


def merge_and_save(trained: Trained, out: Path, parent_path: str, dtype: str) -> int:
    """The adapters merged into the weights (peft's merge_and_unload), saved as an ordinary
    checkpoint with the parent's tokenizer and generation files; returns the parameter count."""
    import torch

    from specbench.quantize.awq import copy_side_files

    merged = trained.model.merge_and_unload()
    if dtype in ("float16", "bfloat16"):
        merged = merged.to(getattr(torch, dtype))
    merged = merged.to("cpu")
    merged.save_pretrained(str(out), safe_serialization=True)
    copy_side_files(Path(parent_path), out)
    return sum(p.numel() for p in merged.parameters())

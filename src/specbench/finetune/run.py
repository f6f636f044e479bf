"""The finetune step: one tracked run that turns a registry model into its derived fine-tuned model.

As with `specbench quantize`, everything is written into a temporary folder beside the final one
and renamed into place only once the run has recorded it, manifest last, and an up-to-date
checkpoint (same recipe digest, same parent revision, current trainer) is reused: the run then
records it with ``reused=true`` and trains nothing; one published on the tracking server by
another machine is fetched and reused the same way, and a checkpoint trained here is published
when the store is shared (:mod:`specbench.weights_shared`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specbench.finetune.target import FinetuneError, Target, cannot_finetune, contamination, pick_target
from specbench.finetune.train import load_training_items, merge_and_save, train, training_set
from specbench.progress import progress
from specbench.registry import Registry
from specbench.registry.schema import to_plain
from specbench.weights import (
    FINETUNER_REVISION,
    MERGED_DIR,
    QUANTIZED_MANIFEST,
    DerivedResult,
    ModelUnavailable,
    checkpoint_digest,
    derived_dir,
    gpu_count,
    install_derived,
    resolve,
)
from specbench.weights_shared import existing_checkpoint, publish, publishing_enabled, reuse_published

if TYPE_CHECKING:  # pragma: no cover
    from contextlib import AbstractContextManager

    from specbench.tracking import RunHandle

METRICS = ("train_s", "tokens_per_s", "tokens", "loss_first", "loss_last", "loss_last_10_mean", "peak_rss_mb",
           "trainable_parameters", "examples_seen", "training_items", "truncated_items", "size_mb")


FinetuneResult = DerivedResult


def finetune(reg: Registry, model_key: str, *, recipe: str | None = None, force: bool = False,
             experiment: str | None = None, offline: bool | None = None) -> FinetuneResult:
    """Train (or find already trained) the derived model of ``model_key``, as one MLflow run.

    Raises FinetuneError before any heavy work when the model cannot be fine-tuned here, and
    before any training when the training items are also evaluated items.  ``offline``: as
    ``data.load_items`` (None: the hub if it answers, else the shipped slices).
    """
    target = pick_target(reg, model_key, recipe)
    reason = cannot_finetune(target.parent)
    if reason:
        raise FinetuneError(reason)
    try:
        import peft  # noqa: F401 - fail early, in one line, before any download
    except ImportError as exc:
        raise FinetuneError(f"peft is not importable ({exc}); install it with `pip install -e '.[finetune]'`") \
            from None
    loaded = load_training_items(reg, target.spec, offline)
    _refuse_contamination(reg, target, loaded.items, offline)
    try:
        parent_w = resolve(target.parent)
    except ModelUnavailable as exc:
        raise FinetuneError(str(exc)) from None

    final = derived_dir(target.key)
    found = None if force else existing_checkpoint(target.key, "finetune", target.spec.digest(), parent_w.revision)
    if found:
        with _open_run(target, experiment) as run:
            _record(run, found[0], reused=True)
            notes = reuse_published(run, target.key, found)
        return FinetuneResult(target.key, target.parent.key, target.spec.key, final, found[0], run.run_id,
                              reused=True, notes=[*notes, "--force trains again"])

    tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
    try:
        with _open_run(target, experiment) as run:
            manifest = _train_into(target, loaded, parent_w.path, parent_w.revision, tmp, run, reg)
            _record(run, manifest, reused=False)
            if publishing_enabled():  # before the install: a failed upload fails the run, as it should
                publish(run, tmp)
        install_derived(tmp, final)  # only a recorded training replaces the checkpoint
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = FinetuneResult(target.key, target.parent.key, target.spec.key, final, manifest, run.run_id)
    if target.derived is None:
        result.wrote_entry = write_entry(reg, target, manifest["size_mb"] / 1024)
    return result


def _refuse_contamination(reg: Registry, target: Target, train_items: list[Any], offline: bool | None) -> None:
    """The evaluated split as a cell would load it (the hub's, or the slice offline), compared item by item."""
    from specbench import data

    ds = reg.dataset(target.spec.data.dataset)
    try:
        evaluated = data.load_items(ds, offline=offline)
    except data.DataUnavailable as exc:
        raise FinetuneError(f"recipe {target.spec.key}: cannot check the training items against {ds.key}'s "
                            f"evaluated split: {exc}") from None
    why = contamination(target.spec, ds, train_items, evaluated.items, evaluated.source.rsplit("/", 1)[-1])
    if why:
        raise FinetuneError(why)


def _open_run(target: Target, experiment: str | None) -> AbstractContextManager[RunHandle]:
    """The finetune run (the `mlflow run` project run when there is one), named ``finetune:<key>``."""
    from specbench import tracking  # MLflow loads only when a run is opened

    return tracking.open_run("finetune", name=f"finetune:{target.key}", experiment=experiment, tags={
        "model": target.key, "parent": target.parent.key, "recipe": target.spec.key, "derived_model": target.key,
        "finetune": target.spec.method})


def _record(run: RunHandle, manifest: dict[str, Any], reused: bool) -> None:
    """The training as the run's params, summary metrics, tags and artifact (the loss curve is
    logged step by step while it trains)."""
    from specbench import tracking

    spec = manifest["recipe"]
    d = manifest["data"]
    run.log_params({
        **tracking.flatten("finetune", {k: v for k, v in spec.items() if k not in ("notes", "key")}),
        "finetune.recipe": spec["key"], "parent": manifest["parent"], "parent.revision": manifest["parent_revision"],
        "data.source": d["source"][-250:], "data.items": d["items"], "chat": manifest["chat"],
        "peft": manifest["peft"], "device": manifest["device"], "finetuner_revision": manifest["finetuner_revision"],
    })
    run.log_metrics({k: manifest.get(k) for k in METRICS})
    run.set_tags({"data_digest": d["digest"], "checkpoint_digest": manifest["digest"],
                  "recipe_digest": manifest["recipe_digest"], "reused": str(reused).lower(),
                  "trained_in_run": manifest["run_id"]})
    run.log_dict(manifest, "finetune.json")


def _train_into(target: Target, loaded: Any, parent_path: str, parent_revision: str, tmp: Path,
                run: RunHandle, reg: Registry) -> dict[str, Any]:
    """Tokenize, train, merge and save into ``tmp`` with the manifest; returns the manifest."""
    from importlib import metadata

    import torch
    from transformers import AutoTokenizer

    from specbench.engines import PeakRSS
    from specbench.quantize.awq import weight_bytes

    spec, parent = target.spec, target.parent
    shutil.rmtree(tmp, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(parent_path, trust_remote_code=parent.trust_remote_code)
    chat = parent.instruct if spec.chat is None else spec.chat
    if chat and not getattr(tok, "chat_template", None):
        raise FinetuneError(f"recipe {spec.key}: {parent.key}'s tokenizer has no chat template; set `chat: false`")
    tset = training_set(reg, spec, loaded, tok, chat)
    run.log_dataset(loaded.hf_dataset, f"{spec.data.dataset}:{spec.data.split}", loaded.source, loaded.digest,
                    context="training")
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    with PeakRSS() as rss, progress(f"finetune {target.key}: training", spec.steps) as advance:
        def on_step(step: int, metrics: dict[str, float]) -> None:
            run.log_metrics(metrics, step=step)
            advance(1, f"finetune {target.key}: step {step + 1}/{spec.steps}, loss {metrics['loss']:.3f}")

        trained = train(parent_path, spec, tset, pad, trust_remote_code=parent.trust_remote_code, on_step=on_step)
        merged = tmp / MERGED_DIR
        n_params = merge_and_save(trained, merged, parent_path, parent.dtype.value)
        del trained.model
    losses = trained.losses
    manifest = {
        "kind": "finetune", "model": target.key, "parent": parent.key, "parent_revision": parent_revision,
        "recipe": to_plain(spec), "recipe_digest": spec.digest(), "finetuner_revision": FINETUNER_REVISION,
        "digest": checkpoint_digest(merged), "seed": spec.seed, "chat": chat,
        "data": {"dataset": spec.data.dataset, "split": spec.data.split, "source": loaded.source,
                 "source_digest": loaded.digest, "digest": tset.digest, "items": len(tset.examples)},
        "train_s": round(trained.train_s, 1), "tokens": trained.tokens,
        "tokens_per_s": trained.tokens / trained.train_s if trained.train_s else None,
        "loss_first": losses[0], "loss_last": losses[-1],
        "loss_last_10_mean": sum(losses[-10:]) / len(losses[-10:]), "losses": losses,
        "trainable_parameters": trained.trainable, "parameters": n_params,
        "examples_seen": trained.examples_seen, "training_items": len(tset.examples),
        "truncated_items": tset.truncated, "peak_rss_mb": rss.peak_mb, "size_mb": weight_bytes(merged) / 2**20,
        "peft": metadata.version("peft"), "torch": torch.__version__, "device": "cuda" if gpu_count() else "cpu",
        "run_id": run.run_id, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    (tmp / QUANTIZED_MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def write_entry(reg: Registry, target: Target, size_gb: float) -> Path:
    """conf/models/<key>.yaml for a new derived model: only what differs from the parent."""
    import yaml

    path = reg.root / "models" / f"{target.key}.yaml"
    body = {"key": target.key, "parent": target.parent.key, "recipe": target.spec.key,
            "display_name": f"{target.parent.display_name} + {target.spec.key}",
            "quantization": "none", "dtype": target.parent.dtype.value, "size_gb": round(size_gb, 2),
            "notes": f"Written by `specbench finetune --model {target.parent.key} --recipe {target.spec.key}`."}
    path.write_text("# Derived model: every fact not stated here is the parent's.\n"
                    + yaml.safe_dump(body, sort_keys=False))
    return path

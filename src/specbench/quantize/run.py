"""The quantize step: one tracked run that turns a registry model into its derived AWQ model.

Everything is written into a temporary folder next to the final one and renamed into place
only after the run has recorded it, manifest included, so a crash or a failed run never
leaves a checkpoint that looks complete.  An up-to-date checkpoint (same recipe digest, same
parent revision, current quantizer) is reused: the run then records it with ``reused=true``;
so is one another machine published on the tracking server (fetched, tagged ``fetched_from``).
A checkpoint made here is uploaded on its run when the store is shared
(:mod:`specbench.weights_shared`, ``SPECBENCH_PUBLISH``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specbench.progress import Advance, no_progress, progress
from specbench.quantize.awq import (
    calibration_blocks,
    copy_side_files,
    cpu_safe_quantizer,
    unpack_checkpoint,
    weight_bytes,
)
from specbench.quantize.target import QuantizeError, Target, cannot_quantize, check_shapes, pick_target
from specbench.registry import Registry
from specbench.registry.schema import Quantization
from specbench.registry.schema import to_plain as _plain
from specbench.weights import (
    FLOAT_DIR,
    PACKED_DIR,
    QUANTIZED_MANIFEST,
    QUANTIZER_REVISION,
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

METRICS = ("quantize_s", "unpack_s", "size_before_mb", "size_before_fp16_mb", "size_after_mb", "size_float_mb",
           "size_ratio", "size_ratio_fp16", "peak_rss_mb", "layers_quantized")


QuantizeResult = DerivedResult  # what quantize (and finetune) return: one shape for derived models


def quantize(reg: Registry, model_key: str, *, recipe: str | None = None, force: bool = False,
             experiment: str | None = None) -> QuantizeResult:
    """Quantize (or find already quantized) the derived model of ``model_key``, as one MLflow run.

    Raises QuantizeError, before any heavy work, when the model cannot be quantized here.
    """
    target = pick_target(reg, model_key, recipe)
    reason = cannot_quantize(target.parent)
    if reason:
        raise QuantizeError(reason)
    try:
        import awq  # noqa: F401 - fail early, in one line, before any download
        from awq.models.auto import AWQ_CAUSAL_LM_MODEL_MAP
    except ImportError as exc:
        raise QuantizeError(f"AutoAWQ is not importable ({exc}); install it with `pip install -e '.[awq]'`") \
            from None
    try:
        parent_w = resolve(target.parent)
    except ModelUnavailable as exc:
        raise QuantizeError(str(exc)) from None
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(parent_w.path, trust_remote_code=target.parent.trust_remote_code)
    if config.model_type not in AWQ_CAUSAL_LM_MODEL_MAP:
        raise QuantizeError(f"{target.parent.key}: AutoAWQ cannot quantize model type '{config.model_type}'")
    check_shapes(config, target.spec, target.parent.key)

    final = derived_dir(target.key)
    found = None if force else existing_checkpoint(target.key, "quantize", target.spec.digest(), parent_w.revision)
    if found:
        with _open_run(target, experiment) as run:
            _record(run, found[0], reused=True)
            notes = reuse_published(run, target.key, found)
        return QuantizeResult(target.key, target.parent.key, target.spec.key, final, found[0], run.run_id,
                              reused=True, notes=[*notes, "--force quantizes again"])

    tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
    try:
        with _open_run(target, experiment) as run:
            with progress(f"quantize {target.key}: loading", len(STEPS)) as step:
                manifest = _quantize_into(reg, target, parent_w.path, parent_w.revision, tmp, run, step)
            _record(run, manifest, reused=False)
            if publishing_enabled():  # before the install: a failed upload fails the run, as it should
                publish(run, tmp)
        install_derived(tmp, final)  # only a recorded quantization replaces the checkpoint
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = QuantizeResult(target.key, target.parent.key, target.spec.key, final, manifest, run.run_id)
    if target.derived is None:
        result.wrote_entry = write_entry(reg, target, manifest["size_after_mb"] / 1024)
    return result


def _open_run(target: Target, experiment: str | None) -> AbstractContextManager[RunHandle]:
    """The quantize run (the `mlflow run` project run when there is one), named ``quantize:<key>``."""
    from specbench import tracking  # MLflow loads only when a run is opened (compare imports this package)

    return tracking.open_run("quantize", name=f"quantize:{target.key}", experiment=experiment, tags={
        "model": target.key, "parent": target.parent.key, "recipe": target.spec.key,
        "quantization": target.spec.method})


def _record(run: RunHandle, manifest: dict[str, Any], reused: bool) -> None:
    """The quantization as the run's params, metrics, tags and artifact."""
    from specbench import tracking

    spec = manifest["recipe"]
    cal = manifest["calibration"]
    run.log_params({
        **tracking.flatten("awq", {k: v for k, v in spec.items() if k not in ("calibration", "notes", "key")}),
        "awq.recipe": spec["key"], "parent": manifest["parent"], "parent.revision": manifest["parent_revision"],
        "calibration.dataset": spec["calibration"]["dataset"], "calibration.split": spec["calibration"]["split"],
        "calibration.blocks": cal["blocks"], "calibration.block_tokens": spec["calibration"]["block_tokens"],
        "calibration.texts": cal["texts"], "calibration.source": cal["source"][-250:],
        "autoawq": manifest["autoawq"], "device": manifest["device"],
        "quantizer_revision": manifest.get("quantizer_revision", 1),
    })
    run.log_metrics({k: manifest.get(k) for k in METRICS})
    run.set_tags({"calibration_digest": cal["digest"], "checkpoint_digest": manifest["digest"],
                  "recipe_digest": manifest["recipe_digest"], "reused": str(reused).lower()})
    run.log_dict(manifest, "quantization.json")


# What _quantize_into reports as it goes (AutoAWQ's own per-layer bar goes to the log).
STEPS = ("calibration", "AWQ scale search", "save packed", "unpack", "manifest")


def _quantize_into(reg: Registry, target: Target, parent_path: str, parent_revision: str, tmp: Path,
                   run: RunHandle, step: Advance = no_progress) -> dict[str, Any]:
    """AutoAWQ quantize + save, unpack and the manifest, all into ``tmp``; returns the manifest.
    ``step`` is told when each of STEPS starts."""
    from importlib import metadata

    import torch
    from awq import AutoAWQForCausalLM
    from transformers import AutoTokenizer

    from specbench.engines import PeakRSS

    spec = target.spec
    on_gpu = gpu_count() > 0
    shutil.rmtree(tmp, ignore_errors=True)
    packed, unpacked = tmp / PACKED_DIR, tmp / FLOAT_DIR
    tok = AutoTokenizer.from_pretrained(parent_path, trust_remote_code=target.parent.trust_remote_code)
    step(0, f"quantize {target.key}: {STEPS[0]}")
    cal = calibration_blocks(reg, spec, tok)
    run.log_dataset(cal.hf_dataset, f"{spec.calibration.dataset}:{spec.calibration.split}", cal.source,
                    cal.source_digest, context="calibration")
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        # A CPU emulates float16 matmuls (over 10x slower here), so the scale search runs in
        # float32 there; AutoAWQ packs every Linear from float16 either way, and the rest of
        # the model is cast to float16 before saving, so both give the usual AWQ layout.
        model = AutoAWQForCausalLM.from_pretrained(
            parent_path, torch_dtype=torch.float16 if on_gpu else torch.float32,
            device_map="auto" if on_gpu else "cpu", trust_remote_code=target.parent.trust_remote_code,
            safetensors=True)
        step(1, f"quantize {target.key}: {STEPS[1]} (minutes on a CPU)")
        model.quantize(tok, quant_config={"zero_point": spec.zero_point, "q_group_size": spec.group_size,
                                          "w_bit": spec.bits, "version": spec.version.value},
                       calib_data=cal.blocks, max_calib_samples=len(cal.blocks),
                       max_calib_seq_len=spec.calibration.block_tokens, apply_clip=spec.clip_search,
                       duo_scaling=spec.duo_scaling, **({} if on_gpu else {"quantizer_cls": cpu_safe_quantizer()}))
        model.model.half()
        step(1, f"quantize {target.key}: {STEPS[2]}")
        model.save_quantized(str(packed))
        quantize_s = time.perf_counter() - t0
        del model
    copy_side_files(Path(parent_path), packed)
    t0 = time.perf_counter()
    step(1, f"quantize {target.key}: {STEPS[3]}")
    layers, n_params = unpack_checkpoint(packed, unpacked, group_size=spec.group_size, bits=spec.bits,
                                         version=spec.version.value)
    copy_side_files(Path(parent_path), unpacked)
    unpack_s = time.perf_counter() - t0
    step(1, f"quantize {target.key}: {STEPS[4]}")
    mb = 2**20
    before, after = weight_bytes(parent_path), weight_bytes(packed)
    manifest = {
        "model": target.key, "parent": target.parent.key, "parent_revision": parent_revision,
        "recipe": _plain(spec), "recipe_digest": spec.digest(), "quantizer_revision": QUANTIZER_REVISION,
        "digest": checkpoint_digest(packed),
        "calibration": {"digest": cal.digest, "source": cal.source, "source_digest": cal.source_digest,
                        "texts": cal.texts, "blocks": len(cal.blocks)},
        "quantize_s": round(quantize_s, 1), "unpack_s": round(unpack_s, 1), "peak_rss_mb": rss.peak_mb,
        "size_before_mb": before / mb, "size_before_fp16_mb": n_params * 2 / mb, "size_after_mb": after / mb,
        "size_float_mb": weight_bytes(unpacked) / mb, "size_ratio": after / before,
        "size_ratio_fp16": after / (n_params * 2), "layers_quantized": layers,
        "autoawq": metadata.version("autoawq"), "torch": torch.__version__,
        "device": "cuda" if on_gpu else "cpu", "run_id": run.run_id, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    (tmp / QUANTIZED_MANIFEST).write_text(json.dumps(manifest, indent=2))
    step(1)
    return manifest


def write_entry(reg: Registry, target: Target, size_gb: float) -> Path:
    """conf/models/<key>.yaml for a new derived model: only what differs from the parent."""
    import yaml

    path = reg.root / "models" / f"{target.key}.yaml"
    body = {"key": target.key, "parent": target.parent.key, "recipe": target.spec.key,
            "display_name": f"{target.parent.display_name} (AWQ {target.spec.bits}-bit, g{target.spec.group_size})",
            "quantization": Quantization.awq.value, "dtype": "float16", "size_gb": round(size_gb, 2),
            "notes": f"Written by `specbench quantize --model {target.parent.key}`."}
    path.write_text("# Derived model: every fact not stated here is the parent's.\n"
                    + yaml.safe_dump(body, sort_keys=False))
    return path

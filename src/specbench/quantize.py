"""AWQ quantization as a tracked step: a registry model in, a derived registry model out.

`specbench quantize --model M` runs AutoAWQ on M's weights with a recipe from
conf/quantization/ (bits, group size, zero point, GEMM/GEMV packing, clip search), calibrated
on a registry dataset's *train* split (the registry refuses a recipe that names an
evaluation split), and writes cache/models/<M_awq>/:

- ``awq/``   the packed checkpoint as AutoAWQ saves it: what vLLM's AWQ kernels read on a GPU;
- ``float/`` the same int4 weights unpacked, ``(q - zero) * scale`` per group in float16, into
  an ordinary checkpoint: what a CPU runs (no AWQ kernel in this stack), with the very
  weight values of the packed one, so accuracy is AWQ's while speed and memory are not;
- ``specbench.json`` the record (recipe and its digest, parent revision, calibration digest,
  sizes, timings), written last: its presence means the checkpoint is complete.

One MLflow run records the recipe, wall time, sizes before and after and the calibration
digest.  The derived model is a registry entry (conf/models/<M_awq>.yaml) that names its
parent and recipe and inherits the parent's other facts; quantizing a model that has none
yet writes one.  The comparison module pairs variants with parents through :func:`quantized_pairs` and
:func:`size_ratio` (``compare.quantization_table``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specbench.registry.schema import AWQVersion, ModelConfig, Quantization, QuantizationSpec
from specbench.registry.schema import to_plain as _plain
from specbench.registry import Registry, RegistryError, suggest
from specbench.weights import (
    FLOAT_DIR,
    PACKED_DIR,
    QUANTIZED_MANIFEST,
    QUANTIZER_REVISION,
    ModelUnavailable,
    checkpoint_outdated,
    derived_dir,
    derived_manifest,
    gpu_count,
    resolve,
    runnable_reason,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

DEFAULT_RECIPE = "awq_w4_g128"  # for a model that has no derived entry yet
# AutoAWQ on a CPU: ~250 s for SmolLM2-135M (2 cores); a 7B model would take most of a day.
CPU_MAX_PARAMETERS_B = 1.0
# Where the nibbles of one int32 go: GEMM interleaves columns (AutoAWQ's pack order), GEMV is sequential.
GEMM_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
GEMV_ORDER = tuple(range(8))
WEIGHT_SUFFIXES = (".safetensors", ".bin")


class QuantizeError(RuntimeError):
    """A quantize request that cannot be done here; the message is the one-line reason."""


# -- what to quantize -------------------------------------------------------------------------

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
        kids = [m for m in reg.models.values() if m.parent == model.key and m.recipe is not None]
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
    if gpus == 0 and parent.parameters_b > CPU_MAX_PARAMETERS_B:
        return (f"{parent.key}: quantizing {parent.parameters_b:g}B parameters with AutoAWQ on a CPU would take "
                f"hours (limit here {CPU_MAX_PARAMETERS_B:g}B); run it on a GPU machine")
    return None


# -- calibration --------------------------------------------------------------------------------

@dataclass
class Calibration:
    blocks: list[list[int]]  # token ids, ``block_tokens`` each, as AutoAWQ takes them
    digest: str  # sha256 of the token blocks: what shaped the scales
    source: str  # where the texts came from (hub split or the shipped slice)
    source_digest: str
    texts: int  # documents used
    hf_dataset: Any  # for the MLflow dataset input


def calibration_blocks(reg: Registry, spec: QuantizationSpec, tokenizer: Any) -> Calibration:
    """The recipe's calibration tokens: the dataset's train split through the data layer (the hub
    at the pinned revision, else the shipped slice), each item written as its few-shot example
    (template + target), concatenated with EOS between documents and cut into blocks."""
    from specbench import data, tracking

    cal = spec.calibration
    base = reg.dataset(cal.dataset)
    if cal.split == base.split:  # the registry refuses this too; never calibrate on evaluated items
        raise QuantizeError(f"recipe {spec.key}: '{cal.split}' is {base.key}'s evaluation split")
    prompt = base.prompt
    if prompt is None:
        raise QuantizeError(f"recipe {spec.key}: dataset {base.key} has no prompt section to write texts with")
    split_cfg = dataclasses.replace(
        base, split=cal.split, offline_slice=data.split_slice_name(base, cal.split),
        prompt=dataclasses.replace(prompt, fewshot=0, fewshot_split=None))
    try:
        loaded = data.load_items(split_cfg)
    except data.DataUnavailable as exc:
        raise QuantizeError(f"recipe {spec.key}: calibration data: {exc}") from None
    need = cal.blocks * cal.block_tokens
    ids: list[int] = []
    used = 0
    eos = tokenizer.eos_token_id
    for item in loaded.items:
        text = (data.render(prompt.template, item.doc) + prompt.target_delimiter
                + data.render(prompt.target, item.doc, "target"))
        ids += tokenizer(text, add_special_tokens=False)["input_ids"] + ([eos] if eos is not None else [])
        used += 1
        if len(ids) >= need:
            break
    n = min(cal.blocks, len(ids) // cal.block_tokens)
    if n == 0:
        raise QuantizeError(f"recipe {spec.key}: {loaded.source} holds fewer than {cal.block_tokens} tokens")
    blocks = [ids[i * cal.block_tokens:(i + 1) * cal.block_tokens] for i in range(n)]
    digest = tracking.config_hash(blocks)
    return Calibration(blocks, digest, loaded.source, loaded.digest, used, loaded.hf_dataset)


# -- unpacking int4 -> float ----------------------------------------------------------------------

def _nibbles(packed: torch.Tensor, order: Iterable[int], bits: int) -> torch.Tensor:
    """int32 (..., n) -> ints (..., n * 32/bits): value of slot j of each word lands at column order[j]."""
    import torch

    per = 32 // bits
    shifts = torch.arange(per, dtype=torch.int32, device=packed.device) * bits
    slots = (packed.to(torch.int32).unsqueeze(-1) >> shifts) & ((1 << bits) - 1)  # (..., n, per)
    out = torch.empty_like(slots)
    out[..., list(order)] = slots
    return out.flatten(-2)


def unpack_linear(qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor, *, group_size: int,
                  bits: int = 4, version: str = "GEMM") -> torch.Tensor:
    """One AWQ linear layer's weight as an ``nn.Linear`` weight (out_features, in_features).

    Each weight is ``(q - zero) * scale`` of its group, computed in the scales' dtype
    (float16) with one rounding, as AutoAWQ's own dequantization does; GEMV scales and
    zeros carry padding columns, which are dropped.
    """
    v = version.upper()
    if v == AWQVersion.GEMM.value:  # qweight (in, out/8), qzeros (in/g, out/8), scales (in/g, out)
        q = _nibbles(qweight, GEMM_ORDER, bits)
        z = _nibbles(qzeros, GEMM_ORDER, bits).repeat_interleave(group_size, dim=0)
        s = scales.repeat_interleave(group_size, dim=0)
        return ((q - z).to(s.dtype) * s).t().contiguous()
    if v == AWQVersion.GEMV.value:  # qweight (out, in/8), qzeros (out, padded g/8), scales (out, padded g)
        q = _nibbles(qweight, GEMV_ORDER, bits)
        groups = q.shape[1] // group_size
        z = _nibbles(qzeros, GEMV_ORDER, bits)[:, :groups].repeat_interleave(group_size, dim=1)
        s = scales[:, :groups].repeat_interleave(group_size, dim=1)
        return ((q - z).to(s.dtype) * s).contiguous()
    raise ValueError(f"unknown AWQ packing '{version}' (GEMM or GEMV)")


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def unpack_checkpoint(src: Path, dst: Path, *, group_size: int, bits: int = 4,
                      version: str = "GEMM") -> tuple[int, int]:
    """Write ``src`` (a packed AWQ checkpoint) to ``dst`` as an ordinary float16 checkpoint with
    the same weight values; every other tensor is copied as it is.  Returns (layers unpacked,
    parameters written)."""
    from safetensors.torch import save_file
    from transformers import AutoConfig

    tensors = _tensors(src)
    out: dict[str, torch.Tensor] = {}
    unpacked = 0
    for name, t in tensors.items():
        if name.endswith(".qweight"):
            prefix = name[: -len(".qweight")]
            out[f"{prefix}.weight"] = unpack_linear(t, tensors[f"{prefix}.qzeros"], tensors[f"{prefix}.scales"],
                                                    group_size=group_size, bits=bits, version=version)
            unpacked += 1
        elif not name.endswith((".qzeros", ".scales")):
            out[name] = t.contiguous()
    dst.mkdir(parents=True, exist_ok=True)
    save_file(out, str(dst / "model.safetensors"), metadata={"format": "pt"})
    config = AutoConfig.from_pretrained(str(src))
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = "float16"
    config.save_pretrained(str(dst))
    return unpacked, sum(t.numel() for t in out.values())


def weight_bytes(folder: str | Path) -> int:
    """Bytes of the weight files in a checkpoint folder (what 'size on disk' means here)."""
    return sum(f.stat().st_size for f in Path(folder).iterdir() if f.is_file() and f.name.endswith(WEIGHT_SUFFIXES))


def _copy_side_files(parent: Path, dst: Path) -> None:
    """Tokenizer, chat template and generation defaults are the parent's: only weights differ."""
    for f in parent.iterdir():
        if f.is_file() and not f.name.endswith(WEIGHT_SUFFIXES) and f.name not in (
                "config.json", "model.safetensors.index.json", QUANTIZED_MANIFEST):
            shutil.copy2(f, dst / f.name)


# -- the quantize step ----------------------------------------------------------------------------

def cpu_safe_quantizer() -> type:
    """AutoAWQ's quantizer with one CPU bug worked around.

    AutoAWQ 0.2.9's scale search snapshots each module as ``{k: v.cpu()}`` and restores it after
    every grid point.  On a GPU ``.cpu()`` copies; on a CPU it returns the very tensors that the
    search then scales in place, so the "restore" keeps every grid point's scaling and the
    weights drift by the product of 20 scale vectors (SmolLM2 answered "E E E ...").  Here the
    snapshot is a copy; the search itself is AutoAWQ's, unchanged.
    """
    from awq.quantize.quantizer import AwqQuantizer

    class CpuSafeAwqQuantizer(AwqQuantizer):
        def _compute_best_scale(self, x, w_mean, x_mean, module2inspect, linears2scale, fp16_output,
                                kwargs=None):  # noqa: ANN001 - AutoAWQ's signature
            live = module2inspect.state_dict

            def copied(*args: Any, **kw: Any) -> dict[str, Any]:
                return {k: v.detach().clone() for k, v in live(*args, **kw).items()}

            module2inspect.state_dict = copied  # what the search snapshots and restores from
            try:
                return super()._compute_best_scale(x, w_mean, x_mean, module2inspect, linears2scale, fp16_output,
                                                   kwargs if kwargs is not None else {})
            finally:
                del module2inspect.state_dict

    return CpuSafeAwqQuantizer


@dataclass
class QuantizeResult:
    key: str
    parent: str
    recipe: str
    path: Path
    manifest: dict[str, Any]
    run_id: str | None = None
    reused: bool = False  # an up-to-date checkpoint was already there
    wrote_entry: Path | None = None  # conf/models/<key>.yaml written by this call
    notes: list[str] = field(default_factory=list)


def _check_shapes(config: Any, spec: QuantizationSpec, key: str) -> None:
    widths = {"hidden_size": getattr(config, "hidden_size", None),
              "intermediate_size": getattr(config, "intermediate_size", None)}
    bad = {k: v for k, v in widths.items() if v and v % spec.group_size}
    if bad:
        raise QuantizeError(f"{key}: recipe {spec.key}'s group size {spec.group_size} does not divide "
                            + ", ".join(f"{k} {v}" for k, v in bad.items())
                            + "; use a recipe with a group size that does (e.g. awq_w4_g64)")


def _write_entry(reg: Registry, target: Target, size_gb: float) -> Path:
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


def _record(manifest: dict[str, Any], reused: bool) -> None:
    """The quantization as the active MLflow run's params, metrics, tags and artifact."""
    import mlflow

    from specbench import tracking

    spec = manifest["recipe"]
    cal = manifest["calibration"]
    mlflow.log_params({
        **tracking.flatten("awq", {k: v for k, v in spec.items() if k not in ("calibration", "notes", "key")}),
        "awq.recipe": spec["key"], "parent": manifest["parent"], "parent.revision": manifest["parent_revision"],
        "calibration.dataset": spec["calibration"]["dataset"], "calibration.split": spec["calibration"]["split"],
        "calibration.blocks": cal["blocks"], "calibration.block_tokens": spec["calibration"]["block_tokens"],
        "calibration.texts": cal["texts"], "calibration.source": cal["source"][-250:],
        "autoawq": manifest["autoawq"], "device": manifest["device"],
        "quantizer_revision": manifest.get("quantizer_revision", 1),
    })
    mlflow.log_metrics(tracking.clean_metrics({k: manifest.get(k) for k in (
        "quantize_s", "unpack_s", "size_before_mb", "size_before_fp16_mb", "size_after_mb", "size_float_mb",
        "size_ratio", "size_ratio_fp16", "peak_rss_mb", "layers_quantized")}))
    mlflow.set_tags({"calibration_digest": cal["digest"], "checkpoint_digest": manifest["digest"],
                     "recipe_digest": manifest["recipe_digest"], "reused": str(reused).lower()})
    mlflow.log_dict(manifest, "quantization.json")


def _start_run(target: Target, experiment: str | None) -> Any:
    import mlflow

    from specbench import tracking

    tracking.setup(experiment)
    name = f"quantize:{target.key}"
    run = mlflow.start_run(run_name=name, tags={
        tracking.KIND_TAG: "quantize", "model": target.key, "parent": target.parent.key, "recipe": target.spec.key,
        "quantization": target.spec.method, "git_commit": tracking.git_commit()})
    mlflow.set_tag("mlflow.runName", name)  # also when `mlflow run` made the run (MLFLOW_RUN_ID)
    return run


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
    _check_shapes(config, target.spec, target.parent.key)

    final = derived_dir(target.key)
    old = derived_manifest(target.key)
    if (old and not force and checkpoint_outdated(old, target.spec.digest()) is None
            and old.get("parent_revision") == parent_w.revision):
        with _start_run(target, experiment) as run:
            _record(old, reused=True)
        return QuantizeResult(target.key, target.parent.key, target.spec.key, final, old, run.info.run_id,
                              reused=True, notes=["an up-to-date checkpoint exists; --force quantizes again"])

    tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
    try:
        with _start_run(target, experiment) as run:
            manifest = _quantize_into(reg, target, parent_w.path, parent_w.revision, tmp, run.info.run_id)
            _record(manifest, reused=False)
        # Only a recorded quantization replaces the checkpoint (manifest included, in one rename).
        if final.exists():
            trash = final.with_name(f".{final.name}.old{os.getpid()}")
            final.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = QuantizeResult(target.key, target.parent.key, target.spec.key, final, manifest, run.info.run_id)
    if target.derived is None:
        result.wrote_entry = _write_entry(reg, target, manifest["size_after_mb"] / 1024)
    return result


def _quantize_into(reg: Registry, target: Target, parent_path: str, parent_revision: str, tmp: Path,
                   run_id: str) -> dict[str, Any]:
    """AutoAWQ quantize + save, unpack and the manifest, all into ``tmp``; returns the manifest."""
    from importlib import metadata

    import torch
    from awq import AutoAWQForCausalLM
    from transformers import AutoTokenizer

    from specbench import tracking
    from specbench.engines import PeakRSS

    spec = target.spec
    on_gpu = gpu_count() > 0
    shutil.rmtree(tmp, ignore_errors=True)
    packed, unpacked = tmp / PACKED_DIR, tmp / FLOAT_DIR
    tok = AutoTokenizer.from_pretrained(parent_path, trust_remote_code=target.parent.trust_remote_code)
    cal = calibration_blocks(reg, spec, tok)
    tracking.log_dataset_input(cal.hf_dataset, f"{spec.calibration.dataset}:{spec.calibration.split}", cal.source,
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
        model.quantize(tok, quant_config={"zero_point": spec.zero_point, "q_group_size": spec.group_size,
                                          "w_bit": spec.bits, "version": spec.version.value},
                       calib_data=cal.blocks, max_calib_samples=len(cal.blocks),
                       max_calib_seq_len=spec.calibration.block_tokens, apply_clip=spec.clip_search,
                       duo_scaling=spec.duo_scaling, **({} if on_gpu else {"quantizer_cls": cpu_safe_quantizer()}))
        model.model.half()
        model.save_quantized(str(packed))
        quantize_s = time.perf_counter() - t0
        del model
    _copy_side_files(Path(parent_path), packed)
    t0 = time.perf_counter()
    layers, n_params = unpack_checkpoint(packed, unpacked, group_size=spec.group_size, bits=spec.bits,
                                         version=spec.version.value)
    _copy_side_files(Path(parent_path), unpacked)
    unpack_s = time.perf_counter() - t0
    digest = hashlib.sha256()
    for f in sorted(packed.glob("*.safetensors")):
        with open(f, "rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 22), b""):
                digest.update(chunk)
    mb = 2**20
    before, after = weight_bytes(parent_path), weight_bytes(packed)
    manifest = {
        "model": target.key, "parent": target.parent.key, "parent_revision": parent_revision,
        "recipe": _plain(spec), "recipe_digest": spec.digest(), "quantizer_revision": QUANTIZER_REVISION,
        "digest": digest.hexdigest()[:16],
        "calibration": {"digest": cal.digest, "source": cal.source, "source_digest": cal.source_digest,
                        "texts": cal.texts, "blocks": len(cal.blocks)},
        "quantize_s": round(quantize_s, 1), "unpack_s": round(unpack_s, 1), "peak_rss_mb": rss.peak_mb,
        "size_before_mb": before / mb, "size_before_fp16_mb": n_params * 2 / mb, "size_after_mb": after / mb,
        "size_float_mb": weight_bytes(unpacked) / mb, "size_ratio": after / before,
        "size_ratio_fp16": after / (n_params * 2), "layers_quantized": layers,
        "autoawq": metadata.version("autoawq"), "torch": torch.__version__,
        "device": "cuda" if on_gpu else "cpu", "run_id": run_id, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    (tmp / QUANTIZED_MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


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

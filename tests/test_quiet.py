"""A quiet screen: library INFO lines and deprecation warnings go to a log file named on
screen, unless --verbose; vLLM's engine-core child logs into the same file.  Real commands in
real subprocesses (`score --log` writes an MLflow run without starting an engine)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from tests.conftest import ROOT

from specbench.cli import main
from specbench.cli.quiet import LOG_DIR_ENV, quiet_screen

NOISE = re.compile(r"\bINFO\b|DeprecationWarning")
PLUGIN = 'import warnings\nwarnings.warn("old_style_plugin: this API is deprecated", DeprecationWarning)\n'


def _score(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """`specbench score --log` with a plugin that warns as old libraries do, warnings shown."""
    (tmp_path / "plugins").mkdir(exist_ok=True)
    (tmp_path / "plugins" / "old_style_plugin.py").write_text(PLUGIN)
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"id": f"test/{i}", "output": "The answer is 18"}) + "\n" for i in range(2)))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "HF_HUB_OFFLINE": "1",
           LOG_DIR_ENV: str(tmp_path / "logs"), "PYTHONPATH": str(tmp_path / "plugins"),
           "SPECBENCH_PLUGINS": "old_style_plugin", "PYTHONWARNINGS": "default::DeprecationWarning"}
    env.pop("SPECBENCH_VERBOSE", None)
    return subprocess.run([sys.executable, "-m", "specbench.cli", *flags, "score", "--dataset", "gsm8k",
                           "--predictions", str(preds), "--log"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_library_chatter_goes_to_the_named_log(tmp_path):
    r = _score(tmp_path)
    assert r.returncode == 0, r.stderr
    assert "exact_match_flexible" in r.stdout  # specbench's own output stays on screen
    noisy = [line for line in (r.stdout + r.stderr).splitlines() if NOISE.search(line)]
    assert not noisy, noisy
    (log,) = (tmp_path / "logs").glob("specbench-*-score-*.log")
    assert str(log) in r.stderr  # named on screen
    text = log.read_text()
    assert "INFO mlflow" in text  # MLflow's store and experiment lines
    assert "DeprecationWarning" in text and "old_style_plugin" in text


def test_verbose_shows_everything_and_writes_no_log(tmp_path):
    r = _score(tmp_path, "--verbose")
    assert r.returncode == 0, r.stderr
    assert "DeprecationWarning" in r.stderr and re.search(r"\bINFO\b.*mlflow", r.stderr)
    assert not list((tmp_path / "logs").glob("*.log"))


def test_in_process_callers_get_their_streams_back(tmp_path, monkeypatch, capsys):
    """main() in a test or a notebook: sys.stderr, the handlers and the environment as before,
    usage errors on the caller's stderr; a command that logged nothing leaves no file."""
    monkeypatch.setenv(LOG_DIR_ENV, str(tmp_path / "logs"))
    monkeypatch.delenv("SPECBENCH_VERBOSE", raising=False)
    stderr, env = sys.stderr, dict(os.environ)
    assert main(["list", "models", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)
    assert sys.stderr is stderr and dict(os.environ) == env
    try:
        main(["evaluate", "--model", "smollm2_135m", "--dataset", "gsm8k", "--slice-policy", "maybe"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "invalid choice: 'maybe'" in capsys.readouterr().err
    assert not list((tmp_path / "logs").glob("*.log"))


def test_a_stream_kept_past_the_command_writes_to_the_screen(tmp_path, monkeypatch, capsys):
    """A library that saved the stand-in stderr (a handler made meanwhile, a thread's redirect_stderr
    restoring it later) writes to the screen once the command is over, never to a closed file: a
    closed sys.stderr takes the whole process (a test session) down with 'lost sys.stderr'."""
    monkeypatch.setenv(LOG_DIR_ENV, "logs")
    monkeypatch.chdir(tmp_path)
    with quiet_screen("kept", Console(stderr=True), verbose=False) as path:
        kept = sys.stderr
        print("inside", file=sys.stderr)
        monkeypatch.chdir(tmp_path.parent)  # a command that changes directory: the log is still found
    assert kept is not sys.stderr and path.is_absolute() and "inside" in path.read_text()
    print("after the command", file=kept)
    kept.flush()
    assert "after the command" in capsys.readouterr().err
    assert "after the command" not in path.read_text()


def test_vllm_children_log_into_the_same_file(tmp_path, monkeypatch):
    """vLLM's engine core is a child process that configures its logging from the environment
    quiet_screen sets (VLLM_LOGGING_CONFIG_PATH; PYTHONWARNINGS for its warnings)."""
    monkeypatch.setenv(LOG_DIR_ENV, str(tmp_path))
    monkeypatch.delenv("PYTHONWARNINGS", raising=False)
    code = ("from vllm.config.logging import LoggingConfig; from vllm.logger import configure_logging, init_logger; "
            "configure_logging(LoggingConfig()); init_logger('vllm.engine_core_like').info('hello from a child'); "
            "import warnings; warnings.warn('an old vllm api', DeprecationWarning)")
    with quiet_screen("child", Console(stderr=True), verbose=False) as path:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert not [line for line in (r.stdout + r.stderr).splitlines() if NOISE.search(line)]
    assert path is not None and "INFO vllm.engine_core_like: hello from a child" in path.read_text()
    assert "VLLM_LOGGING_CONFIG_PATH" not in os.environ  # restored

"""A failure or a SIGKILL during generation loses at most the requests in flight: the generation cache is
written as each vLLM request finishes, so a resumed category asks only for the rest.

Real parts only: `specbench run category` as a subprocess (vLLM on this CPU, SmolLM2-135M), killed
with its whole process group once the cache holds an answer, then run again.  The resumed run asks
vLLM only for the missing answers; that they equal an uninterrupted run's is vLLM's part (our
streaming keeps ``LLM.generate``'s scheduling, see ``VLLMEngine._run``), not re-checked here: a
third vLLM start would cost ~40 s of the suite.  (The endpoint's faults -- HTTP 500s, retries, timeouts,
concurrency -- are tested in test_endpoint.py, against vLLM's own server behind a fault proxy.)
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from tests.conftest import ROOT

from specbench.engines.base import Engine, Generation, GenParams, RequestsFailed
from specbench.engines.cache import CachingEngine, GenerationCache
from specbench.weights import resolve

SAMPLES = 6
ARGS = ["run", "category", "killme", "--engine", "vllm", "--samples", str(SAMPLES)]


@pytest.fixture
def killme(conf_copy: Path, tmp_path: Path) -> dict[str, str]:
    """A category of SmolLM2 on gsm8k, two sequences at a time (so answers finish in waves) and
    short answers (so the CPU is quick); the weights linked into a private cache."""
    from specbench.registry import load_registry

    gsm8k = conf_copy / "datasets" / "gsm8k.yaml"
    gsm8k.write_text(gsm8k.read_text().replace("max_new_tokens: 256", "max_new_tokens: 24"))
    model = conf_copy / "models" / "smollm2_135m.yaml"
    model.write_text(model.read_text().replace("evaluation_batch_size: 32", "evaluation_batch_size: 2"))
    (conf_copy / "categories" / "killme.yaml").write_text(yaml.safe_dump({
        "key": "killme", "display_name": "Kill me", "description": "test category", "models": ["smollm2_135m"],
        "baselines": [], "datasets": {"primary": ["gsm8k"], "secondary": []}}))
    weights = Path(resolve(load_registry(conf_copy).model("smollm2_135m")).path)
    (tmp_path / "cache" / "models").mkdir(parents=True)
    (tmp_path / "cache" / "models" / weights.name).symlink_to(weights)
    return {"SPECBENCH_CONF": str(conf_copy), "SPECBENCH_CACHE": str(tmp_path / "cache"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}


def cached_answers(cache: Path) -> list[str]:
    """The answers in the generation cache (read while the writer runs: WAL lets a reader in)."""
    return cached_answers_in(cache / "generations.sqlite")


def cached_answers_in(path: Path) -> list[str]:
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return [json.loads(v)[0] for (v,) in db.execute("SELECT value FROM entries")]
    except sqlite3.OperationalError:  # the table not created yet
        return []
    finally:
        db.close()


def the_cell(env: dict[str, str], experiment: str):
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name(experiment)
    (run,) = [r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    return client, run


def outputs(client: MlflowClient, run, tmp: Path) -> list:
    table = json.loads(Path(client.download_artifacts(run.info.run_id, "samples.json", str(tmp))).read_text())
    col = table["columns"].index("output")
    return [row[col] for row in table["data"]]


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "specbench.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **env}, timeout=600)


# ---- fast: no model ----------------------------------------------------------------------------------

class Halting(Engine):
    """An engine that answers some prompts, handing each to the sink as it goes, then fails on the
    rest as an endpoint does after its retries (or, with ``die``, kills its own process)."""

    def __init__(self, fail: set[int], die: bool = False) -> None:
        super().__init__()
        self.fail, self.die, self.asked = fail, die, []

    def generate(self, prompts, params, images=None):
        self.asked.append(list(prompts))
        for i, p in enumerate(prompts):
            if i not in self.fail:
                self.deliver({i: [f"answer to {p}"]})
        if self.die:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.fail:
            raise RequestsFailed(f"{len(self.fail)} of {len(prompts)} requests failed",
                                 {i: "HTTP 500" for i in self.fail})
        return Generation([[f"answer to {p}"] for p in prompts], 0, 0, 0.0)

    def loglikelihood(self, requests):
        raise NotImplementedError


def test_answers_delivered_before_a_failure_are_cached_and_a_rerun_asks_only_the_rest(tmp_path):
    cache = GenerationCache(tmp_path / "gen.sqlite")
    prompts = [f"q{i}" for i in range(5)]
    engine = CachingEngine(lambda: Halting({1, 3}), cache, {"test": "faults"}, "halting")
    with pytest.raises(RequestsFailed) as failure:
        engine.generate(prompts, GenParams())
    said = str(failure.value)
    assert "the 3 answers are in the generation cache, so a re-run asks only for the 2 that failed" in said
    assert failure.value.failed == {1: "HTTP 500", 3: "HTTP 500"}  # the caller's positions
    inner = Halting(set())
    again = CachingEngine(lambda: inner, cache, {"test": "faults"}, "halting")
    gen = again.generate(prompts, GenParams())
    assert inner.asked == [["q1", "q3"]] and gen.cached == 3
    assert gen.texts == [[f"answer to {p}"] for p in prompts]


def test_a_killed_process_keeps_every_answer_it_delivered(tmp_path):
    """The process SIGKILLs itself inside generate, after delivering: sqlite (WAL) has each commit."""
    script = (f"from tests.test_faults_engine import Halting\n"
              f"from specbench.engines.base import GenParams\n"
              f"from specbench.engines.cache import CachingEngine, GenerationCache\n"
              f"c = CachingEngine(lambda: Halting({{2}}, die=True), GenerationCache({str(tmp_path / 'g.sqlite')!r}),"
              f" {{'test': 'kill'}}, 'halting')\n"
              f"c.generate(['a', 'b', 'c'], GenParams())\n")
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert sorted(cached_answers_in(tmp_path / "g.sqlite")) == ["answer to a", "answer to b"]


def test_endpoint_timeouts_must_be_positive_and_finite():
    from specbench.pipeline.endpoint import EndpointOptions, check

    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="--timeout .*valid: seconds per attempt"):
            check(EndpointOptions(timeout_s=bad), "openai")
    with pytest.raises(ValueError, match="--retries -1: valid: a whole number >= 0"):
        check(EndpointOptions(max_retries=-1), "openai")
    check(EndpointOptions(timeout_s=0.5, max_retries=0, concurrency=1), "openai")


# ---- slow: vLLM, killed mid-generation ----------------------------------------------------------------

@pytest.mark.slow
def test_sigkill_mid_generation_loses_only_the_requests_in_flight(killme, tmp_path):
    cache = Path(killme["SPECBENCH_CACHE"])
    proc = subprocess.Popen([sys.executable, "-m", "specbench.cli", *ARGS, "--experiment", "killed"], cwd=ROOT,
                            env={**os.environ, **killme}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not cached_answers(cache):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and vLLM's engine core: nothing gets to clean up
    proc.wait()
    kept = cached_answers(cache)
    assert 0 < len(kept) < SAMPLES, f"{len(kept)} answers cached when killed: the first must come before the last"

    resumed = cli(*ARGS, "--experiment", "killed", env=killme)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    client, run = the_cell(killme, "killed")
    assert run.info.status == "FINISHED" and run.data.metrics["n_samples"] == SAMPLES
    assert run.data.metrics["cache_hits"] == len(kept) and run.data.metrics["cached_prompts"] == len(kept)
    assert len(cached_answers(cache)) == SAMPLES  # the rest generated once, and kept
    answers = outputs(client, run, tmp_path)
    for text in kept:  # what was answered before the kill is what the cell reports, reused verbatim
        assert text in answers
        answers.remove(text)

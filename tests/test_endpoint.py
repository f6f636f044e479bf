"""OpenAI-compatible endpoints: options, served names, usage and cost, the generative fallback.

The slow tests start vLLM's own OpenAI-compatible server on this CPU (one per module, with an
API key, serving SmolLM2-135M under a served name that is neither its registry key nor its
hf_id) and run `specbench evaluate --engine openai --base-url ... --api-key-env ...` against it
as a user would.  The fast tests need no server.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import ROOT
from tests.endpoint_faults import FaultProxy

from specbench import pipeline
from specbench.pipeline.endpoint import EndpointOptions, configure
from specbench.pipeline.fallback import fallback_prompts, generative_fallback
from specbench.registry.loader import load_registry
from specbench.registry.schema import Prices
from specbench.scoring.choice_generated import named_choice

SERVED = "smollm2-served"  # the served name the test conf gives smollm2_135m
KEY_ENV, KEY = "SPECBENCH_TEST_ENDPOINT_KEY", "sk-specbench-test"
PRICES = {"input": 1.5, "output": 4.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def error_lines(stderr: str) -> list[str]:
    """The error lines of a command's stderr (other notices, e.g. where library logs went, aside)."""
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "specbench.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **env}, timeout=600)


# ---- fast: no server -----------------------------------------------------------------------------

def test_served_name_is_the_api_name_not_the_key(registry):
    claude = registry.model("claude_sonnet")
    plan = pipeline.plan_cell(registry, "claude_sonnet", "gsm8k", engine="openai", samples=2)
    assert plan.engine_params["model"] == "claude-sonnet-4-5"  # was "claude_sonnet"
    assert dataclasses.replace(claude, served_name=None).api_name == "claude_sonnet"  # no hf_id: the key
    smol = pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", engine="openai", samples=2)
    assert smol.engine_params["model"] == registry.model("smollm2_135m").hf_id
    assert set(smol.engine_params) >= {"base_url", "api_key_env", "concurrency", "timeout_s", "max_retries"}


def test_endpoint_options_become_logged_engine_arguments(registry):
    plan = pipeline.plan_cell(registry, "claude_sonnet", "gsm8k", engine="openai", samples=2)
    opts = EndpointOptions(base_url="http://h:1/v1", api_key_env="ANTHROPIC_API_KEY", concurrency=3, timeout_s=9.0,
                           max_retries=0)
    p = configure(plan, opts).engine_params
    assert (p["base_url"], p["api_key_env"], p["concurrency"], p["timeout_s"], p["max_retries"]) == (
        "http://h:1/v1", "ANTHROPIC_API_KEY", 3, 9.0, 0)
    assert configure(plan, opts).config_hash() != plan.config_hash()  # another endpoint, another cell


def test_cost_from_declared_prices(registry):
    assert registry.model("claude_sonnet").price_per_mtok == Prices(3.0, 15.0)
    assert Prices(**PRICES).cost_usd(2_000_000, 500_000) == pytest.approx(5.0)


def test_multiple_choice_fallback_is_declared_and_recorded(registry):
    arc = pipeline.plan_cell(registry, "claude_sonnet", "arc_challenge", engine="openai", samples=2)
    assert arc.loglik  # planned as lm-eval answers it ...
    plan = configure(arc, EndpointOptions())  # ... and claude_sonnet declares multiple_choice: generate
    assert not plan.loglik and plan.task.mc_fallback
    assert plan.dataset.scorers == ["mc_generated"] and plan.dataset.main_metric == "acc"
    assert plan.dataset.lm_eval_task is None and plan.config()["dataset"]["scorers"] == ["mc_generated"]
    smol = pipeline.plan_cell(registry, "smollm2_135m", "arc_challenge", engine="openai", samples=2)
    assert configure(smol, EndpointOptions()).loglik  # a model that declares nothing keeps log-likelihoods
    assert not configure(smol, EndpointOptions(multiple_choice="generate")).loglik
    wino = pipeline.plan_cell(registry, "claude_sonnet", "winogrande", engine="openai", samples=2)
    with pytest.raises(pipeline.CellUnavailable, match="partial contexts"):
        configure(wino, EndpointOptions())


def test_fallback_prompt_lists_choices_once_and_asks_for_the_letter(registry):
    task = generative_fallback(pipeline.task_for(registry.dataset("arc_challenge"), instruct=True))
    prepared = pipeline.prepare(task, 2, offline=True)
    text = prepared.prompts[0][-1]["content"]
    item = prepared.items[0]
    assert all(f"{'ABCD'[i]}. {c}" in text for i, c in enumerate(item.choices))
    assert text.endswith("Answer with the option's letter from the given choices directly.")
    mmlu = pipeline.task_for(registry.dataset("mmlu"), instruct=False)
    m = pipeline.prepare(generative_fallback(mmlu), 1, offline=True)
    assert m.prompts[0].count("\nA. ") == 1  # zero-shot, and mmlu's template lists the choices already
    assert fallback_prompts(["Q?\nAnswer:"], [dataclasses.replace(item, choices=["x", "y"])]) == [
        "Q?\nA. x\nB. y\nAnswer with the option's letter from the given choices directly.\nAnswer:"]


@pytest.mark.parametrize(("output", "named"), [
    ("B", 1), ("b", 1), ("(C)", 2), ("B. blue", 1), ("C) red", 2), ("The answer is A.", 0), ("Answer: C", 2),
    ("red fox, surely", 0), ("Red.", 2), ("blue!", 1), ("D", None), ("I am not sure", None), ("", None)])
def test_generated_answer_names_a_choice(output, named):
    assert named_choice(output, ["red fox", "blue", "red"]) == named


def test_endpoint_options_refused_for_a_local_engine():
    r = cli("evaluate", "--model", "smollm2_135m", "--dataset", "gsm8k", "--engine", "vllm", "--base-url",
            "http://127.0.0.1:1/v1", env={})
    errors = error_lines(r.stderr)
    assert r.returncode == 2 and len(errors) == 1, r.stderr
    assert "--base-url" in errors[0] and "--engine openai" in errors[0]


def test_unreachable_base_url_fails_the_cell_in_one_line(tmp_path):
    port = free_port()  # nothing listens there
    r = cli("evaluate", "--model", "smollm2_135m", "--dataset", "gsm8k", "--samples", "2", "--engine", "openai",
            "--base-url", f"http://127.0.0.1:{port}/v1", "--retries", "0", "--timeout", "5",
            env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    assert r.returncode == 1, r.stdout + r.stderr
    errors = error_lines(r.stderr)
    assert len(errors) == 1, r.stderr
    assert errors[0].startswith("error: EndpointError: cannot reach the endpoint http://127.0.0.1:")
    assert "is the server up" in errors[0]


# ---- slow: vLLM's own server ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def endpoint_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """conf/ with smollm2_135m served under SERVED and priced (what a user's own entry would say)."""
    import shutil

    conf = tmp_path_factory.mktemp("endpoint") / "conf"
    shutil.copytree(ROOT / "conf", conf)
    entry = conf / "models" / "smollm2_135m.yaml"
    entry.write_text(entry.read_text() + f"\nserved_name: {SERVED}\n"
                     f"price_per_mtok: {{input: {PRICES['input']}, output: {PRICES['output']}}}\n")
    return conf


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """vLLM's OpenAI-compatible server on this CPU (the vllm engine's CPU settings); its base URL."""
    pytest.importorskip("vllm")
    from specbench import weights
    from specbench.engines.vllm_engine import DEFAULT_CPU_KV_CACHE_GB

    model = load_registry(ROOT / "conf").model("smollm2_135m")
    path = weights.resolve(model).path
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(path),
           "--served-model-name", SERVED, "--dtype", "float32", "--max-model-len", "2048", "--port", str(port),
           "--host", "127.0.0.1", "--api-key", KEY, "--enforce-eager", "--max-num-seqs", "8", "--seed", "0",
           "--kv-cache-memory-bytes", str(int(DEFAULT_CPU_KV_CACHE_GB * 2**30))]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM's server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                req = urllib.request.Request(f"{base}/models", headers={"Authorization": f"Bearer {KEY}"})
                with urllib.request.urlopen(req, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM's server did not answer in 600 s:\n{log.read_text()[-3000:]}")
            time.sleep(2)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and its engine-core child
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def served_env(server, endpoint_conf, tmp_path_factory) -> dict[str, str]:
    store = tmp_path_factory.mktemp("endpoint-mlflow") / "mlflow.db"
    return {"SPECBENCH_CONF": str(endpoint_conf), "MLFLOW_TRACKING_URI": f"sqlite:///{store}", KEY_ENV: KEY}


def evaluate(server: str, env: dict[str, str], dataset: str, *extra: str) -> subprocess.CompletedProcess:
    return cli("evaluate", "--model", "smollm2_135m", "--dataset", dataset, "--samples", "4", "--engine", "openai",
               "--base-url", server, "--api-key-env", KEY_ENV, "--experiment", "endpoint", *extra, env=env)


def the_run(env: dict[str, str], dataset: str):
    from mlflow.tracking import MlflowClient

    from specbench import tracking

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("endpoint")
    runs = client.search_runs([exp.experiment_id], f"tags.`{tracking.tag('dataset')}` = '{dataset}'",
                              order_by=["start_time DESC"])
    return client, runs[0]


@pytest.mark.slow
def test_cell_through_the_endpoint_logs_tokens_cost_and_the_served_name(server, served_env):
    r = evaluate(server, served_env, "gsm8k", "--concurrency", "2", "--timeout", "120", "--retries", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    _, run = the_run(served_env, "gsm8k")
    p, m = run.data.params, run.data.metrics
    assert run.info.status == "FINISHED"
    # the name the server serves (and would refuse any other): the registry entry's served_name
    assert p["openai.model"] == SERVED and p["openai.base_url"] == server and p["openai.api_key_env"] == KEY_ENV
    assert (p["openai.concurrency"], p["openai.timeout_s"], p["openai.max_retries"]) == ("2", "120.0", "1")
    assert KEY not in str(p)  # the key itself is never logged
    assert m["prompt_tokens"] > 0 and m["output_tokens"] > 0  # from the responses' usage
    expected = (m["prompt_tokens"] * PRICES["input"] + m["output_tokens"] * PRICES["output"]) / 1e6
    assert m["cost_usd"] == pytest.approx(expected)
    assert "exact_match_flexible" in m


@pytest.mark.slow
def test_multiple_choice_runs_through_the_generative_fallback(server, served_env, tmp_path):
    import json

    from specbench import tracking

    r = evaluate(server, served_env, "arc_challenge", "--multiple-choice", "generate")
    assert r.returncode == 0, r.stdout + r.stderr
    client, run = the_run(served_env, "arc_challenge")
    m = run.data.metrics
    assert 0 <= m["acc"] <= 1 and "acc_norm" not in m and m["output_tokens"] > 0
    assert run.data.tags[tracking.tag("main_metric")] == "acc"
    config = json.loads(Path(client.download_artifacts(run.info.run_id, "config.json", str(tmp_path))).read_text())
    assert config["dataset"]["scorers"] == ["mc_generated"] and config["dataset"]["prompt"]["fewshot"] == 0


@pytest.mark.slow
def test_a_name_the_server_does_not_serve_or_a_wrong_key_is_one_line(server, served_env):
    r = evaluate(server, served_env, "gsm8k", "--served-name", "smollm2_135m")  # what was sent before: the key
    errors = error_lines(r.stderr)
    assert r.returncode == 1 and len(errors) == 1, r.stderr
    assert f"serves {SERVED}, not 'smollm2_135m'" in errors[0]
    r = evaluate(server, {**served_env, KEY_ENV: "wrong"}, "gsm8k")
    errors = error_lines(r.stderr)
    assert r.returncode == 1 and len(errors) == 1 and "refused the API key" in errors[0], r.stderr


# ---- slow: faults, through a proxy in front of that server ---------------------------------------

@pytest.fixture(scope="module")
def proxy(server: str) -> Iterator[FaultProxy]:
    p = FaultProxy(server)
    yield p
    p.close()


def cached_endpoint(registry, proxy: FaultProxy, cache_path: Path, **opts: object):
    """Our client as a cell gets it: planned, the endpoint options configured (as the CLI's
    --concurrency/--timeout/--retries give them), started from the plan's engine arguments, behind
    a generation cache of its own."""
    from specbench.engines import make_engine
    from specbench.engines.cache import CachingEngine, GenerationCache

    plan = configure(pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", engine="openai", samples=2),
                     EndpointOptions(base_url=proxy.base, api_key_env=KEY_ENV, served_name=SERVED, **opts))
    return CachingEngine(lambda: make_engine("openai", plan.engine_params), GenerationCache(cache_path),
                         {"test": "faults"}, "openai")


PROMPTS = [f"Question {i}: what is {i} plus {i}? Answer:" for i in range(6)]


@pytest.mark.slow
def test_requests_failing_with_500_fail_the_cell_and_the_others_are_kept(registry, proxy, tmp_path, monkeypatch):
    from specbench.engines import GenParams
    from specbench.engines.base import RequestsFailed

    monkeypatch.setenv(KEY_ENV, KEY)
    prompts = [p + (" FAULT" if i in (1, 4) else "") for i, p in enumerate(PROMPTS)]
    params = GenParams(max_new_tokens=4)
    proxy.reset(fail_marker="FAULT", delay_s=0.3)
    engine = cached_endpoint(registry, proxy, tmp_path / "gen.sqlite", concurrency=2, max_retries=2, timeout_s=60.0)
    with pytest.raises(RequestsFailed) as failure:
        engine.generate(prompts, params)
    msg = str(failure.value)
    assert "2 of 6 requests" in msg and "HTTP 500" in msg and "retried up to 2 times" in msg, msg
    assert "the 4 answers are in the generation cache" in msg and "\n" not in msg
    assert set(failure.value.failed) == {1, 4}
    assert sorted(p for p in proxy.prompts if "FAULT" in p) == sorted([prompts[1]] * 3 + [prompts[4]] * 3)  # 2+1
    assert len(proxy.prompts) == 4 + 6 and proxy.peak == 2  # --concurrency 2: two in flight, never more
    engine.close()

    proxy.reset()  # the endpoint recovers: a re-run (a fresh process) asks only for what failed
    again = cached_endpoint(registry, proxy, tmp_path / "gen.sqlite", concurrency=2, max_retries=2, timeout_s=60.0)
    gen = again.generate(prompts, params)
    assert sorted(proxy.prompts) == sorted([prompts[1], prompts[4]])
    assert gen.cached == 4 and again.stats().cache_hits == 4 and [len(t) for t in gen.texts] == [1] * 6
    proxy.reset()
    third = again.generate(prompts, params)
    assert third.cached == 6 and proxy.prompts == [] and third.texts == gen.texts
    again.close()


@pytest.mark.slow
def test_a_timeout_shorter_than_a_slow_answer_fails_that_request_with_the_reason(registry, proxy, tmp_path,
                                                                                 monkeypatch):
    from specbench.engines import GenParams
    from specbench.engines.base import RequestsFailed

    monkeypatch.setenv(KEY_ENV, KEY)
    prompts = [PROMPTS[0], PROMPTS[1] + " SLOW", PROMPTS[2]]
    proxy.reset(slow_marker="SLOW", slow_s=4.0)
    engine = cached_endpoint(registry, proxy, tmp_path / "gen.sqlite", max_retries=0, timeout_s=1.5)
    t0 = time.monotonic()
    with pytest.raises(RequestsFailed) as failure:
        engine.generate(prompts, GenParams(max_new_tokens=4))
    assert time.monotonic() - t0 < 4.0  # given up at the timeout, not when the answer came
    msg = str(failure.value)
    assert "1 of 3 requests" in msg and "no answer within 1.5 s (--timeout)" in msg, msg
    assert failure.value.failed.keys() == {1} and proxy.prompts.count(prompts[1]) == 1  # --retries 0: one attempt
    assert "the 2 answers are in the generation cache" in msg
    engine.close()


@pytest.mark.slow
def test_a_prompt_the_endpoint_refuses_fails_only_its_own_item(registry, proxy, tmp_path, monkeypatch):
    from specbench.engines import GenParams

    monkeypatch.setenv(KEY_ENV, KEY)
    prompts = [PROMPTS[0], "many words " * 1500]  # over the server's 2048-token context: HTTP 400
    proxy.reset()
    engine = cached_endpoint(registry, proxy, tmp_path / "gen.sqlite", max_retries=2)
    gen = engine.generate(prompts, GenParams(max_new_tokens=4))
    assert list(gen.skipped) == [1] and gen.skipped[1].startswith("refused by the endpoint: HTTP 400"), gen.skipped
    assert gen.texts[1] == [""] and len(proxy.prompts) == 2  # a 400 is not retried
    proxy.reset()
    again = engine.generate(prompts, GenParams(max_new_tokens=4))
    assert again.cached == 1 and proxy.prompts == [prompts[1]]  # the refusal was not cached as an answer
    engine.close()

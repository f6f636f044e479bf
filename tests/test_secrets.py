"""Secrets and private paths stay out of runs.  Planted: a value conf/ interpolates from the environment
(``${oc.env:...}``), an endpoint URL with a password and a token, the value of its API key variable, a
storage URL with a password in an error, and this machine's folders (cache, checkout, home).  A real
cell run (gsm8k from its slice, answers canned: no engine needed to write a run) and a failed one are
then grepped whole: params, tags, dataset inputs, every artifact, the per-sample traces."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from tests.canned import CannedEngine
from tests.conftest import ROOT

from specbench import pipeline, tracking
from specbench.pipeline.endpoint import EndpointOptions, configure
from specbench.redact import redact, redact_url
from specbench.registry import load_registry

OC_ENV = "oc-env-planted-7f3a91"
KEY = "sk-planted-key-5be2c0"
URL_PASSWORD, URL_TOKEN, DB_PASSWORD = "urlpass-planted-11", "qtoken-planted-22", "dbpass-planted-33"
JUDGE_KEY = "judgekey-planted-44"  # in a credential-named variable, and quoted by an error
SECRETS = (OC_ENV, KEY, URL_PASSWORD, URL_TOKEN, DB_PASSWORD, JUDGE_KEY)


def _everything(uri: str, run_id: str, dst: Path) -> str:
    """One text holding all a run recorded: params, tags, dataset inputs, artifacts, traces."""
    from specbench.tracking.traces import wait_for_traces

    wait_for_traces(60)
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    parts = [json.dumps(run.data.params), json.dumps(run.data.tags)]
    parts += [d.dataset.source + d.dataset.name for d in run.inputs.dataset_inputs]
    local = Path(client.download_artifacts(run_id, "", str(dst)))
    files = [f for f in local.rglob("*") if f.is_file()]
    assert any(f.name == "config.json" for f in files)
    parts += [f.read_text(errors="replace") for f in files]
    traces = client.search_traces(locations=[run.info.experiment_id], run_id=run_id)
    parts += [json.dumps(_without_store_location(json.loads(t.to_json()))) for t in traces]
    return "\n".join(parts)


def _without_store_location(obj):
    """A trace less ``mlflow.artifactLocation``: the artifact store's own address (like a run's
    ``artifact_uri``), which MLflow sets for the store; a server's is ``mlflow-artifacts:/...``."""
    if isinstance(obj, dict):
        return {k: _without_store_location(v) for k, v in obj.items() if k != "mlflow.artifactLocation"}
    if isinstance(obj, list):
        return [_without_store_location(v) for v in obj]
    return obj


@pytest.fixture
def planted(conf_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    model = conf_copy / "models" / "smollm2_135m.yaml"
    data = yaml.safe_load(model.read_text())
    data["notes"] = "served from ${oc.env:SB_PLANTED_NOTE}"  # a name no credential rule would guess
    model.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("SB_PLANTED_NOTE", OC_ENV)
    monkeypatch.setenv("SB_ENDPOINT_CRED", KEY)
    monkeypatch.setenv("SB_JUDGE_API_KEY", JUDGE_KEY)
    monkeypatch.setenv("SPECBENCH_CACHE", str(tmp_path / "private-cache"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return load_registry(conf_copy)


def test_a_run_holds_no_planted_secret_and_no_private_path(planted, tmp_path):
    uri = os.environ["MLFLOW_TRACKING_URI"]
    opts = EndpointOptions(base_url=f"http://alice:{URL_PASSWORD}@127.0.0.1:9/v1?token={URL_TOKEN}",
                           api_key_env="SB_ENDPOINT_CRED", served_name="smol")
    plan = configure(pipeline.plan_cell(planted, "smollm2_135m", "gsm8k", engine="openai", samples=2), opts)
    assert OC_ENV in json.dumps(plan.config())  # planted where a run would record it

    def storage_down() -> None:
        raise ConnectionError(f"judge cache at postgresql://bob:{DB_PASSWORD}@db.internal/judges is down "
                              f"(key {JUDGE_KEY})")

    ok = pipeline.run_cell(plan, engine=CannedEngine("#### 18"), experiment="secrets")
    bad = pipeline.run_cell(plan, engine=CannedEngine("#### 18", storage_down), experiment="secrets")
    assert ok.status == tracking.FINISHED and bad.status == tracking.FAILED
    for result in (ok, bad):
        text = _everything(uri, result.run_id, tmp_path / result.run_id)
        leaked = [s for s in SECRETS if s in text]
        assert not leaked, f"run {result.run_id} records {leaked}"
        private = [p for p in (str(tmp_path), str(ROOT), os.path.expanduser("~") + "/") if p in text]
        assert not private, f"run {result.run_id} records this machine's folders {private}"
    client = MlflowClient(uri)
    run = client.get_run(ok.run_id)
    assert run.data.params["openai.base_url"] == "http://alice:***@127.0.0.1:9/v1?token=***"
    assert run.data.params["openai.api_key_env"] == "SB_ENDPOINT_CRED"  # the name is kept, the value never read
    assert "/" not in run.data.tags["mlflow.source.name"]
    failed = client.get_run(bad.run_id).data.tags["specbench.error"]
    assert "postgresql://bob:***@db.internal/judges" in failed


def test_printed_store_urls_hide_their_credentials(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"postgresql://mlflow:{DB_PASSWORD}@db:5432/mlflow?sslpassword=x1y2")
    assert DB_PASSWORD not in tracking.ui_command() and "mlflow:***@db:5432" in tracking.ui_command()
    assert "sslpassword=***" in tracking.ui_command()
    for url, want in [(f"https://u:{URL_PASSWORD}@h/x?token={URL_TOKEN}&a=1", "https://u:***@h/x?token=***&a=1"),
                      (f"http://h:5000/?api_key={KEY};b=2", "http://h:5000/?api_key=***;b=2"),
                      ("sqlite:///optuna.db", "sqlite:///optuna.db"), ("http://h:5000/path", "http://h:5000/path")]:
        assert redact_url(url) == want
    assert redact("see plain-value-4242") == "see plain-value-4242"  # not registered, not credential-named: kept

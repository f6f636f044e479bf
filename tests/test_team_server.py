"""The team server for real: scripts/team_server.sh starts PostgreSQL (Debian's binaries; as root, as an
unprivileged user) and `mlflow server` with an artifact proxy; a category runs, resumes and is compared
against it through MLFLOW_TRACKING_URI alone, from a fresh process each time, as another machine would."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from tests.conftest import CONF, ROOT
from tests.pg_fixtures import missing_reason

SCRIPT = ROOT / "scripts" / "team_server.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=240,
                          env={**os.environ, "SPECBENCH_MLFLOW": str(Path(sys.executable).with_name("mlflow")),
                               "SPECBENCH_MLFLOW_WORKERS": "1", **(env or {})})  # 2 cores: one is plenty


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "specbench.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **env}, timeout=600)


def test_bad_argument_is_one_line_exit_2():
    r = script("start", "--prot", "5000")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "unknown argument '--prot'" in r.stderr and "--port" in r.stderr


@pytest.fixture(scope="module")
def team() -> Iterator[dict[str, str]]:
    """The server, started once by the script, stopped (and checked stopped) at the end."""
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    # Not under pytest's 0700 temp folder: as root, PostgreSQL's own user must reach the directory.
    top = Path(tempfile.mkdtemp(prefix="specbench-team-"))
    top.chmod(0o755)
    port, pg_port = free_port(), free_port()
    d = top / "srv"
    try:
        r = script("start", "--dir", str(d), "--port", str(port), "--pg-port", str(pg_port))
        log = d / "mlflow.log"
        assert r.returncode == 0, r.stdout + r.stderr + (log.read_text()[-2000:] if log.exists() else "")
        yield {"dir": str(d), "out": r.stdout, "port": str(port), "pg_port": str(pg_port), "top": str(top)}
    finally:
        stop = script("stop", "--dir", str(d))
        try:
            assert stop.returncode == 0, stop.stderr
            assert not (d / "pgdata" / "postmaster.pid").exists()  # PostgreSQL is down
            assert script("status", "--dir", str(d)).returncode == 3
        finally:
            shutil.rmtree(top, ignore_errors=True)


@pytest.mark.slow
def test_start_prints_the_urls_without_the_password_and_runs_postgres_unprivileged(team):
    out, d = team["out"], Path(team["dir"])
    password = (d / "pgpass").read_text().strip().rsplit(":", 1)[1]
    assert oct((d / "pgpass").stat().st_mode)[-3:] == "600"
    assert password not in out and password not in (d / "mlflow.log").read_text()
    assert f"export MLFLOW_TRACKING_URI=http://127.0.0.1:{team['port']}" in out
    assert f"--storage postgresql://specbench@127.0.0.1:{team['pg_port']}/optuna" in out
    status = script("status", "--dir", str(d))
    assert status.returncode == 0 and "postgresql: running" in status.stdout and "mlflow: running" in status.stdout
    pid = (d / "pgdata" / "postmaster.pid").read_text().split()[0]
    owner = subprocess.run(["ps", "-o", "user=", "-p", pid], capture_output=True, text=True).stdout.strip()
    assert owner == ("postgres" if os.getuid() == 0 else os.environ.get("USER", owner))
    again = script("start", "--dir", str(d), "--port", team["port"], "--pg-port", team["pg_port"])
    assert again.returncode == 0 and again.stdout == out  # idempotent: the same server, the same lines


@pytest.mark.slow
def test_category_run_resume_and_compare_against_the_postgres_backed_server(team, tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    math = conf / "datasets" / "math.yaml"
    math.write_text(math.read_text().replace("max_new_tokens: 256", "max_new_tokens: 8"))
    (conf / "categories" / "team.yaml").write_text(yaml.safe_dump({
        "key": "team", "display_name": "Team", "description": "test category", "models": ["smollm2_135m"],
        "baselines": [], "datasets": {"primary": ["math"], "secondary": []}}))
    from specbench.registry import load_registry
    from specbench.weights import resolve

    good = Path(resolve(load_registry(conf).model("smollm2_135m")).path)
    (tmp_path / "cache" / "models").mkdir(parents=True)
    (tmp_path / "cache" / "models" / good.name).symlink_to(good)
    uri = f"http://127.0.0.1:{team['port']}"
    env = {"SPECBENCH_CONF": str(conf), "SPECBENCH_CACHE": str(tmp_path / "cache"), "MLFLOW_TRACKING_URI": uri}
    args = ("run", "category", "team", "--engine", "transformers", "--samples", "2")
    first = cli(*args, env=env)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    second = cli(*args, env=env)  # resumes: the finished cell is kept
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    comp = cli("compare", "--category", "team", env=env)
    assert comp.returncode == 0, comp.stdout[-2000:] + comp.stderr[-2000:]

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("specbench").experiment_id
    (parent,) = client.search_runs([exp], "tags.`specbench.kind` = 'category'")
    assert parent.data.metrics["cells_resumed"] == 1 and parent.data.metrics["cells_finished"] == 1
    (cell,) = [r for r in client.search_runs([exp]) if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert cell.info.status == "FINISHED" and cell.data.metrics["n_samples"] == 2
    (comp_run,) = client.search_runs([exp], "tags.`specbench.kind` = 'compare'")
    assert comp_run.info.artifact_uri.startswith("mlflow-artifacts:")  # through the server's proxy
    arts = {a.path for a in client.list_artifacts(comp_run.info.run_id)}
    assert {"team.matrix.csv", "summary.html"} <= arts
    got = Path(client.download_artifacts(comp_run.info.run_id, "team.matrix.csv", str(tmp_path / "dl")))
    assert "smollm2_135m" in got.read_text()
    # The artifacts are in the server's store, the runs in PostgreSQL (read there directly).
    stored = Path(team["dir"]) / "artifacts" / exp / comp_run.info.run_id / "artifacts" / "team.matrix.csv"
    assert stored.read_text() == got.read_text()
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=int(team["pg_port"]), user="specbench", dbname="mlflow",
                         passfile=str(Path(team["dir"]) / "pgpass")) as conn:
        ids = {row[0] for row in conn.execute("SELECT run_uuid FROM runs")}
    assert {parent.info.run_id, cell.info.run_id, comp_run.info.run_id} <= ids

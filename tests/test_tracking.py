"""tracking: a table logged twice on one run (a resumed cell or category, a sweep worker that
finishes twice) is replaced, not appended to, and is still the table MLflow writes and shows."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from specbench import tracking

ROWS = [{"id": "a", "score.acc": 1.0, "output": "x"}, {"id": "b", "score.acc": 0.0, "output": None}]


def _download(client: MlflowClient, run_id: str, path: str, dst: Path) -> dict:
    dst.mkdir(parents=True, exist_ok=True)
    return json.loads(Path(client.download_artifacts(run_id, path, str(dst))).read_text())


def test_a_resumed_run_logs_its_table_again_without_duplicated_rows(mlflow_store, tmp_path):
    with tracking.open_run("cell", name="first", experiment="test-tracking") as run:
        run.log_table(ROWS)
        run.log_table(ROWS[:1], "nested/cells.json")
    run_id = run.run_id
    with tracking.open_run("cell", resume=run_id, experiment="test-tracking") as again:
        assert again.resumed
        again.log_table(ROWS)  # the same rows once more: still two rows
        again.log_table(ROWS, "nested/cells.json")  # another table: replaced by the new rows
    reader = tracking.ArtifactReader()
    assert reader.table(run_id) == ROWS
    assert reader.table(run_id, "nested/cells.json") == ROWS
    client = MlflowClient(mlflow_store)
    logged = json.loads(client.get_run(run_id).data.tags["mlflow.loggedArtifacts"])
    assert logged == [{"path": "samples.json", "type": "table"}, {"path": "nested/cells.json", "type": "table"}]
    # MLflow's own reader of tables sees it as MLflow wrote it.
    frame = mlflow.load_table("samples.json", run_ids=[run_id])
    assert list(frame.columns) == ["id", "score.acc", "output"] and len(frame) == 2


def test_the_file_is_what_mlflow_log_table_writes(mlflow_store, tmp_path):
    with tracking.open_run("cell", name="ours", experiment="test-tracking") as ours:
        ours.log_table(ROWS)
    with tracking.open_run("cell", name="mlflow's", experiment="test-tracking") as theirs:
        mlflow.log_table({c: [r[c] for r in ROWS] for c in ROWS[0]}, artifact_file="samples.json")
    client = MlflowClient(mlflow_store)
    mine = _download(client, ours.run_id, "samples.json", tmp_path / "ours")
    reference = _download(client, theirs.run_id, "samples.json", tmp_path / "theirs")
    assert mine == reference == {"columns": ["id", "score.acc", "output"], "data": [["a", 1.0, "x"], ["b", 0.0, None]]}
    tags = [client.get_run(r).data.tags["mlflow.loggedArtifacts"] for r in (ours.run_id, theirs.run_id)]
    assert json.loads(tags[0]) == json.loads(tags[1])

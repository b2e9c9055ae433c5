"""MLflow runs on SQLite: explicit parents, params from configs, lineage read back."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient

from codedance_core.storage import ArtifactStore
from codedance_core.tracking import RunTracker, flatten, tracked_run
from codedance_core.tracking.runs import COMMIT_TAG, source_commit


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_flatten_nested_configs() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}}) == {"a.b": "1", "a.c.d": "[1, 2]", "e": "{}"}


def test_child_runs_name_their_parent_explicitly(tracking_uri: str, tmp_path: Path) -> None:
    parent = RunTracker.start(tracking_uri, "exp", "lifecycle", artifact_root=str(tmp_path / "art"))
    child_a = RunTracker.start(tracking_uri, "exp", "filter", parent_run_id=parent.run_id)
    child_b = RunTracker.start(tracking_uri, "exp", "sft", parent_run_id=parent.run_id)
    assert sorted(parent.children()) == sorted([child_a.run_id, child_b.run_id])
    assert child_a.children() == []


def test_runs_record_the_commit_of_the_code_that_made_them(tracking_uri: str) -> None:
    root = Path(__file__).resolve().parents[3]
    if (root / ".git").exists():
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        assert source_commit() in (head.stdout.strip(), head.stdout.strip() + "-dirty")
    else:
        assert source_commit() is None
    run = RunTracker.start(tracking_uri, "exp", "sft")
    assert MlflowClient(tracking_uri).get_run(run.run_id).data.tags.get(COMMIT_TAG) == source_commit()


def test_params_metrics_and_artifacts(tracking_uri: str, tmp_path: Path) -> None:
    with tracked_run(tracking_uri, "exp", "stage", artifact_root=str(tmp_path / "art")) as run:
        run.log_params({"rl": {"lr": 1e-6, "n": 8}})
        run.log_metrics({"reward": 0.5}, step=1)
        run.log_metrics({"reward": 0.7}, step=2)
        run.log_text("# report", "reports/summary.md")
    data = run.client.get_run(run.run_id)
    assert data.info.status == "FINISHED"
    assert data.data.params == {"rl.lr": "1e-06", "rl.n": "8"}
    history = run.client.get_metric_history(run.run_id, "reward")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.7)]
    assert [a.path for a in run.client.list_artifacts(run.run_id, "reports")] == ["reports/summary.md"]


def test_failed_block_marks_the_run_failed(tracking_uri: str) -> None:
    with pytest.raises(ZeroDivisionError), tracked_run(tracking_uri, "exp", "broken") as run:
        raise ZeroDivisionError("the stage crashed")
    assert run.client.get_run(run.run_id).info.status == "FAILED"


def test_datasets_record_lineage_by_uri_and_digest(tracking_uri: str, tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    ref = store.write_bytes("data/train.parquet", b"rows")
    run = RunTracker.start(tracking_uri, "exp", "sft")
    run.log_dataset("sft-train", ref, context="training")
    [logged] = run.datasets()
    assert logged["name"] == "sft-train"
    assert ref.uri in logged["source"]
    assert ref.digest.split(":")[1].startswith(logged["digest"])
    assert logged["context"] == "training"


def test_metric_names_mlflow_rejects_are_made_safe(tracking_uri: str) -> None:
    run = RunTracker.start(tracking_uri, "exp", "eval")
    run.log_metrics({"avg@8": 0.5, "accuracy": 0.4})
    assert run.client.get_run(run.run_id).data.metrics == {"avg_8": 0.5, "accuracy": 0.4}

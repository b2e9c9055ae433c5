"""The stage context: where artifacts go and where a stage logs, as absolute places a worker can reach."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from codedance_core.stages import StageContext, Tracking
from codedance_core.stages.context import RunAddress, absolute_tracking_uri, log_outputs
from codedance_core.stages.launch import LaunchPlan
from codedance_core.storage import ArtifactRef


def test_local_places_become_absolute_and_remote_ones_stay(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert StageContext("store").store_root == str(tmp_path / "store")
    assert StageContext("s3://bucket/store/").store_root == "s3://bucket/store"
    assert absolute_tracking_uri("sqlite:///mlflow.db") == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert absolute_tracking_uri("http://mlflow:5000") == "http://mlflow:5000"
    assert Tracking.of("sqlite:///x.db", "e", "art").artifact_root == str(tmp_path / "art")


def test_a_stage_run_is_a_child_named_and_tagged_by_its_labels(tmp_path: Path) -> None:
    tracking = Tracking.of(f"sqlite:///{tmp_path / 'mlflow.db'}", "ctx", str(tmp_path / "art"))
    ctx = StageContext(str(tmp_path / "store"), tracking).with_labels(seed="1", arm="rl_bat")
    data = ArtifactRef(uri=str(tmp_path / "d.parquet"), digest="sha256:" + "a" * 64, size=1, rows=2)
    with ctx.stage_run("sft", params={"epochs": 2}, inputs={"sft-data": data}) as run:
        log_outputs(run, {"sft-model": data, "absent": None})
        address = RunAddress.of(ctx, run)
    record = MlflowClient(tracking.tracking_uri).get_run(run.run_id)
    assert record.info.run_name == "sft [seed=1 arm=rl_bat]"
    assert record.data.tags["codedance.arm"] == "rl_bat" and record.data.params["epochs"] == "2"
    assert {d["context"] for d in run.datasets()} == {"input", "output"}
    assert address is not None and address.tracker().run_id == run.run_id


def test_without_tracking_nothing_is_logged_and_launching_needs_a_stage_call(tmp_path: Path) -> None:
    ctx = StageContext(str(tmp_path / "store"))
    with ctx.stage_run("sft") as run:
        assert run is None and RunAddress.of(ctx, run) is None
    with pytest.raises(RuntimeError, match="outside a stage call"):
        ctx.launch(LaunchPlan.for_task("x", "codedance_core.stages.launch:run_entry"), None)

"""The lifecycle on the tiny profile with released-layout RL and SFT files among its sources."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from codedance_core.config import load_profile
from codedance_core.tracking import RunTracker
from flows.common import LifecycleParameters
from flows.lifecycle import lifecycle
from tests.codedance_core.data.released import write_released_rl, write_released_sft


def task_states(flow_run_id) -> dict[str, str]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name: run.state.name for run in runs}


@pytest.mark.slow
def test_the_lifecycle_trains_on_the_suite_and_released_files_then_reruns_from_cache(
    prefect_server, tiny_overrides, tmp_path: Path
) -> None:
    rl = write_released_rl(
        tmp_path / "CodeDance-RL" / "train-00000.parquet", 4, spelling="messages", images="bytes"
    )
    sft = write_released_sft(tmp_path / "CodeDance-SFT" / "train-00000.parquet", 3).parent
    overrides = [
        *tiny_overrides,
        f"filter.sources=[suite://train, {rl}]",
        f"synthesis.sources=[stage://synthesize, {sft}]",
    ]
    params = LifecycleParameters(profile="tiny", overrides=overrides)

    first = lifecycle(params, return_state=True)
    assert first.is_completed(), first.message
    outputs = first.result()
    assert outputs["train"].rows == 20 + 4
    sft_sources = (
        pq.read_table(outputs["sft_rows"].uri, columns=["data_source"]).column("data_source").to_pylist()
    )
    assert sft_sources.count("CodeDance-SFT") == 3 and len(sft_sources) > 3

    from mlflow import MlflowClient

    profile = load_profile("tiny", overrides)
    client = MlflowClient(profile.tracking.tracking_uri)
    experiment = client.get_experiment_by_name(profile.tracking.experiment).experiment_id
    [parent] = client.search_runs([experiment], filter_string="tags.`codedance.flow` = 'lifecycle'")
    runs = {
        client.get_run(r).info.run_name: client.get_run(r)
        for r in RunTracker(profile.tracking.tracking_uri, parent.info.run_id).children()
    }
    assert {"suite-train", "sources-rl", "sources-sft", "synthesize", "sft", "rl-round-1"} <= set(runs)
    assert runs["sources-rl"].data.metrics == {"rows/suite-train": 20.0, "rows/train-00000": 4.0}
    assert runs["sources-sft"].data.metrics["rows/CodeDance-SFT"] == 3.0
    read = RunTracker(profile.tracking.tracking_uri, runs["sources-rl"].info.run_id).datasets()
    assert any(d["name"] == "train-00000/train-00000.parquet" and d["context"] == "input" for d in read)

    second = lifecycle(params, return_state=True)
    assert second.is_completed()
    assert set(task_states(second.state_details.flow_run_id).values()) == {"Cached"}
    assert second.result() == outputs

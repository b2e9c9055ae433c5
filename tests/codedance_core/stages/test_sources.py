"""The sources stage: the procedural suite and released-layout files merged into one input, with
every file it read (URI and digest) and the rows each source gave in its MLflow run."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from codedance_core.config.agent import RolloutSettings
from codedance_core.config.data import SUITE_TRAIN, DataConfig
from codedance_core.config.filtering import FilterConfig
from codedance_core.config.model import EngineConfig
from codedance_core.config.rewards import RewardConfig
from codedance_core.config.sandbox import SandboxConfig
from codedance_core.stages import StageContext
from codedance_core.stages.data import suite_split, validate_rows
from codedance_core.stages.filtering import filter_rows, weak_model
from codedance_core.stages.sources import merge_sources, merges, resolve_inputs
from codedance_core.tracking import RunTracker
from tests.codedance_core.data.released import write_released_rl

DATA = DataConfig(train_size=4, test_size=2, synth_workers=1, validate_workers=1)


def released_files(folder: Path) -> list[str]:
    """Two released-layout RL sources: a folder of two files (both spellings, both image forms) and one file."""
    write_released_rl(folder / "CodeDance-RL" / "train-00000.parquet", 2)
    write_released_rl(
        folder / "CodeDance-RL" / "train-00001.parquet",
        2,
        start=2,
        spelling="messages",
        images="bytes",
        tool_image="bytes",
        data_source="chart",
    )
    return [str(folder / "CodeDance-RL"), str(write_released_rl(folder / "extra.parquet", 1, start=4))]


def rl_rows(ctx: StageContext, folder: Path):
    sources = [SUITE_TRAIN, *released_files(folder)]
    inputs = resolve_inputs(sources, {SUITE_TRAIN: lambda: suite_split(DATA, "train", ctx)})
    return inputs, merge_sources(inputs, "rl", DATA.batch_rows, DATA.shard_rows, ctx)


def test_the_suite_and_released_files_merge_into_one_validated_input_with_lineage(
    ctx: StageContext, tmp_path: Path
) -> None:
    inputs, merged = rl_rows(ctx, tmp_path / "released")

    assert merged.rows == 4 + 4 + 1 and merged.uri.startswith(ctx.store_root)
    sources = pq.read_table(merged.uri, columns=["data_source"]).column("data_source").to_pylist()
    assert sources[4:] == ["vstar", "vstar", "chart", "chart", "vstar"] and all(
        s.startswith("suite_") for s in sources[:4]
    )
    report = validate_rows(merged, "rl", DATA, ctx)
    assert (report.good_rows, report.bad_rows) == (9, 0)

    from mlflow import MlflowClient

    client = MlflowClient(ctx.tracking.tracking_uri)
    [run] = client.search_runs(
        [client.get_experiment_by_name("stages").experiment_id],
        filter_string="attributes.run_name = 'sources-rl'",
    )
    tracker = RunTracker(ctx.tracking.tracking_uri, run.info.run_id)
    read = {d["name"]: d for d in tracker.datasets() if d["context"] == "input"}
    files = [ref for source in inputs for ref in source.files]
    assert set(read) == {
        "suite-train/train.parquet",
        "CodeDance-RL/train-00000.parquet",
        "CodeDance-RL/train-00001.parquet",
        "extra/extra.parquet",
    }
    assert {d["digest"] for d in read.values()} == {ref.digest.split(":", 1)[1][:36] for ref in files}
    assert run.data.metrics == {"rows/suite-train": 4.0, "rows/CodeDance-RL": 4.0, "rows/extra": 1.0}

    # The same sources give the same key: the merged file is not written again.
    again = merge_sources(
        resolve_inputs(
            ["suite://train", *released_files(tmp_path / "released")],
            {SUITE_TRAIN: lambda: suite_split(DATA, "train", ctx)},
        ),
        "rl",
        DATA.batch_rows,
        DATA.shard_rows,
        ctx,
    )
    assert again == merged


def test_a_single_source_the_lifecycle_made_is_used_as_is() -> None:
    assert not merges([SUITE_TRAIN]) and not merges(["stage://synthesize"])
    assert merges(["/data/rl"]) and merges([SUITE_TRAIN, "/data/rl"])


@pytest.mark.slow
def test_the_weak_model_and_the_filter_run_on_merged_released_rows(ctx: StageContext, tmp_path: Path) -> None:
    _, merged = rl_rows(ctx, tmp_path / "released")
    config = FilterConfig(
        k=2, weak_train_steps=10, shard_rows=4, rollout={"max_turns": 1, "max_new_tokens": 16}
    )
    weak = weak_model(config, merged, 0, ctx)
    loop = config.rollout_settings(RolloutSettings())
    outcome = filter_rows(
        config,
        loop,
        RewardConfig(),
        SandboxConfig(),
        EngineConfig(model=str(tmp_path), device="cpu"),
        merged,
        weak,
        ctx,
    )
    by_source = outcome.report["by_source"]
    assert {name: counts["rows"] for name, counts in by_source.items() if not name.startswith("suite_")} == {
        "vstar": 3,
        "chart": 2,
    }
    assert outcome.kept.rows is not None and outcome.kept.rows <= 9

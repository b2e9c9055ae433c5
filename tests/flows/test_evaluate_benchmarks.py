"""The evaluate-benchmarks flow against a real Prefect server, local Ray and MLflow on SQLite: one
checkpoint on two tiny benchmark files, a child run per benchmark under the flow's run, and the
summary table on that run."""

from __future__ import annotations

import io
import json

import polars as pl
import pytest
from mlflow import MlflowClient
from PIL import Image

from codedance_core.config import load_profile
from codedance_core.tracking import RunTracker
from flows.common import ProfileParameters
from flows.evaluate import evaluate_benchmarks


def png(colour: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.slow
def test_a_checkpoint_on_two_benchmarks_gives_a_summary_and_a_child_run_each(
    prefect_server, tiny_overrides, tmp_path
) -> None:
    from codedance_core.config.model import TinyModelConfig
    from codedance_core.models import build_tiny_model
    from codedance_core.models.tiny import suite_corpus

    model = build_tiny_model(
        tmp_path / "tiny", suite_corpus(rows=20, seed=0), TinyModelConfig(vocab_size=1200)
    )
    chartqa = tmp_path / "chartqa.parquet"
    pl.DataFrame(
        {"image": [{"bytes": png(), "path": None}], "query": ["Value?"], "label": ["3"]}
    ).write_parquet(chartqa)
    countbench = tmp_path / "countbench.parquet"
    images = [{"bytes": png(), "path": None}, {"bytes": png()[:40], "path": None}]  # the second is broken
    pl.DataFrame({"image": images, "question": ["How many?"] * 2, "number": [2, 3]}).write_parquet(countbench)
    benchmarks = [{"name": "chartqa", "path": str(chartqa)}, {"name": "countbench", "path": str(countbench)}]
    overrides = [
        *tiny_overrides,
        f"evaluation.benchmarks={json.dumps(benchmarks)}",
        "evaluation.rollout.max_turns=1",
        "evaluation.rollout.max_new_tokens=8",
        "evaluation.write_viewer=false",
    ]

    summary = evaluate_benchmarks(
        ProfileParameters(profile="tiny", overrides=overrides), model_uri=str(model)
    )

    table = {entry["benchmark"]: entry for entry in summary["benchmarks"]}
    assert table["countbench"]["items"] == 2 and table["countbench"]["failed_items"] == 1
    assert table["chartqa"]["paper"] == 87.5 and len(table["chartqa"]["ci95"]) == 2
    profile = load_profile("tiny", overrides)
    client = MlflowClient(profile.tracking.tracking_uri)
    experiment = client.get_experiment_by_name(profile.tracking.experiment)
    [parent] = client.search_runs([experiment.experiment_id], "tags.`codedance.flow` = 'evaluate-benchmarks'")
    assert "countbench.accuracy" in parent.data.metrics
    children = [
        client.get_run(r) for r in RunTracker(profile.tracking.tracking_uri, parent.info.run_id).children()
    ]
    assert sorted(c.info.run_name for c in children) == ["evaluate-tiny-chartqa", "evaluate-tiny-countbench"]
    files = {a.path for c in children for a in client.list_artifacts(c.info.run_id, "evaluation")}
    assert any(path.endswith(".tsv") for path in files)

"""One model on several benchmarks, each a tiny file in its published layout: per-benchmark reports and
VLMEvalKit-style predictions, one summary table with intervals beside the paper's numbers, MLflow
runs (a parent, a child per benchmark); broken images are failures in the denominators; a file in
an unknown layout is refused before the model loads."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import polars as pl
import pytest
from mlflow import MlflowClient

from codedance_core.config.evaluation import BenchmarkSpec, EvalConfig
from codedance_core.config.sandbox import SandboxConfig
from codedance_core.errors import describe
from codedance_core.evaluation.layouts import UnknownLayoutError
from codedance_core.evaluation.multi import check_benchmarks, evaluate_benchmarks, log_benchmark_runs
from codedance_core.tracking import RunTracker

from .conftest import TAUGHT_QUESTION, png_bytes


def countbench(folder: Path) -> Path:
    """CountBenchQA's parquet (image, question, number); the second image is cut off mid-file."""
    path = folder / "countbench.parquet"
    images = [{"bytes": png_bytes(), "path": None}, {"bytes": png_bytes()[:60], "path": None}]
    pl.DataFrame({"image": images, "question": [TAUGHT_QUESTION] * 2, "number": [50176, 3]}).write_parquet(
        path
    )
    return path


def vstar(folder: Path) -> Path:
    """V*Bench's folder: test_questions.jsonl with image paths; the second image file is missing."""
    root = folder / "vstar_bench"
    (root / "direct_attributes").mkdir(parents=True)
    (root / "direct_attributes" / "a.png").write_bytes(png_bytes())
    rows = [
        {
            "image": f"direct_attributes/{name}",
            "text": "Colour of the square?\n(A) red\n(B) blue",
            "label": "A",
            "category": "direct_attributes",
            "question_id": index,
        }
        for index, name in enumerate(["a.png", "missing.png"])
    ]
    (root / "test_questions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


def chartqa(folder: Path) -> Path:
    """ChartQA's parquet (image, query, label)."""
    path = folder / "chartqa.parquet"
    frame = {"image": [{"bytes": png_bytes(), "path": None}], "query": [TAUGHT_QUESTION], "label": ["50176"]}
    pl.DataFrame(frame).write_parquet(path)
    return path


def base_config(model_dir: Path, save: Path) -> EvalConfig:
    return EvalConfig(
        benchmark="parquet",
        data_path="",
        model_dir=str(model_dir),
        save_path=str(save),
        num_workers=4,
        rollout={"max_new_tokens": 48},
        sandbox=SandboxConfig(workers=1),
        device="cpu",
        use_judge=False,
    )


def test_three_benchmarks_give_reports_predictions_a_summary_and_mlflow_runs(
    taught_model_dir, tmp_path
) -> None:
    specs = [
        BenchmarkSpec(name="countbench", path=str(countbench(tmp_path))),
        BenchmarkSpec(name="vstar", path=str(vstar(tmp_path))),
        BenchmarkSpec(name="chartqa", path=str(chartqa(tmp_path))),
    ]
    outputs = evaluate_benchmarks(base_config(taught_model_dir, tmp_path / "out"), specs, show_progress=False)

    table = {entry["benchmark"]: entry for entry in outputs.summary["benchmarks"]}
    assert list(table) == ["countbench", "vstar", "chartqa"]
    # The taught model counts the pixels right; a broken or missing image is an item, and wrong.
    assert table["countbench"]["items"] == 2 and table["countbench"]["failed_items"] == 1
    assert table["countbench"]["accuracy"] == 50.0
    assert table["vstar"]["items"] == 2 and table["vstar"]["failed_items"] == 1
    assert table["chartqa"]["accuracy"] == 100.0
    low, high = table["countbench"]["ci95"]  # Wilson on 1 of 2
    assert 0 < low < 50 < high < 100
    assert (
        table["countbench"]["paper"] == 91.2
        and table["vstar"]["paper"] == 84.8
        and table["chartqa"]["paper"] == 87.5
    )
    assert outputs.summary["prompt"] == "original" and "2512.17312" in outputs.summary["paper_source"]

    markdown = outputs.paths["summary_md"].read_text()
    assert "| countbench | 2 | 1 | 50.0 | [" in markdown and "| 91.2 |" in markdown
    assert json.loads(outputs.paths["summary_json"].read_text()) == outputs.summary

    run = outputs.runs[0]  # countbench: the broken image is a failure row with its reason
    assert run.stats["prompt"] == "original"
    [failed] = [row for row in run.rows if row["status"] == "load_error"]
    assert "cannot decode image" in failed["error"]
    with run.paths["predictions"].open(newline="") as handle:
        predictions = list(csv.DictReader(handle, delimiter="\t"))
    assert [p["hit"] for p in predictions] == ["1", "0"] and predictions[0]["answer"] == "50176"
    assert predictions[0]["prediction"] == "50176" and predictions[0]["question"] == TAUGHT_QUESTION
    with outputs.runs[1].paths["predictions"].open(newline="") as handle:
        vstar_lines = list(csv.DictReader(handle, delimiter="\t"))
    assert vstar_lines[0]["A"] == "red" and vstar_lines[0]["B"] == "blue" and vstar_lines[0]["answer"] == "A"

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent_id = log_benchmark_runs(outputs, uri, "benchmarks", artifact_root=str(tmp_path / "mlartifacts"))
    client = MlflowClient(uri)
    parent = client.get_run(parent_id)
    assert parent.data.metrics["countbench.accuracy"] == 50.0 and "vstar.ci95_low" in parent.data.metrics
    assert {a.path for a in client.list_artifacts(parent_id, "evaluation")} == {
        "evaluation/summary_taught.md",
        "evaluation/summary_taught.json",
    }
    children = [client.get_run(run_id) for run_id in RunTracker(uri, parent_id).children()]
    assert sorted(c.info.run_name for c in children) == [
        "evaluate-chartqa",
        "evaluate-countbench",
        "evaluate-vstar",
    ]
    counted = next(c for c in children if c.info.run_name == "evaluate-countbench")
    assert counted.data.metrics["items"] == 2 and counted.data.metrics["accuracy"] == 0.5
    files = {Path(a.path).name for a in client.list_artifacts(counted.info.run_id, "evaluation")}
    assert "predictions_taught_countbench.tsv" in files and "stats_taught_countbench.json" in files


def test_a_file_in_an_unknown_layout_is_refused_in_one_line_naming_the_layouts_and_columns(tmp_path) -> None:
    data = tmp_path / "mystery.parquet"
    pl.DataFrame({"prompt_text": ["How many?"], "solution": ["3"]}).write_parquet(data)
    good = chartqa(tmp_path)
    with pytest.raises(UnknownLayoutError) as error:  # checked before any model would load
        check_benchmarks(
            [BenchmarkSpec(name="chartqa", path=str(good)), BenchmarkSpec(name="countbench", path=str(data))]
        )
    assert isinstance(error.value, ValueError)
    line = describe(error.value)
    assert line is not None and "\n" not in line
    assert "columns found: prompt_text, solution" in line
    assert "layouts known: RL rows (" in line and "eval rows (question: one of question" in line
    assert "VLMEvalKit TSV (" in line and "answer: one of number/answer" in line


def test_the_same_files_twice_would_collide_and_are_refused(tmp_path) -> None:
    path = str(chartqa(tmp_path))
    with pytest.raises(ValueError, match="same files"):
        check_benchmarks([BenchmarkSpec(name="chartqa", path=path), BenchmarkSpec(name="chartqa", path=path)])


def test_an_unknown_benchmark_name_in_the_profile_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="unknown benchmark 'mmmu'"):
        BenchmarkSpec(name="mmmu", path="x")

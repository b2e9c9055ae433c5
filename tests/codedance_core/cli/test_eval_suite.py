"""`codedance eval-suite`: a list of benchmarks from --bench (or the profile); bad inputs in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl

from codedance_core.cli.evaluate import parse_bench

CODEDANCE = str(Path(sys.executable).parent / "codedance")


def test_bench_options_read_name_path_and_limit() -> None:
    assert parse_bench("vstar=vstar_bench/:50").model_dump() == {
        "name": "vstar",
        "path": "vstar_bench/",
        "limit": 50,
    }
    assert parse_bench("tsv=s3://bucket/hr.tsv").limit is None


def test_a_benchmark_in_an_unknown_layout_is_one_error_line_before_the_model_loads(
    tiny_model_dir, tmp_path
) -> None:
    data = tmp_path / "mystery.parquet"
    pl.DataFrame({"prompt_text": ["How many?"], "solution": ["3"]}).write_parquet(data)
    argv = [
        "eval-suite",
        "--bench",
        f"chartqa={data}",
        "--model",
        str(tiny_model_dir),
        "--save_path",
        str(tmp_path / "out"),
        "--no-mlflow",
    ]
    result = subprocess.run([CODEDANCE, *argv], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert (
        line.startswith("error: ")
        and "columns found: prompt_text, solution" in line
        and "layouts known:" in line
    )

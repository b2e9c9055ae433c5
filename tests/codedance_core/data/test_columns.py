"""`require_columns`: a file of the wrong kind is refused from its footer, naming what it lacks."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from codedance_core.data.columns import MissingColumnsError, require_columns, required_columns
from codedance_core.data.io import NotParquetError


def write(path: Path, columns: list[str]) -> str:
    pq.write_table(pa.table({column: ["x", "y"] for column in columns}), path)
    return str(path)


def test_required_columns_follow_the_row_models():
    assert ("prompt", "messages") in required_columns("rl")
    assert required_columns("sft") == [("messages",), ("images",)]


def test_a_file_with_the_columns_passes_with_its_row_count(tmp_path: Path):
    rl = write(
        tmp_path / "rl.parquet",
        ["data_source", "messages", "images", "ability", "reward_model", "extra_info"],
    )
    assert require_columns(rl, "rl") == 2


def test_a_file_of_another_kind_is_refused(tmp_path: Path):
    sft = write(tmp_path / "sft.parquet", ["messages", "images"])
    with pytest.raises(MissingColumnsError, match="lacks the column.*reward_model.*it has: images, messages"):
        require_columns(sft, "rl")


def test_a_missing_file_is_not_parquet(tmp_path: Path):
    with pytest.raises(NotParquetError, match="no such file"):
        require_columns(str(tmp_path / "absent.parquet"), "sft")

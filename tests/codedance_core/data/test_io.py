"""Row files in and out: polars tables, streamed batches, atomic writes, local and S3."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest

from codedance_core.data.io import (
    NotParquetError,
    ParquetSink,
    iter_batches,
    open_parquet,
    read_rows,
    scan_rows,
    write_rows,
)


def small_frame(rows: int = 10) -> pl.DataFrame:
    return pl.DataFrame({"index": list(range(rows)), "blob": [bytes([i]) * 100 for i in range(rows)]})


def test_write_then_read_round_trip_with_a_digest(tmp_path):
    ref = write_rows(small_frame(), str(tmp_path / "rows.parquet"))
    assert ref.rows == 10 and ref.digest.startswith("sha256:")
    assert (tmp_path / "rows.parquet.manifest.json").exists()
    assert read_rows(ref.uri).equals(small_frame())
    assert scan_rows(ref.uri).filter(pl.col("index") > 6).collect().height == 3


def test_batches_never_exceed_the_requested_size(tmp_path):
    uri = write_rows(small_frame(25), str(tmp_path / "rows.parquet"), row_group_rows=10).uri
    sizes = [batch.num_rows for batch in iter_batches(uri, batch_rows=4)]
    assert sum(sizes) == 25 and max(sizes) <= 4


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "half.parquet"
    with pytest.raises(RuntimeError), ParquetSink.open(str(target), pa.schema([("x", pa.int64())])) as sink:
        sink.write_rows([{"x": 1}])
        raise RuntimeError("stage crashed")
    assert not target.exists()


@pytest.mark.parametrize("content", [b"", b"hello, I am a csv\n1,2,3\n", b"PAR1" + b"\0" * 50])
def test_non_parquet_files_raise_one_line_errors(tmp_path, content):
    path = tmp_path / "fake.parquet"
    path.write_bytes(content)
    with pytest.raises(NotParquetError) as caught:
        open_parquet(str(path))
    assert "not a parquet file" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(NotParquetError, match="no such file"):
        open_parquet(str(tmp_path / "absent.parquet"))


def test_s3_round_trip_through_moto(s3_bucket):
    uri = f"s3://{s3_bucket}/data/rows.parquet"
    ref = write_rows(small_frame(), uri)
    assert ref.uri == uri and ref.rows == 10
    assert read_rows(uri).equals(small_frame())
    assert sum(batch.num_rows for batch in iter_batches(uri, batch_rows=3)) == 10
    assert scan_rows(uri).select(pl.col("index").sum()).collect().item() == 45

"""Validation with quarantine: one bad row of each kind, each set aside with its one reason."""

from __future__ import annotations

import json

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from codedance_core.config.data import DataConfig
from codedance_core.data.io import NotParquetError
from codedance_core.data.validate import Reason, RowChecker, validate_file

EXPECTED = [
    None,  # a good row with inline bytes
    Reason.MISSING_FIELD,  # no gold answer
    Reason.EMPTY_ANSWER,
    Reason.WRONG_TYPE,  # extra_info.index is text
    Reason.IMAGE_TRUNCATED,
    Reason.IMAGE_TOO_LARGE,  # a PNG header claiming 100000 x 100000
    Reason.IMAGE_UNDECODABLE,
    Reason.IMAGE_TOKEN_MISMATCH,  # two images, one <image> marker
    Reason.IMAGE_UNREADABLE,  # a path that does not exist
    None,  # a good row whose image is a path relative to the parquet file
    Reason.BAD_MESSAGES,  # no user turn
    Reason.NO_IMAGE,
    Reason.MISSING_FIELD,  # no data_source
]


def hand_made_rows(make_rl_row, png_bytes, jpeg_bytes, bomb_png) -> list[dict]:
    rows = [
        make_rl_row(png_bytes),
        make_rl_row(png_bytes, answer=None),
        make_rl_row(png_bytes, answer=" "),
        make_rl_row(png_bytes, extra_info={"index": "seven"}),
        make_rl_row(jpeg_bytes[: len(jpeg_bytes) // 2]),
        make_rl_row(bomb_png),
        make_rl_row(b"<html>not an image</html>"),
        make_rl_row(png_bytes, images=[{"bytes": png_bytes, "path": None}] * 2),
        make_rl_row({"bytes": None, "path": "images/missing.png"}),
        make_rl_row({"bytes": None, "path": "images/present.png"}),
        make_rl_row(png_bytes, prompt=[{"role": "system", "content": "<image>"}]),
        make_rl_row(png_bytes, images=[]),
        make_rl_row(png_bytes, data_source=None),
    ]
    for row in rows:  # extra_info as JSON text: the one column where a single row can have a wrong type
        row["extra_info"] = json.dumps(row["extra_info"])
    return rows


@pytest.fixture
def hand_made_parquet(tmp_path, make_rl_row, png_bytes, jpeg_bytes, bomb_png) -> str:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "present.png").write_bytes(png_bytes)
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(hand_made_rows(make_rl_row, png_bytes, jpeg_bytes, bomb_png)), path)
    return str(path)


def test_each_bad_row_is_quarantined_with_its_reason(hand_made_parquet, tmp_path):
    report = validate_file(
        hand_made_parquet, "rl", good_out=str(tmp_path / "good.parquet"),
        quarantine_out=str(tmp_path / "bad.parquet"), config=DataConfig(batch_rows=4),
    )
    assert report.total_rows == len(EXPECTED)
    assert report.good_rows + report.bad_rows == report.total_rows
    assert report.good_rows == 2
    quarantined = pl.read_parquet(tmp_path / "bad.parquet")
    expected_bad = [reason.value for reason in EXPECTED if reason is not None]
    assert quarantined["reason"].to_list() == expected_bad
    assert quarantined["reason_detail"].null_count() == 0
    assert report.reasons == {r: expected_bad.count(r) for r in set(expected_bad)}
    good = pl.read_parquet(tmp_path / "good.parquet")
    assert good.height == 2 and good.columns == pq.read_schema(hand_made_parquet).names
    assert report.quarantine_ref is not None and report.quarantine_ref.rows == len(expected_bad)


def test_the_checker_names_the_field_at_fault(make_rl_row, png_bytes):
    problem = RowChecker("rl").check(make_rl_row(png_bytes, answer=None))
    assert problem is not None and problem.reason is Reason.MISSING_FIELD
    assert "reward_model.ground_truth" in problem.detail


def test_image_marker_check_can_be_switched_off(make_rl_row, png_bytes):
    row = make_rl_row(png_bytes, images=[png_bytes, png_bytes])
    assert RowChecker("rl").check(row).reason is Reason.IMAGE_TOKEN_MISMATCH
    assert RowChecker("rl", check_image_tokens=False).check(row) is None


def test_revalidating_a_quarantine_file_keeps_one_reason_column(hand_made_parquet, tmp_path):
    validate_file(hand_made_parquet, quarantine_out=str(tmp_path / "bad.parquet"))
    validate_file(str(tmp_path / "bad.parquet"), quarantine_out=str(tmp_path / "bad2.parquet"))
    columns = pl.read_parquet(tmp_path / "bad2.parquet").columns
    assert columns.count("reason") == 1 and columns.count("reason_detail") == 1


def test_not_parquet_is_an_error_not_a_report(tmp_path):
    path = tmp_path / "rows.parquet"
    path.write_text("data_source,prompt\nvstar,hi\n")
    with pytest.raises(NotParquetError):
        validate_file(str(path))


def test_validation_reads_from_s3(s3_bucket, hand_made_parquet):
    import s3fs  # noqa: F401  (a missing s3fs must fail this test, not skip it)

    from codedance_core.storage import filesystem

    fs, target = filesystem(f"s3://{s3_bucket}/in/rows.parquet")
    fs.put_file(hand_made_parquet, target)
    report = validate_file(f"s3://{s3_bucket}/in/rows.parquet", quarantine_out=f"s3://{s3_bucket}/out/bad.parquet")
    assert report.total_rows == len(EXPECTED)
    # the relative image path now points into the bucket, where it does not exist
    assert report.reasons[Reason.IMAGE_UNREADABLE.value] == 2
    assert report.quarantine_ref.uri == f"s3://{s3_bucket}/out/bad.parquet"

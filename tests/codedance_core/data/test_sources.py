"""Sources: files found with their digests (local, s3://, hf://), merged into one parquet the row
schemas read, whatever the released layout each file uses."""

from __future__ import annotations

import socket
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from codedance_core.data.schemas import RLRow, SFTRow
from codedance_core.data.sources import SourceError, SourceFiles, merge_sources, resolve_source
from codedance_core.data.validate import validate_file
from codedance_core.storage import ArtifactStore, sha256_file
from tests.codedance_core.data.released import released_rl_row, write_released_rl, write_released_sft
from tests.codedance_core.train.rows import trajectory_row


def test_a_local_file_folder_or_glob_names_its_parquet_files_with_their_sha256(tmp_path: Path) -> None:
    first = write_released_rl(tmp_path / "rl" / "train-00000.parquet", 2)
    second = write_released_rl(tmp_path / "rl" / "train-00001.parquet", 3, spelling="messages")
    (tmp_path / "rl" / "README.md").write_text("not rows")

    folder = resolve_source(str(tmp_path / "rl"))
    assert folder.label == "rl" and [ref.uri for ref in folder.files] == [str(first), str(second)]
    assert [ref.digest for ref in folder.files] == [sha256_file(first), sha256_file(second)]
    assert [ref.rows for ref in folder.files] == [2, 3]
    assert resolve_source(str(tmp_path / "rl" / "train-*.parquet")).files == folder.files
    single = resolve_source(str(first))
    assert single.label == "train-00000" and single.files == folder.files[:1]


def test_a_missing_or_empty_source_says_so(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file or folder"):
        resolve_source(str(tmp_path / "absent.parquet"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="names no parquet file"):
        resolve_source(str(tmp_path / "empty"))


def test_a_store_folder_lists_each_artifact_once_by_its_manifest(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    with store.stage("rl/a.parquet") as staged:
        write_released_rl(staged.path, 2)
    with store.stage("rl/a.parquet") as staged:  # a second version: the first stays in a versions folder
        write_released_rl(staged.path, 3)
    [ref] = resolve_source(str(tmp_path / "store" / "rl")).files
    assert ref == store.ref("rl/a.parquet") and ref.rows == 3


def test_s3_sources_use_the_manifest_or_else_the_etag(s3_bucket: str, tmp_path: Path) -> None:
    import boto3

    from codedance_core.storage.uris import _s3_endpoint

    stored = ArtifactStore(f"s3://{s3_bucket}/data")
    with stored.stage("rl/a.parquet") as staged:
        write_released_rl(staged.path, 2)
    raw = write_released_rl(tmp_path / "b.parquet", 3, images="bytes", tool_image="bytes")
    boto3.client("s3", endpoint_url=_s3_endpoint()).upload_file(str(raw), s3_bucket, "data/rl/b.parquet")

    source = resolve_source(f"s3://{s3_bucket}/data/rl")
    assert [ref.uri.rsplit("/", 1)[-1] for ref in source.files] == ["a.parquet", "b.parquet"]
    assert source.files[0] == stored.ref("rl/a.parquet")
    assert source.files[1].digest.startswith("etag:") and source.files[1].size == raw.stat().st_size

    merged, counts = merge_sources([source], "rl", str(tmp_path / "out" / "rl.parquet"))
    assert merged.rows == 5 and counts == {"rl": 5}


def test_an_unreachable_hub_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "1")
    with pytest.raises(SourceError, match=f"cannot reach the Hugging Face hub at {endpoint}"):
        resolve_source("hf://datasets/Peterwatwec/CodeDance-RL@main/data/*.parquet")


def test_rows_of_every_released_layout_merge_into_one_file_the_schema_reads(tmp_path: Path) -> None:
    sources = [
        resolve_source(str(write_released_rl(tmp_path / "a.parquet", 2))),
        resolve_source(
            str(
                write_released_rl(
                    tmp_path / "b.parquet",
                    3,
                    start=2,
                    spelling="messages",
                    images="bytes",
                    tool_image="bytes",
                    data_source="chart",
                )
            )
        ),
        resolve_source(str(write_released_rl(tmp_path / "c.parquet", 1, start=5, tool_image="path"))),
    ]
    merged, counts = merge_sources(sources, "rl", str(tmp_path / "out" / "rl.parquet"), batch_rows=2)

    assert counts == {"a": 2, "b": 3, "c": 1} and merged.rows == 6
    rows = pq.read_table(merged.uri).to_pylist()
    assert [row["data_source"] for row in rows] == ["vstar", "vstar", "chart", "chart", "chart", "vstar"]
    parsed = [RLRow.model_validate(row) for row in rows]
    assert [row.extra_info.index for row in parsed] == [0, 1, 2, 3, 4, 5]
    assert all(row.images[0].bytes and row.prompt[-1].content.startswith("<image>") for row in parsed)
    tool_images = [
        row["extra_info"]["tools_kwargs"]["execute_python_code"]["create_kwargs"]["image"] for row in rows
    ]
    assert tool_images[2] == {"bytes": rows[2]["images"][0]["bytes"], "path": None}
    assert tool_images[5] == {"bytes": None, "path": "images/5.png"}
    report = validate_file(merged.uri, "rl")
    assert (report.good_rows, report.bad_rows) == (6, 0)


def test_released_sft_rows_and_trajectories_merge_each_keeping_or_getting_a_data_source(
    tmp_path: Path,
) -> None:
    trajectories = tmp_path / "synthesized.parquet"
    pq.write_table(
        pa.Table.from_pylist([{**trajectory_row(i), "data_source": "suite_count"} for i in range(2)]),
        trajectories,
    )
    sources = [
        resolve_source(str(trajectories)),
        resolve_source(str(write_released_sft(tmp_path / "CodeDance-SFT" / "train.parquet", 3).parent)),
    ]
    merged, counts = merge_sources(sources, "sft", str(tmp_path / "out" / "sft.parquet"))

    assert counts == {"synthesized": 2, "CodeDance-SFT": 3}
    rows = pq.read_table(merged.uri).to_pylist()
    assert [row["data_source"] for row in rows] == ["suite_count"] * 2 + ["CodeDance-SFT"] * 3
    assert all(len(SFTRow.model_validate(row).images) == 2 for row in rows)


def test_a_conversation_written_as_json_text_is_read_as_messages(tmp_path: Path) -> None:
    import json

    row = released_rl_row(0)
    row["prompt"] = json.dumps(row["prompt"])
    pq.write_table(pa.Table.from_pylist([row]), tmp_path / "json.parquet")
    sources = [
        resolve_source(str(tmp_path / "json.parquet")),
        resolve_source(str(write_released_rl(tmp_path / "a.parquet", 1))),
    ]
    merged, _ = merge_sources(sources, "rl", str(tmp_path / "out.parquet"))
    assert [RLRow.model_validate(r).prompt[0].role for r in pq.read_table(merged.uri).to_pylist()] == [
        "system"
    ] * 2


def test_sources_whose_columns_conflict_are_named(tmp_path: Path) -> None:
    odd = released_rl_row(0)
    odd["ability"] = 7  # an integer where the other source has text
    pq.write_table(pa.Table.from_pylist([odd]), tmp_path / "odd.parquet")
    sources = [
        resolve_source(str(write_released_rl(tmp_path / "a.parquet", 1))),
        resolve_source(str(tmp_path / "odd.parquet")),
    ]
    with pytest.raises(SourceError, match=r"odd\.parquet .*does not fit the rows of"):
        merge_sources(sources, "rl", str(tmp_path / "out.parquet"))


def test_the_digest_of_a_source_is_its_contents_not_their_location(tmp_path: Path) -> None:
    one = write_released_rl(tmp_path / "x" / "a.parquet", 2)
    two = write_released_rl(tmp_path / "y" / "a.parquet", 2)
    moved = SourceFiles(source="a.parquet", label="a", files=resolve_source(str(two)).files)
    assert (
        SourceFiles(source="a.parquet", label="a", files=resolve_source(str(one)).files).digest()
        == moved.digest()
    )
    changed = write_released_rl(tmp_path / "z" / "a.parquet", 3)
    assert (
        SourceFiles(source="a.parquet", label="a", files=resolve_source(str(changed)).files).digest()
        != moved.digest()
    )


def test_sources_of_the_same_name_are_counted_apart(tmp_path: Path) -> None:
    sources = [
        resolve_source(str(write_released_rl(tmp_path / name / "train.parquet", rows)))
        for name, rows in (("a", 1), ("b", 2))
    ]
    _, counts = merge_sources(sources, "rl", str(tmp_path / "out.parquet"))
    assert counts == {"train": 1, "train-2": 2}


def test_a_hub_file_is_named_at_its_commit_with_the_sha256_the_hub_keeps() -> None:
    from codedance_core.data.sources import _hub_ref

    path = "datasets/Peterwatwec/CodeDance-RL@0a5d785/data/train-00000-of-00039.parquet"
    lfs = {"size": 2048, "sha256": "ab" * 32, "pointer_size": 134}
    ref = _hub_ref(path, {"name": path, "type": "file", "size": 2048, "blob_id": "f00d", "lfs": lfs})
    assert (ref.uri, ref.digest, ref.size) == (f"hf://{path}", "sha256:" + "ab" * 32, 2048)
    assert (
        _hub_ref(path, {"type": "file", "size": 9, "blob_id": "f00d", "lfs": None}).digest == "git-blob:f00d"
    )

"""URIs to filesystems: local paths, s3:// against moto, and polars reading through them."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from codedance_core.storage import (
    ArtifactStore,
    filesystem,
    join_uri,
    normalize_uri,
    resolve_uri,
    storage_options,
)


def test_local_paths_are_absolute_and_have_no_options(tmp_path: Path) -> None:
    fs, path = filesystem(str(tmp_path / "x.parquet"))
    assert path == str(tmp_path / "x.parquet")
    assert fs.protocol[0] in ("file", "local")
    assert storage_options(path) is None
    assert normalize_uri(f"file://{tmp_path}") == str(tmp_path)


def test_join_uri_uses_slashes() -> None:
    assert join_uri("s3://b/prefix/", "/data", "x.parquet") == "s3://b/prefix/data/x.parquet"


def test_s3_settings_come_from_the_environment(s3_bucket: str, s3_endpoint: str) -> None:
    opts = storage_options(f"s3://{s3_bucket}/x")
    assert opts is not None and opts["aws_endpoint_url"] == s3_endpoint and opts["aws_allow_http"] == "true"
    _fs, path = filesystem(f"s3://{s3_bucket}/x")
    assert path == f"{s3_bucket}/x"


def test_polars_reads_a_stored_parquet_from_s3_natively(s3_bucket: str) -> None:
    store = ArtifactStore(f"s3://{s3_bucket}/runs")
    frame = pl.DataFrame({"question": ["q1", "q2"], "answer": ["1", "2"]})
    ref = store.write_parquet("suite.parquet", frame)
    current = resolve_uri(ref.uri)  # the stored version the artifact's name points at
    lazy = pl.scan_parquet(current, storage_options=storage_options(current))
    assert lazy.filter(pl.col("answer") == "2").collect()["question"].to_list() == ["q2"]

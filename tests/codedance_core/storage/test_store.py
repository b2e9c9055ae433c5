"""The artifact store: atomic writes, digests, manifests, on a local folder and on S3 (moto)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from codedance_core.storage import ArtifactStore, sha256_bytes


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return ArtifactStore(tmp_path / "store")
    bucket = request.getfixturevalue("s3_bucket")
    return ArtifactStore(f"s3://{bucket}/prefix")


def test_write_bytes_returns_a_reference_with_digest_and_size(store: ArtifactStore) -> None:
    ref = store.write_bytes("reports/hello.txt", b"hello")
    assert ref.uri == store.uri("reports/hello.txt")
    assert ref.digest == sha256_bytes(b"hello")
    assert ref.size == 5 and ref.rows is None
    assert store.read_bytes("reports/hello.txt") == b"hello"
    assert store.read_bytes(ref.uri) == b"hello"
    assert store.ref("reports/hello.txt") == ref
    assert store.verify(ref)


def test_parquet_reference_counts_rows(store: ArtifactStore) -> None:
    frame = pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    ref = store.write_parquet("data/rows.parquet", frame)
    assert ref.rows == 3
    with store.open(ref.uri) as handle:
        assert pl.read_parquet(handle).equals(frame)


def test_same_content_gives_same_digest_and_different_content_does_not(store: ArtifactStore) -> None:
    a = store.write_bytes("a.bin", b"same")
    b = store.write_bytes("b.bin", b"same")
    c = store.write_bytes("c.bin", b"other")
    assert a.digest == b.digest != c.digest


def test_failed_write_leaves_no_artifact(store: ArtifactStore) -> None:
    with pytest.raises(RuntimeError), store.stage("data/broken.parquet") as staged:
        staged.path.write_bytes(b"half a file")
        raise RuntimeError("the writer crashed")
    assert store.ref("data/broken.parquet") is None
    assert not store.exists("data/broken.parquet")


def test_artifact_without_manifest_does_not_exist(store: ArtifactStore) -> None:
    # A crash between the data upload and the manifest looks exactly like no artifact.
    with store.fs.open(store._path("orphan.bin"), "wb") as handle:
        handle.write(b"data but no manifest")
    store.fs.invalidate_cache()
    assert not store.exists("orphan.bin")
    assert "orphan.bin" not in store.list()


def test_overwrite_replaces_content_and_manifest(store: ArtifactStore) -> None:
    store.write_bytes("x.json", b"1")
    ref = store.write_json("x.json", {"v": 2})
    assert store.read_json("x.json") == {"v": 2}
    assert store.ref("x.json") == ref


def test_list_and_delete(store: ArtifactStore) -> None:
    store.write_bytes("d/one.txt", b"1")
    store.write_bytes("d/two.txt", b"2")
    store.write_bytes("other.txt", b"3")
    assert store.list("d") == ["d/one.txt", "d/two.txt"]
    store.delete("d/one.txt")
    assert store.list("d") == ["d/two.txt"]


def test_verify_detects_tampering(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    ref = store.write_bytes("model.bin", b"weights")
    (tmp_path / "model.bin").write_bytes(b"tampered")
    assert not store.verify(ref)


def test_local_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    store.write_bytes("a/b/c.txt", b"x")
    names = sorted(p.name for p in (tmp_path / "a" / "b").iterdir())
    assert names == ["c.txt", "c.txt.manifest.json"]


def test_for_file_splits_a_uri_into_store_and_name(tmp_path: Path) -> None:
    store, name = ArtifactStore.for_file(tmp_path / "out" / "suite.parquet")
    assert name == "suite.parquet"
    assert store.root == str(tmp_path / "out")


def test_open_refuses_writes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="stage"):
        ArtifactStore(tmp_path).open("x", "wb")


def test_directories_round_trip_with_a_content_digest(store: ArtifactStore, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"layers": 2}')
    (folder / "sub" / "weights.bin").write_bytes(b"\x00\x01" * 100)
    ref = store.write_directory("models/tiny", folder)
    assert ref.size == 13 + 200
    assert store.exists("models/tiny")
    local = store.local_directory(ref, cache_dir=tmp_path / "cache")
    assert (local / "config.json").read_text() == '{"layers": 2}'
    assert (local / "sub" / "weights.bin").read_bytes() == b"\x00\x01" * 100
    again = store.write_directory("models/copy", folder)
    assert again.digest == ref.digest  # same files, same digest, wherever they are stored

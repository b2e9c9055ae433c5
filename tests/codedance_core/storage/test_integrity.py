"""Readers check what they read: a tampered file or a folder mixing two writes is refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codedance_core.storage import (
    ArtifactRef,
    ArtifactStore,
    CorruptArtifactError,
    directory_index,
    sha256_bytes,
)
from codedance_core.storage.store import MANIFEST_SUFFIX, version_path


def model_folder(path: Path, fill: bytes, files: int = 7) -> Path:
    path.mkdir(parents=True)
    for index in range(files):
        (path / f"shard-{index}.bin").write_bytes(fill * (10 + index))
    return path


def overwrite(store: ArtifactStore, path: str, data: bytes) -> None:
    store.fs.pipe_file(path, data)
    store.fs.invalidate_cache()


def test_a_tampered_file_is_refused(store: ArtifactStore) -> None:
    ref = store.write_bytes("model.bin", b"weights")
    overwrite(store, version_path(store._path("model.bin"), ref.digest), b"tampered")
    with pytest.raises(CorruptArtifactError, match="model.bin") as refused:
        store.read_bytes("model.bin")
    assert "write the artifact again" in str(refused.value)
    assert not store.verify(ref)


def test_a_truncated_file_is_refused_when_opened(store: ArtifactStore) -> None:
    ref = store.write_bytes("rows.bin", b"0123456789")
    overwrite(store, version_path(store._path("rows.bin"), ref.digest), b"01234")
    with pytest.raises(CorruptArtifactError, match="5 bytes where 10 were written"):
        store.open("rows.bin")


def test_a_tampered_download_is_refused_and_not_cached(s3_bucket: str, tmp_path: Path) -> None:
    store = ArtifactStore(f"s3://{s3_bucket}/store")
    ref = store.write_directory("models/tiny", model_folder(tmp_path / "model", b"a"))
    stored = version_path(store._path("models/tiny"), ref.digest)
    overwrite(store, f"{stored}/shard-3.bin", b"b" * 13)  # same size: only the digest tells
    with pytest.raises(CorruptArtifactError, match="shard-3.bin differs"):
        store.local_directory(ref, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())


def test_verify_reads_every_file_of_a_folder(store: ArtifactStore, tmp_path: Path) -> None:
    ref = store.write_directory("models/tiny", model_folder(tmp_path / "model", b"a"))
    assert store.verify(ref)
    overwrite(store, f"{version_path(store._path('models/tiny'), ref.digest)}/shard-3.bin", b"b" * 13)
    assert not store.verify(ref)


def test_a_local_folder_with_a_truncated_file_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    ref = store.write_directory("models/tiny", model_folder(tmp_path / "model", b"a"))
    (tmp_path / "store" / "models" / "tiny" / "shard-6.bin").write_bytes(b"a")
    with pytest.raises(CorruptArtifactError, match="shard-6.bin has 1 bytes where 16 were written"):
        store.local_directory(ref)


def test_a_folder_mixing_two_writes_is_refused(store: ArtifactStore, tmp_path: Path) -> None:
    # An overwrite in the old layout, cut midway: the old index and manifest, 2 of 7 files new.
    old = model_folder(tmp_path / "old", b"a")
    index_bytes = json.dumps(directory_index(old), indent=1, sort_keys=True).encode()
    ref = ArtifactRef(uri=store.uri("models/tiny"), digest=sha256_bytes(index_bytes), size=91)
    target = store._path("models/tiny")
    store.fs.makedirs(target, exist_ok=True)
    for path in sorted(old.iterdir()):
        store.fs.pipe_file(f"{target}/{path.name}", path.read_bytes())
    store.fs.pipe_file(f"{target}/_index.json", index_bytes)
    store.fs.pipe_file(target + MANIFEST_SUFFIX, ref.model_dump_json().encode())
    for name in ("shard-1.bin", "shard-5.bin"):
        overwrite(store, f"{target}/{name}", b"b" * len((old / name).read_bytes()))
    with pytest.raises(CorruptArtifactError, match="shard-1.bin.*shard-5.bin"):
        store.local_directory(ref, cache_dir=tmp_path / "cache")
    assert not store.verify(ref)


def test_a_checked_download_is_reused_without_downloading_again(s3_bucket: str, tmp_path: Path) -> None:
    store = ArtifactStore(f"s3://{s3_bucket}/store")
    ref = store.write_directory("models/tiny", model_folder(tmp_path / "model", b"a"))
    first = store.local_directory(ref, cache_dir=tmp_path / "cache")
    store.delete("models/tiny")  # nothing left to download: a second read must use the checked copy
    assert store.local_directory(ref, cache_dir=tmp_path / "cache") == first
    (first / "shard-2.bin").write_bytes(b"short")  # a damaged copy is not reused
    with pytest.raises(FileNotFoundError):
        store.local_directory(ref, cache_dir=tmp_path / "cache")

"""The artifact store: atomic writes, digests, manifests, on a local folder and on S3 (moto)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from codedance_core.storage import (
    ArtifactRef,
    ArtifactStore,
    filesystem,
    local_files,
    ref_uri,
    resolve_uri,
    sha256_bytes,
)
from codedance_core.storage.store import MANIFEST_SUFFIX


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
    assert names == ["c.txt", "c.txt.manifest.json", "c.txt.versions"]
    assert (tmp_path / "a" / "b" / "c.txt").read_bytes() == b"x"  # the plain path shows the current version


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


class Cut(ConnectionError):
    """The connection lost in the middle of a write."""


def cut_before_the_manifest(store: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def lose_connection(*_args: object) -> None:
        raise Cut("connection lost after the data, before the manifest")

    monkeypatch.setattr(store, "_write_manifest", lose_connection)


def model_folder(path: Path, fill: bytes, files: int = 7) -> Path:
    path.mkdir(parents=True)
    for index in range(files):
        (path / f"shard-{index}.bin").write_bytes(fill * (10 + index))
    return path


def test_an_overwrite_cut_before_its_manifest_leaves_the_old_artifact_whole(
    store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = store.write_bytes("data/x.bin", b"old content")
    with monkeypatch.context() as patch:
        cut_before_the_manifest(store, patch)
        with pytest.raises(Cut):
            store.write_bytes("data/x.bin", b"new content, longer")
    assert store.ref("data/x.bin") == old
    assert store.read_bytes("data/x.bin") == b"old content"
    assert store.verify(old)
    new = store.write_bytes("data/x.bin", b"new content, longer")
    assert store.read_bytes("data/x.bin") == b"new content, longer"
    assert store.verify(new) and store.verify(old)  # the superseded version is kept for old references


def test_a_folder_overwrite_cut_midway_leaves_the_old_folder_whole(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = store.write_directory("models/tiny", model_folder(tmp_path / "v1", b"a"))
    uploaded: list[str] = []

    def upload_three_files_then_cut(source: object, target: str, *args: object, **kwargs: object) -> None:
        if len(uploaded) == 3:
            raise Cut("connection lost after three files")
        uploaded.append(target)
        real_put(source, target, *args, **kwargs)

    real_put = store.fs.put_file if store.remote else local_files.copy_into_place
    with monkeypatch.context() as patch:
        if store.remote:
            patch.setattr(store.fs, "put_file", upload_three_files_then_cut)
        else:
            patch.setattr(local_files, "copy_into_place", upload_three_files_then_cut)
        with pytest.raises(Cut):
            store.write_directory("models/tiny", model_folder(tmp_path / "v2", b"b"))
    assert store.ref("models/tiny") == old
    local = store.local_directory(old, cache_dir=tmp_path / "cache")
    assert {p.read_bytes()[:1] for p in local.glob("shard-*.bin")} == {b"a"}
    assert store.verify(old)


def test_an_old_reference_still_reads_its_own_folder_after_an_overwrite(store: ArtifactStore, tmp_path: Path) -> None:
    old = store.write_directory("models/tiny", model_folder(tmp_path / "v1", b"a"))
    new = store.write_directory("models/tiny", model_folder(tmp_path / "v2", b"b"))
    assert old.uri == new.uri and old.digest != new.digest
    assert store.ref("models/tiny") == new
    assert (store.local_directory(old, tmp_path / "cache") / "shard-0.bin").read_bytes() == b"a" * 10
    assert (store.local_directory(new, tmp_path / "cache") / "shard-0.bin").read_bytes() == b"b" * 10


def test_the_plain_local_path_shows_the_current_version(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    store.write_bytes("x.txt", b"1")
    store.write_bytes("x.txt", b"2")
    assert (tmp_path / "store" / "x.txt").read_bytes() == b"2"
    store.write_directory("models/tiny", model_folder(tmp_path / "v1", b"a"))
    store.write_directory("models/tiny", model_folder(tmp_path / "v2", b"b"))
    assert (tmp_path / "store" / "models" / "tiny" / "shard-0.bin").read_bytes() == b"b" * 10


def test_an_artifact_name_resolves_to_its_current_version(store: ArtifactStore) -> None:
    store.write_bytes("x.txt", b"1")
    store.write_bytes("x.txt", b"2")
    fs, path = filesystem(resolve_uri(store.uri("x.txt")))
    assert fs.cat_file(path) == b"2"
    assert resolve_uri(store.uri("not-stored.txt")) == store.uri("not-stored.txt")


def test_a_reference_reads_its_own_version_after_the_name_is_overwritten(store: ArtifactStore) -> None:
    old = store.write_bytes("rows.parquet", b"old rows")
    new = store.write_bytes("rows.parquet", b"new rows")
    for ref, content in ((old, b"old rows"), (new, b"new rows")):
        fs, path = filesystem(ref_uri(ref))
        assert fs.cat_file(path) == content
    # A file the store never wrote is read where it is.
    outside = ArtifactRef(uri=store.uri("elsewhere.txt"), digest=sha256_bytes(b""), size=0)
    assert ref_uri(outside) == store.uri("elsewhere.txt")


def test_artifacts_written_before_versions_still_read(store: ArtifactStore) -> None:
    # The old layout: the data at the artifact's own path, a manifest without a version beside it.
    legacy = ArtifactRef(uri=store.uri("old.bin"), digest=sha256_bytes(b"legacy"), size=6)
    store.fs.pipe_file(store._path("old.bin"), b"legacy")
    store.fs.pipe_file(store._path("old.bin") + MANIFEST_SUFFIX, legacy.model_dump_json().encode())
    store.fs.invalidate_cache()
    assert store.ref("old.bin") == legacy and store.list() == ["old.bin"]
    assert store.read_bytes("old.bin") == b"legacy" and store.verify(legacy)
    store.write_bytes("old.bin", b"rewritten")
    assert store.read_bytes("old.bin") == b"rewritten"


def test_delete_removes_every_version_and_nothing_else(store: ArtifactStore) -> None:
    store.write_bytes("d/one", b"1")
    store.write_bytes("d/one", b"one")
    store.write_bytes("d/one.txt", b"kept")
    store.delete("d/one")
    assert store.list("d") == ["d/one.txt"]
    assert store.read_bytes("d/one.txt") == b"kept"
    root = store.root_path.rstrip("/") + "/"
    assert sorted(p.removeprefix(root) for p in store.fs.find(store._path("d")) if "one.txt" not in p) == []


def test_names_of_stored_versions_cannot_be_written(store: ArtifactStore) -> None:
    with pytest.raises(ValueError, match="versions"):
        store.write_bytes("x.txt.versions/abc/x.txt", b"1")

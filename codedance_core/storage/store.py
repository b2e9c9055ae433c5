"""The artifact store: every stage's inputs and outputs, addressed by URI, written atomically.

Between pipeline tasks only small `ArtifactRef`s travel (URI + content digest + row count);
cache keys are built from their digests, never from the data. So every artifact needs a digest
that is cheap to read back: it lives in a small manifest beside the artifact
(`<name>.manifest.json`), written *after* the artifact itself. An artifact without a manifest is
an interrupted write and does not exist as far as the pipeline is concerned:
- on a local disk the data is written to a temporary name and renamed into place, then the
  manifest likewise (rename is atomic within a directory);
- on S3 every PUT is already atomic per object; writing the manifest last gives the same
  all-or-nothing view of the artifact.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from codedance_core.storage.uris import filesystem, is_remote, join_uri, normalize_uri, scheme_of

if TYPE_CHECKING:
    import polars as pl

DEFAULT_STORE = "./.codedance/store"
MANIFEST_SUFFIX = ".manifest.json"
DIRECTORY_INDEX = "_index.json"
_CHUNK = 1 << 20


class ArtifactRef(BaseModel):
    """What travels between tasks instead of data: where an artifact is and what it contains."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uri: str
    digest: str
    size: int
    rows: int | None = None

    @property
    def short_digest(self) -> str:
        return self.digest.split(":", 1)[-1][:12]


def sha256_file(path: str | Path) -> str:
    """'sha256:<hex>' of a local file, read in chunks (artifacts may be many GB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def sha256_bytes(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def parquet_rows(path: str | Path) -> int | None:
    """Row count from a parquet footer, without reading the data; None if not parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(path).num_rows
    except (pa.ArrowInvalid, OSError):  # not a parquet file: rows are not meaningful
        return None


@dataclass
class StagedFile:
    """A local file to write an artifact into; `ref` is set once the block commits it."""

    path: Path
    relpath: str
    ref: ArtifactRef | None = None


class ArtifactStore:
    """A folder of artifacts at a local path or an `s3://bucket/prefix` URI."""

    def __init__(self, root: str | Path = DEFAULT_STORE):
        self.root = normalize_uri(root)
        self.fs, self.root_path = filesystem(self.root)
        if not is_remote(self.root):
            Path(self.root_path).mkdir(parents=True, exist_ok=True)

    @classmethod
    def for_file(cls, uri: str | Path) -> tuple[ArtifactStore, str]:
        """A store rooted at the file's folder and the file's name in it (for `--out PATH`)."""
        text = normalize_uri(uri)
        parent, _, name = text.rpartition("/")
        return cls(parent or "."), name

    def __repr__(self) -> str:
        return f"ArtifactStore({self.root!r})"

    # -- addressing ---------------------------------------------------------------------------
    def uri(self, relpath: str) -> str:
        """The full URI of a path inside the store."""
        return join_uri(self.root, relpath)

    def _path(self, uri_or_relpath: str) -> str:
        """The filesystem path for a relpath in this store, or for a full URI on the same fs."""
        text = str(uri_or_relpath)
        if "://" in text or text.startswith("/"):
            if scheme_of(text) != scheme_of(self.root):
                raise ValueError(f"{text!r} is not on this store's filesystem ({self.root})")
            return filesystem(text)[1]
        return join_uri(self.root_path, text)

    # -- writing ------------------------------------------------------------------------------
    @contextmanager
    def stage(self, relpath: str) -> Iterator[StagedFile]:
        """Write an artifact through a local file; it is committed only if the block succeeds."""
        tmpdir = Path(tempfile.mkdtemp(prefix="codedance-stage-"))
        staged = StagedFile(path=tmpdir / Path(relpath).name, relpath=relpath)
        try:
            yield staged
            if not staged.path.exists():
                raise FileNotFoundError(f"nothing was written to {staged.path} for {relpath}")
            staged.ref = self._commit_file(staged.path, relpath)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def write_bytes(self, relpath: str, data: bytes) -> ArtifactRef:
        with self.stage(relpath) as staged:
            staged.path.write_bytes(data)
        assert staged.ref is not None
        return staged.ref

    def write_json(self, relpath: str, value: Any) -> ArtifactRef:
        return self.write_bytes(relpath, json.dumps(value, indent=2, sort_keys=True, default=str).encode())

    def write_parquet(self, relpath: str, frame: pl.DataFrame) -> ArtifactRef:
        with self.stage(relpath) as staged:
            frame.write_parquet(staged.path)
        assert staged.ref is not None
        return staged.ref

    def _commit_file(self, local: Path, relpath: str) -> ArtifactRef:
        rows = parquet_rows(local) if local.suffix == ".parquet" else None
        ref = ArtifactRef(uri=self.uri(relpath), digest=sha256_file(local), size=local.stat().st_size, rows=rows)
        target = self._path(relpath)
        manifest = json.dumps(ref.model_dump(), sort_keys=True).encode()
        if is_remote(self.root):
            self.fs.put_file(str(local), target)
            with self.fs.open(target + MANIFEST_SUFFIX, "wb") as handle:
                handle.write(manifest)
            self.fs.invalidate_cache()
        else:
            _replace_local(local, Path(target))
            _write_local_atomic(Path(target + MANIFEST_SUFFIX), manifest)
        return ref

    def write_directory(self, relpath: str, local_dir: str | Path) -> ArtifactRef:
        """Store a folder (a model, a checkpoint) as one artifact.

        Files go up first, then `relpath/DIRECTORY_INDEX` (every file's size and digest), then
        the manifest: the folder exists only once all of it does. Its digest is that of the
        index, so two folders with the same files have the same digest.
        """
        local = Path(local_dir)
        files = sorted(p for p in local.rglob("*") if p.is_file() and p.name != DIRECTORY_INDEX)
        index = directory_index(local)
        target = self._path(relpath)
        for path in files:
            name = str(path.relative_to(local))
            if is_remote(self.root):
                self.fs.put_file(str(path), f"{target}/{name}")
            else:
                _replace_local_copy(path, Path(target) / name)
        index_bytes = json.dumps(index, indent=1, sort_keys=True).encode()
        with self.stage(f"{relpath}/{DIRECTORY_INDEX}") as staged:
            staged.path.write_bytes(index_bytes)
        ref = ArtifactRef(uri=self.uri(relpath), digest=sha256_bytes(index_bytes), size=sum(f["size"] for f in index.values()))
        manifest = json.dumps(ref.model_dump(), sort_keys=True).encode()
        if is_remote(self.root):
            with self.fs.open(target + MANIFEST_SUFFIX, "wb") as handle:
                handle.write(manifest)
            self.fs.invalidate_cache()
        else:
            _write_local_atomic(Path(target + MANIFEST_SUFFIX), manifest)
        return ref

    def local_directory(self, ref: ArtifactRef, cache_dir: str | Path = ".codedance/cache") -> Path:
        """A local folder holding a stored directory: the folder itself for a local store, else a
        download into `cache_dir/<digest>` (reused while the digest matches)."""
        path = self._path(ref.uri)
        if not is_remote(self.root):
            return Path(path)
        local = Path(cache_dir) / ref.digest.split(":", 1)[-1][:24]
        if (local / DIRECTORY_INDEX).exists():
            return local
        index = json.loads(self.read_bytes(f"{ref.uri}/{DIRECTORY_INDEX}"))
        # Several workers of one node may fetch the same model at once: each downloads into a
        # folder of its own, and the first to finish renames it into place.
        partial = local.with_name(f"{local.name}.partial-{uuid.uuid4().hex[:8]}")
        for name in index:
            (partial / name).parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(f"{path}/{name}", str(partial / name))
        (partial / DIRECTORY_INDEX).write_text(json.dumps(index))
        try:
            partial.rename(local)
        except OSError:  # another worker got there first: its copy is the same files
            shutil.rmtree(partial, ignore_errors=True)
            if not (local / DIRECTORY_INDEX).exists():
                raise
        return local

    # -- reading ------------------------------------------------------------------------------
    def ref(self, relpath: str) -> ArtifactRef | None:
        """The committed artifact at relpath, or None when absent or half-written."""
        path = self._path(relpath) + MANIFEST_SUFFIX
        try:
            with self.fs.open(path, "rb") as handle:
                return ArtifactRef.model_validate_json(handle.read())
        except FileNotFoundError:
            return None

    def exists(self, relpath: str) -> bool:
        return self.ref(relpath) is not None

    def read_bytes(self, uri_or_relpath: str) -> bytes:
        with self.fs.open(self._path(uri_or_relpath), "rb") as handle:
            return handle.read()

    def read_json(self, uri_or_relpath: str) -> Any:
        return json.loads(self.read_bytes(uri_or_relpath))

    def open(self, uri_or_relpath: str, mode: str = "rb"):
        """Open an artifact for reading (writes go through `stage` to stay atomic)."""
        if "r" not in mode:
            raise ValueError("open() is for reading; write through stage(), write_bytes() or write_parquet()")
        return self.fs.open(self._path(uri_or_relpath), mode)

    def verify(self, ref: ArtifactRef) -> bool:
        """Recompute an artifact's digest and compare it with the reference."""
        digest = hashlib.sha256()
        with self.fs.open(self._path(ref.uri), "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        return f"sha256:{digest.hexdigest()}" == ref.digest

    def list(self, prefix: str = "") -> list[str]:
        """Relpaths of the committed artifacts under a prefix, sorted."""
        base = self._path(prefix) if prefix else self.root_path
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        root = self.root_path.rstrip("/") + "/"
        names = [p.removeprefix(root) for p in found]
        return sorted(n[: -len(MANIFEST_SUFFIX)] for n in names if n.endswith(MANIFEST_SUFFIX))

    def delete(self, relpath: str) -> None:
        """Remove an artifact: its manifest first, so it is never seen half-deleted."""
        for path in (self._path(relpath) + MANIFEST_SUFFIX, self._path(relpath)):
            try:
                self.fs.rm(path)
            except FileNotFoundError:
                pass
        if is_remote(self.root):
            self.fs.invalidate_cache()


def directory_index(local: Path) -> dict[str, dict[str, Any]]:
    """Every file of a folder (its index file aside) with its digest and size: what a stored folder's
    digest is made of."""
    files = sorted(p for p in local.rglob("*") if p.is_file() and p.name != DIRECTORY_INDEX)
    return {str(p.relative_to(local)): {"digest": sha256_file(p), "size": p.stat().st_size} for p in files}


def artifact_ref(uri: str | Path) -> ArtifactRef:
    """A reference to an existing file or folder (local, or s3:// with a manifest), for inputs that
    were not written by the pipeline: its manifest when a store wrote it, else its digest computed
    now (a file's bytes; a local folder's file index, as `write_directory` would record it)."""
    text = normalize_uri(uri)
    fs, path = filesystem(text)
    try:
        with fs.open(path + MANIFEST_SUFFIX, "rb") as handle:
            return ArtifactRef.model_validate_json(handle.read())
    except FileNotFoundError:
        pass
    if is_remote(text):
        raise FileNotFoundError(f"{text} has no manifest: write it through the artifact store, or pass a local copy")
    local = Path(path)
    if local.is_dir():
        index = json.dumps(directory_index(local), indent=1, sort_keys=True).encode()
        return ArtifactRef(uri=text, digest=sha256_bytes(index), size=sum(p.stat().st_size for p in local.rglob("*") if p.is_file()))
    if not local.is_file():
        raise FileNotFoundError(f"{text} does not exist")
    return ArtifactRef(uri=text, digest=sha256_file(local), size=local.stat().st_size,
                       rows=parquet_rows(local) if local.suffix == ".parquet" else None)


def _replace_local(source: Path, target: Path) -> None:
    """Move a finished local file into place atomically (temp name in the target's folder, rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    shutil.move(source, temp)  # a rename on the same device, a copy across devices
    with open(temp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, target)


def _replace_local_copy(source: Path, target: Path) -> None:
    """Copy a file into place atomically (a temporary name beside the target, then rename)."""
    if source.resolve() == target.resolve():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    shutil.copyfile(source, temp)
    os.replace(temp, target)


def _write_local_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, target)

"""The artifact store: every stage's inputs and outputs, addressed by URI, all or nothing.

Between pipeline tasks only small `ArtifactRef`s travel (URI + content digest + row count);
cache keys are built from their digests, never from the data. An artifact `<name>` is:
- its versions, `<name>.versions/<id>/<name>`, where `<id>` is taken from the content digest: a file,
  or a folder with `_index.json` (every file's size and digest) written after its files;
- its manifest, `<name>.manifest.json`: the reference, plus the id of the current version. It is
  written last, so a write cut anywhere leaves the previous version in place, complete; an artifact
  without a manifest does not exist as far as the pipeline is concerned.
On a local disk every file goes to a temporary name and is renamed into place, and `<name>` itself
shows the current version (a hard link for a file, a symbolic link for a folder), so local paths
stay readable by any tool. On S3 each PUT is atomic per object and `<name>` holds nothing: readers
resolve it through the manifest (`resolve_uri`).

A reference's URI is the artifact's name; a reader that holds one gets the version with the
reference's digest while that version is kept, and checks what it reads against it: sizes always,
digests of what it downloads. Superseded versions are kept (references cached by earlier runs
still point at them) until `delete` removes the artifact. Artifacts written before versions
existed (data beside the manifest) still read.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from codedance_core.storage import local_files
from codedance_core.storage.integrity import (
    DIRECTORY_INDEX,
    CorruptArtifactError,
    bytes_problems,
    directory_index,
    folder_problems,
    sha256_bytes,
    sha256_file,
)
from codedance_core.storage.uris import filesystem, is_remote, join_uri, normalize_uri, scheme_of

if TYPE_CHECKING:
    import fsspec
    import polars as pl

DEFAULT_STORE = "./.codedance/store"
MANIFEST_SUFFIX = ".manifest.json"
VERSIONS_SUFFIX = ".versions"
_RESOLVED_SCHEMES = ("file", "s3", "memory")
# Old-layout local folders (no versions) whose every digest this process has checked.
_CHECKED_FOLDERS: set[tuple[str, str]] = set()


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


def parquet_rows(path: str | Path) -> int | None:
    """Row count from a parquet footer, without reading the data; None if not parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(path).num_rows
    except (pa.ArrowInvalid, OSError):  # not a parquet file: rows are not meaningful
        return None


def version_id(digest: str) -> str:
    return digest.split(":", 1)[-1][:32]


def version_path(path: str, digest: str) -> str:
    """Where the version of the artifact at `path` with content `digest` is stored."""
    return _version_at(path, version_id(digest))


def _version_at(path: str, version: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return f"{path}{VERSIONS_SUFFIX}/{version}/{name}"


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
        self.remote = is_remote(self.root)
        self.fs, self.root_path = filesystem(self.root)
        if not self.remote:
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

    def _target(self, relpath: str) -> str:
        if any(part.endswith(VERSIONS_SUFFIX) for part in relpath.split("/")):
            raise ValueError(f"{relpath!r}: names ending in {VERSIONS_SUFFIX} hold stored versions; choose another name")
        return self._path(relpath)

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
        target = self._target(relpath)
        rows = parquet_rows(local) if local.suffix == ".parquet" else None
        ref = ArtifactRef(uri=self.uri(relpath), digest=sha256_file(local), size=local.stat().st_size, rows=rows)
        stored = version_path(target, ref.digest)
        if self.remote:
            self.fs.put_file(str(local), stored)
        else:
            local_files.move_into_place(local, Path(stored))
            local_files.show_file(Path(stored), Path(target))
        self._write_manifest(target, ref)
        return ref

    def write_directory(self, relpath: str, local_dir: str | Path) -> ArtifactRef:
        """Store a folder (a model, a checkpoint) as one artifact.

        Its files go into a new version, then the version's `DIRECTORY_INDEX` (every file's size and
        digest), then the manifest. The digest is that of the index, so two folders with the same
        files have the same digest.
        """
        local = Path(local_dir)
        target = self._target(relpath)
        index = directory_index(local)
        index_bytes = json.dumps(index, indent=1, sort_keys=True).encode()
        ref = ArtifactRef(uri=self.uri(relpath), digest=sha256_bytes(index_bytes), size=sum(f["size"] for f in index.values()))
        stored = version_path(target, ref.digest)
        for name in index:
            if self.remote:
                self.fs.put_file(str(local / name), f"{stored}/{name}")
            else:
                local_files.copy_into_place(local / name, Path(stored) / name)
        if self.remote:
            self._put_bytes(f"{stored}/{DIRECTORY_INDEX}", index_bytes)
        else:
            local_files.write_atomic(Path(stored) / DIRECTORY_INDEX, index_bytes)
            local_files.show_folder(Path(stored), Path(target))
        self._write_manifest(target, ref)
        return ref

    def _write_manifest(self, target: str, ref: ArtifactRef) -> None:
        """The commit: the manifest names the new version, so readers move to it all at once."""
        manifest = json.dumps({**ref.model_dump(), "version": version_id(ref.digest)}, sort_keys=True).encode()
        if self.remote:
            self._put_bytes(target + MANIFEST_SUFFIX, manifest)
        else:
            local_files.write_atomic(Path(target + MANIFEST_SUFFIX), manifest)

    def _put_bytes(self, path: str, data: bytes) -> None:
        with self.fs.open(path, "wb") as handle:
            handle.write(data)
        self.fs.invalidate_cache()

    # -- reading ------------------------------------------------------------------------------
    def ref(self, relpath: str) -> ArtifactRef | None:
        """The committed artifact at relpath, or None when absent or half-written."""
        found = _read_manifest(self.fs, self._path(relpath))
        return found[0] if found else None

    def exists(self, relpath: str) -> bool:
        return self.ref(relpath) is not None

    def _resolve(self, uri_or_relpath: str) -> tuple[str, ArtifactRef | None]:
        """Where the current version of an artifact is, and its reference (None for a path that is
        no artifact, e.g. a file inside a stored folder)."""
        path = self._path(uri_or_relpath)
        found = _read_manifest(self.fs, path)
        if found is None:
            return path, None
        ref, version = found
        return (_version_at(path, version) if version else path), ref

    def _locate(self, ref: ArtifactRef) -> tuple[str, bool]:
        """Where the content `ref` describes is, and whether that is a version (else an artifact
        written before versions existed, or a file the store did not write)."""
        path = self._path(ref.uri)
        stored = version_path(path, ref.digest)
        if self.remote:
            self.fs.invalidate_cache(stored)
        if self.fs.exists(stored):
            return stored, True
        return path, False

    def read_bytes(self, uri_or_relpath: str) -> bytes:
        """An artifact's bytes, checked against its manifest (or any file's bytes by path)."""
        path, ref = self._resolve(uri_or_relpath)
        with self.fs.open(path, "rb") as handle:
            data = handle.read()
        if ref is not None and (problems := bytes_problems(data, ref.size, ref.digest)):
            raise CorruptArtifactError(ref.uri, problems)
        return data

    def read_json(self, uri_or_relpath: str) -> Any:
        return json.loads(self.read_bytes(uri_or_relpath))

    def open(self, uri_or_relpath: str, mode: str = "rb"):
        """Open an artifact for reading (writes go through `stage` to stay atomic); its size is
        checked against the manifest, its digest is not (see `verify`)."""
        if "r" not in mode:
            raise ValueError("open() is for reading; write through stage(), write_bytes() or write_parquet()")
        path, ref = self._resolve(uri_or_relpath)
        handle = self.fs.open(path, mode)
        if ref is not None and (size := self.fs.size(path)) != ref.size:
            handle.close()
            raise CorruptArtifactError(ref.uri, [f"{size} bytes where {ref.size} were written"])
        return handle

    def verify(self, ref: ArtifactRef) -> bool:
        """Recompute an artifact's digest (a folder's: its index and every file) and compare."""
        path, _ = self._locate(ref)
        if self.fs.isdir(path):
            try:
                index = self._read_index(path, ref)
            except (CorruptArtifactError, FileNotFoundError):
                return False
            with tempfile.TemporaryDirectory(prefix="codedance-verify-") as tmp:
                return not self._folder_problems(path, index, Path(tmp))
        with self.fs.open(path, "rb") as handle:
            return not bytes_problems(handle.read(), ref.size, ref.digest)

    def local_directory(self, ref: ArtifactRef, cache_dir: str | Path = ".codedance/cache") -> Path:
        """A local folder holding exactly the stored folder `ref` describes: the folder itself for a
        local store, else a download into `cache_dir` (checked file by file, then reused while its
        sizes match). A folder whose files do not match its index raises `CorruptArtifactError`."""
        path, versioned = self._locate(ref)
        if not self.remote:
            if not versioned and not Path(path, DIRECTORY_INDEX).exists():
                # A folder the store never wrote (`artifact_ref` of a user's model): its reference
                # was computed from it just now, so a size check is all that is cheap and useful.
                size = sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
                if size != ref.size:
                    raise CorruptArtifactError(ref.uri, [f"{size} bytes where {ref.size} were indexed"])
                return Path(path)
            index = self._read_index(path, ref)
            # A version is written whole before it is named; an old-layout folder may mix two writes.
            check = not versioned and (path, ref.digest) not in _CHECKED_FOLDERS
            if problems := folder_problems(Path(path), index, digests=check):
                raise CorruptArtifactError(ref.uri, problems)
            _CHECKED_FOLDERS.add((path, ref.digest))
            return Path(path)
        local = Path(cache_dir) / f"sha256-{version_id(ref.digest)}"
        if (local / DIRECTORY_INDEX).exists():
            index = json.loads((local / DIRECTORY_INDEX).read_text())
            if not folder_problems(local, index, digests=False):
                return local
            shutil.rmtree(local, ignore_errors=True)  # a cached copy lost files: fetch it again
        index = self._read_index(path, ref)
        # Several workers of one node may fetch the same model at once: each downloads into a
        # folder of its own, and the first to finish renames it into place.
        partial = local.with_name(f"{local.name}.partial-{uuid.uuid4().hex[:8]}")
        try:
            if problems := self._folder_problems(path, index, partial):
                raise CorruptArtifactError(ref.uri, problems)
            (partial / DIRECTORY_INDEX).write_text(json.dumps(index))  # last: it marks a checked copy
            try:
                partial.rename(local)
            except OSError:  # another worker got there first: its copy is the same files
                if not (local / DIRECTORY_INDEX).exists():
                    raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return local

    def _read_index(self, path: str, ref: ArtifactRef) -> dict[str, dict[str, Any]]:
        """A stored folder's index, refused unless it is the one the reference was made from."""
        with self.fs.open(f"{path}/{DIRECTORY_INDEX}", "rb") as handle:
            index_bytes = handle.read()
        if sha256_bytes(index_bytes) != ref.digest:
            raise CorruptArtifactError(ref.uri, [f"its {DIRECTORY_INDEX} is not the one of digest {ref.short_digest}"])
        return json.loads(index_bytes)

    def _folder_problems(self, path: str, index: dict[str, dict[str, Any]], local: Path) -> list[str]:
        """Download a stored folder's files into `local` (a local store's are read in place) and
        compare each with the index."""
        if not self.remote:
            return folder_problems(Path(path), index, digests=True)
        for name in index:
            (local / name).parent.mkdir(parents=True, exist_ok=True)
            try:
                self.fs.get_file(f"{path}/{name}", str(local / name))
            except FileNotFoundError:
                pass  # reported as missing below, with every other difference
        return folder_problems(local, index, digests=True)

    def list(self, prefix: str = "") -> list[str]:
        """Relpaths of the committed artifacts under a prefix, sorted."""
        base = self._path(prefix) if prefix else self.root_path
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        root = self.root_path.rstrip("/") + "/"
        names = [p.removeprefix(root)[: -len(MANIFEST_SUFFIX)] for p in found if p.endswith(MANIFEST_SUFFIX)]
        return sorted(n for n in names if not any(part.endswith(VERSIONS_SUFFIX) for part in n.split("/")[:-1]))

    def delete(self, relpath: str) -> None:
        """Remove an artifact and all its versions: its manifest first, so it is never seen half-deleted."""
        path = self._path(relpath)
        if not self.remote:
            for doomed in (path + MANIFEST_SUFFIX, path + VERSIONS_SUFFIX, path):
                local_files.remove_path(Path(doomed))
            return
        # Object by object: a recursive rm of a bare key could reach keys it is only a prefix of.
        for key in (path + MANIFEST_SUFFIX, path):
            if self.fs.isfile(key):
                self.fs.rm_file(key)
        for folder in (path + VERSIONS_SUFFIX, path):
            try:
                keys = self.fs.find(folder + "/")
            except FileNotFoundError:
                keys = []
            if keys:
                self.fs.rm(keys)
        self.fs.invalidate_cache()


def _read_manifest(fs: fsspec.AbstractFileSystem, path: str) -> tuple[ArtifactRef, str | None] | None:
    """The reference in `path`'s manifest and the id of its current version (None: the data sits
    beside the manifest, as written before versions existed); None when there is no manifest."""
    try:
        with fs.open(path + MANIFEST_SUFFIX, "rb") as handle:
            manifest = json.loads(handle.read())
    except FileNotFoundError:
        return None
    version = manifest.pop("version", None)
    return ArtifactRef.model_validate(manifest), version


def resolve_uri(uri: str | Path) -> str:
    """The URI of the current version of a stored artifact, for readers given its name (a path
    passed on a command line); any other URI unchanged."""
    text = normalize_uri(uri)
    if scheme_of(text) not in _RESOLVED_SCHEMES:
        return text
    fs, path = filesystem(text)
    found = _read_manifest(fs, path)
    if found is None or found[1] is None:
        return text
    return _version_at(text, found[1])


def ref_uri(ref: ArtifactRef) -> str:
    """The URI of exactly the content `ref` describes: its version while the store keeps it (a later
    write under the same name does not change what a reference reads), else the name's current one."""
    text = normalize_uri(ref.uri)
    if scheme_of(text) in _RESOLVED_SCHEMES:
        stored = version_path(text, ref.digest)
        fs, path = filesystem(stored)
        if fs.exists(path):
            return stored
    return resolve_uri(text)


def artifact_ref(uri: str | Path) -> ArtifactRef:
    """A reference to an existing file or folder (local, or s3:// with a manifest), for inputs that
    were not written by the pipeline: its manifest when a store wrote it, else its digest computed
    now (a file's bytes; a local folder's file index, as `write_directory` would record it)."""
    text = normalize_uri(uri)
    fs, path = filesystem(text)
    if (found := _read_manifest(fs, path)) is not None:
        return found[0]
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

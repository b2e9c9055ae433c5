"""A stage's input rows from its sources: each source expanded to files with digests, then all of
them merged into one parquet file in the store.

`resolve_source` turns a source URI into `SourceFiles`: every file it names, each with a digest
(the lineage MLflow records, and what the merged rows' cache key is made of):
- a local path (a file, a folder of parquet files, or a glob): the store's manifest when a store
  wrote it, else the sha256 of its bytes;
- `s3://bucket/key` (the same forms): the manifest, else the object's ETag (hashing a remote file
  would mean downloading it);
- `hf://datasets/<org>/<name>@<revision>/<path glob>`: the revision is pinned to its commit once
  (every file is read at that commit, and the lineage names it), and each file's digest is the
  sha256 the hub keeps for it, so a downloaded copy has the same digest as the hub's file.

`merge_sources` streams every file batch by batch into one parquet, in the layout the row schemas
read: the conversation under one name (`prompt` for RL rows, whichever spelling a file used),
images as `{bytes, path}` structs (also the image in `extra_info.tools_kwargs`), and a
`data_source` on every row (a file without one gets its source's label). Columns the sources do
not share are kept, null where a source lacks them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from codedance_core.config.base import canonical_json
from codedance_core.config.data import SourceURI, parse_source
from codedance_core.data.schemas import IMAGE_STRUCT, MESSAGE_STRUCT, SchemaName, as_image_list
from codedance_core.errors import UserError
from codedance_core.storage import ArtifactRef, artifact_ref, filesystem, ref_uri
from codedance_core.storage.store import MANIFEST_SUFFIX, VERSIONS_SUFFIX

IMAGE_LIST = pa.list_(IMAGE_STRUCT)
# Where the released RL rows keep the sandbox's copy of the image.
TOOL_IMAGE_PATH = ("tools_kwargs", "execute_python_code", "create_kwargs", "image")


class SourceError(UserError):
    """A source that cannot be read: absent, empty, unreachable, or at odds with the other sources."""


class SourceFiles(BaseModel):
    """One source as configured, its label, and the files it names (in reading order)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    label: str
    files: list[ArtifactRef]

    def digest(self) -> str:
        """What merged rows depend on: the source as written and its files' contents (not where they are)."""
        payload = {"source": self.source, "files": [ref.digest for ref in self.files]}
        return hashlib.sha256(canonical_json(payload).encode()).hexdigest()

    @classmethod
    def of_artifact(cls, source: str, ref: ArtifactRef) -> SourceFiles:
        """A source the lifecycle wrote itself (the suite's split, the synthesised trajectories)."""
        return cls(source=source, label=parse_source(source).label, files=[ref])


# -- resolving ------------------------------------------------------------------------------------
def resolve_source(text: str) -> SourceFiles:
    """The files a row-file source names, with their digests; SourceError when it names none."""
    parsed = parse_source(text)
    if parsed.scheme == "hf":
        files = _hub_files(parsed)
    elif parsed.scheme in ("file", "s3"):
        files = _store_files(parsed)
    else:
        raise SourceError(
            f"{text} is made by the lifecycle, not read from a file", "pass its artifact instead"
        )
    return SourceFiles(source=text, label=parsed.label, files=files)


def _store_files(parsed: SourceURI) -> list[ArtifactRef]:
    """The parquet files a path, folder or glob names. An artifact a store wrote counts once, by its
    name (on S3 only its manifest and versions exist), never by its stored versions."""
    fs, path = filesystem(parsed.text)
    if parsed.is_glob:
        found = fs.glob(path) + fs.glob(path + MANIFEST_SUFFIX)
    elif fs.isdir(path):
        found = fs.find(path)
    elif fs.exists(path) or fs.exists(path + MANIFEST_SUFFIX):
        found = [path]
    else:
        raise SourceError(
            f"source {parsed.text}: no such file or folder", "check the path (and for s3:// the bucket)"
        )
    names = {p.removesuffix(MANIFEST_SUFFIX) for p in found}
    paths = sorted(
        p
        for p in names
        if p.endswith(".parquet") and not any(part.endswith(VERSIONS_SUFFIX) for part in p.split("/"))
    )
    if not paths:
        raise SourceError(
            f"source {parsed.text} names no parquet file", "point it at a .parquet file, a folder or a glob"
        )
    prefix = "s3://" if parsed.scheme == "s3" else ""
    return [_file_ref(fs, prefix + p) for p in paths]


def _file_ref(fs: Any, uri: str) -> ArtifactRef:
    """The store's reference when a store wrote the file, else one made from the file itself."""
    if not uri.startswith("s3://"):
        return artifact_ref(uri)
    try:
        return artifact_ref(uri)
    except FileNotFoundError:  # a file the store did not write: its ETag stands for its content
        info = fs.info(uri.removeprefix("s3://"))
        etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
        if not etag:
            raise SourceError(
                f"{uri} has neither a manifest nor an ETag", "copy it through `codedance data`"
            ) from None
        return ArtifactRef(uri=uri, digest=f"etag:{etag}", size=int(info["size"]))


def _hub_files(parsed: SourceURI) -> list[ArtifactRef]:
    """The dataset's files at the revision's commit, each with the hub's sha256 of its content."""
    from huggingface_hub import HfApi, HfFileSystem
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    endpoint = os.environ.get("HF_ENDPOINT") or None
    token = os.environ.get("HF_TOKEN") or None
    try:
        commit = HfApi(endpoint=endpoint, token=token).dataset_info(parsed.repo, revision=parsed.revision).sha
        fs = HfFileSystem(endpoint=endpoint, token=token)
        found = fs.glob(f"datasets/{parsed.repo}@{commit}/{parsed.path}", detail=True)
    except RevisionNotFoundError:
        raise SourceError(
            f"source {parsed.text}: the dataset has no revision {parsed.revision!r}",
            "name a commit, tag or branch it has",
        ) from None
    except RepositoryNotFoundError:
        raise SourceError(
            f"source {parsed.text}: no dataset {parsed.repo} on the hub",
            "check the name, and HF_TOKEN if it is private",
        ) from None
    except Exception as error:
        if not _network_fault(error, HfHubHTTPError):
            raise
        where = endpoint or "https://huggingface.co"
        raise SourceError(
            f"source {parsed.text}: cannot reach the Hugging Face hub at {where} ({type(error).__name__})",
            "check the network and HF_ENDPOINT, or download the files and name the local folder as the source",
        ) from None
    files = [_hub_ref(path, info) for path, info in sorted(found.items()) if info.get("type") == "file"]
    files = [ref for ref in files if ref.uri.endswith(".parquet")]
    if not files:
        raise SourceError(
            f"source {parsed.text} names no parquet file at commit {commit}",
            "check the path glob against the dataset's files",
        )
    return files


def _network_fault(error: Exception, hub_error: type[Exception]) -> bool:
    """Connection refused, DNS, timeouts, an error status from the hub: its HTTP client's errors
    (httpx or httpx2, by version) are recognised by their module, not imported."""
    client = type(error).__module__.partition(".")[0]
    return isinstance(error, (hub_error, OSError)) or client in ("httpx", "httpx2", "requests", "urllib3")


def _hub_ref(path: str, info: Mapping[str, Any]) -> ArtifactRef:
    lfs = info.get("lfs") or {}
    digest = f"sha256:{lfs['sha256']}" if lfs.get("sha256") else f"git-blob:{info.get('blob_id', '')}"
    return ArtifactRef(uri=f"hf://{path}", digest=digest, size=int(info.get("size") or 0))


# -- merging --------------------------------------------------------------------------------------
def merge_sources(
    sources: list[SourceFiles],
    schema: SchemaName,
    out_uri: str,
    batch_rows: int = 256,
    row_group_rows: int = 256,
) -> tuple[ArtifactRef, dict[str, int]]:
    """Every source's rows in one parquet at `out_uri` (through the store); its reference and the
    rows each source gave, by label."""
    from codedance_core.data.io import ParquetSink, iter_batches, open_parquet

    if not sources:
        raise SourceError("nothing to merge: no source", "name at least one source")
    labels = unique_labels(sources)
    shapes: list[tuple[str, pa.Schema]] = []
    for source, label in zip(sources, labels, strict=True):
        for ref in source.files:
            with open_parquet(ref_uri(ref)) as opened:
                footer = opened.schema
            shapes.append(
                (f"{source.source} ({ref.uri})", normalize(footer.empty_table(), schema, label).schema)
            )
    unified = _unify(shapes)
    counts = dict.fromkeys(labels, 0)
    with ParquetSink.open(out_uri, unified, row_group_rows=row_group_rows) as sink:
        for source, label in zip(sources, labels, strict=True):
            for ref in source.files:
                for batch in iter_batches(ref_uri(ref), batch_rows):
                    sink.write(conform(normalize(pa.Table.from_batches([batch]), schema, label), unified))
                    counts[label] += batch.num_rows
    assert sink.ref is not None
    return sink.ref, counts


def unique_labels(sources: list[SourceFiles]) -> list[str]:
    """The sources' labels, a repeated one numbered (`train`, `train-2`): two folders may hold files
    of the same name, and their rows must stay apart in the counts."""
    labels: list[str] = []
    for source in sources:
        label, number = source.label, 1
        while label in labels:
            number += 1
            label = f"{source.label}-{number}"
        labels.append(label)
    return labels


def _unify(shapes: list[tuple[str, pa.Schema]]) -> pa.Schema:
    """One schema every file's rows fit; SourceError naming the first file whose columns conflict."""
    unified = shapes[0][1].remove_metadata()
    for name, shape in shapes[1:]:
        try:
            unified = pa.unify_schemas([unified, shape.remove_metadata()], promote_options="permissive")
        except (pa.ArrowTypeError, pa.ArrowInvalid) as error:
            raise SourceError(
                f"{name} does not fit the rows of {shapes[0][0]}: {str(error).splitlines()[0]}",
                "give every source the same column types (or merge them as separate stages)",
            ) from None
    return unified


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` in `schema`: its columns in order, null where it lacks a column or a struct field."""
    merged = pa.concat_tables(
        [schema.empty_table(), table.replace_schema_metadata(None)], promote_options="permissive"
    )
    return merged.select(schema.names).cast(schema)


def normalize(table: pa.Table, schema: SchemaName, label: str) -> pa.Table:
    """One file's rows in the merged layout (see the module's docstring); an empty table gives the
    layout's schema, so footers alone decide the merged file's columns."""
    names = table.column_names
    if schema == "rl" and "messages" in names and "prompt" not in names:
        table = table.rename_columns(["prompt" if name == "messages" else name for name in names])
    for conversation in ("prompt", "messages"):
        if conversation in table.column_names and _is_text(table.schema.field(conversation).type):
            table = _replace(table, conversation, _json_messages, pa.list_(MESSAGE_STRUCT))
    if "images" in table.column_names:
        table = _replace(table, "images", _image_structs, IMAGE_LIST)
    if "extra_info" in table.column_names:
        target = _with_tool_image(table.schema.field("extra_info").type)
        if target is not None:
            table = _replace(table, "extra_info", _tool_image_struct, target)
    if "data_source" not in table.column_names:
        table = table.append_column("data_source", pa.array([label] * table.num_rows, pa.string()))
    return table


def _replace(table: pa.Table, name: str, convert: Callable[[Any], Any], type_: pa.DataType) -> pa.Table:
    values = [convert(value) for value in table.column(name).to_pylist()]
    return table.set_column(table.column_names.index(name), pa.field(name, type_), pa.array(values, type_))


def _is_text(type_: pa.DataType) -> bool:
    return pa.types.is_string(type_) or pa.types.is_large_string(type_)


def _json_messages(value: Any) -> Any:
    """A conversation some exports wrote as JSON text, as a list of {role, content}."""
    if not isinstance(value, str):
        return value
    try:
        messages = json.loads(value)
    except ValueError:
        return None  # not a conversation: the validator quarantines the row
    if not isinstance(messages, list):
        return None
    return [{"role": m.get("role"), "content": m.get("content")} for m in messages if isinstance(m, dict)]


def _image_structs(value: Any) -> Any:
    """Raw bytes, a path, a struct, or a list of these, as a list of {bytes, path}."""
    images = as_image_list(value)
    if not isinstance(images, list):
        return None
    return [_image_struct(image) for image in images]


def _image_struct(image: Any) -> dict[str, Any] | None:
    if isinstance(image, (bytes, bytearray)):
        return {"bytes": bytes(image), "path": None}
    if isinstance(image, str):
        return {"bytes": None, "path": image}
    if isinstance(image, Mapping):
        return {"bytes": image.get("bytes"), "path": image.get("path")}
    return None


def _with_tool_image(type_: pa.DataType) -> pa.DataType | None:
    """`extra_info`'s type with the tool's image as a {bytes, path} struct; None when it has no such
    field (or already has that struct)."""
    return _retyped(type_, TOOL_IMAGE_PATH)


def _retyped(type_: pa.DataType, path: tuple[str, ...]) -> pa.DataType | None:
    if not pa.types.is_struct(type_) or type_.get_field_index(path[0]) < 0:
        return None
    field = type_.field(path[0])
    if len(path) == 1:
        inner = None if field.type == IMAGE_STRUCT else IMAGE_STRUCT
    else:
        inner = _retyped(field.type, path[1:])
    if inner is None:
        return None
    fields = [pa.field(f.name, inner) if f.name == path[0] else f for f in type_]
    return pa.struct(fields)


def _tool_image_struct(extra: Any) -> Any:
    if not isinstance(extra, dict):
        return extra
    node: Any = extra
    for key in TOOL_IMAGE_PATH[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict) and TOOL_IMAGE_PATH[-1] in node:
        node[TOOL_IMAGE_PATH[-1]] = _image_struct(node[TOOL_IMAGE_PATH[-1]])
    return extra

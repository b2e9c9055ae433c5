"""The artifact store (local folder or s3://) and URI helpers shared by every stage."""

from codedance_core.storage.integrity import CorruptArtifactError
from codedance_core.storage.store import (
    DEFAULT_STORE,
    ArtifactRef,
    ArtifactStore,
    StagedFile,
    artifact_ref,
    directory_index,
    parquet_rows,
    ref_uri,
    resolve_uri,
    sha256_bytes,
    sha256_file,
)
from codedance_core.storage.uris import filesystem, is_remote, join_uri, normalize_uri, storage_options

__all__ = [
    "DEFAULT_STORE",
    "ArtifactRef",
    "ArtifactStore",
    "CorruptArtifactError",
    "StagedFile",
    "artifact_ref",
    "directory_index",
    "filesystem",
    "is_remote",
    "join_uri",
    "normalize_uri",
    "parquet_rows",
    "ref_uri",
    "resolve_uri",
    "sha256_bytes",
    "sha256_file",
    "storage_options",
]

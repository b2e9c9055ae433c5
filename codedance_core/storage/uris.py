"""Where a URI lives: one function from any URI to an fsspec filesystem and a path.

Every stage reads and writes through these, so the same code runs against a local folder,
an S3-compatible bucket (s3fs) or the Hugging Face hub (`hf://datasets/...`, read only).
S3 settings come from the environment the way AWS tools expect (`AWS_ENDPOINT_URL`,
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`), so a moto server on loopback in
tests and a real bucket in production differ only in environment variables.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import fsspec

REMOTE_SCHEMES = ("s3", "hf", "gs", "gcs", "az", "abfs", "memory")


def scheme_of(uri: str) -> str:
    """The URI's scheme ('file' for plain paths)."""
    if "://" in uri:
        return uri.split("://", 1)[0].lower()
    return "file"


def is_remote(uri: str) -> bool:
    return scheme_of(uri) in REMOTE_SCHEMES


def normalize_uri(uri: str | Path) -> str:
    """Absolute local paths stay paths; remote URIs lose trailing slashes.

    Symbolic links are kept, not followed: in a local store an artifact's name is a link to its
    current version, and the name is what a reference holds."""
    text = str(uri)
    if scheme_of(text) == "file":
        text = text.removeprefix("file://")
        return os.path.abspath(Path(text).expanduser())
    return text.rstrip("/")


def join_uri(base: str, *parts: str) -> str:
    """Join path parts onto a URI with '/' (never os.sep, which would break s3://)."""
    out = base.rstrip("/")
    for part in parts:
        part = part.strip("/")
        if part:
            out = f"{out}/{part}"
    return out


def _s3_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def _s3_region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def s3fs_options() -> dict[str, Any]:
    """Keyword arguments for s3fs.S3FileSystem taken from the environment."""
    client_kwargs: dict[str, Any] = {}
    if endpoint := _s3_endpoint():
        client_kwargs["endpoint_url"] = endpoint
    if region := _s3_region():
        client_kwargs["region_name"] = region
    options: dict[str, Any] = {"client_kwargs": client_kwargs}
    if key := os.environ.get("AWS_ACCESS_KEY_ID"):
        options["key"] = key
        options["secret"] = os.environ.get("AWS_SECRET_ACCESS_KEY")
        if token := os.environ.get("AWS_SESSION_TOKEN"):
            options["token"] = token
    return options


def filesystem(uri: str | Path) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem that holds `uri`, and the path within it."""
    text = normalize_uri(uri)
    scheme = scheme_of(text)
    if scheme == "file":
        return fsspec.filesystem("file"), text
    if scheme == "s3":
        fs = fsspec.filesystem("s3", **s3fs_options())
        return fs, text[len("s3://"):]
    if scheme == "hf":
        # Needs huggingface_hub and network: how users read the released CodeDance parquet files.
        fs = fsspec.filesystem("hf", token=os.environ.get("HF_TOKEN"))
        return fs, text[len("hf://"):]
    fs, path = fsspec.core.url_to_fs(text)
    return fs, path


def storage_options(uri: str | Path) -> dict[str, str] | None:
    """Options for polars' native readers (`storage_options=`), or None for local paths."""
    scheme = scheme_of(str(uri))
    if scheme != "s3":
        return {"token": os.environ["HF_TOKEN"]} if scheme == "hf" and "HF_TOKEN" in os.environ else None
    opts: dict[str, str] = {}
    if endpoint := _s3_endpoint():
        opts["aws_endpoint_url"] = endpoint
        if endpoint.startswith("http://"):
            opts["aws_allow_http"] = "true"
    if region := _s3_region():
        opts["aws_region"] = region
    if key := os.environ.get("AWS_ACCESS_KEY_ID"):
        opts["aws_access_key_id"] = key
        opts["aws_secret_access_key"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    return opts
